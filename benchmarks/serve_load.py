"""Load test of ``tagger serve`` on loopback: N concurrent clients for a fixed time.

Usage::

    python benchmarks/serve_load.py MODEL_DIR [--clients 1 8 32] [--seconds 20] [--sentences 1 8]
        [--workers 1] [--runtime torch] [--data ../shared/data/conll2003/eng.testb] [--out reports/serve]

The server runs as its own process (``python -m tagger.cli serve``, the CLI users run) on
127.0.0.1. Requests are raw texts, ``--sentences`` sentences of ``eng.testb`` each (tokens joined
by spaces), sent by ``--clients`` concurrent asyncio clients (one process) in a closed loop
for ``--seconds`` seconds after a short warm-up (aiohttp: ``pip install aiohttp``; a much
lighter client than httpx, whose ~3 ms of CPU per request would load the shared cores more than
the server). For each configuration the report gives
requests/s, tokens/s, p50/p95/p99 latency, errors (any status but 200, or a failed connection)
and the server's resident memory (peak over the run, every process of it). In the same run
``tagger annotate`` tags the same texts as JSON lines in one batch job (library call, one
process): the tokens/s micro-batching aims at. Client and server share this machine's cores.
Results go to ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proctree import cpu_seconds, rss_mb, tree  # benchmarks/proctree.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, workers: int, runtime: str) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "tagger.cli", "serve", model, "--port", str(port), "--workers", str(workers),
           "--runtime", runtime]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode}: {shlex.join(cmd)}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start in 120 s")


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float, warmup: float, server_pid: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    tokens = 0
    errors: dict[str, int] = {}
    peak_rss = 0.0
    t_start = time.perf_counter() + warmup
    t_end = t_start + seconds
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one_client(k: int) -> None:
            nonlocal tokens
            i = k
            while True:
                body = bodies[i % len(bodies)]
                i += clients
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                try:
                    async with session.post("/annotate", data=body, headers=headers) as r:
                        raw = await r.read()
                    error = None if r.status == 200 else f"HTTP {r.status}: {raw[:200].decode(errors='replace')}"
                    n = sum(len(x["tokens"]) for x in json.loads(raw)["results"]) if error is None else 0
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    error, n = f"{type(exc).__name__}: {exc}", 0
                t1 = time.perf_counter()
                if t0 >= t_start:  # measured (after the warm-up)
                    if error is None:
                        latencies.append(t1 - t0)
                        tokens += n
                    else:
                        errors[error] = errors.get(error, 0) + 1

        async def watch_memory() -> None:
            nonlocal peak_rss
            while time.perf_counter() < t_end:
                peak_rss = max(peak_rss, rss_mb(tree(server_pid)))
                await asyncio.sleep(0.25)

        cpu0 = sum(map(cpu_seconds, tree(server_pid)))
        await asyncio.gather(watch_memory(), *(one_client(k) for k in range(clients)))
        cpu = sum(map(cpu_seconds, tree(server_pid))) - cpu0
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "errors": sum(errors.values()), "error_kinds": errors,
            "requests_per_s": len(lat) / seconds, "tokens_per_s": tokens / seconds, "p50_ms": pct(0.50),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "server_rss_mb": peak_rss,
            "server_cpu_ms_per_request": 1000 * cpu / max(1, len(lat))}


def batch_rate(model: str, texts: list[str]) -> float:
    """Tokens/s of `tagger annotate` (library, one process) on the same texts as JSON lines."""
    from tagger.commands.annotate import AnnotateOptions, annotate_paths

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        summary = annotate_paths(model, [str(src)], str(Path(tmp) / "out.jsonl"), AnnotateOptions(progress=False))
    return summary.tokens / summary.seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="model directory (or an ONNX export with --runtime onnx)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "conll2003" / "eng.testb"))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--sentences", type=int, nargs="+", default=[1, 8], help="sentences per request")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--runtime", default="torch", choices=["torch", "onnx"])
    ap.add_argument("--out", default=str(ROOT / "reports" / "serve"))
    args = ap.parse_args(argv)

    from tagger.formats.conll import iter_conll

    sents = [" ".join(s.tokens) for s in iter_conll(args.data, label_column=None) if s.tokens
             and s.tokens[0] != "-DOCSTART-"]
    rows = []
    proc, url = start_server(args.model, args.workers, args.runtime)
    try:
        for per in args.sentences:
            texts = [" ".join(sents[i : i + per]) for i in range(0, len(sents), per)]
            bodies = [json.dumps({"text": t}).encode() for t in texts]
            for clients in args.clients:
                res = asyncio.run(_load(url, bodies, clients, args.seconds, args.warmup, proc.pid))
                res["sentences_per_request"] = per
                rows.append(res)
                print(json.dumps(res), flush=True)
        health = json_get(url + "/health")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    batch = batch_rate(args.model, sents)
    print(f"batch annotate: {batch:,.0f} tokens/s", flush=True)
    write_report(args, rows, batch, health, argv if argv is not None else sys.argv[1:])
    return 0


def json_get(url: str) -> dict:
    import httpx

    return httpx.get(url, timeout=10).json()


def write_report(args, rows: list[dict], batch: float, health: dict, argv: list[str]) -> None:
    command = "python benchmarks/serve_load.py " + shlex.join(argv)
    meta = {"command": command, "model": args.model, "runtime": args.runtime, "workers": args.workers,
            "seconds": args.seconds, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "batch_annotate_tokens_per_s": batch,
            "server_health_at_end": health}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# `tagger serve` under load (loopback)", "",
        f"Command: `{command}` ({meta['date']}, {meta['cores']} cores shared by clients and server, "
        f"{args.workers} server worker(s), runtime {args.runtime}, {args.seconds:g} s per row after a "
        f"{args.warmup:g} s warm-up).", "",
        "Each request is one raw text of N CoNLL-2003 eng.testb sentences (tokens joined by spaces); clients "
        "send the next request as soon as the last is answered (aiohttp: ~0.2 ms of client CPU a request). "
        "Batch annotation of the same sentences "
        f"(`tagger annotate`, JSON lines of text, one process): **{batch:,.0f} tokens/s**.", "",
        "| sentences/request | clients | requests/s | tokens/s | vs batch | p50 ms | p95 ms | p99 ms | errors "
        "| server RSS MB | server CPU ms/request |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['sentences_per_request']} | {r['clients']} | {r['requests_per_s']:,.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / batch:.2f}× | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {r['server_rss_mb']:.0f} | "
                     f"{r['server_cpu_ms_per_request']:.2f} |")
    lines += ["", f"Server counters at the end: {health.get('requests', 0):,} requests in "
              f"{health.get('calls', 0):,} model calls (largest call: {health.get('largest_call', 0)} requests).", ""]
    out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
