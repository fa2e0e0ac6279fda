"""``tagger evaluate``: score a tagger model on gold data, analyse its errors, write a report.

``evaluate(model_dir, data, out)`` reads gold data (any corpus file ``tagger prepare`` reads, or a
prepared directory and split), tags it with the model and returns the figures as a dict; with
``out`` it also writes::

    metrics.json        every figure below
    predictions.conll   token, gold, predicted (space separated; IOB2 for entity tasks)
    report.md           tables and the plots
    per_type_f1.png     F1 per entity type (per label for plain tasks)
    confusion.png       gold type x predicted type (labels for plain tasks)
    learning_curve.png  loss and dev score per epoch from the model's metrics.jsonl

Entity tasks are scored two ways:

* **strict** (the headline ``precision``/``recall``/``f1``): seqeval in strict mode on the
  model's scheme (IOBES for bioes models, IOB2 for iob2, and iob1 after conversion to IOB2) --
  an entity counts only if its tags are well formed, exactly as ``metrics.entity_scores``.
* **conlleval**: the conlleval script's chunk counting on IOB2 tags, which repairs ill-formed
  sequences (``O I-PER`` starts a chunk). The two differ only where a sequence is ill formed.

Gold tags in IOB1, IOB2 or BIOES are converted to the model's scheme first (conversion reads
chunks like conlleval, so gold is always well formed after it).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tagger import __version__, metrics, schemes
from tagger.errors import InputError, TaggerError

FORMAT_KEYS = ("format", "token_column", "label_column", "label_field", "encoding")
FORMAT_DEFAULTS = {"format": "auto", "token_column": 0, "label_column": -1, "label_field": "upos", "encoding": "utf-8"}
TOP_ERRORS_JSON = 50
TOP_ERRORS_REPORT = 20
PLOTS = {"per_type": "per_type_f1.png", "confusion": "confusion.png", "learning_curve": "learning_curve.png"}

STRICT_NOTE = ("strict: seqeval mode='strict' on the model's scheme; an entity counts only if its tags are "
               "well formed (headline precision/recall/f1)")
CONLLEVAL_NOTE = ("conlleval: the conlleval script's chunk counting on IOB2 tags; ill-formed sequences are "
                  "repaired (an I- after O starts a chunk) instead of dropped")


# --------------------------------------------------------------------------- gold data


@dataclass
class Gold:
    """Gold sentences with where they came from."""

    tokens: list[list[str]]
    labels: list[list[str]]
    lines: list[int]  # first line of each sentence in ``source`` (0 if unknown)
    source: str  # the file that ``lines`` refer to
    description: str  # what the user asked for (file, or prepared dir and split)
    split: str | None
    format: str
    scheme: str | None  # known label scheme (prepared directories); None: detect
    exact_lines: bool  # token j of a sentence is on line ``lines[i] + j``


def parse_data_arg(data: str | os.PathLike) -> tuple[Path, str | None]:
    """``FILE`` → (file, None); ``DIR`` → (dir, "test"); ``DIR:split`` → (dir, split)."""
    text = str(data)
    path = Path(text)
    if path.is_dir():
        return path, "test"
    if path.exists() or ":" not in text:
        return path, None
    base, split = text.rsplit(":", 1)
    if base and Path(base).is_dir():
        if not split:
            raise TaggerError(f"{text}: empty split name after ':' (use DIR:train, DIR:dev or DIR:test)")
        return Path(base), split
    if base and Path(base).is_file():
        raise TaggerError(f"{text}: a ':split' suffix needs a prepared directory, but {base} is a file")
    return path, None


def read_gold(data: str | os.PathLike, fmt: dict) -> Gold:
    """Read gold data: a corpus file (with the format options ``fmt``) or a prepared split."""
    path, split = parse_data_arg(data)
    if split is not None:
        return _read_prepared(path, split)
    from tagger.formats.corpus import read_corpus

    label_column = fmt["label_column"]
    if not isinstance(label_column, int):
        try:
            label_column = int(label_column)
        except (TypeError, ValueError):
            raise TaggerError(f"--label-column must be a column number for corpus files, got {label_column!r}") from None
    corpus = read_corpus(path, fmt["format"], int(fmt["token_column"]), label_column,
                         fmt["label_field"] or "upos", fmt["encoding"] or "utf-8")
    sents = corpus.sentences
    return Gold(
        tokens=[s.tokens for s in sents], labels=[s.labels or [] for s in sents], lines=[s.line for s in sents],
        source=str(path), description=str(path), split=None, format=corpus.format, scheme=None,
        exact_lines=corpus.format == "conll",
    )


def _read_prepared(path: Path, split: str) -> Gold:
    """One split of a prepared directory (without loading its embedding matrices)."""
    manifest_path = path / "prepare.json"
    if not manifest_path.is_file() or not (path / "dataset").is_dir():
        raise TaggerError(f"{path}: not a prepared directory (no prepare.json or dataset/) and not a corpus file")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaggerError(f"{manifest_path}: corrupt prepared manifest ({exc})") from None
    import datasets

    try:
        dd = datasets.load_from_disk(str(path / "dataset"))
    except Exception as exc:  # corrupt arrow files, foreign directories
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaggerError(f"{path}: corrupt prepared directory ({msg})") from None
    if not isinstance(dd, datasets.DatasetDict) or split not in dd:
        have = ", ".join(dd) if isinstance(dd, datasets.DatasetDict) else "none"
        raise TaggerError(f"{path}: no {split!r} split in this prepared directory (have {have})")
    d = dd[split]
    missing = [c for c in ("tokens", "labels") if c not in d.column_names]
    if missing:
        raise TaggerError(f"{path}: split {split!r} has no {', '.join(missing)} column")
    cols = d.select_columns([c for c in ("tokens", "labels", "line") if c in d.column_names]).to_dict()
    n = len(cols["tokens"])
    info = (manifest.get("splits") or {}).get(split) or {}
    task = manifest.get("task")
    return Gold(
        tokens=[list(t) for t in cols["tokens"]], labels=[list(l) for l in cols["labels"]],
        lines=[int(x) for x in cols.get("line", [0] * n)], source=str(info.get("source") or f"{path}:{split}"),
        description=f"{path}:{split}", split=split, format="prepared",
        scheme=manifest.get("scheme") if task == "entity" and manifest.get("scheme") in schemes.SCHEMES else None,
        exact_lines=manifest.get("format") == "conll",
    )


def _where(gold: Gold, sent: int, tok: int) -> int | None:
    line = gold.lines[sent]
    if not line:
        return None
    return line + tok if gold.exact_lines else line


def resolve_format(config: dict, overrides: dict) -> dict:
    """Format options: the model's training data options, then ``overrides`` (not None) on top."""
    unknown = sorted(set(overrides) - set(FORMAT_KEYS))
    if unknown:
        raise TypeError(f"unknown format option(s): {', '.join(unknown)} (expected {', '.join(FORMAT_KEYS)})")
    fmt = dict(FORMAT_DEFAULTS)
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    for k in FORMAT_KEYS:
        if data.get(k) is not None:
            fmt[k] = data[k]
    if not isinstance(fmt["label_column"], int):  # a datasets field name: files use the last column
        fmt["label_column"] = FORMAT_DEFAULTS["label_column"]
    for k, v in overrides.items():
        if v is not None:
            fmt[k] = v
    return fmt


def gold_in_model_scheme(gold: Gold, task: str, model_scheme: str) -> tuple[list[list[str]], str, int]:
    """Gold labels converted to the model's scheme: (labels, detected gold scheme, repairs)."""
    if task != "entity":
        return gold.labels, schemes.detect_scheme(gold.labels), 0
    detected = gold.scheme or schemes.detect_scheme(gold.labels)
    if detected == "plain":
        for i, labs in enumerate(gold.labels):
            for j, lab in enumerate(labs):
                if not schemes.is_entity_tag(lab):
                    raise InputError(
                        gold.source, _where(gold, i, j),
                        f"gold label {lab!r} is not an entity tag, but the model tags entities ({model_scheme}); "
                        "choose the entity column with --label-column",
                    )
        detected = model_scheme  # only O
    out: list[list[str]] = []
    repairs = 0
    for i, labs in enumerate(gold.labels):
        try:
            conv, n = schemes.convert(labs, detected, model_scheme)
        except schemes.SchemeError as exc:
            raise InputError(gold.source, _where(gold, i, 0), f"bad gold tags in this sentence: {exc}") from None
        out.append(conv)
        repairs += n
    return out, detected, repairs


# --------------------------------------------------------------------------- evaluation


def _auto_threads() -> int:
    """CPU threads for prediction: torch's default, fewer when other processes use the cores.

    Oversubscribed intra-op threads slow an LSTM down several times, so on a busy machine
    (load average close to the core count) one thread is faster than two.
    """
    import torch

    n = torch.get_num_threads()
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return n
    free = (os.cpu_count() or n) - load
    return max(1, min(n, int(free + 0.5)))


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TaggerError("--device cuda: no CUDA device is available (use --device cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise TaggerError(f"unknown device {name!r} (use auto, cpu or cuda)")
    return name


def evaluate(
    model_dir: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    batch_size: int = 256,
    threads: int = 0,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    **format_overrides,
) -> dict:
    """Evaluate a tagger model on gold data; returns the content of ``metrics.json``.

    ``data`` is a corpus file or ``PREPARED_DIR[:split]`` (default split ``test``).
    ``format_overrides`` (``format``, ``token_column``, ``label_column``, ``label_field``,
    ``encoding``) replace the model's training data options for reading a file; ``None`` keeps
    them. ``threads`` 0 picks a CPU thread count from the machine's load. With ``out``, writes
    the report files there. ``log`` receives warnings (e.g. gold labels the model never saw).
    """
    import torch

    t_start = time.perf_counter()
    say = log or (lambda m: None)
    timing: dict[str, float] = {}
    if batch_size < 1:
        raise TaggerError("--batch-size must be at least 1")
    if threads < 0:
        raise TaggerError("--threads must be >= 0")
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.exists() and not out_path.is_dir():
        raise TaggerError(f"{out_path} exists and is not a directory")

    import tagger

    device = _resolve_device(device)
    predictor = tagger.load(model_dir, device=device)
    timing["load_model"] = time.perf_counter() - t_start

    t = time.perf_counter()
    fmt = resolve_format(predictor.config, format_overrides)
    gold = read_gold(data, fmt)
    task, mscheme = predictor.task, predictor.scheme
    gold_m, gold_scheme, repairs = gold_in_model_scheme(gold, task, mscheme)
    timing["read"] = time.perf_counter() - t

    model_labels = set(predictor.tag_names) - {"<pad>"}
    unseen = sorted({lab for labs in gold_m for lab in labs} - model_labels)
    if unseen:
        say(f"warning: gold labels the model never saw in training (it cannot predict them): {', '.join(unseen)}")

    t = time.perf_counter()
    old_threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(threads or _auto_threads())
    used_threads = torch.get_num_threads()
    try:
        preds = predictor.predict(gold.tokens, batch_size=batch_size, confidences=False)
    finally:
        torch.set_num_threads(old_threads)
    pred_m = [p.tags for p in preds]
    timing["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    n_tokens = sum(len(s) for s in gold.tokens)
    result: dict = {
        "model": str(model_dir), "data": gold.description, "source": gold.source, "split": gold.split,
        "format": gold.format, "task": task, "scheme": mscheme, "gold_scheme": gold_scheme,
        "gold_repairs": repairs, "sentences": len(gold.tokens), "tokens": n_tokens,
    }
    oov = _oov_block(predictor.lookup, gold.tokens, gold_m, pred_m)
    if task == "entity":
        # conlleval chunks of the model-scheme tags: the same as those of their IOB2 conversion.
        g_chunks = [schemes.to_spans(s, mscheme) for s in gold_m]
        p_chunks = [schemes.to_spans(s, mscheme) for s in pred_m]
        gold_iob2 = [schemes.from_spans(c, len(s), "iob2") for c, s in zip(g_chunks, gold_m)]
        pred_iob2_plain = [schemes.from_spans(c, len(s), "iob2") for c, s in zip(p_chunks, pred_m)]
        ill_formed = sum(schemes.from_spans(c, len(s), mscheme) != s for c, s in zip(p_chunks, pred_m))
        g_sp = metrics.strict_spans(gold_m, mscheme)
        p_sp = metrics.strict_spans(pred_m, mscheme)
        strict = metrics.span_scores(g_sp, p_sp)
        pred_iob2, conflicts = [], 0
        for tags, sp, ch in zip(pred_m, p_sp, p_chunks):
            w, c = metrics.faithful_iob2(tags, mscheme, sp, ch)
            pred_iob2.append(w)
            conflicts += c
        conll = metrics.conlleval_scores(gold_iob2, pred_iob2_plain, chunks=(g_chunks, p_chunks))
        conll["note"] = CONLLEVAL_NOTE
        result.update({
            "precision": strict["precision"], "recall": strict["recall"], "f1": strict["f1"],
            "macro": strict["macro"], "macro_f1": strict["macro"]["f1"],
            "accuracy": metrics.token_accuracy(gold_m, pred_m),
            "entities": {"gold": strict["support"], "predicted": strict["predicted"], "correct": strict["correct"]},
            "per_type": strict["per_type"],
            "strict_note": STRICT_NOTE,
            "conlleval": conll,
            "ill_formed_predictions": ill_formed,
            "errors": _entity_error_block(gold, g_sp, p_sp),
        })
        oov["entities"] = _oov_entities(predictor.lookup, gold.tokens, g_sp, p_sp)
        gold_out, pred_out = gold_iob2, pred_iob2
        result["predictions_conll"] = {"tags": "iob2", "conflicts": conflicts}
    else:
        ls = metrics.label_scores(gold_m, pred_m)
        result.update({
            "accuracy": ls["accuracy"], "correct": ls["correct"], "macro": ls["macro"],
            "per_type": ls["per_type"],
            "errors": _label_error_block(gold, gold_m, pred_m, ls["confusion"]),
        })
        gold_out, pred_out = gold_m, pred_m
        result["predictions_conll"] = {"tags": "plain", "conflicts": 0}
    result["oov"] = oov
    result["unseen_labels"] = unseen
    result["learning_curve"] = _read_learning_curve(Path(model_dir))
    timing["score"] = time.perf_counter() - t
    result["threads"] = used_threads if device == "cpu" else None
    result["device"] = device
    result["tagger_version"] = __version__

    result["tokens_per_second"] = round(n_tokens / timing["predict"], 1) if timing["predict"] > 0 else None

    def stamp() -> None:
        result["seconds"] = round(time.perf_counter() - t_start, 3)
        result["timing"] = {k: round(v, 3) for k, v in timing.items()}

    stamp()
    if out_path is not None:
        t = time.perf_counter()
        result["files"] = write_outputs(out_path, result, gold, gold_out, pred_out)
        timing["write"] = time.perf_counter() - t
        stamp()
        from tagger.fsutil import atomic_write_json

        atomic_write_json(out_path / "metrics.json", result)
    return result


# --------------------------------------------------------------------------- blocks


def _accuracy_of(mask: np.ndarray, correct: np.ndarray, total: int) -> dict:
    n = int(mask.sum())
    return {"tokens": n, "share": n / total if total else 0.0,
            "accuracy": float(correct[mask].mean()) if n else None}


def _oov_block(lookup, tokens: Sequence[Sequence[str]], gold: Sequence[Sequence[str]],
               pred: Sequence[Sequence[str]]) -> dict:
    """Token accuracy on in-vocabulary and OOV words (OOV: not in the trained word vocabulary)."""
    from tagger.vocab import UNK_ID

    flat = [t for s in tokens for t in s]
    ids = np.fromiter((lookup(t) for t in flat), dtype=np.int64, count=len(flat))
    correct = np.fromiter((a == b for g, p in zip(gold, pred) for a, b in zip(g, p)), dtype=bool, count=len(flat))
    unknown = ids == UNK_ID
    pretrained = ids >= lookup.num_trained
    oov = unknown | pretrained
    total = len(flat)
    return {
        "definition": "OOV: not in the model's trained word vocabulary; pretrained_only: OOV but with a "
                      "pretrained vector the model keeps; unknown: read as <unk>",
        "in_vocabulary": _accuracy_of(~oov, correct, total),
        "oov": _accuracy_of(oov, correct, total),
        "pretrained_only": _accuracy_of(pretrained, correct, total),
        "unknown": _accuracy_of(unknown, correct, total),
    }


def _oov_entities(lookup, tokens, g_sp, p_sp) -> dict:
    """Recall of gold entities with and without an OOV word."""
    from tagger.vocab import UNK_ID

    nt = lookup.num_trained
    counts = {"with_oov": [0, 0], "without_oov": [0, 0]}  # [support, found]
    for toks, g, p in zip(tokens, g_sp, p_sp):
        if not g:
            continue
        pset = set(p)
        for sp in g:
            has = any((i := lookup(w)) == UNK_ID or i >= nt for w in toks[sp.start:sp.end])
            c = counts["with_oov" if has else "without_oov"]
            c[0] += 1
            c[1] += sp in pset
    return {k: {"support": s, "recall": f / s if s else None} for k, (s, f) in counts.items()}


def _context(tokens: Sequence[str], start: int, end: int, width: int = 12) -> str:
    """The sentence with tokens ``[start, end)`` in ``[[ ]]``, cut to ``width`` tokens each side.

    ``line`` of an example is the source line of its first marked token (of its sentence when
    the format does not put one token per line).
    """
    lo, hi = max(0, start - width), min(len(tokens), end + width)
    parts = ["…"] if lo > 0 else []
    parts += list(tokens[lo:start]) + ["[["] + list(tokens[start:end]) + ["]]"] + list(tokens[end:hi])
    if hi < len(tokens):
        parts.append("…")
    return " ".join(parts).replace("[[ ", "[[").replace(" ]]", "]]")


def _entity_error_block(gold: Gold, g_sp, p_sp) -> dict:
    ea = metrics.entity_errors(g_sp, p_sp)
    groups: dict[tuple, dict] = {}
    for kind, si, gs, ps in ea["events"]:
        toks = gold.tokens[si]
        gtxt = " ".join(toks[gs.start:gs.end]) if gs else None
        ptxt = " ".join(toks[ps.start:ps.end]) if ps else None
        key = (kind, gtxt, gs.label if gs else None, ptxt, ps.label if ps else None)
        grp = groups.get(key)
        if grp is None:
            lo = min(s.start for s in (gs, ps) if s is not None)
            hi = max(s.end for s in (gs, ps) if s is not None)
            grp = groups[key] = {
                "kind": kind, "count": 0,
                "gold": {"text": gtxt, "type": gs.label} if gs else None,
                "predicted": {"text": ptxt, "type": ps.label} if ps else None,
                "example": {"sentence": si, "line": _where(gold, si, lo), "text": _context(toks, lo, hi)},
                "sentences": [],
            }
        grp["count"] += 1
        if len(grp["sentences"]) < 10:
            grp["sentences"].append(si)
    order = {k: i for i, k in enumerate(metrics.ERROR_KINDS)}
    top = sorted(groups.values(), key=lambda g: (-g["count"], order[g["kind"]], str(g["gold"]), str(g["predicted"])))
    types = sorted({t for pair in ea["confusion"] for t in pair if t != "O"})
    labels = types + ["O"]
    idx = {t: i for i, t in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for (gt, pt), n in ea["confusion"].items():
        matrix[idx[gt]][idx[pt]] += n
    counts = dict(ea["counts"])
    counts["total"] = sum(ea["counts"].values())
    return {
        "counts": counts,
        "definitions": {
            "boundary": "prediction overlaps a gold entity of the same type with other boundaries",
            "type": "prediction has the boundaries of a gold entity but another type",
            "boundary+type": "prediction overlaps only gold entities of other types, with other boundaries",
            "missed": "gold entity that no prediction overlaps",
            "spurious": "prediction that overlaps no gold entity",
            "confusion": "rows: gold type (O: none); columns: type of the prediction overlapping it most "
                         "(O: none); entities as in the strict figures",
        },
        "confusion": {"labels": labels, "matrix": matrix},
        "distinct": len(groups),
        "top": top[:TOP_ERRORS_JSON],
    }


def _label_error_block(gold: Gold, gold_m, pred_m, confusion: dict) -> dict:
    words: dict[tuple[str, str], Counter] = defaultdict(Counter)
    first: dict[tuple[str, str], tuple[int, int]] = {}
    for si, (toks, g, p) in enumerate(zip(gold.tokens, gold_m, pred_m)):
        for j, (a, b) in enumerate(zip(g, p)):
            if a != b:
                words[a, b][toks[j]] += 1
                first.setdefault((a, b), (si, j))
    top = []
    for (a, b), c in sorted(words.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        si, j = first[a, b]
        top.append({
            "gold": a, "predicted": b, "count": sum(c.values()),
            "words": [w for w, _ in c.most_common(5)],
            "example": {"sentence": si, "line": _where(gold, si, j), "text": _context(gold.tokens[si], j, j + 1)},
        })
    total = sum(t["count"] for t in top)
    return {"counts": {"total": total}, "confusion": confusion, "distinct": len(top), "top": top[:TOP_ERRORS_JSON]}


def _read_learning_curve(model_dir: Path) -> dict:
    path = model_dir / "metrics.jsonl"
    if not path.is_file():
        return {"note": f"no training log ({path.name}) in the model directory; learning curve skipped"}
    rows = []
    has_f1 = False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return {"note": f"{path}: unreadable training log ({exc}); learning curve skipped"}
    for line in lines:
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            epoch = int(r["epoch"])
            loss = float(r["loss"]) if r.get("loss") is not None else None
            loss = loss if loss is not None and math.isfinite(loss) else None
        except (ValueError, KeyError, TypeError):
            continue
        dev = r.get("dev") if isinstance(r.get("dev"), dict) else {}
        has_f1 = has_f1 or "f1" in dev
        score = dev.get("f1", dev.get("accuracy"))
        ok = isinstance(score, (int, float)) and math.isfinite(score)
        rows.append({"epoch": epoch, "loss": loss, "dev": float(score) if ok else None})
    if not rows:
        return {"note": f"{path.name} has no epochs; learning curve skipped"}
    metric = "f1" if has_f1 else "accuracy"
    devs = [(r["dev"], r["epoch"]) for r in rows if r["dev"] is not None]
    best = max(devs) if devs else None
    return {"epochs": len(rows), "metric": metric, "best_epoch": best[1] if best else None,
            "best_dev": best[0] if best else None, "history": rows}


# --------------------------------------------------------------------------- writing


def _conll_token(t: str) -> str:
    return re.sub(r"\s", "_", t) or "_"


def write_outputs(out: Path, result: dict, gold: Gold, gold_tags, pred_tags) -> list[str]:
    """Write predictions.conll, the plots and report.md (metrics.json is written last)."""
    from tagger.fsutil import atomic_write_bytes

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaggerError(f"{out}: cannot create the output directory ({exc.strerror or exc})") from None
    lines: list[str] = []
    for toks, g, p in zip(gold.tokens, gold_tags, pred_tags):
        lines.extend(f"{_conll_token(t)} {a} {b}" for t, a, b in zip(toks, g, p))
        lines.append("")
    atomic_write_bytes(out / "predictions.conll", ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
    files = ["metrics.json", "predictions.conll"]
    plots = write_plots(out, result)
    files += [p for p in plots.values() if p]
    result["plots"] = plots
    atomic_write_bytes(out / "report.md", render_report(result).encode("utf-8"))
    files.append("report.md")
    return files


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def write_plots(out: Path, result: dict) -> dict[str, str | None]:
    """PNG plots (matplotlib, Agg canvas: no display needed); returns name → file or None."""
    plots: dict[str, str | None] = {}
    per = result["per_type"]
    names = sorted(per, key=lambda k: (-per[k]["support"], k)) if result["task"] != "entity" else sorted(per)
    if names:
        fig = _figure(7, max(2.5, 0.3 * len(names) + 1.2))
        ax = fig.add_subplot(1, 1, 1)
        f1s = [per[n]["f1"] for n in names]
        y = np.arange(len(names))
        ax.barh(y, f1s, color="#4C72B0")
        ax.set_yticks(y, labels=[f"{n} ({per[n]['support']})" for n in names])
        ax.invert_yaxis()
        ax.set_xlim(0, 1.08)
        ax.set_xlabel("F1 (strict)" if result["task"] == "entity" else "F1")
        for yi, v in zip(y, f1s):
            ax.text(min(v + 0.01, 1.0), yi, f"{v:.3f}", va="center", fontsize=8)
        ax.set_title(("F1 per entity type" if result["task"] == "entity" else "F1 per label") + " (support)")
        fig.tight_layout()
        fig.savefig(out / PLOTS["per_type"])
        plots["per_type"] = PLOTS["per_type"]
    else:
        plots["per_type"] = None

    conf = result["errors"]["confusion"]
    labels, m = conf["labels"], np.asarray(conf["matrix"], dtype=float)
    if labels and m.sum() > 0:
        n = len(labels)
        size = min(14.0, max(4.5, 0.35 * n + 2.5))
        fig = _figure(size, size * 0.85)
        ax = fig.add_subplot(1, 1, 1)
        rows = m.sum(1, keepdims=True)
        share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
        im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(n), labels=labels, rotation=90 if n > 8 else 0, fontsize=8 if n > 20 else 10)
        ax.set_yticks(range(n), labels=labels, fontsize=8 if n > 20 else 10)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    if m[i, j]:
                        ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=8,
                                color="white" if share[i, j] > 0.6 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the gold row")
        ax.set_title("Entity type confusion" if result["task"] == "entity" else "Label confusion (tokens)")
        fig.tight_layout()
        fig.savefig(out / PLOTS["confusion"])
        plots["confusion"] = PLOTS["confusion"]
    else:
        plots["confusion"] = None

    lc = result["learning_curve"]
    if lc.get("history"):
        hist = lc["history"]
        fig = _figure(7, 4)
        ax = fig.add_subplot(1, 1, 1)
        ep = [r["epoch"] for r in hist]
        ax.plot(ep, [r["loss"] if r["loss"] is not None else math.nan for r in hist], "o-", color="#C44E52", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss", color="#C44E52")
        handles, names_ = ax.get_legend_handles_labels()
        if any(r["dev"] is not None for r in hist):
            ax2 = ax.twinx()
            ax2.plot(ep, [r["dev"] if r["dev"] is not None else math.nan for r in hist], "s-", color="#4C72B0",
                     label=f"dev {lc['metric']}")
            ax2.set_ylabel(f"dev {lc['metric']}", color="#4C72B0")
            if lc.get("best_epoch") is not None:
                ax2.axvline(lc["best_epoch"], color="grey", linestyle=":", label=f"best epoch {lc['best_epoch']}")
            h2, n2 = ax2.get_legend_handles_labels()
            handles, names_ = handles + h2, names_ + n2
        ax.legend(handles, names_, loc="center right", fontsize=8)
        ax.set_title("Learning curve")
        fig.tight_layout()
        fig.savefig(out / PLOTS["learning_curve"])
        plots["learning_curve"] = PLOTS["learning_curve"]
    else:
        plots["learning_curve"] = None
    return plots


# --------------------------------------------------------------------------- report and summary


def _md(text) -> str:
    """Escape text for a Markdown table cell."""
    s = "" if text is None else str(text)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([*_`\[\]#])", r"\\\1", s)


def _md_context(text: str) -> str:
    """An error example: the span inside ``[[ ]]`` in bold."""
    m = re.search(r"\[\[(.*?)\]\]", text)
    if not m:
        return _md(text)
    return f"{_md(text[:m.start()])}**{_md(m.group(1))}**{_md(text[m.end():])}"


def _table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _f(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f}" if pct else f"{v:.4f}"


def render_report(m: dict) -> str:
    """report.md: summary, per type, errors, confusion, top errors, plots."""
    ent = m["task"] == "entity"
    L: list[str] = [f"# Evaluation of `{m['model']}`", ""]
    L.append(f"Data: `{m['data']}` ({m['sentences']:,} sentences, {m['tokens']:,} tokens"
             + (f", {m['entities']['gold']:,} gold entities" if ent else "") + ").  ")
    L.append(f"Task: {m['task']}; model scheme: {m['scheme']}; gold scheme: {m['gold_scheme']}"
             + (f" (converted to {m['scheme']}, {m['gold_repairs']} tags repaired)" if ent else "") + ".  ")
    L.append(f"Prediction took {m['timing'].get('predict', 0):.1f} s, scoring {m['timing'].get('score', 0):.1f} s "
             f"({m['threads'] or '-'} CPU thread(s), device {m['device']}).")
    L.append("")
    if m["unseen_labels"]:
        L.append(f"> **Warning:** gold labels the model never saw in training (it cannot predict them): "
                 f"{_md(', '.join(m['unseen_labels']))}")
        L.append("")
    L += ["## Summary", ""]
    if ent:
        c = m["conlleval"]
        L += _table(["", "precision", "recall", "F1"], [
            ["strict, micro (seqeval)", _f(m["precision"], True), _f(m["recall"], True), _f(m["f1"], True)],
            ["strict, macro (seqeval)", _f(m["macro"]["precision"], True), _f(m["macro"]["recall"], True),
             _f(m["macro"]["f1"], True)],
            ["conlleval, micro", _f(c["precision"], True), _f(c["recall"], True), _f(c["f1"], True)],
        ])
        L += ["", f"Token accuracy: {_f(m['accuracy'], True)} % (model scheme); conlleval accuracy "
                  f"{_f(c['accuracy'], True)} % (IOB2).  ",
              f"Entities: {m['entities']['gold']:,} gold, {m['entities']['predicted']:,} predicted, "
              f"{m['entities']['correct']:,} correct (strict); conlleval chunks: {c['found_gold']:,} gold, "
              f"{c['found_pred']:,} predicted, {c['correct']:,} correct.  ",
              f"Ill-formed predicted sequences: {m['ill_formed_predictions']:,}.", "",
              f"- **{STRICT_NOTE[0].upper() + STRICT_NOTE[1:]}.**",
              f"- **{CONLLEVAL_NOTE[0].upper() + CONLLEVAL_NOTE[1:]}.** The figures differ only where a "
              "sequence is ill formed.",
              "- `predictions.conll` holds token, gold and predicted tags in IOB2; a predicted chunk that "
              "strict mode rejects is written starting with `I-`, so seqeval (strict) and the conlleval script "
              "both reproduce the figures above from it"
              + (f" (except {m['predictions_conll']['conflicts']} chunk(s) that one IOB2 line cannot show to both)"
                 if m["predictions_conll"]["conflicts"] else "") + ".", ""]
    else:
        L += _table(["", "value"], [
            ["token accuracy", f"{_f(m['accuracy'], True)} %"],
            ["macro precision", f"{_f(m['macro']['precision'], True)} %"],
            ["macro recall", f"{_f(m['macro']['recall'], True)} %"],
            ["macro F1", f"{_f(m['macro']['f1'], True)} %"],
        ])
        L.append("")
    o = m["oov"]
    L += ["### Out-of-vocabulary words", "", _md(o["definition"]) + ".", ""]
    L += _table(["words", "tokens", "share %", "accuracy %"], [
        [name.replace("_", " "), f"{o[key]['tokens']:,}", _f(o[key]["share"], True), _f(o[key]["accuracy"], True)]
        for key, name in (("in_vocabulary", "in vocabulary"), ("oov", "OOV (all)"),
                          ("pretrained_only", "OOV, pretrained only"), ("unknown", "OOV, unknown"))
    ])
    if ent and "entities" in o:
        e = o["entities"]
        L += ["", f"Recall of gold entities with an OOV word: {_f(e['with_oov']['recall'], True)} % "
                  f"({e['with_oov']['support']:,}); without: {_f(e['without_oov']['recall'], True)} % "
                  f"({e['without_oov']['support']:,})."]
    L.append("")

    per = m["per_type"]
    L += ["## Per type" if ent else "## Per label", ""]
    keys = sorted(per) if ent else sorted(per, key=lambda k: (-per[k]["support"], k))
    rows = []
    for k in keys:
        v = per[k]
        row = [_md(k), _f(v["precision"], True), _f(v["recall"], True), _f(v["f1"], True),
               f"{v['support']:,}", f"{v['predicted']:,}"]
        if ent:
            cv = m["conlleval"]["per_type"].get(k)
            row.append(_f(cv["f1"], True) if cv else "–")
        rows.append(row)
    L += _table(["type" if ent else "label", "precision", "recall", "F1", "support", "predicted"]
                + (["F1 (conlleval)"] if ent else []), rows)
    L.append("")
    if m.get("plots", {}).get("per_type"):
        L += [f"![F1 per type]({m['plots']['per_type']})", ""]

    err = m["errors"]
    L += ["## Errors", ""]
    if ent:
        d = err["definitions"]
        L += _table(["kind", "count", "meaning"], [
            [k, f"{err['counts'][k]:,}", _md(d[k])] for k in metrics.ERROR_KINDS
        ] + [["total", f"{err['counts']['total']:,}", ""]], align="lrl")
        L += ["", "Errors are counted on the strict entities: every wrong prediction is one of boundary, type, "
                  "boundary+type or spurious; missed counts the gold entities no prediction touches.", ""]
    else:
        L += [f"{err['counts']['total']:,} of {m['tokens']:,} tokens are tagged wrongly.", ""]

    conf = err["confusion"]
    L += ["## Confusion", ""]
    if len(conf["labels"]) <= 20:
        head = ["gold \\ predicted"] + [_md(x) for x in conf["labels"]]
        L += _table(head, [[f"**{_md(lab)}**"] + [f"{x:,}" for x in row] for lab, row in zip(conf["labels"], conf["matrix"])])
        L.append("")
        if ent:
            L += [_md(err["definitions"]["confusion"]) + ".", ""]
    else:
        L += [f"{len(conf['labels'])} labels: the full matrix is in metrics.json and the plot; the most frequent "
              "confusions are listed below.", ""]
    if m.get("plots", {}).get("confusion"):
        L += [f"![Confusion matrix]({m['plots']['confusion']})", ""]

    top = err["top"][:TOP_ERRORS_REPORT]
    L += [f"## Top {len(top)} errors", ""]
    if not top:
        L += ["No errors.", ""]
    elif ent:
        rows = []
        for t in top:
            g = f"{_md(t['gold']['text'])} ({_md(t['gold']['type'])})" if t["gold"] else "–"
            p = f"{_md(t['predicted']['text'])} ({_md(t['predicted']['type'])})" if t["predicted"] else "–"
            line = f"{t['example']['line']}" if t["example"]["line"] else f"#{t['example']['sentence'] + 1}"
            rows.append([f"{t['count']:,}", t["kind"], g, p, line, _md_context(t["example"]["text"])])
        L += _table(["count", "kind", "gold", "predicted", "line", "example"], rows, align="rlllrl")
        L.append("")
    else:
        rows = []
        for t in top:
            line = f"{t['example']['line']}" if t["example"]["line"] else f"#{t['example']['sentence'] + 1}"
            rows.append([f"{t['count']:,}", _md(t["gold"]), _md(t["predicted"]), _md(", ".join(t["words"])),
                         line, _md_context(t["example"]["text"])])
        L += _table(["count", "gold", "predicted", "words", "line", "example"], rows, align="rlllrl")
        L.append("")

    L += ["## Learning curve", ""]
    lc = m["learning_curve"]
    if m.get("plots", {}).get("learning_curve"):
        best = f"; best dev {lc['metric']} {lc['best_dev']:.4f} at epoch {lc['best_epoch']}" if lc.get("best_epoch") else ""
        L += [f"{lc['epochs']} epochs{best}.", "", f"![Learning curve]({m['plots']['learning_curve']})", ""]
    else:
        L += [_md(lc.get("note", "no training log; learning curve skipped")) + ".", ""]
    return "\n".join(L)


def format_summary(m: dict) -> str:
    """A readable summary table of ``metrics.json``."""
    ent = m["task"] == "entity"
    lines = [f"model {m['model']} ({m['task']}, {m['scheme']}) on {m['data']}: {m['sentences']:,} sentences, "
             f"{m['tokens']:,} tokens" + (f", {m['entities']['gold']:,} entities" if ent else "")]
    if ent:
        c = m["conlleval"]
        rows = [("", "precision", "recall", "F1")]
        rows.append(("strict micro", *(f"{100 * m[k]:.2f}" for k in ("precision", "recall", "f1"))))
        rows.append(("strict macro", *(f"{100 * m['macro'][k]:.2f}" for k in ("precision", "recall", "f1"))))
        rows.append(("conlleval", *(f"{100 * c[k]:.2f}" for k in ("precision", "recall", "f1"))))
        rows.append(("", "", "", ""))
        rows.append(("type", "precision", "recall", "F1"))
        for t, v in sorted(m["per_type"].items()):
            rows.append((f"{t} ({v['support']})", *(f"{100 * v[k]:.2f}" for k in ("precision", "recall", "f1"))))
    else:
        rows = [("label", "precision", "recall", "F1")]
        per = m["per_type"]
        for t in sorted(per, key=lambda k: (-per[k]["support"], k)):
            v = per[t]
            rows.append((f"{t} ({v['support']})", *(f"{100 * v[k]:.2f}" for k in ("precision", "recall", "f1"))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines.append("")
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    lines.append("")
    o = m["oov"]
    acc = lambda b: "–" if b["accuracy"] is None else f"{100 * b['accuracy']:.2f}"  # noqa: E731
    lines.append(f"token accuracy {100 * m['accuracy']:.2f}; OOV {100 * o['oov']['share']:.1f}% of tokens, "
                 f"accuracy {acc(o['oov'])} (pretrained-only {acc(o['pretrained_only'])}, unknown {acc(o['unknown'])}), "
                 f"in-vocabulary {acc(o['in_vocabulary'])}")
    if ent:
        e = m["errors"]["counts"]
        lines.append("errors: " + ", ".join(f"{k} {e[k]:,}" for k in metrics.ERROR_KINDS)
                     + f"; ill-formed predicted sequences {m['ill_formed_predictions']:,}")
        lines.append("strict = seqeval mode='strict' (headline); conlleval = conlleval chunk counting (repairs ill-formed tags)")
    else:
        lines.append(f"errors: {m['errors']['counts']['total']:,} tokens")
    if m["unseen_labels"]:
        lines.append(f"gold labels never seen in training: {len(m['unseen_labels'])} (unseen_labels in metrics.json)")
    return "\n".join(lines)
