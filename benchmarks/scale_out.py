"""Scale-out on one 2-core machine: data-parallel training (torchrun) and annotation on Ray Data.

Usage::

    python benchmarks/scale_out.py [--prepared DIR] [--epochs 2] [--text-mb 32] [--files 16]
        [--workdir DIR] [--out reports/scale_out]

* **Training**: ``tagger train PREPARED`` (default architecture, CoNLL-2003 prepared with GloVe 6B
  50d) for ``--epochs`` epochs in one process, then the same command under
  ``torchrun --standalone --nproc_per_node 2`` (gloo). Seconds per epoch (training only, and with
  rank 0's dev scoring), dev F1 of the last epoch, wall time and the peak memory of the process
  tree (the sum of PSS: shared pages are not counted twice).
* **Annotation**: raw text made of CoNLL-2003 training sentences (seeded, repeated to
  ``--text-mb`` MB, split into ``--files`` files) is annotated with the one-process model of the
  training part by ``tagger annotate --workers 1``, ``--workers 2``, ``--engine ray --workers 1``
  and ``--engine ray --workers 2`` (a local Ray started by the command; the actors are the
  workers). Tokens/s over the wall time of the whole command (Ray's start included; its summary's
  own seconds are listed too) and the peak PSS of the command's process tree (Ray's daemons and
  workers included). The Ray output is checked against the single-process output record by record.

Results go to ``OUT.md`` and ``OUT.json``, each figure beside the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from proctree import cpu_seconds, pss_mb, tree  # benchmarks/proctree.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONLL = SHARED / "conll2003"
SUMMARY = re.compile(r"(\d[\d,]*) records, (\d[\d,]*) sentences, (\d[\d,]*) tokens in ([\d.]+)s")


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH", "")]))
    return e


def tagger(*args) -> list[str]:
    return [sys.executable, "-m", "tagger", *map(str, args)]


def shown(cmd: list[str]) -> str:
    """The command as a user would type it."""
    text = shlex.join(cmd)
    return text.replace(shlex.quote(sys.executable) + " -m tagger", "tagger").replace(
        shlex.quote(sys.executable) + " -m torch.distributed.run", "torchrun")


def timed(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` (output to ``log``), sampling its process tree every 0.5 s: PSS, CPU time, load."""
    peak, procs = 0.0, 0
    cpu: dict[int, float] = {}  # the last CPU seconds seen of each process of the tree
    loads: list[float] = []
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env())
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak, procs
            while not stop.wait(0.5):
                pids = tree(proc.pid)
                mb = pss_mb(pids)
                for p in pids:
                    cpu[p] = max(cpu.get(p, 0.0), cpu_seconds(p))
                loads.append(os.getloadavg()[0])
                if mb > peak:
                    peak, procs = mb, len(pids)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        code = proc.wait()
        stop.set()
        th.join()
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"failed ({code}): {shown(cmd)}\n{log.read_text()[-3000:]}")
    return {"command": shown(cmd), "wall_s": round(wall, 1), "peak_pss_mb": round(peak), "processes_at_peak": procs,
            "cpu_s": round(sum(cpu.values()), 1),
            "mean_load": round(sum(loads) / max(1, len(loads)), 2)}


# --------------------------------------------------------------------------- training


def training(prepared: Path, work: Path, epochs: int) -> list[dict]:
    rows = []
    for n in (1, 2):
        out = work / f"train-{n}"
        base = ["train", prepared, "--out", out, "--epochs", epochs, "--force", "--quiet"]
        cmd = tagger(*base) if n == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                            "--nproc_per_node", "2", "-m", "tagger", *map(str, base)]
        print(f"training with {n} process(es): {shown(cmd)}", flush=True)
        r = timed(cmd, work / f"train-{n}.log")
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        summary = json.loads((out / "train_summary.json").read_text())
        r.update(processes=n, epochs=len(metrics), train_s=[m["train_seconds"] for m in metrics],
                 epoch_s=[m["seconds"] for m in metrics], dev_f1=[round(m["dev"]["f1"], 4) for m in metrics],
                 best_dev_f1=round(summary["best_dev"], 4), sentences_per_s=[m["sentences_per_s"] for m in metrics],
                 model=str(out))
        rows.append(r)
        print(f"  {r['train_s']} s/epoch, dev F1 {r['dev_f1']}, peak {r['peak_pss_mb']} MB", flush=True)
    return rows


# --------------------------------------------------------------------------- annotation


def make_text(work: Path, mb: int, files: int, seed: int = 1) -> tuple[Path, int]:
    """Raw text of CoNLL-2003 training sentences, shuffled and repeated to ``mb`` MB, in ``files`` files."""
    from tagger.formats.conll import iter_conll

    d = work / f"text-{mb}mb-{files}"
    stamp = d / ".complete"
    if stamp.exists():
        return d, int(stamp.read_text())
    sents = [" ".join(s.tokens) for s in iter_conll(CONLL / "eng.train", label_column=None) if s.tokens]
    rng = random.Random(seed)
    target = mb * 1024 * 1024
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    per_file = target // files
    total = 0
    for i in range(files):
        size, lines = 0, []
        while size < per_file:
            para = " ".join(rng.choice(sents) for _ in range(rng.randint(2, 6)))
            lines.append(para + "\n\n")
            size += len(para) + 2
        (d / f"part-{i:03d}.txt").write_text("".join(lines), encoding="utf-8")
        total += size
    stamp.write_text(str(total))
    return d, total


def compare(got: dict[str, bytes], local_out: Path, inputs: Path) -> dict:
    """Ray records (``assemble`` output) against the one-process records: byte-identical, or equal but
    for entity scores."""
    same = differ = score_only = 0
    worst = 0.0
    for src, data in got.items():
        ref = (local_out / (Path(src).relative_to(inputs).as_posix() + ".jsonl")).read_bytes()
        a, b = data.splitlines(), ref.splitlines()
        if len(a) != len(b):
            differ += abs(len(a) - len(b))
        for x, y in zip(a, b):
            if x == y:
                same += 1
                continue
            rx, ry = json.loads(x), json.loads(y)
            sx = [e.pop("score") for e in rx.get("entities", [])]
            sy = [e.pop("score") for e in ry.get("entities", [])]
            if rx == ry and len(sx) == len(sy):
                score_only += 1
                worst = max([worst, *(abs(p - q) for p, q in zip(sx, sy))])
            else:
                differ += 1
    return {"records_identical": same, "records_differing_in_entity_scores_only": score_only,
            "max_score_difference": worst, "records_differing": differ}


def compare_per_file(model: Path, got: dict[str, bytes], inputs: Path, work: Path, n: int = 2) -> dict:
    """The first ``n`` files: Ray's records (``assemble`` output) against ``tagger annotate FILE`` run on
    that file alone."""
    identical = []
    for src in sorted(got)[:n]:
        out = work / "per-file" / (Path(src).name + ".jsonl")
        out.parent.mkdir(exist_ok=True)
        subprocess.run(tagger("annotate", model, src, "--out", out, "--quiet"), check=True, env=env())
        identical.append(out.read_bytes() == got[src])
    return {"files": n, "byte_identical": sum(identical)}


def annotation(model: Path, work: Path, mb: int, files: int) -> tuple[list[dict], dict, dict]:
    inputs, size = make_text(work, mb, files)
    info = {"input": str(inputs), "mb": round(size / 2**20, 1), "files": files}
    rows = []
    outs = {}
    for engine, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
        out = work / f"ann-{engine}-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--engine", "ray"] if engine == "ray" else []
        cmd = tagger("annotate", model, inputs, "--out", out, "--workers", workers, *extra)
        print(f"annotating ({engine}, {workers}): {shown(cmd)}", flush=True)
        r = timed(cmd, work / f"ann-{engine}-{workers}.log")
        text = (work / f"ann-{engine}-{workers}.log").read_text()
        m = SUMMARY.findall(text)
        if not m:
            raise SystemExit(f"no summary in the output of {shown(cmd)}")
        records, sentences, tokens, seconds = m[-1]
        tokens_n = int(tokens.replace(",", ""))
        r.update(engine=engine, workers=workers, records=int(records.replace(",", "")),
                 sentences=int(sentences.replace(",", "")), tokens=tokens_n, own_s=float(seconds),
                 tokens_per_s=round(tokens_n / r["wall_s"]), tokens_per_own_s=round(tokens_n / float(seconds)),
                 tokens_per_cpu_s=round(tokens_n / max(r["cpu_s"], 1e-9)))
        rows.append(r)
        outs[(engine, workers)] = out
        print(f"  {r['tokens_per_s']:,} tokens/s (wall), peak {r['peak_pss_mb']} MB", flush=True)
    from tagger.commands.annotate.raydata import assemble

    got = {w: assemble(outs[("ray", w)]) for w in (1, 2)}  # each Ray output read once
    checks: dict = {f"ray {w} vs local 1": compare(got[w], outs[("local", 1)], inputs) for w in (1, 2)}
    checks["per_file"] = compare_per_file(model, got[2], inputs, work)
    return rows, info, checks


# --------------------------------------------------------------------------- report


def report(res: dict, out: Path) -> None:
    t, a = res["training"], res["annotation"]
    lines = [
        "# Scale-out on one 2-core machine: torchrun training and Ray Data annotation",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Code {res['commit']}, {res['date']}, {res['machine']}, torch {res['torch']}, ray {res['ray']}. "
        f"Load average before: {res['load_before']} (the machine is shared: other jobs slow every number).",
        "",
        "## Training: 1 process vs 2 (torchrun, gloo)",
        "",
        f"`{res['prepared']}`: CoNLL-2003 prepared with GloVe 6B 50d; default architecture and recipe "
        f"(batch 16, SGD), {res['epochs']} epochs. With 2 processes each optimisation step takes one batch "
        "of the seeded plan per rank (a global batch of 32: half the steps per epoch); each rank gets 1 torch "
        "thread, the single process 2.",
        "",
        "| processes | s/epoch (training) | s/epoch (with dev scoring) | sentences/s | dev F1 per epoch | wall s | "
        "peak PSS MB | command |",
        "|---:|---|---|---|---|---:|---:|---|",
    ]
    for r in t:
        lines.append(f"| {r['processes']} | {', '.join(map(str, r['train_s']))} | "
                     f"{', '.join(map(str, r['epoch_s']))} | {', '.join(map(str, r['sentences_per_s']))} | "
                     f"{', '.join(f'{x:.4f}' for x in r['dev_f1'])} | {r['wall_s']} | {r['peak_pss_mb']} | "
                     f"`{r['command']}` |")
    lines += [
        "",
        "## Annotation: `--engine ray` (1 and 2 actors) vs one process (`--workers 1/2`)",
        "",
        f"Input: {res['annotation_input']['mb']} MB of raw text in {res['annotation_input']['files']} files "
        f"(`{res['annotation_input']['input']}`: CoNLL-2003 training sentences, shuffled and repeated). "
        f"Model: the 1-process model of the training part (default architecture). {res['size_note']}",
        "",
        "Tokens/s over the wall time of the whole command (Ray's start and the actors' model loading "
        "included); `own s` is the time the summary reports (Ray: from the pipeline's start). CPU s: the "
        "CPU time of the command's process tree (Ray's daemons, workers and actors included), so tokens/CPU-s "
        "shows what each engine costs whatever the other jobs on the machine left it (`load`: the mean "
        "1-minute load average during the run; 2 = both cores busy). Peak memory: the sum of PSS over the "
        "process tree, sampled every 0.5 s.",
        "",
        "| engine | workers / actors | tokens | wall s | tokens/s (wall) | own s | tokens/s (own) | CPU s | "
        "tokens/CPU-s | load | peak PSS MB | processes | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in a:
        lines.append(f"| {r['engine']} | {r['workers']} | {r['tokens']:,} | {r['wall_s']} | {r['tokens_per_s']:,} | "
                     f"{r['own_s']} | {r['tokens_per_own_s']:,} | {r['cpu_s']} | {r['tokens_per_cpu_s']:,} | "
                     f"{r['mean_load']} | {r['peak_pss_mb']} | {r['processes_at_peak']} | `{r['command']}` |")
    lines += ["", "Ray output against the one-process output (`--workers 1`), record by record "
              "(`tagger.commands.annotate.raydata.assemble`):", ""]
    for k, v in res["checks"].items():
        if k == "per_file":
            continue
        lines.append(f"- {k}: {v['records_identical']:,} byte-identical, "
                     f"{v['records_differing_in_entity_scores_only']:,} differ only in an entity score (at most by "
                     f"{v['max_score_difference']:.1e}), {v['records_differing']:,} differ otherwise")
    pf = res["checks"]["per_file"]
    lines += ["", "The one-process run reads the 16 files as one stream, so a chunk of 4,096 sentences (predicted "
              "together) spans two files where Ray's chunks stop at the file's end; a sentence's batch neighbours "
              "move its float32 scores in the 6th decimal. Against `tagger annotate FILE` run on each file alone "
              f"(the same chunks), the Ray records of {pf['byte_identical']} of the {pf['files']} files checked are "
              "byte-identical."]
    lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepared", help="a prepared CoNLL-2003 directory (default: WORKDIR/prep, prepared if absent)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--text-mb", type=int, default=32)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--workdir", default="/tmp/scale_out_bench")
    ap.add_argument("--out", default=str(ROOT / "reports" / "scale_out"))
    ap.add_argument("--skip-training", action="store_true", help="reuse the training results in the workdir")
    ap.add_argument("--size-note", default="")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    prepared = Path(args.prepared or work / "prep")
    if not (prepared / "prepare.json").exists():
        prepared = work / "prep"
        if not (prepared / "prepare.json").exists():
            subprocess.run(tagger("prepare", "--train", CONLL / "eng.train", "--dev", CONLL / "eng.testa", "--test",
                                  CONLL / "eng.testb", "--embeddings", "glove-6b-50d", "--out", prepared, "--force"),
                           check=True, env=env())
    import ray
    import torch

    res: dict = {
        "command": shlex.join(["python", "benchmarks/scale_out.py", *sys.argv[1:]]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "torch": torch.__version__, "ray": ray.__version__, "load_before": [round(x, 2) for x in os.getloadavg()],
        "prepared": str(prepared), "epochs": args.epochs, "size_note": args.size_note,
    }
    cache = work / "training.json"
    if args.skip_training and cache.exists():
        res["training"] = json.loads(cache.read_text())
    else:
        res["training"] = training(prepared, work, args.epochs)
        cache.write_text(json.dumps(res["training"]))
    model = Path(res["training"][0]["model"])
    res["annotation"], res["annotation_input"], res["checks"] = annotation(model, work, args.text_mb, args.files)
    report(res, Path(args.out))
    print(f"wrote {Path(args.out).with_suffix('.md')}")


if __name__ == "__main__":
    main()
