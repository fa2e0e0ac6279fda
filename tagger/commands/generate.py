"""Word-level LSTM language model: ``tagger generate train|sample|evaluate``.

The model reads a token stream (sentences joined by ``<eos>``) and is trained with truncated
back-propagation through time over a batchified stream, carrying the hidden state from one
BPTT window to the next. Rare and unseen words map to ``<unk>``. Sampling feeds the whole seed
text, then continues from the resulting state (no fixed window), greedily (temperature 0) or
by sampling with temperature, top-k and nucleus (top-p) filtering, seeded and reproducible.

Text files hold one tokenised sentence per line; CoNLL/CoNLL-U files are detected and read
through :mod:`tagger.formats.corpus` (token column, one sentence per block).
Model directories use the safe :mod:`tagger.modeldir` format (``config.json`` + safetensors).
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from tagger.modeldir import JsonConfig
from tagger import modeldir
from tagger.formats.corpus import DOCSTART, detect_format, iter_lines, read_corpus
from tagger.errors import InputError, ModelError, TaggerError
from tagger.fsutil import atomic_dir
from tagger.vocab import Vocab, normalize_digits

KIND = "generator"
WEIGHTS = "model.safetensors"
UNK = "<unk>"
EOS = "<eos>"
UNK_ID = 0
EOS_ID = 1
TEXT_FORMATS = ("auto", "text", "conll", "conllu")

# --------------------------------------------------------------------------- reading text


def detect_text_format(path: str | Path, encoding: str = "utf-8") -> str:
    """``conllu``, ``conll`` or ``text`` (one sentence per line).

    CoNLL-U is recognised by :func:`tagger.formats.corpus.detect_format`. A CoNLL column file has a
    ``-DOCSTART-`` line, or blank-line separated blocks of lines that all have the same
    number (2-12) of columns; anything else is plain text.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".conllu" or detect_format(path, encoding) == "conllu":
        return "conllu"
    if suffix in (".conll", ".conll03"):
        return "conll"
    ncols: set[int] = set()
    blank = multi_line_block = False
    block = 0
    for i, (_, text) in enumerate(iter_lines(path, encoding)):
        if i >= 500:
            break
        cols = text.split()
        if not cols:
            blank = blank or block > 0
            block = 0
            continue
        if cols[0] == DOCSTART:
            return "conll"
        ncols.add(len(cols))
        block += 1
        multi_line_block = multi_line_block or block >= 2
    if len(ncols) == 1 and 2 <= next(iter(ncols)) <= 12 and blank and multi_line_block:
        return "conll"
    return "text"


def read_sentences(
    path: str | Path, format: str = "auto", encoding: str = "utf-8", token_column: int = 0
) -> list[list[str]]:
    """Token lists of a text file (one sentence per line, blank lines skipped) or CoNLL file."""
    if format not in TEXT_FORMATS:
        raise TaggerError(f"unknown format {format!r}: choose one of {', '.join(TEXT_FORMATS)}")
    path = Path(path)
    fmt = detect_text_format(path, encoding) if format == "auto" else format
    if fmt == "text":
        out = [text.split() for _, text in iter_lines(path, encoding) if text.strip()]
        if not out:
            raise InputError(path, None, "file is empty" if path.stat().st_size == 0 else "no sentences found")
        return out
    corpus = read_corpus(path, fmt, token_column=token_column, label_column=None, encoding=encoding,
                         require_labels=False)
    return [s.tokens for s in corpus.sentences]


def read_texts(paths: Sequence[str | Path], format: str = "auto", encoding: str = "utf-8",
               token_column: int = 0) -> list[list[str]]:
    out: list[list[str]] = []
    for p in paths:
        out.extend(read_sentences(p, format, encoding, token_column))
    return out


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
              lowercase: bool = False, digits: bool = False) -> "LMVocab":
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


# --------------------------------------------------------------------------- model


@dataclass
class LMConfig(JsonConfig):
    """Architecture hyper-parameters (saved in ``config.json``)."""

    vocab_size: int
    embed_dim: int = 256
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.5
    tie: bool = True  # decoder shares the embedding matrix (through a projection if sizes differ)
    cutoffs: list[int] = field(default_factory=list)  # adaptive softmax clusters ([] = full softmax)

    @property
    def adaptive(self) -> bool:
        return bool(self.cutoffs)

    @property
    def projection(self) -> bool:
        return self.tie and not self.adaptive and self.hidden != self.embed_dim



def default_cutoffs(vocab_size: int, cutoffs: Sequence[int] = (2000, 6000)) -> list[int]:
    """Adaptive-softmax cluster bounds that fit the vocabulary ([] when it is small)."""
    out = [c for c in cutoffs if 0 < c < vocab_size - 1]
    return out if vocab_size > 4000 else []


State = tuple[Tensor, Tensor]


class LSTMLanguageModel(nn.Module):
    """Embedding → dropout → LSTM → dropout → softmax over the vocabulary.

    The output layer is a full softmax tied to the input embeddings (through a projection
    when the sizes differ), untied, or an adaptive softmax (Grave et al. 2017), which is
    several times faster for large vocabularies and still an exact distribution.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.drop = nn.Dropout(c.dropout)
        self.lstm = nn.LSTM(c.embed_dim, c.hidden, num_layers=c.layers, batch_first=True,
                            dropout=c.dropout if c.layers > 1 else 0.0)
        self.asm = None
        self.proj = None
        self.decoder = None
        self.bias = None
        if c.adaptive:
            self.asm = nn.AdaptiveLogSoftmaxWithLoss(c.hidden, c.vocab_size, list(c.cutoffs), div_value=4.0)
        elif c.tie:
            # logits = h @ embed.weight.T + bias (no second copy of the matrix to save).
            self.proj = nn.Linear(c.hidden, c.embed_dim) if c.projection else None
            self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        else:
            self.decoder = nn.Linear(c.hidden, c.vocab_size)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def features(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Output states ``(batch, seq_len, hidden)`` (after dropout) and the final LSTM state."""
        h, state = self.lstm(self.drop(self.embed(x)), state)
        return self.drop(h), state

    def log_probs(self, h: Tensor) -> Tensor:
        """Log-probabilities over the vocabulary, ``(..., vocab)``."""
        shape = h.shape[:-1]
        h = h.reshape(-1, h.shape[-1])
        if self.asm is not None:
            out = self.asm.log_prob(h)
        elif self.decoder is not None:
            out = torch.log_softmax(self.decoder(h), dim=-1)
        else:
            hp = self.proj(h) if self.proj is not None else h
            out = torch.log_softmax(nn.functional.linear(hp, self.embed.weight, self.bias), dim=-1)
        return out.view(*shape, -1)

    def target_log_probs(self, h: Tensor, targets: Tensor) -> Tensor:
        """Log-probability of each target, ``h (n, hidden)``, ``targets (n,)`` → ``(n,)``."""
        if self.asm is not None:
            return self.asm(h, targets).output
        return self.log_probs(h).gather(1, targets.unsqueeze(1)).squeeze(1)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Log-probabilities ``(batch, seq_len, vocab)`` and the final LSTM state."""
        h, state = self.features(x, state)
        return self.log_probs(h), state


def detach(state: State | None) -> State | None:
    return None if state is None else (state[0].detach(), state[1].detach())


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def stream_log_likelihood(model: LSTMLanguageModel, ids: Sequence[int], batch_size: int = 1, bptt: int = 70,
                          device: str = "cpu") -> tuple[float, int]:
    """Total natural-log probability of ``ids[1:]`` given all preceding tokens, and its count.

    With ``batch_size`` 1 every token sees the whole preceding stream; larger batches split the
    stream into that many contiguous parts (each part starts from a zero state), which is
    faster and changes the figure only at the few part boundaries.
    """
    model.eval()
    n = len(ids) - 1
    if n <= 0:
        return 0.0, 0
    b = max(1, min(batch_size, n))
    length = math.ceil(n / b)
    inputs = torch.zeros(b * length, dtype=torch.long)
    targets = torch.full((b * length,), -1, dtype=torch.long)
    t = torch.as_tensor(ids, dtype=torch.long)
    inputs[:n] = t[:-1]
    targets[:n] = t[1:]
    inputs = inputs.view(b, length).to(device)
    targets = targets.view(b, length).to(device)
    state = None
    total = 0.0
    for s in range(0, length, bptt):
        h, state = model.features(inputs[:, s : s + bptt], state)
        tgt = targets[:, s : s + bptt].reshape(-1)
        keep = tgt >= 0
        h = h.reshape(-1, h.shape[-1])[keep]
        total += model.target_log_probs(h, tgt[keep]).double().sum().item()
    return total, n


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
        unknown = [t for t, i in zip(tokens, ids) if i == UNK_ID]
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
    def load(cls, path: str | Path) -> "Generator":
        path = Path(path)
        limits = {"vocab_size": (2, 5_000_000), "embed_dim": (1, 4096), "hidden": (1, 8192), "layers": (1, 8)}
        cfg, mc, where = modeldir.read_model_section(path, KIND, LMConfig, limits)
        if not isinstance(mc.dropout, (int, float)) or not 0 <= mc.dropout < 1 or not isinstance(mc.tie, bool):
            raise ModelError(f"{where}: bad dropout or tie value")
        cut = mc.cutoffs
        if not isinstance(cut, list) or len(cut) > 8 or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in cut
        ) or cut != sorted(set(cut)) or (cut and not (0 < cut[0] and cut[-1] < mc.vocab_size - 1)):
            raise ModelError(f"{where}: bad adaptive softmax cutoffs {cut!r}")
        v = cfg.get("vocab")
        if not isinstance(v, dict) or not isinstance(v.get("itos"), list) or not all(isinstance(x, str) for x in v["itos"]):
            raise ModelError(f"{where}: vocab.itos must be a list of strings")
        if len(v["itos"]) != mc.vocab_size or v["itos"][:2] != [UNK, EOS] or len(set(v["itos"])) != len(v["itos"]):
            raise ModelError(f"{where}: vocabulary disagrees with the model section")
        model = modeldir.build_checked(lambda: LSTMLanguageModel(mc), path / WEIGHTS)  # headers checked first
        modeldir.load_state(model, path / WEIGHTS)
        model.eval()
        vocab = LMVocab(v["itos"][2:], lowercase=bool(v.get("lowercase", False)), digits=bool(v.get("digits", False)))
        return cls(model, vocab, cfg)


# --------------------------------------------------------------------------- training


@dataclass
class GeneratorOptions:
    """Vocabulary, architecture and training options (defaults: the CoNLL-2003 benchmark recipe)."""

    min_count: int = 2
    max_vocab: int = 0  # 0 = no limit
    lowercase: bool = False
    digits: bool = False
    embeddings: str = "glove-6b-50d"  # none | glove-6b-50d | word2vec | PATH: initial input vectors
    embedding_dim: int = 100  # for --embeddings none/word2vec
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.5
    tie: bool = True  # (full softmax only)
    adaptive_softmax: bool = False  # adaptive softmax (untied; for vocabularies over 4000 words)
    bptt: int = 35
    batch_size: int = 20
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 0.002
    lr_decay: float = 0.25  # multiply the lr by this after an epoch without dev improvement
    clip: float = 0.5
    max_minutes: float = 0.0  # 0 = no limit
    dev_fraction: float = 0.0  # without dev text: hold out this share of the training sentences (the end)
    seed: int = 1
    device: str = "auto"
    threads: int = 0
    eval_batch_size: int = 8

    def validate(self) -> None:
        checks = [
            (self.min_count >= 1, "--min-count must be at least 1"),
            (self.max_vocab >= 0, "--max-vocab must be >= 0"),
            (self.embedding_dim >= 1 and self.hidden >= 1 and self.layers >= 1, "sizes must be positive"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.bptt >= 1 and self.batch_size >= 1, "--bptt and --batch-size must be positive"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.optimizer in ("adam", "adamw", "sgd"), "--optimizer must be adam, adamw or sgd"),
            (self.lr > 0, "--lr must be positive"),
            (0 < self.lr_decay <= 1, "--lr-decay must be in (0, 1]"),
            (self.max_minutes >= 0, "--max-minutes must be >= 0"),
            (0 <= self.dev_fraction < 1, "--dev-fraction must be in [0, 1)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TaggerError(msg)


def batchify(ids: Sequence[int], batch_size: int) -> Tensor:
    """The stream cut into ``batch_size`` contiguous rows ``(batch, steps)`` (the tail is dropped)."""
    steps = len(ids) // batch_size
    if steps < 2:
        raise TaggerError(f"training text too short: {len(ids)} tokens for --batch-size {batch_size}")
    return torch.as_tensor(ids[: steps * batch_size], dtype=torch.long).view(batch_size, steps)


def train_generator(
    train: Sequence[Sequence[str]],
    dev: Sequence[Sequence[str]] | None,
    opts: GeneratorOptions,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    data_info: dict | None = None,
) -> tuple[Generator, dict]:
    """Train the LSTM LM; keeps the weights of the best dev perplexity (else the last epoch)."""
    from tagger.commands.classify import make_optimizer
    from tagger.commands.train import resolve_device

    say = log or (lambda m: None)
    opts.validate()
    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    t_start = time.perf_counter()
    torch.manual_seed(opts.seed)
    if dev is None and opts.dev_fraction > 0:
        n_dev = int(len(train) * opts.dev_fraction)
        if n_dev < 1 or n_dev >= len(train):
            raise TaggerError(f"--dev-fraction {opts.dev_fraction}: too few sentences ({len(train)}) to hold some out")
        train, dev = train[: len(train) - n_dev], train[len(train) - n_dev :]
        say(f"holding out the last {n_dev} training sentences for model selection")
    vocab = LMVocab.build(train, opts.min_count, opts.max_vocab or None, opts.lowercase, opts.digits)
    train_ids = stream(vocab.encode(s) for s in train)
    unk = sum(1 for i in train_ids if i == UNK_ID)
    say(f"vocabulary: {len(vocab)} ids (min count {opts.min_count}); train tokens {len(train_ids) - 1:,}, "
        f"<unk> {unk / max(1, len(train_ids) - 1):.2%}")

    embed_dim = opts.embedding_dim
    matrix = None
    if opts.embeddings != "none":
        from tagger.commands.classify import build_word_table
        from tagger.embeddings import load_vectors

        vectors = load_vectors(opts.embeddings, train, dim=opts.embedding_dim, seed=opts.seed)
        if vectors is not None:
            embed_dim = vectors.dim
            words = list(vocab.itos[2:])
            table = build_word_table([words], vectors=vectors, lowercase=False, digits=False, extend_vocab=False,
                                     dim=embed_dim, seed=opts.seed)
            rows = [table.words.stoi[w] for w in words]  # table order is its own (by count)
            rng = np.random.default_rng(opts.seed)
            specials = rng.uniform(-0.1, 0.1, (2, embed_dim)).astype(np.float32)  # <unk>, <eos>
            matrix = np.concatenate([specials, table.matrix[rows]], axis=0)
            say(f"initial vectors from {opts.embeddings}: {table.info.get('vocab_found', 0)} of {len(words)} words")
    cutoffs = default_cutoffs(len(vocab)) if opts.adaptive_softmax else []
    mc = LMConfig(vocab_size=len(vocab), embed_dim=embed_dim, hidden=opts.hidden, layers=opts.layers,
                  dropout=opts.dropout, tie=opts.tie and not cutoffs, cutoffs=cutoffs)
    model = LSTMLanguageModel(mc)
    if matrix is not None:
        with torch.no_grad():
            model.embed.weight.copy_(torch.as_tensor(matrix))
    model.to(device)
    optimizer = make_optimizer(model, opts.optimizer, opts.lr, momentum=0.0)
    data = batchify(train_ids, opts.batch_size).to(device)
    dev_ids = stream(vocab.encode(s) for s in dev) if dev else None

    best, best_epoch, lr = math.inf, 0, opts.lr
    best_state = None
    history: list[dict] = []
    stop = None
    steps = data.shape[1] - 1
    for epoch in range(1, opts.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        state = None
        total, count = 0.0, 0
        bar = _progress(steps, f"epoch {epoch}/{opts.epochs}", progress)
        for s in range(0, steps, opts.bptt):
            n = min(opts.bptt, steps - s)
            x, y = data[:, s : s + n], data[:, s + 1 : s + 1 + n]
            state = detach(state)
            optimizer.zero_grad(set_to_none=True)
            h, state = model.features(x, state)
            loss = -model.target_log_probs(h.reshape(-1, h.shape[-1]), y.reshape(-1)).mean()
            loss.backward()
            if opts.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
            optimizer.step()
            total += loss.item() * y.numel()
            count += y.numel()
            if bar is not None:
                bar.update(n)
                bar.set_postfix(ppl=f"{math.exp(total / count):.1f}", refresh=False)
            if opts.max_minutes and time.perf_counter() - t_start >= opts.max_minutes * 60:
                stop = f"time limit of {opts.max_minutes:g} minutes reached"
                break
        if bar is not None:
            bar.close()
        row: dict = {"epoch": epoch, "train_ppl": math.exp(total / max(1, count)), "lr": lr,
                     "partial": stop is not None}
        if dev_ids is not None:
            ll, nd = stream_log_likelihood(model, dev_ids, opts.eval_batch_size, device=device)
            row["dev_ppl"] = perplexity_from(ll, nd)
            score = row["dev_ppl"]
        else:
            score = -epoch  # no dev: keep the last epoch
        row["seconds"] = round(time.perf_counter() - t0, 1)
        improved = score < best
        row["best"] = improved
        history.append(row)
        if improved:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif dev_ids is not None and opts.lr_decay < 1:
            lr *= opts.lr_decay
            for g in optimizer.param_groups:
                g["lr"] = lr
        dev_txt = f" dev ppl {row['dev_ppl']:.2f}" if dev_ids is not None else ""
        say(f"epoch {epoch}: train ppl {row['train_ppl']:.2f}{dev_txt} lr {row['lr']:.5f} "
            f"{row['seconds']:.1f}s{' *' if improved else ''}")
        if stop:
            say(f"stopping: {stop}")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.to("cpu")
    config = {
        "model": mc.to_json(),
        "vocab": vocab.to_json(),
        "data": data_info or {},
        "training": {"options": asdict(opts), "train_tokens": len(train_ids) - 1, "best_epoch": best_epoch,
                     "best_dev_ppl": best if dev_ids is not None else None, "history": history,
                     "minutes": round((time.perf_counter() - t_start) / 60, 2)},
    }
    summary = {"best_epoch": best_epoch, "best_dev_ppl": best if dev_ids is not None else None,
               "epochs": len(history), "minutes": round((time.perf_counter() - t_start) / 60, 2),
               "vocab_size": len(vocab), "train_tokens": len(train_ids) - 1, "history": history}
    return Generator(model, vocab, config), summary


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, disable=None)


# --------------------------------------------------------------------------- baseline


def trigram_baseline(vocab: LMVocab, train: Sequence[Sequence[str]], test: Sequence[Sequence[str]]) -> dict:
    """Interpolated Kneser-Ney trigram on the same vocabulary and ``<unk>`` mapping."""
    from tagger.kneser_ney import KneserNeyTrigram

    kn = KneserNeyTrigram(len(vocab), bos=EOS_ID, eos=EOS_ID).fit(vocab.encode(s) for s in train)
    ll, n = kn.log_likelihood(vocab.encode(s) for s in test)
    return {"perplexity": perplexity_from(ll, n), "tokens": n, "discounts": [kn.D1, kn.D2, kn.D3]}
