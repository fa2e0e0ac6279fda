"""Peak memory and throughput of ``tagger annotate`` on large raw-text files, and concurrent runs.

Usage::

    python benchmarks/annotate_memory.py [--model MODEL_DIR] [--sizes 1024] [--format text]
        [--concurrent 8] [--concurrent-mb 2] [--threads 1] [--workdir DIR] [--force]
        [--out reports/annotate_memory]

* For each size (MB; default 1024 = 1 GB) a text file is generated from the words of the bundled
  sample corpus (seeded: the same size gives the same file), one sentence per line with a blank
  line between paragraphs, and annotated by one ``tagger annotate MODEL FILE --out FILE.jsonl``
  process. Its peak RSS comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of that process) and
  from sampling ``/proc/PID/status`` every 0.2 s (also giving the RSS after 10% / 50% / 90% of the
  run: flat if memory does not grow with the input). Throughput = tokens / wall seconds of the
  run as reported by annotate's summary.
* ``--concurrent N`` processes annotate the same ``--concurrent-mb`` file with the same model
  directory at the same time; each output must be byte-identical to a single-process run.
* Sizes of 1 GB and more run only when the machine is idle (1-minute load average < 2) unless
  ``--force``: on a busy 2-core machine the 1 GB case takes hours.

Without ``--model`` a small model (hidden 16, one epoch on the bundled sample; ``--embeddings
none``) is trained first: what is measured is annotate's streaming, not the model's size.
Results go to ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
SUMMARY = re.compile(r"(\d[\d,]*) records, (\d[\d,]*) sentences, (\d[\d,]*) tokens in ([\d.]+)s")


def tagger_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "tagger.cli", *map(str, args)]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    return e


def train_small_model(workdir: Path) -> Path:
    model = workdir / "model"
    if (model / "model.safetensors").exists():
        return model
    prep = workdir / "prepared"
    subprocess.run(tagger_cmd("prepare", "--train", SAMPLE / "train.conll", "--dev", SAMPLE / "dev.conll",
                              "--embeddings", "none", "--embedding-dim", "32", "--out", prep, "--force", "-q"),
                   check=True, env=env())
    subprocess.run(tagger_cmd("train", prep, "--out", model, "--hidden", "16", "--epochs", "1", "--threads", "1",
                              "--force", "-q"), check=True, env=env())
    return model


def vocabulary() -> list[str]:
    words = []
    for line in (SAMPLE / "train.conll").read_text(encoding="utf-8").splitlines():
        cols = line.split()
        if cols and cols[0] != "-DOCSTART-":
            words.append(cols[0])
    return words


def generate_text(path: Path, mb: float, seed: int = 1) -> int:
    """Write about ``mb`` megabytes of sentences; returns the size in bytes. Reuses an existing file."""
    target = int(mb * 1_000_000)
    if path.exists() and path.stat().st_size >= target:
        return path.stat().st_size
    words = vocabulary()
    caps = [w for w in words if w[:1].isupper()]
    rng = random.Random(seed)
    size = 0
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        while size < target:
            para = []
            for _ in range(rng.randint(3, 12)):
                n = rng.randint(4, 30)
                sent = [rng.choice(caps)] + [rng.choice(words) for _ in range(n - 1)]
                para.append(" ".join(sent) + rng.choice([".", ".", ".", "?", "!"]))
            block = "\n".join(para) + "\n\n"
            fh.write(block)
            size += len(block.encode("utf-8"))
    os.replace(tmp, path)
    return path.stat().st_size


class RssSampler:
    """Samples VmRSS of a process every ``interval`` seconds (in kB)."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        t0 = time.monotonic()
        path = f"/proc/{self.pid}/status"
        while not self._stop.is_set():
            try:
                with open(path) as fh:
                    for line in fh:
                        if line.startswith("VmRSS:"):
                            self.samples.append((time.monotonic() - t0, int(line.split()[1])))
                            break
            except OSError:
                break
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._t.join()

    def at(self, fraction: float) -> int | None:
        if not self.samples:
            return None
        end = self.samples[-1][0]
        return next((kb for t, kb in self.samples if t >= fraction * end), self.samples[-1][1])


def run_annotate(model: Path, src: Path, out: Path, threads: int, fmt: str, interval: float = 0.2,
                 kernel_cache: int | None = None) -> dict:
    """One annotate process: wall time, peak RSS (wait4 and sampled every ``interval`` s), tokens from its summary.

    ``ru_maxrss`` counts from the fork, so it includes the parent's RSS when the child is forked
    from a large process (a pytest run holding torch); the sampled peak is the annotate process alone.
    ``kernel_cache`` sets ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` (default: tagger's own cap).
    """
    if out.exists():
        out.unlink()
    cmd = tagger_cmd("annotate", model, src, "--out", out, "--input-format", fmt, "--output-format", "jsonl",
                     "--threads", threads)
    t0 = time.monotonic()
    run_env = env() | ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(kernel_cache)} if kernel_cache else {})
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=run_env)
    sampler = RssSampler(proc.pid, interval)
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    sampler.stop()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = b"".join(stderr_chunks).decode("utf-8", "replace")
    m = SUMMARY.search(err)
    row = {
        "input_bytes": src.stat().st_size, "exit": proc.returncode, "wall_s": round(wall, 1),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rss_mb_at_10_50_90pct": [round((sampler.at(f) or 0) / 1024, 1) for f in (0.1, 0.5, 0.9)],
        "max_sampled_rss_mb": round(max((kb for _, kb in sampler.samples), default=0) / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }
    if m:
        rec, sents, toks, secs = (x.replace(",", "") for x in m.groups())
        row.update(records=int(rec), sentences=int(sents), tokens=int(toks), annotate_s=float(secs),
                   tokens_per_s=round(int(toks) / max(float(secs), 1e-9)))
    if proc.returncode != 0:
        row["stderr"] = err[-2000:]
    return row


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def run_concurrent(model: Path, src: Path, workdir: Path, n: int, threads: int, fmt: str) -> dict:
    single = workdir / "single.jsonl"
    ref = run_annotate(model, src, single, threads, fmt)
    ref_digest = digest(single)
    outs = [workdir / f"concurrent-{i}.jsonl" for i in range(n)]
    for o in outs:
        if o.exists():
            o.unlink()
    t0 = time.monotonic()
    procs = []
    for o in outs:
        cmd = tagger_cmd("annotate", model, src, "--out", o, "--input-format", fmt, "--output-format", "jsonl",
                         "--threads", threads, "-q")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env()))
    results = []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        err = p.stderr.read().decode("utf-8", "replace")
        results.append({"exit": os.waitstatus_to_exitcode(status), "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
                        "stderr": err[-500:]})
    wall = time.monotonic() - t0
    identical = [o.exists() and digest(o) == ref_digest for o in outs]
    return {
        "processes": n, "input_bytes": src.stat().st_size, "single_process": ref, "wall_s": round(wall, 1),
        "all_exit_0": all(r["exit"] == 0 for r in results), "identical_to_single": sum(identical),
        "max_rss_mb_each": [r["max_rss_mb"] for r in results],
        "errors": [r["stderr"] for r in results if r["exit"] != 0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model directory (default: train a small one on the bundled sample)")
    ap.add_argument("--sizes", type=float, nargs="+", default=[1024], help="text sizes in MB (default: 1024)")
    ap.add_argument("--format", default="text", choices=["text", "tokens"], help="input format of the files")
    ap.add_argument("--concurrent", type=int, default=8, help="concurrent processes (0 = skip)")
    ap.add_argument("--concurrent-mb", type=float, default=2.0, help="input size for the concurrent runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per annotate process")
    ap.add_argument("--workdir", default="/tmp/annotate-memory", help="where models, inputs and outputs go")
    ap.add_argument("--force", action="store_true", help="run sizes >= 1 GB even on a busy machine")
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs and outputs")
    ap.add_argument("--out", default=str(ROOT / "reports" / "annotate_memory"))
    args = ap.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else train_small_model(workdir)
    suffix = ".txt" if args.format == "text" else ".tok"
    runs, skipped = [], []
    for mb in args.sizes:
        load = os.getloadavg()[0]
        if mb >= 1024 and load >= 2 and not args.force:
            skipped.append({"mb": mb, "load_avg": round(load, 2)})
            print(f"skipping {mb:g} MB: load average {load:.2f} >= 2 (use --force to run it anyway)", flush=True)
            continue
        src = workdir / f"input-{mb:g}MB{suffix}"
        t = time.monotonic()
        generate_text(src, mb)
        print(f"generated {src} ({src.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - t:.0f}s", flush=True)
        row = {"mb": mb, "load_avg_before": round(load, 2), **run_annotate(model, src, workdir / f"out-{mb:g}MB.jsonl",
                                                                          args.threads, args.format)}
        row["load_avg_after"] = round(os.getloadavg()[0], 2)
        runs.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            (workdir / f"out-{mb:g}MB.jsonl").unlink(missing_ok=True)
            src.unlink(missing_ok=True)
    conc = None
    if args.concurrent:
        src = workdir / f"concurrent-{args.concurrent_mb:g}MB{suffix}"
        generate_text(src, args.concurrent_mb, seed=2)
        conc = run_concurrent(model, src, workdir, args.concurrent, args.threads, args.format)
        print(json.dumps(conc), flush=True)
        if not args.keep:
            for p in [src, workdir / "single.jsonl", *workdir.glob("concurrent-*.jsonl")]:
                p.unlink(missing_ok=True)

    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *(argv or sys.argv[1:])])
    meta = {"command": command, "model": str(model), "format": args.format, "threads": args.threads,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "python": platform.python_version(),
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": runs, "skipped": skipped,
                                                    "concurrent": conc}, indent=2) + "\n", encoding="utf-8")
    md = [
        "# `tagger annotate`: memory on large inputs, concurrent runs",
        "",
        f"Command: `{command}`",
        "",
        f"Model `{meta['model']}`, input format `{args.format}` (generated from the bundled sample's words, one "
        f"sentence per line, blank lines between paragraphs), output JSONL, {args.threads} torch thread(s) per "
        f"process, {meta['cores']} cores, {meta['date']}. Load average after: {meta['load_avg_after']} (other jobs "
        "share the machine: wall-clock figures vary with them; memory does not).",
        "",
        "Peak RSS: the kernel's `ru_maxrss` of the annotate process (`os.wait4`); RSS at 10/50/90% of the run "
        "from sampling `/proc/PID/status`. Flat figures across sizes mean memory does not grow with the input.",
        "",
        "| input | tokens | sentences | wall s | annotate s | tokens/s | CPU s | peak RSS MB "
        "| RSS MB at 10/50/90% | exit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        md.append(f"| {r['input_bytes'] / 1e6:,.0f} MB | {r.get('tokens', 0):,} | {r.get('sentences', 0):,} | "
                  f"{r['wall_s']} | {r.get('annotate_s', '-')} | {r.get('tokens_per_s', 0):,} | {r['cpu_s']} | "
                  f"{r['max_rss_mb']} | {' / '.join(map(str, r['rss_mb_at_10_50_90pct']))} | {r['exit']} |")
    for s in skipped:
        md.append(f"| {s['mb']:g} MB | skipped: load average {s['load_avg']} >= 2 (run with `--force` on an idle "
                  "machine) | | | | | | | | |")
    if conc:
        s = conc["single_process"]
        md += [
            "",
            f"## {conc['processes']} concurrent processes, same model directory",
            "",
            f"Input {conc['input_bytes'] / 1e6:.1f} MB ({s.get('tokens', 0):,} tokens). One process alone: "
            f"{s['wall_s']} s, peak RSS {s['max_rss_mb']} MB. {conc['processes']} at once: {conc['wall_s']} s wall; "
            f"all exit 0: {conc['all_exit_0']}; outputs byte-identical to the single run: "
            f"{conc['identical_to_single']}/{conc['processes']}; peak RSS each (MB): "
            f"{', '.join(map(str, conc['max_rss_mb_each']))}.",
        ]
    if not any(r["mb"] >= 1024 for r in runs):
        md += ["", "The 1 GB case: `python benchmarks/annotate_memory.py --sizes 1024 --concurrent 0` on an idle "
               "machine (it refuses while the load average is >= 2 unless `--force`)."]
    out.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return 0 if all(r["exit"] == 0 for r in runs) and (conc is None or (
        conc["all_exit_0"] and conc["identical_to_single"] == conc["processes"])) else 1


if __name__ == "__main__":
    sys.exit(main())
