"""``tagger train``: fit a BiLSTM-CRF on a prepared directory.

Training is deterministic for a seed and resumable: after every epoch a checkpoint (model,
optimiser and RNG state in one safetensors file, written atomically) lets ``--resume`` continue
a killed run so that it ends exactly as an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from tagger import modeldir, metrics, schemes
from tagger.errors import TaggerError
from tagger.features import Featurizer, collate, length_batches
from tagger.fsutil import atomic_write_bytes, atomic_write_json, os_error
from tagger.nn.bilstm_crf import BiLSTMCRF, ModelConfig
from tagger.predict import WEIGHTS, save_tagger_static, tagger_config
from tagger.commands.prepare import load_prepared

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
TRAIN_CONFIG = "train.toml"
RESUME_OVERRIDES = ("epochs", "max_minutes", "patience", "device", "threads", "eval_batch_size")


@dataclass
class TrainOptions:
    """Training and architecture options; the defaults are the CoNLL-2003 recipe (see README)."""

    epochs: int = 100
    batch_size: int = 16
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.015
    momentum: float = 0.9
    lr_decay: float = 0.05  # lr_t = lr / (1 + lr_decay * t), Ma & Hovy (2016)
    weight_decay: float = 0.0
    clip: float = 5.0
    patience: int = 15
    max_minutes: float = 0.0  # 0 = no time limit
    seed: int = 1
    device: str = "auto"
    threads: int = 0  # 0 = torch default
    eval_batch_size: int = 256
    # architecture
    char_encoder: str = "cnn"
    char_dim: int = 30
    char_filters: int = 50
    char_kernel: int = 3
    casing: bool = True
    hidden: int = 200
    layers: int = 1
    dropout: float = 0.5
    word_dropout: float = 0.05
    freeze_embeddings: bool = False
    crf: bool = True
    constrained: bool = True  # forbid ill-formed BIO/BIOES transitions when decoding
    constrain_training: bool = False
    ema: float = 0.999  # decay of an exponential moving average of the weights (0 = off)

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.optimizer in ("sgd", "adam", "adamw"), "--optimizer must be sgd, adam or adamw"),
            (self.lr > 0, "--lr must be positive"),
            (self.patience >= 1, "--patience must be at least 1"),
            (self.max_minutes >= 0, "--max-minutes must be >= 0"),
            (self.char_encoder in ("cnn", "lstm", "none"), "--char-encoder must be cnn, lstm or none"),
            (0 <= self.dropout < 1 and 0 <= self.word_dropout < 1, "dropout must be in [0, 1)"),
            (self.hidden >= 1 and self.layers >= 1, "--hidden and --layers must be positive"),
            # the same bounds as when a model directory is loaded (tagger.predict.load_tagger)
            (self.hidden <= 4096 and self.layers <= 8, "--hidden must be at most 4096 and --layers at most 8"),
            (1 <= self.char_dim <= 1024 and 1 <= self.char_filters <= 4096 and 1 <= self.char_kernel <= 31,
             "--char-dim must be in [1, 1024], --char-filters in [1, 4096], --char-kernel in [1, 31]"),
            (self.eval_batch_size >= 1 and self.threads >= 0, "--eval-batch-size must be >= 1, --threads >= 0"),
            (0.0 <= self.ema < 1.0, "--ema must be in [0, 1)"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "--device must be auto, cpu or cuda"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TaggerError(msg)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "TrainOptions":
        """Options from a TOML file (a flat table, or a [train] table); ``overrides`` win."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TaggerError(f"{path}: config file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TaggerError(f"{path}: invalid TOML ({exc})") from None
        data = data.get("train", data)
        if not isinstance(data, dict):
            raise TaggerError(f"{path}: [train] must be a table of options")
        known = {f.name: f for f in fields(cls)}
        opts = cls()
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in known:
                raise TaggerError(f"{path}: unknown option {key!r}")
            default = getattr(opts, name)
            if isinstance(default, bool) != isinstance(value, bool) or (
                isinstance(default, (int, float)) and not isinstance(value, (int, float))
            ) or (isinstance(default, str) and not isinstance(value, str)):
                raise TaggerError(f"{path}: option {key!r} must be of type {type(default).__name__}")
            if isinstance(default, float):
                value = float(value)
            setattr(opts, name, value)
        for k, v in overrides.items():
            setattr(opts, k, v)
        return opts

    def to_toml(self) -> str:
        lines = ["# effective training configuration (tagger train --config this-file)", "[train]"]
        for f in fields(self):
            v = getattr(self, f.name)
            lines.append(f"{f.name} = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}")
        return "\n".join(lines) + "\n"


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TaggerError("--device cuda: no CUDA device is available (use --device cpu)")
    return name


# --------------------------------------------------------------------------- checkpoints


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    groups = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    return tensors, {"scalars": scalars, "groups": groups}


def _load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    sd = opt.state_dict()
    state: dict = {}
    for key, t in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = t
    for pid, sc in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(sc)
    groups = []
    for g, saved in zip(sd["param_groups"], meta["groups"]):
        ng = dict(saved)
        ng["params"] = g["params"]
        groups.append(ng)
    opt.load_state_dict({"state": state, "param_groups": groups})


class WeightEMA:
    """Exponential moving average of the trainable weights (Polyak averaging).

    Dev evaluation and the saved model use the averaged weights; training continues on the raw
    ones. The decay warms up as min(decay, (1 + n) / (10 + n)) so early averages are not
    dominated by the random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @contextlib.contextmanager
    def applied(self):
        """Temporarily load the averaged weights into the model."""
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, b in zip(self.params, backup):
                    p.copy_(b)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"ema.{n}": s for n, s in zip(self.names, self.shadow)}

    def load(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        for i, n in enumerate(self.names):
            t = tensors.get(f"ema.{n}")
            if t is None or t.shape != self.shadow[i].shape or t.dtype != self.shadow[i].dtype:
                raise ValueError(f"checkpoint has no usable averaged weights for {n}")
            self.shadow[i] = t.to(self.shadow[i].device).clone()
        self.updates = updates


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, info: dict,
                    ema: WeightEMA | None = None) -> None:
    """Model, optimiser and RNG state in one safetensors file (metadata holds the JSON part)."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({k: v.detach().cpu().contiguous() for k, v in ema.tensors().items()})
        info = {**info, "ema_updates": ema.updates}
    otensors, ometa = _optimizer_state(opt)
    tensors.update({k: v.detach().cpu().contiguous() for k, v in otensors.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"info": json.dumps(info), "optim": json.dumps(ometa)}
    atomic_write_bytes(path, save(tensors, metadata=meta))


INFO_FIELDS = {"epoch": int, "best": (int, float), "best_epoch": int, "bad_epochs": int, "elapsed": (int, float),
               "finished": bool}


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    ema: WeightEMA | None = None) -> dict:
    """Restore model, optimiser and RNG state; anything inconsistent is a TaggerError (nothing is unpickled)."""
    from safetensors import safe_open

    if not path.is_file():
        raise TaggerError(f"{path}: not a regular file; remove it to start over")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        info = json.loads(meta["info"])
        ometa = json.loads(meta["optim"])
    except Exception as exc:  # corrupt or foreign file
        raise TaggerError(f"{path}: unreadable checkpoint ({exc}); remove it to start over") from None

    def bad(why: str) -> TaggerError:
        return TaggerError(f"{path}: unusable checkpoint ({why}); remove it to start over")

    if not isinstance(info, dict) or not isinstance(ometa, dict):
        raise bad("bad metadata")
    for key, typ in INFO_FIELDS.items():
        if not isinstance(info.get(key), typ) or (typ is int and isinstance(info[key], bool)):
            raise bad(f"bad or missing {key!r}")
    if info["epoch"] < 1:
        raise bad("bad epoch")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    ema_tensors = {k: v for k, v in tensors.items() if k.startswith("ema.")}
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in state):
        raise TaggerError(f"{path}: checkpoint does not match this model configuration")
    for k, v in state.items():
        if v.dtype != expected[k].dtype or (v.is_floating_point() and not torch.isfinite(v).all()):
            raise bad(f"tensor {k} has the wrong dtype or non-finite values")
    rng = tensors.get("rng.torch")
    if rng is None or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise bad("bad or missing RNG state")
    try:
        model.load_state_dict(state)
        _load_optimizer_state(opt, tensors, ometa)
        for group in opt.param_groups:
            for p in group["params"]:
                for name, v in opt.state.get(p, {}).items():
                    if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape:
                        raise ValueError(f"optimiser state {name} has shape {tuple(v.shape)}, expected {tuple(p.shape)}")
        if ema is not None:
            updates = info.get("ema_updates")
            if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
                raise ValueError("bad or missing averaged-weights counter")
            ema.load(ema_tensors, updates)
        torch.set_rng_state(rng)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise bad(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return info


# --------------------------------------------------------------------------- training


def make_optimizer(model: torch.nn.Module, o: TrainOptions) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches, shuffled per epoch from (seed, epoch) alone (resume-safe)."""
    rng = random.Random(seed * 100_003 + epoch)
    noise = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], noise[i]))
    batches = length_batches(lengths, batch_size, order)
    rng.shuffle(batches)
    return batches


def evaluate_split(model: BiLSTMCRF, encoded, gold: list[list[str]], itos: list[str], task: str, scheme: str,
                   batch_size: int, device: str) -> tuple[dict, list[list[str]]]:
    """Decode encoded sentences and score them against gold label strings."""
    model.eval()
    lengths = [len(e) for e in encoded]
    preds: list[list[str] | None] = [None] * len(encoded)
    with torch.inference_mode():
        for idx in length_batches(lengths, batch_size):
            batch = collate([encoded[i] for i in idx], idx).to(device)
            paths, _ = model.decode(batch)
            for b, i in enumerate(idx):
                preds[i] = [itos[t] for t in paths[b, : lengths[i]].tolist()]
    return metrics.score(gold, preds, task, scheme), preds  # type: ignore[arg-type]


def train(
    prepared_dir: str | Path,
    out: str | Path,
    opts: TrainOptions | None,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Train a tagger; returns a summary with the best dev score and per-epoch metrics.

    With ``resume``, the configuration saved in ``out`` is used; ``opts`` may be None, or
    options whose ``epochs``, ``max_minutes``, ``patience``, ``device`` and ``threads`` differ
    from the defaults override the saved ones (extending or shortening the run).
    """
    say = log or (lambda m: None)
    out = Path(out)
    ckpt_path = out / CHECKPOINT
    restart = False  # --resume of a run killed before its first checkpoint: start over, same configuration
    if resume:
        if not ckpt_path.exists() and not ckpt_path.is_symlink():
            if not (out / TRAIN_CONFIG).is_file() or not (out / "config.json").is_file():
                raise TaggerError(f"{out}: nothing to resume (no {CHECKPOINT}); start again with --force")
            restart = True
        defaults = TrainOptions()
        given = {} if opts is None else {
            k: getattr(opts, k) for k in RESUME_OVERRIDES if getattr(opts, k) != getattr(defaults, k)
        }
        opts = TrainOptions.from_toml(out / TRAIN_CONFIG, **given)
        say(f"resuming from {ckpt_path} with the saved configuration {out / TRAIN_CONFIG}" if not restart else
            f"{out}: no checkpoint yet (stopped in the first epoch): starting over with {out / TRAIN_CONFIG}")
    if opts is None:
        raise TaggerError("training options are required unless resuming")
    opts.validate()
    prep = load_prepared(prepared_dir)
    if "train" not in prep.dataset:
        raise TaggerError(f"{prepared_dir}: no train split")
    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)

    if out.exists() and not resume:
        if not force:
            raise TaggerError(f"{out} already exists (use --force to replace it, or --resume to continue)")
        if not out.is_dir():
            raise TaggerError(f"{out} exists and is not a directory")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(out, exc) from None
    if resume:  # temporary files of a killed run (complete files are always renamed into place)
        for stale in out.glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()

    torch.manual_seed(opts.seed)
    labels = prep.labels
    itos = labels.itos
    lookup = prep.lookup()
    feat = Featurizer(lookup, prep.chars, labels)
    tr_tokens, tr_labels = prep.sentences("train")
    train_enc = [feat.encode(t, l) for t, l in zip(tr_tokens, tr_labels)]
    for e in train_enc:
        e.tags = [max(t, 0) for t in e.tags]  # labels come from train: never unknown
    dev_enc, dev_gold = None, None
    if "dev" in prep.dataset:
        dt, dl = prep.sentences("dev")
        dev_enc = [feat.encode(t) for t in dt]
        dev_gold = dl
    else:
        say("warning: no dev split; the model of the last epoch is kept")

    mc = ModelConfig(
        num_words=len(prep.words), num_extra=len(prep.extra), word_dim=int(prep.matrix.shape[1]),
        num_chars=len(prep.chars), num_tags=len(labels), freeze_words=opts.freeze_embeddings,
        char_encoder=opts.char_encoder, char_dim=opts.char_dim, char_filters=opts.char_filters,
        char_kernel=opts.char_kernel, casing=opts.casing, hidden=opts.hidden, layers=opts.layers,
        dropout=opts.dropout, word_dropout=opts.word_dropout, use_crf=opts.crf,
    )
    model = BiLSTMCRF(mc)
    model.set_pretrained(prep.matrix, prep.extra_matrix)
    constrained = bool(opts.crf and opts.constrained and prep.task == "entity")
    if model.crf is not None:
        scheme = prep.scheme if prep.task == "entity" else "plain"
        start, trans, end = schemes.allowed_transitions(itos, scheme)
        if not constrained:
            # Only forbid the padding label.
            start = [i != 0 for i in range(len(itos))]
            trans = [[i != 0 and j != 0 for j in range(len(itos))] for i in range(len(itos))]
            end = list(start)
        model.crf.set_constraints(start, trans, end, in_training=constrained and opts.constrain_training)
    model.to(device)
    optimizer = make_optimizer(model, opts)
    ema = WeightEMA(model, opts.ema) if opts.ema > 0 else None

    manifest = prep.manifest
    data_opts = {k: manifest["options"].get(k) for k in ("format", "token_column", "label_column", "label_field", "encoding")}
    cfg = tagger_config(mc, prep.words, prep.chars, labels, lowercase=prep.lowercase, digits=prep.digits,
                        task=prep.task, scheme=prep.scheme, data=data_opts, constrained=constrained,
                        training={"prepared": str(prepared_dir), "options": asdict(opts)})
    metrics_path = out / METRICS
    start_epoch, best, best_epoch, bad, elapsed = 1, -math.inf, 0, 0, 0.0
    history: list[dict] = []
    if resume and not restart:
        info = load_checkpoint(ckpt_path, model, optimizer, ema)
        start_epoch = info["epoch"] + 1
        best, best_epoch, bad, elapsed = info["best"], info["best_epoch"], info["bad_epochs"], info["elapsed"]
        if metrics_path.exists():  # drop lines of epochs that had not reached their checkpoint
            history = [r for r in _read_metrics(metrics_path) if r["epoch"] <= info["epoch"]]
        # A finished run stays finished unless --epochs / --patience / --max-minutes now allow more.
        if info.get("finished") and (info["epoch"] >= opts.epochs or bad >= opts.patience
                                     or (opts.max_minutes and elapsed >= opts.max_minutes * 60)):
            say(f"{out}: training had already finished (best epoch {best_epoch})")
            return _summary(out, prep.task, best, best_epoch, history, elapsed)
        say(f"resuming at epoch {start_epoch}")
    else:
        save_tagger_static(out, cfg, prep.extra, prep.extra_matrix)
        atomic_write_bytes(out / TRAIN_CONFIG, opts.to_toml().encode())
    atomic_write_bytes(metrics_path, "".join(json.dumps(h) + "\n" for h in history).encode())

    lengths = [len(e) for e in train_enc]
    n_tokens = sum(lengths)
    key = "f1" if prep.task == "entity" else "accuracy"
    finished = False
    for epoch in range(start_epoch, opts.epochs + 1):
        lr = opts.lr / (1.0 + opts.lr_decay * (epoch - 1)) if opts.optimizer == "sgd" else opts.lr
        for g in optimizer.param_groups:
            g["lr"] = lr
        model.train()
        t0 = time.perf_counter()
        total_loss = 0.0
        batches = epoch_batches(lengths, opts.batch_size, opts.seed, epoch)
        bar = _progress(len(train_enc), f"epoch {epoch}/{opts.epochs}", progress)
        for idx in batches:
            batch = collate([train_enc[i] for i in idx], idx).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(batch, reduction="sum")
            (loss / len(idx)).backward()
            if opts.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
            optimizer.step()
            if ema is not None:
                ema.update()
            total_loss += loss.item()
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix(loss=f"{total_loss / max(1, bar.n):.3f}", refresh=False)
        train_seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        with ema.applied() if ema is not None else contextlib.nullcontext():
            if dev_enc is not None:
                dev_scores, _ = evaluate_split(model, dev_enc, dev_gold, itos, prep.task, prep.scheme,
                                               opts.eval_batch_size, device)
            else:
                dev_scores = {}
            score = dev_scores.get(key, float(epoch))  # without dev: the latest epoch is the best
            improved = score > best
            if improved:
                best, best_epoch, bad = score, epoch, 0
                modeldir.save_tensors(out / WEIGHTS, model.state_dict())
            else:
                bad += 1
        seconds = time.perf_counter() - t0
        elapsed += seconds
        row = {
            "epoch": epoch, "loss": total_loss / len(train_enc), "lr": lr,
            "dev": {k: v for k, v in dev_scores.items() if k != "per_type"},
            "seconds": round(seconds, 2), "train_seconds": round(train_seconds, 2),
            "sentences_per_s": round(len(train_enc) / train_seconds, 1),
            "tokens_per_s": round(n_tokens / train_seconds, 1), "best": improved,
        }
        history.append(row)
        try:
            with open(metrics_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")
        except OSError as exc:
            raise os_error(metrics_path, exc) from None
        dev_txt = f" dev {key} {score:.4f}" if dev_scores else ""
        say(f"epoch {epoch}: loss {row['loss']:.4f}{dev_txt} lr {lr:.5f} {seconds:.1f}s"
            f" ({row['sentences_per_s']:.0f} sent/s){' *' if improved else ''}")
        stop = None
        if bad >= opts.patience:
            stop = f"no improvement for {opts.patience} epochs"
        elif opts.max_minutes and elapsed >= opts.max_minutes * 60:
            stop = f"time limit of {opts.max_minutes:g} minutes reached"
        elif epoch == opts.epochs:
            stop = "last epoch"
        finished = stop is not None
        info = {"epoch": epoch, "best": best, "best_epoch": best_epoch, "bad_epochs": bad,
                "elapsed": elapsed, "finished": finished}
        save_checkpoint(ckpt_path, model, optimizer, info, ema)
        if stop:
            say(f"stopping: {stop}; best epoch {best_epoch} ({key} {best:.4f})")
            break
    return _summary(out, prep.task, best, best_epoch, history, elapsed)


def _read_metrics(path: Path) -> list[dict]:
    """Rows of metrics.jsonl; a line cut short by a kill (or otherwise unreadable) is dropped."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows


def _summary(out: Path, task: str, best: float, best_epoch: int, history: list[dict], elapsed: float) -> dict:
    summary = {"model": str(out), "task": task, "best_epoch": best_epoch,
               "best_dev": best if math.isfinite(best) else None, "epochs": len(history),
               "minutes": round(elapsed / 60, 2), "history": history}
    atomic_write_json(out / "train_summary.json", {k: v for k, v in summary.items() if k != "history"})
    return summary


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sent", leave=False, dynamic_ncols=True, disable=None)
