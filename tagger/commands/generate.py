"""Word-level LSTM language model: ``tagger generate train|sample|evaluate``.

The model reads a token stream (sentences joined by ``<eos>``) and is trained with truncated
back-propagation through time over a batchified stream, carrying the hidden state from one
BPTT window to the next. Rare and unseen words map to ``<unk>``. Sampling feeds the whole seed
text, then continues from the resulting state (no fixed window), greedily (temperature 0) or
by sampling with temperature, top-k and nucleus (top-p) filtering, seeded and reproducible.

Text files hold one tokenised sentence per line; CoNLL/CoNLL-U files are detected and read
through :mod:`tagger.formats.read` (token column, one sentence per block).
Model directories use the safe :mod:`tagger.modeldir` format (``config.json`` + safetensors).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tagger import modeldir
from tagger.declare import InputPath
from tagger.embeddings import load_vectors
from tagger.errors import ModelError, TaggerError
from tagger.fsutil import atomic_dir
from tagger.nn.language_model import LMConfig, LSTMLanguageModel, State, default_cutoffs, detach, stream_log_likelihood
from tagger.options import bounds, check_fields, option
from tagger.training import distributed
from tagger.training.loop import Epoch, Recipe, Step, Task, Trainer
from tagger.training.optim import OPTIMIZERS, decay_on_plateau
from tagger.training.rundir import WEIGHTS, run_dir, run_options
from tagger.training.setup import DEVICE_PATTERN, setup
from tagger.vocab import Vocab, normalize_digits
from tagger.word_table import build_word_table

KIND = "generator"
UNK = "<unk>"
EOS = "<eos>"
UNK_ID = 0
EOS_ID = 1

# --------------------------------------------------------------------------- vocabulary


class LMVocab:
    """Word ids for the language model: ``<unk>`` = 0, ``<eos>`` = 1, then words by frequency."""

    def __init__(self, words: Sequence[str], lowercase: bool = False, digits: bool = False) -> None:
        self.vocab = Vocab([UNK, EOS, *words], specials=False)
        self.lowercase = lowercase
        self.digits = digits

    @property
    def itos(self) -> list[str]:
        return self.vocab.itos

    def __len__(self) -> int:
        return len(self.vocab)

    def key(self, token: str) -> str:
        if self.digits:
            token = normalize_digits(token)
        return token.lower() if self.lowercase else token

    def id(self, token: str) -> int:
        return self.vocab.stoi.get(self.key(token), UNK_ID)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get = self.vocab.stoi.get
        return [get(self.key(t), UNK_ID) for t in tokens]

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 2, max_size: int | None = None,
              lowercase: bool = False, digits: bool = False) -> LMVocab:
        tmp = cls([], lowercase, digits)
        counts = Counter(tmp.key(t) for s in sentences for t in s)
        for special in (UNK, EOS):
            counts.pop(special, None)
        words = Vocab.build(counts, min_count, specials=False, max_size=max_size).itos
        return cls(words, lowercase, digits)

    def to_json(self) -> dict:
        return {"itos": self.itos, "lowercase": self.lowercase, "digits": self.digits}


def stream(sentences: Iterable[Sequence[int]]) -> list[int]:
    """``<eos> s1 <eos> s2 <eos> ...``: every word and every sentence end is a prediction target."""
    out = [EOS_ID]
    for s in sentences:
        out.extend(s)
        out.append(EOS_ID)
    return out


def perplexity_from(log_likelihood: float, count: int) -> float:
    if count <= 0:
        raise TaggerError("no tokens to evaluate")
    return math.exp(-log_likelihood / count)


# --------------------------------------------------------------------------- sampling


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Set logits outside the top-k / nucleus (top-p) set to -inf (1-D logits)."""
    logits = logits.clone()
    if top_k and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if 0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        cum = torch.cumsum(probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        remove = cum - probs >= top_p
        logits[order[remove]] = float("-inf")
    return logits


@dataclass
class Sample:
    seed_tokens: list[str]
    tokens: list[str]  # generated tokens (``<eos>`` included where generated)
    unknown_seed: list[str]
    stopped_at_eos: bool

    @property
    def text(self) -> str:
        """Seed + continuation; an ``<eos>`` becomes a line break."""
        out = " ".join(self.seed_tokens)
        for t in self.tokens:
            if t == EOS:
                out += "\n"
            else:
                out += t if (not out or out.endswith("\n")) else " " + t
        return out.strip("\n")

    def to_json(self) -> dict:
        return {"seed": " ".join(self.seed_tokens), "generated": self.tokens, "text": self.text,
                "unknown_seed_words": self.unknown_seed, "stopped_at_eos": self.stopped_at_eos}


# --------------------------------------------------------------------------- the trained generator


class Generator:
    """A trained language model with its vocabulary: sample, score, save, load."""

    def __init__(self, model: LSTMLanguageModel, vocab: LMVocab, config: dict) -> None:
        self.model = model
        self.vocab = vocab
        self.config = config

    @torch.no_grad()
    def sample(self, seed_text: str | Sequence[str] = "", words: int = 20, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, seed: int = 1, stop_at_eos: bool = False,
               allow_unk: bool = True) -> Sample:
        """Continue ``seed_text`` by ``words`` tokens (``<eos>`` tokens are not counted)."""
        if temperature < 0:
            raise TaggerError("--temperature must be >= 0 (0 = greedy)")
        if top_k < 0 or not 0 < top_p <= 1:
            raise TaggerError("--top-k must be >= 0 and --top-p in (0, 1]")
        if words < 0:
            raise TaggerError("--words must be >= 0")
        tokens = seed_text.split() if isinstance(seed_text, str) else list(seed_text)
        ids = self.vocab.encode(tokens)
        unknown = [t for t, i in zip(tokens, ids, strict=True) if i == UNK_ID]
        self.model.eval()
        gen = torch.Generator().manual_seed(seed)
        logp, state = self.model(torch.as_tensor([[EOS_ID, *ids]], dtype=torch.long))
        last = logp[0, -1]
        out: list[str] = []
        produced = 0
        stopped = False
        # Generate while fewer than ``words`` words; guard against endless <eos> runs.
        for _ in range(max(0, words) * 4 + 8):
            if produced >= words:
                break
            logit = last.float().clone()
            if not allow_unk:
                logit[UNK_ID] = float("-inf")
            if temperature == 0:
                nxt = int(torch.argmax(logit))
            else:
                logit = filter_logits(logit / temperature, top_k, top_p)
                nxt = int(torch.multinomial(torch.softmax(logit, -1), 1, generator=gen))
            if nxt == EOS_ID:
                if stop_at_eos:
                    stopped = True
                    break
                out.append(EOS)
            else:
                out.append(self.vocab.itos[nxt])
                produced += 1
            logp, state = self.model(torch.as_tensor([[nxt]], dtype=torch.long), state)
            last = logp[0, -1]
        return Sample(tokens, out, unknown, stopped)

    def evaluate(self, sentences: Sequence[Sequence[str]], batch_size: int = 1, bptt: int = 70) -> dict:
        encoded = [self.vocab.encode(s) for s in sentences]
        ids = stream(encoded)
        ll, n = stream_log_likelihood(self.model, ids, batch_size, bptt)
        unk = sum(1 for s in encoded for i in s if i == UNK_ID)
        words = sum(len(s) for s in encoded)
        return {"perplexity": perplexity_from(ll, n), "tokens": n, "sentences": len(encoded), "words": words,
                "unk_rate": unk / words if words else 0.0, "vocab_size": len(self.vocab),
                "nll_per_token": -ll / n}

    def save(self, out: str | Path, force: bool = False) -> None:
        with atomic_dir(out, force=force) as tmp:
            modeldir.write_config(tmp, KIND, self.config)
            modeldir.save_tensors(tmp / WEIGHTS, self.model.state_dict())

    @classmethod
    def load(cls, path: str | Path) -> Generator:
        path = Path(path)
        cfg, mc, where = modeldir.read_model_section(path, KIND, LMConfig)
        if not isinstance(mc.tie, bool):
            raise ModelError(f"{where}: bad tie value")
        cut = mc.cutoffs
        if not isinstance(cut, list) or len(cut) > 8 or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in cut
        ) or cut != sorted(set(cut)) or (cut and not (0 < cut[0] and cut[-1] < mc.vocab_size - 1)):
            raise ModelError(f"{where}: bad adaptive softmax cutoffs {cut!r}")
        v = cfg.get("vocab")
        if not isinstance(v, dict) or not isinstance(v.get("itos"), list) or \
                not all(isinstance(x, str) for x in v["itos"]):
            raise ModelError(f"{where}: vocab.itos must be a list of strings")
        if len(v["itos"]) != mc.vocab_size or v["itos"][:2] != [UNK, EOS] or len(set(v["itos"])) != len(v["itos"]):
            raise ModelError(f"{where}: vocabulary disagrees with the model section")
        model = modeldir.build_checked(lambda: LSTMLanguageModel(mc), path / WEIGHTS)  # headers checked first
        modeldir.load_state(model, path / WEIGHTS)
        model.eval()
        vocab = LMVocab(v["itos"][2:], lowercase=bool(v.get("lowercase", False)), digits=bool(v.get("digits", False)))
        return cls(model, vocab, cfg)


# --------------------------------------------------------------------------- training


def _model_bound(name: str, help: str, default: Any, **kw: Any) -> Any:
    """An option that sets the LMConfig field ``name``, with that field's bounds."""
    lo, hi = bounds(LMConfig, name)
    return option(default, help=help, min=lo, max=hi, **kw)


@dataclass
class GeneratorOptions:
    """Vocabulary, architecture and training options (defaults: the CoNLL-2003 benchmark recipe)."""

    min_count: int = option(2, help="Words seen fewer times become <unk>.", min=1)
    max_vocab: int = option(0, help="Keep at most this many words (0 = all).", min=0)
    lowercase: bool = option(False, help="Lowercase words.")
    digits: bool = option(False, help="Map digits to 0.", flag="normalize-digits")
    embeddings: str = option("glove-6b-50d", help="Initial input vectors: none | glove-6b-50d | word2vec | PATH.",
                             click_type=InputPath(or_name=True, dir_okay=False))
    embedding_dim: int = _model_bound("embed_dim", "Embedding size (without pretrained vectors).", 100)
    hidden: int = _model_bound("hidden", "LSTM hidden size.", 256)
    layers: int = _model_bound("layers", "LSTM layers.", 1)
    dropout: float = _model_bound("dropout", "Dropout rate.", 0.5, below=1.0)
    tie: bool = option(True, help="Tie input and output embeddings (full softmax only).")
    adaptive_softmax: bool = option(False, help="Adaptive softmax, untied (faster for vocabularies over 4000 words).")
    bptt: int = option(35, help="Truncated BPTT length.", min=1)
    batch_size: int = option(20, help="Parallel streams per batch.", min=1)
    epochs: int = option(10, help="Maximum epochs.", min=1)
    optimizer: str = option("adam", help="adam | adamw | sgd.", choices=OPTIMIZERS)
    lr: float = option(0.002, help="Learning rate.", above=0.0)
    lr_decay: float = option(0.25, help="LR factor after an epoch without dev improvement.", above=0.0, max=1.0)
    clip: float = option(0.5, help="Gradient-norm clipping (0 = off).", min=0.0)
    max_minutes: float = option(0.0, help="Stop training after this many minutes (0 = no limit).", min=0.0)
    dev_fraction: float = option(0.0, help="Without --dev: hold out this share of the training sentences "
                                 "(the last ones).", min=0.0, below=1.0)
    seed: int = option(1, help="Random seed (same seed and --threads, same model on the same machine).")
    device: str = option("auto", help="auto | cpu | cuda | cuda:N.", pattern=DEVICE_PATTERN)
    threads: int = option(0, help="Torch CPU threads (0 = the cores other processes leave free, re-measured "
                         "every few seconds).", min=0)
    eval_batch_size: int = option(8, help="Streams for dev perplexity.", min=1)

    def validate(self) -> None:
        check_fields(self)

    def recipe(self) -> Recipe:
        # plain SGD (no momentum) when sgd is chosen; the time limit may end a long epoch early
        return Recipe(epochs=self.epochs, optimizer=self.optimizer, lr=self.lr, momentum=0.0,
                      schedule=decay_on_plateau(self.lr, self.lr_decay), clip=self.clip,
                      max_minutes=self.max_minutes, stop_mid_epoch=True, seed=self.seed)


def batchify(ids: Sequence[int], batch_size: int) -> Tensor:
    """The stream cut into ``batch_size`` contiguous rows ``(batch, steps)`` (the tail is dropped)."""
    steps = len(ids) // batch_size
    if steps < 2:
        raise TaggerError(f"training text too short: {len(ids)} tokens for --batch-size {batch_size}")
    return torch.as_tensor(ids[: steps * batch_size], dtype=torch.long).view(batch_size, steps)


class LMTask(Task):
    """BPTT windows over the batchified stream; the hidden state runs on across the windows of an epoch."""

    model: LSTMLanguageModel
    unit = "step"
    item = "tok"
    headline = "perplexity"
    higher_is_better = False

    def __init__(self, model: LSTMLanguageModel, train_ids: list[int], dev_ids: list[int] | None,
                 opts: GeneratorOptions, device: str, config: dict) -> None:
        self.model, self.dev_ids, self.opts, self.device, self.config = model, dev_ids, opts, device, config
        self.data = batchify(train_ids, opts.batch_size).to(device)
        self.steps = self.data.shape[1] - 1
        self.has_dev = dev_ids is not None
        self.state: State | None = None
        self._rows: tuple[int, int] | None = None  # distributed: (rank, world) whose rows self.data holds
        self._whole = self.data

    def size(self) -> int:
        return self.steps

    def batches(self, epoch: int) -> Iterator[int]:
        self.state = None  # every epoch starts from a zero state
        return iter(range(0, self.steps, self.opts.bptt))

    def rank_batches(self, epoch: int, rank: int, world: int) -> list[Any]:
        """Distributed: every rank runs every BPTT window over its own contiguous rows of the streams.

        The step over all ranks is then exactly the single-process step (the hidden state of a row
        runs on across the windows as before; the loss is the mean over all rows' tokens).
        """
        if self._rows != (rank, world):
            if self.data.shape[0] < world:
                raise TaggerError(f"--batch-size {self.data.shape[0]} is smaller than the {world} training "
                                  "processes (each process takes some of the batch's streams)")
            self._rows = (rank, world)
            self.data = torch.tensor_split(self._whole, world, dim=0)[rank]
        return list(self.batches(epoch))

    def step(self, start: int) -> Step:
        n = min(self.opts.bptt, self.steps - start)
        x, y = self.data[:, start : start + n], self.data[:, start + 1 : start + 1 + n]
        h, state = self.model.features(x, detach(self.state))
        self.state = state
        loss = -self.model.target_log_probs(h.reshape(-1, h.shape[-1]), y.reshape(-1)).mean()
        return Step(loss, loss.item() * y.numel(), y.numel(), n)

    def evaluate(self) -> dict[str, Any]:
        assert self.dev_ids is not None
        ll, n = stream_log_likelihood(self.model, self.dev_ids, self.opts.eval_batch_size, device=self.device)
        return {"perplexity": perplexity_from(ll, n)}

    def row(self, epoch: Epoch) -> dict:
        row: dict = {"epoch": epoch.epoch, "train_ppl": math.exp(epoch.loss), "lr": epoch.lr,
                     "partial": epoch.partial}
        if epoch.dev:
            row["dev_ppl"] = epoch.dev["perplexity"]
        return {**row, "seconds": round(epoch.seconds, 1), "best": epoch.improved}

    def write_files(self, out: Path) -> None:
        modeldir.write_config(out, KIND, self.config)


def _held_out(train: Sequence[Sequence[str]], dev: Sequence[Sequence[str]] | None, opts: GeneratorOptions,
              say: Callable[[str], None]) -> tuple[Sequence[Sequence[str]], Sequence[Sequence[str]] | None]:
    """Without dev text: the last ``dev_fraction`` of the training sentences."""
    if dev is not None or opts.dev_fraction <= 0:
        return train, dev
    n_dev = int(len(train) * opts.dev_fraction)
    if n_dev < 1 or n_dev >= len(train):
        raise TaggerError(f"--dev-fraction {opts.dev_fraction}: too few sentences ({len(train)}) to hold some out")
    say(f"holding out the last {n_dev} training sentences for model selection")
    return train[: len(train) - n_dev], train[len(train) - n_dev :]


def initial_vectors(vocab: LMVocab, train: Sequence[Sequence[str]], opts: GeneratorOptions,
                    say: Callable[[str], None]) -> np.ndarray | None:
    """Pretrained input vectors for the vocabulary (``<unk>``, ``<eos>`` random), or None."""
    if opts.embeddings == "none":
        return None
    vectors = load_vectors(opts.embeddings, train, dim=opts.embedding_dim, seed=opts.seed)
    if vectors is None:
        return None
    words = list(vocab.itos[2:])
    table = build_word_table([words], vectors=vectors, lowercase=False, digits=False, extend_vocab=False,
                             dim=vectors.dim, seed=opts.seed)
    rows = [table.words.stoi[w] for w in words]  # table order is its own (by count)
    rng = np.random.default_rng(opts.seed)
    specials = rng.uniform(-0.1, 0.1, (2, vectors.dim)).astype(np.float32)  # <unk>, <eos>
    say(f"initial vectors from {opts.embeddings}: {table.info.get('vocab_found', 0)} of {len(words)} words")
    return np.concatenate([specials, table.matrix[rows]], axis=0)


def train_generator(
    train: Sequence[Sequence[str]],
    dev: Sequence[Sequence[str]] | None,
    opts: GeneratorOptions | None,
    *,
    out: str | Path | None = None,
    given: Mapping[str, Any] | None = None,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    data_info: dict | None = None,
) -> tuple[Generator, dict]:
    """Train the LSTM LM; keeps the weights of the best dev perplexity (else the last epoch).

    With ``out`` the model directory is written as training goes (checkpointed; ``resume``
    continues a killed run, with the rule of :func:`tagger.commands.train.train` for ``given``).
    """
    say = distributed.main_log(log) or (lambda m: None)
    run = run_dir(out, "generate", resume=resume, force=force, log=say)
    opts = run_options(run, GeneratorOptions, opts, given)
    train, dev = _held_out(train, dev, opts, say)
    vocab = LMVocab.build(train, opts.min_count, opts.max_vocab or None, opts.lowercase, opts.digits)
    train_ids = stream(vocab.encode(s) for s in train)
    unk = sum(1 for i in train_ids if i == UNK_ID)
    say(f"vocabulary: {len(vocab)} ids (min count {opts.min_count}); train tokens {len(train_ids) - 1:,}, "
        f"<unk> {unk / max(1, len(train_ids) - 1):.2%}")
    device = setup(opts.seed, opts.device)
    matrix = initial_vectors(vocab, train, opts, say)
    cutoffs = default_cutoffs(len(vocab)) if opts.adaptive_softmax else []
    mc = LMConfig(vocab_size=len(vocab), embed_dim=opts.embedding_dim if matrix is None else matrix.shape[1],
                  hidden=opts.hidden, layers=opts.layers, dropout=opts.dropout, tie=opts.tie and not cutoffs,
                  cutoffs=cutoffs)
    model = LSTMLanguageModel(mc)
    if matrix is not None:
        with torch.no_grad():
            model.embed.weight.copy_(torch.as_tensor(matrix))
    model.to(device)
    config = {"model": mc.to_json(), "vocab": vocab.to_json(), "data": data_info or {},
              "training": {"options": asdict(opts), "train_tokens": len(train_ids) - 1}}
    dev_ids = stream(vocab.encode(s) for s in dev) if dev else None
    task = LMTask(model, train_ids, dev_ids, opts, device, config)
    if run is not None:
        run.check_saved(KIND, "vocab", config["vocab"], "training data")
        run.create()
    trainer = Trainer(task, opts.recipe(), run, log=say, progress=progress, threads=opts.threads)
    trainer.fit()
    trainer.restore_best()
    summary = {**trainer.summary(), "vocab_size": len(vocab), "train_tokens": len(train_ids) - 1}
    config["training"].update(best_epoch=summary["best_epoch"], best_dev_ppl=summary["best_dev"],
                              history=summary["history"], minutes=summary["minutes"])
    if run is not None:
        run.write_config(KIND, config)
        run.write_summary(summary)
    return Generator(model, vocab, config), summary


# --------------------------------------------------------------------------- baseline


def trigram_baseline(vocab: LMVocab, train: Sequence[Sequence[str]], test: Sequence[Sequence[str]]) -> dict:
    """Interpolated Kneser-Ney trigram on the same vocabulary and ``<unk>`` mapping."""
    from tagger.kneser_ney import KneserNeyTrigram

    kn = KneserNeyTrigram(len(vocab), bos=EOS_ID, eos=EOS_ID).fit(vocab.encode(s) for s in train)
    ll, n = kn.log_likelihood(vocab.encode(s) for s in test)
    return {"perplexity": perplexity_from(ll, n), "tokens": n, "discounts": [kn.D1, kn.D2, kn.D3]}
