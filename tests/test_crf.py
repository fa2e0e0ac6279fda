"""Tests for tagger.nn.crf against brute-force enumeration of every tag sequence."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import pytest
import torch

from tagger.nn.crf import CRF, PENALTY

SEEDS = range(10)
KINDS = [None, "random", "iob2", "iob2-2", "bioes"]
LABELS = {
    "iob2": ["O", "B-X", "I-X"],
    "iob2-2": ["O", "B-X", "I-X", "B-Y", "I-Y"],
    "bioes": ["O", "B-X", "I-X", "E-X", "S-X"],
}
ATOL = 1e-9


# ---------------------------------------------------------------------------- helpers


def scheme_constraints(labels: list[str], scheme: str) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """Allowed start tags, transitions [from][to] and end tags for an IOB2 or BIOES label set."""

    def split(label: str) -> tuple[str, str | None]:
        return ("O", None) if label == "O" else (label[0], label[2:])

    parsed = [split(lab) for lab in labels]
    if scheme == "iob2":
        start = [p != "I" for p, _ in parsed]
        end = [True] * len(labels)
        trans = [
            [not (pb == "I" and not (pa in "BI" and ta == tb)) for pb, tb in parsed] for pa, ta in parsed
        ]
    else:  # bioes
        start = [p in ("O", "B", "S") for p, _ in parsed]
        end = [p in ("O", "E", "S") for p, _ in parsed]
        trans = [
            [(pb in "IE" and tb == ta) if pa in "BI" else pb in ("O", "B", "S") for pb, tb in parsed]
            for pa, ta in parsed
        ]
    return start, trans, end


@dataclass
class Case:
    crf: CRF
    emissions: torch.Tensor  # (batch, seq_len, T) float64
    mask: torch.Tensor  # (batch, seq_len) bool
    lengths: list[int]
    constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None

    @property
    def num_tags(self) -> int:
        return self.crf.num_tags

    def allowed(self, path: list[int]) -> bool:
        if self.constraints is None:
            return True
        s, tr, e = self.constraints
        return bool(s[path[0]]) and bool(e[path[-1]]) and all(bool(tr[a, b]) for a, b in itertools.pairwise(path))


def make_case(seed: int, kind: str | None, batch: int = 3) -> Case:
    """A tiny random float64 problem: 2-5 tags, seq_len 1-5, random lengths and constraints."""
    g = torch.Generator().manual_seed(seed)

    def rint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    num_tags = len(LABELS[kind]) if kind in LABELS else rint(2, 5)
    seq_len = seed % 5 + 1  # every length 1-5 occurs for each kind
    crf = CRF(num_tags).double()
    with torch.no_grad():
        crf.transitions.copy_(torch.randn(num_tags, num_tags, generator=g, dtype=torch.float64))
        crf.start_transitions.copy_(torch.randn(num_tags, generator=g, dtype=torch.float64))
        crf.end_transitions.copy_(torch.randn(num_tags, generator=g, dtype=torch.float64))
    emissions = torch.randn(batch, seq_len, num_tags, generator=g, dtype=torch.float64)
    lengths = [seq_len] + [rint(1, seq_len) for _ in range(batch - 1)]
    lengths = [lengths[i] for i in torch.randperm(batch, generator=g).tolist()]
    mask = torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]

    constraints = None
    if kind == "random":
        s = torch.rand(num_tags, generator=g) < 0.6
        tr = torch.rand(num_tags, num_tags, generator=g) < 0.6
        e = torch.rand(num_tags, generator=g) < 0.6
        # Keep at least one allowed path for every length (through a random tag).
        j = rint(0, num_tags - 1)
        s[j] = e[j] = tr[j, j] = True
        constraints = (s, tr, e)
    elif kind is not None:
        s, tr, e = scheme_constraints(LABELS[kind], "bioes" if kind == "bioes" else "iob2")
        constraints = (torch.tensor(s), torch.tensor(tr), torch.tensor(e))
    if constraints is not None:
        crf.set_constraints(*constraints)
    return Case(crf, emissions, mask, lengths, constraints)


def brute_paths(case: Case, b: int, constrained: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Every tag sequence of sentence b (only allowed ones if constrained) and its unconstrained score."""
    n, num_tags = case.lengths[b], case.num_tags
    crf = case.crf
    paths = torch.tensor(list(itertools.product(range(num_tags), repeat=n)), dtype=torch.long)  # (P, n)
    em = case.emissions[b, :n]  # (n, T)
    with torch.no_grad():
        scores = (
            crf.start_transitions[paths[:, 0]]
            + em[torch.arange(n), paths].sum(1)
            + crf.transitions[paths[:, :-1], paths[:, 1:]].sum(1)
            + crf.end_transitions[paths[:, -1]]
        )
    if constrained and case.constraints is not None:
        keep = torch.tensor([case.allowed(p) for p in paths.tolist()], dtype=torch.bool)
        paths, scores = paths[keep], scores[keep]
    return paths, scores


@functools.cache
def case_and_brute(seed: int, kind: str | None) -> tuple[Case, list, list]:
    case = make_case(seed, kind)
    full = [brute_paths(case, b, constrained=False) for b in range(len(case.lengths))]
    allowed = [brute_paths(case, b, constrained=True) for b in range(len(case.lengths))]
    return case, full, allowed


def loop_score(case: Case, b: int, path: list[int]) -> float:
    """Score of one path by an explicit loop (independent of the vectorised brute force)."""
    crf = case.crf
    em = case.emissions[b].tolist()
    tr = crf.transitions.tolist()
    total = crf.start_transitions[path[0]].item() + crf.end_transitions[path[-1]].item()
    for t, y in enumerate(path):
        total += em[t][y]
        if t:
            total += tr[path[t - 1]][y]
    return total


def random_tags(case: Case, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randint(case.num_tags, case.mask.shape, generator=g)


grid = pytest.mark.parametrize("seed,kind", [(s, k) for k in KINDS for s in SEEDS])


# ---------------------------------------------------------------------------- brute-force checks


@grid
def test_log_partition(seed, kind):
    case, full, allowed = case_and_brute(seed, kind)
    crf = case.crf
    got_free = crf.log_partition(case.emissions, case.mask, constrained=False)
    got_con = crf.log_partition(case.emissions, case.mask, constrained=True)
    want_free = torch.stack([torch.logsumexp(s, 0) for _, s in full])
    want_con = torch.stack([torch.logsumexp(s, 0) for _, s in allowed])
    torch.testing.assert_close(got_free, want_free, rtol=0, atol=ATOL)
    torch.testing.assert_close(got_con, want_con, rtol=0, atol=ATOL)
    # constrained=None follows the in-training flag (off by default).
    torch.testing.assert_close(crf.log_partition(case.emissions, case.mask), got_free)


@grid
def test_score_and_nll(seed, kind):
    case, full, _ = case_and_brute(seed, kind)
    crf = case.crf
    tags = random_tags(case, seed)
    got = crf.score(case.emissions, tags, case.mask)
    want = torch.tensor([loop_score(case, b, tags[b, :n].tolist()) for b, n in enumerate(case.lengths)],
                        dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=ATOL)
    # The vectorised enumeration agrees with the loop on the same path.
    for b, n in enumerate(case.lengths):
        paths, scores = full[b]
        idx = (paths == tags[b, :n]).all(1).nonzero().item()
        assert abs(scores[idx].item() - want[b].item()) < ATOL
    log_z = torch.stack([torch.logsumexp(s, 0) for _, s in full])
    nll = crf(case.emissions, tags, case.mask, reduction="none")
    torch.testing.assert_close(nll, log_z - want, rtol=0, atol=ATOL)
    assert (nll > 0).all()


@grid
def test_viterbi(seed, kind):
    case, _, allowed = case_and_brute(seed, kind)
    paths, scores = case.crf.decode(case.emissions, case.mask)
    assert paths.dtype == torch.long and paths.shape == case.mask.shape
    for b, n in enumerate(case.lengths):
        bp, bs = allowed[b]
        order = bs.argsort(descending=True)
        assert abs(scores[b].item() - bs[order[0]].item()) < ATOL
        if len(bs) == 1 or bs[order[0]] - bs[order[1]] > 1e-8:
            assert paths[b, :n].tolist() == bp[order[0]].tolist()
        assert case.allowed(paths[b, :n].tolist())
        assert abs(loop_score(case, b, paths[b, :n].tolist()) - scores[b].item()) < ATOL
        assert (paths[b, n:] == 0).all()


@grid
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_nbest(seed, kind, k):
    case, _, allowed = case_and_brute(seed, kind)
    paths, scores = case.crf.nbest(case.emissions, case.mask, k)
    batch, seq_len = case.mask.shape
    assert paths.shape == (batch, k, seq_len) and scores.shape == (batch, k)
    for b, n in enumerate(case.lengths):
        bp, bs = allowed[b]
        bs_sorted, order = bs.sort(descending=True)
        want = torch.full((k,), float("-inf"), dtype=torch.float64)
        m = min(k, len(bs))
        want[:m] = bs_sorted[:m]
        torch.testing.assert_close(scores[b], want, rtol=0, atol=ATOL)
        seen = set()
        for r in range(m):
            path = paths[b, r, :n].tolist()
            assert case.allowed(path)
            assert abs(loop_score(case, b, path) - scores[b, r].item()) < ATOL
            seen.add(tuple(path))
            lo_gap = bs_sorted[r - 1] - bs_sorted[r] if r > 0 else float("inf")
            hi_gap = bs_sorted[r] - bs_sorted[r + 1] if r + 1 < len(bs) else float("inf")
            if min(lo_gap, hi_gap) > 1e-8:
                assert path == bp[order[r]].tolist()
        assert len(seen) == m  # distinct paths
        assert (paths[b, :, n:] == 0).all()
        assert (paths[b, m:] == 0).all()
    if k == 1:
        _, best_scores = case.crf.decode(case.emissions, case.mask)
        torch.testing.assert_close(scores[:, 0], best_scores, rtol=0, atol=ATOL)
    # normalize=True: log probabilities under the constrained CRF, same paths.
    npaths, logp = case.crf.nbest(case.emissions, case.mask, k, normalize=True)
    assert torch.equal(npaths, paths)
    for b in range(len(case.lengths)):
        _, bs = allowed[b]
        want = torch.full((k,), float("-inf"), dtype=torch.float64)
        m = min(k, len(bs))
        want[:m] = bs.sort(descending=True).values[:m] - torch.logsumexp(bs, 0)
        torch.testing.assert_close(logp[b], want, rtol=0, atol=ATOL)


@grid
def test_marginals(seed, kind):
    case, _, allowed = case_and_brute(seed, kind)
    got = case.crf.marginals(case.emissions, case.mask)
    assert got.shape == case.emissions.shape
    for b, n in enumerate(case.lengths):
        bp, bs = allowed[b]
        probs = torch.softmax(bs, 0)  # (P,)
        want = torch.zeros(n, case.num_tags, dtype=torch.float64)
        for t in range(n):
            want[t].index_add_(0, bp[:, t], probs)
        torch.testing.assert_close(got[b, :n], want, rtol=0, atol=ATOL)
        assert (got[b, n:] == 0).all()
    torch.testing.assert_close(got.sum(2), case.mask.double(), rtol=0, atol=ATOL)


@grid
def test_span_log_prob(seed, kind):
    case, _, allowed = case_and_brute(seed, kind)
    g = torch.Generator().manual_seed(2000 + seed)
    bi, st, en, segs = [], [], [], []
    for _ in range(8):
        b = int(torch.randint(len(case.lengths), (1,), generator=g))
        n = case.lengths[b]
        s = int(torch.randint(n, (1,), generator=g))
        e = int(torch.randint(s + 1, n + 1, (1,), generator=g))
        if torch.rand(1, generator=g) < 0.5:  # often use a path the model likes
            seg = case.crf.decode(case.emissions, case.mask)[0][b, s:e].tolist()
        else:
            seg = torch.randint(case.num_tags, (e - s,), generator=g).tolist()
        bi.append(b), st.append(s), en.append(e), segs.append(seg)
    width = max(len(x) for x in segs)
    tags = torch.tensor([x + [-1] * (width - len(x)) for x in segs])  # padded with -1
    got = case.crf.span_log_prob(case.emissions, case.mask, torch.tensor(bi), torch.tensor(st),
                                 torch.tensor(en), tags)
    assert got.shape == (len(segs),)
    for i, (b, s, e, seg) in enumerate(zip(bi, st, en, segs, strict=True)):
        bp, bs = allowed[b]
        log_z = torch.logsumexp(bs, 0)
        hit = (bp[:, s:e] == torch.tensor(seg)).all(1)
        if hit.any():
            want = torch.logsumexp(bs[hit], 0) - log_z
            assert abs(got[i].item() - want.item()) < 1e-8, (i, got[i].item(), want.item())
        else:  # only disallowed paths carry this segment
            assert case.constraints is not None and got[i].item() < PENALTY / 2


# ---------------------------------------------------------------------------- other properties


def test_reductions():
    case = make_case(3, None, batch=4)
    tags = random_tags(case, 3)
    crf, em, mask = case.crf, case.emissions, case.mask
    none = crf(em, tags, mask, reduction="none")
    torch.testing.assert_close(none, crf.log_partition(em, mask) - crf.score(em, tags, mask))
    torch.testing.assert_close(crf(em, tags, mask, reduction="sum"), none.sum())
    torch.testing.assert_close(crf(em, tags, mask, reduction="mean"), none.mean())
    torch.testing.assert_close(crf(em, tags, mask), none.mean())
    torch.testing.assert_close(crf(em, tags, mask, reduction="token_mean"), none.sum() / mask.sum())
    with pytest.raises(ValueError):
        crf(em, tags, mask, reduction="avg")


def test_nll_constrained_in_training():
    case, _, allowed = case_and_brute(5, "bioes")
    crf = make_case(5, "bioes").crf  # fresh copy: do not mutate the cached case
    crf.set_constraints(*case.constraints, in_training=True)
    assert bool(crf.constrain_in_training)
    tags, _ = crf.decode(case.emissions, case.mask)  # an allowed gold path
    log_z = torch.stack([torch.logsumexp(s, 0) for _, s in allowed])
    torch.testing.assert_close(crf.log_partition(case.emissions, case.mask), log_z, rtol=0, atol=ATOL)
    nll = crf(case.emissions, tags, case.mask, reduction="none")
    torch.testing.assert_close(nll, log_z - crf.score(case.emissions, tags, case.mask), rtol=0, atol=ATOL)
    crf.set_constraints(*case.constraints, in_training=False)
    assert not bool(crf.constrain_in_training)
    assert (crf(case.emissions, tags, case.mask, reduction="none") > nll).all()


@pytest.mark.parametrize("in_training", [False, True])
def test_gradcheck(in_training):
    case = make_case(7, "iob2-2", batch=3)
    crf = case.crf
    crf.set_constraints(*case.constraints, in_training=in_training)
    tags = random_tags(case, 7)
    em = case.emissions.clone().requires_grad_(True)
    params = {name: p.detach().clone().requires_grad_(True) for name, p in crf.named_parameters()}

    def nll(em, trans, start, end):
        override = {"transitions": trans, "start_transitions": start, "end_transitions": end}
        return torch.func.functional_call(crf, override, (em, tags, case.mask), {"reduction": "sum"})

    inputs = (em, params["transitions"], params["start_transitions"], params["end_transitions"])
    assert torch.autograd.gradcheck(nll, inputs)


def test_gradients_flow():
    crf = CRF(6)
    em = torch.randn(4, 7, 6, requires_grad=True)
    mask = torch.arange(7)[None] < torch.tensor([7, 3, 1, 5])[:, None]
    tags = torch.randint(6, (4, 7))
    crf(em, tags, mask).backward()
    for p in [em, *crf.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert (em.grad[~mask] == 0).all()  # padding gets no gradient


def test_marginals_are_gradient_of_log_z():
    case = make_case(2, "random", batch=3)
    em = case.emissions.clone().requires_grad_(True)
    case.crf.log_partition(em, case.mask, constrained=True).sum().backward()
    torch.testing.assert_close(case.crf.marginals(case.emissions, case.mask), em.grad, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", [None, "bioes"])
def test_padding_invariance(kind):
    """Batched results equal per-sequence results; padding content and extra padding do not matter."""
    case = make_case(11, kind, batch=4)
    g = torch.Generator().manual_seed(11)
    crf, em, mask = case.crf, case.emissions, case.mask
    batch, seq_len, num_tags = em.shape
    tags = random_tags(case, 11)
    # Junk in padded positions, plus two extra all-padding columns.
    junk = torch.where(mask[..., None], em, 100 * torch.randn(em.shape, generator=g, dtype=torch.float64))
    em2 = torch.cat([junk, 100 * torch.randn(batch, 2, num_tags, generator=g, dtype=torch.float64)], 1)
    mask2 = torch.cat([mask, torch.zeros(batch, 2, dtype=torch.bool)], 1)
    tags2 = torch.cat([tags.masked_fill(~mask, -100), torch.full((batch, 2), -100)], 1)  # odd padding ok

    def run(e, m, y):
        k = 3
        seg = torch.tensor([[0]] * e.size(0))
        return {
            "log_z": crf.log_partition(e, m, constrained=True),
            "score": crf.score(e, y, m),
            "nll": crf(e, y, m, reduction="none"),
            "decode": crf.decode(e, m),
            "nbest": crf.nbest(e, m, k),
            "marginals": crf.marginals(e, m),
            "span": crf.span_log_prob(e, m, torch.arange(e.size(0)), torch.zeros(e.size(0)),
                                      torch.ones(e.size(0)), seg),
        }

    ref = run(em, mask, tags)
    pad = run(em2, mask2, tags2)
    for key in ref:
        a, b = ref[key], pad[key]
        if key == "decode":
            assert torch.equal(a[0], b[0][:, :seq_len]) and (b[0][:, seq_len:] == 0).all()
            torch.testing.assert_close(a[1], b[1])
        elif key == "nbest":
            assert torch.equal(a[0], b[0][:, :, :seq_len]) and (b[0][:, :, seq_len:] == 0).all()
            torch.testing.assert_close(a[1], b[1])
        elif key == "marginals":
            torch.testing.assert_close(a, b[:, :seq_len])
            assert (b[:, seq_len:] == 0).all()
        else:
            torch.testing.assert_close(a, b)
    for i, n in enumerate(case.lengths):
        one = run(em[i : i + 1, :n], mask[i : i + 1, :n], tags[i : i + 1, :n])
        torch.testing.assert_close(one["log_z"], ref["log_z"][i : i + 1])
        torch.testing.assert_close(one["nll"], ref["nll"][i : i + 1])
        assert torch.equal(one["decode"][0], ref["decode"][0][i : i + 1, :n])
        assert torch.equal(one["nbest"][0], ref["nbest"][0][i : i + 1, :, :n])
        torch.testing.assert_close(one["nbest"][1], ref["nbest"][1][i : i + 1])
        torch.testing.assert_close(one["marginals"], ref["marginals"][i : i + 1, :n])
        torch.testing.assert_close(one["span"], ref["span"][i : i + 1])


def test_fully_disallowed_uses_finite_penalty():
    case = make_case(4, None, batch=2)
    crf = case.crf
    n = crf.num_tags
    em, mask = case.emissions[:, :1].repeat(1, 2, 1), torch.ones(2, 2, dtype=torch.bool)
    free_paths, free_scores = crf.decode(em, mask)
    crf.set_constraints([True] * n, [[False] * n] * n, [True] * n)  # every length-2 path is penalised once
    paths, scores = crf.decode(em, mask)
    assert torch.isfinite(scores).all()
    torch.testing.assert_close(scores, free_scores + PENALTY)
    assert torch.equal(paths, free_paths)
    assert torch.isfinite(crf.log_partition(em, mask, constrained=True)).all()
    assert torch.isneginf(crf.nbest(em, mask, 2)[1]).all()  # no allowed path at all
    assert torch.isneginf(crf.nbest(em, mask, 2, normalize=True)[1]).all()
    # Every path carries the same penalty, so the posteriors are the unconstrained ones (the
    # probability-space forward-backward gives these rows to the log-space recursions).
    marg = crf.marginals(em, mask)
    seg = (torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([2, 1]), free_paths)
    span = crf.span_log_prob(em, mask, *seg)
    crf.set_constraints([True] * n, [[True] * n] * n, [True] * n)  # allow everything again
    assert not crf.has_constraints
    torch.testing.assert_close(marg, crf.marginals(em, mask), rtol=0, atol=ATOL)
    torch.testing.assert_close(span, crf.span_log_prob(em, mask, *seg), rtol=0, atol=ATOL)


def test_init_and_state_dict():
    crf = CRF(7)
    for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
        assert (p.abs() < 0.1).all()
    assert crf.transitions.shape == (7, 7) and crf.start_transitions.shape == (7,)
    assert not crf.has_constraints
    s, tr, e = scheme_constraints(["O", "B-A", "I-A", "B-B", "I-B", "B-C", "I-C"], "iob2")
    crf.set_constraints(s, tr, e, in_training=True)
    state = crf.state_dict()
    assert {"start_allowed", "trans_allowed", "end_allowed", "constrain_in_training"} <= set(state)
    other = CRF(7)
    other.load_state_dict(state)
    assert other.has_constraints and bool(other.constrain_in_training)
    assert torch.equal(other.trans_allowed, torch.tensor(tr))
    em, mask = torch.randn(2, 6, 7), torch.ones(2, 6, dtype=torch.bool)
    assert torch.equal(crf.decode(em, mask)[0], other.decode(em, mask)[0])
    assert crf.double().trans_allowed.dtype == torch.bool


def test_float32_and_mixed_dtypes():
    crf = CRF(4)  # float32 parameters, float64 emissions: computed in the emissions' dtype
    em = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert crf.log_partition(em, mask).dtype == torch.float64
    assert crf.marginals(em.float(), mask).dtype == torch.float32


def test_unreachable_tag_stays_in_probability_space(monkeypatch):
    """A tag no allowed path uses (``<pad>`` in a real model) must not send rows to the log-space recursions."""
    labels = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    s, tr, e = scheme_constraints(labels, "iob2")
    start = torch.tensor([False] + s)
    trans = torch.zeros(6, 6, dtype=torch.bool)
    trans[1:, 1:] = torch.tensor(tr)
    end = torch.tensor([False] + e)
    g = torch.Generator().manual_seed(21)
    crf = CRF(6).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    crf.set_constraints(start, trans, end)
    lengths = [4, 2, 3]
    em = torch.randn(3, 4, 6, generator=g, dtype=torch.float64)
    mask = torch.arange(4)[None] < torch.tensor(lengths)[:, None]
    case = Case(crf, em, mask, lengths, (start, trans, end))
    allowed = [brute_paths(case, b, constrained=True) for b in range(3)]

    def log_space(*args, **kwargs):
        raise AssertionError("fell back to the log-space recursions")

    monkeypatch.setattr(CRF, "_alphas", staticmethod(log_space))
    marg = crf.marginals(em, mask)
    logp = crf.nbest(em, mask, 2, normalize=True)[1]
    for b, n in enumerate(lengths):
        bp, bs = allowed[b]
        probs = torch.softmax(bs, 0)
        want = torch.zeros(n, 6, dtype=torch.float64)
        for t in range(n):
            want[t].index_add_(0, bp[:, t], probs)
        torch.testing.assert_close(marg[b, :n], want, rtol=0, atol=ATOL)
        torch.testing.assert_close(logp[b], bs.sort(descending=True).values[:2] - torch.logsumexp(bs, 0),
                                   rtol=0, atol=ATOL)
    assert (marg[..., 0] == 0).all()
    pad = crf.span_log_prob(em, mask, torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([[0]]))
    assert pad.item() < PENALTY / 2  # only disallowed paths use <pad>


def test_every_path_disallowed_uses_log_space():
    """No path without a disallowed transition: probability space has nothing left, log space takes over."""
    case = make_case(8, None, batch=3)  # seq_len 4
    crf = case.crf
    n = crf.num_tags
    trans = torch.zeros(n, n, dtype=torch.bool)
    trans[0, 1] = True  # the only allowed transition: length >= 3 paths all use a disallowed one
    crf.set_constraints([True] * n, trans, [True] * n)
    em, mask = case.emissions, case.mask
    marg = crf.marginals(em, mask)
    logp = crf.nbest(em, mask, 2, normalize=True)[1]
    st, en = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    span = crf.span_log_prob(em, mask, torch.arange(3), st, en, torch.zeros(3, 1, dtype=torch.long))
    assert torch.isfinite(marg).all() and torch.isfinite(span).all()
    for b, length in enumerate(case.lengths):
        paths, scores = brute_paths(case, b, constrained=False)
        bad = (~trans[paths[:, :-1], paths[:, 1:]]).sum(1)  # disallowed transitions per path
        scores = scores + PENALTY * bad
        probs = torch.softmax(scores, 0)
        want = torch.zeros(length, n, dtype=torch.float64)
        for t in range(length):
            want[t].index_add_(0, paths[:, t], probs)
        torch.testing.assert_close(marg[b, :length], want, rtol=0, atol=ATOL)
        first = paths[:, 0] == 0
        want_span = torch.logsumexp(scores[first], 0) - torch.logsumexp(scores, 0)
        assert abs(span[b].item() - want_span.item()) < 1e-8
        if length >= 3:
            assert torch.isneginf(logp[b]).all()  # no allowed path to list
        else:
            allowed = bad == 0
            top = scores[allowed].sort(descending=True).values[:2] - torch.logsumexp(scores, 0)
            torch.testing.assert_close(logp[b, : len(top)], top, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", [None, "bioes"])
def test_decoding_probabilities_in_float64(kind):
    """Float32 emissions: marginals, span and n-best probabilities are computed in float64."""
    case = make_case(12, kind, batch=2)
    crf = case.crf
    g = torch.Generator().manual_seed(12)
    seq_len = 300  # long sentences: float32 sums lose ~1e-3 of probability
    em64 = 3 * torch.randn(2, seq_len, crf.num_tags, generator=g, dtype=torch.float64)
    em32 = em64.float()
    mask = torch.arange(seq_len)[None] < torch.tensor([seq_len, 170])[:, None]
    crf32 = make_case(12, kind, batch=2).crf.float()
    # Reference: the float64 CRF on the float32 emissions (the same numbers).
    ref = em32.double()
    torch.testing.assert_close(crf32.marginals(em32, mask).double(), crf.marginals(ref, mask), rtol=0, atol=1e-6)
    paths = crf.decode(ref, mask)[0]
    st, en = torch.tensor([0, 5, 100]), torch.tensor([seq_len, 9, 170])
    bi = torch.tensor([0, 1, 1])
    tags = torch.zeros(3, seq_len, dtype=torch.long)
    for i, (b, s, e) in enumerate(zip(bi.tolist(), st.tolist(), en.tolist(), strict=True)):
        tags[i, : e - s] = paths[b, s:e]
    got = crf32.span_log_prob(em32, mask, bi, st, en, tags).double().exp()
    want = crf.span_log_prob(ref, mask, bi, st, en, tags).exp()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # n-best: the float32 path scores limit the precision; log Z itself is float64.
    got = crf32.nbest(em32, mask, 3, normalize=True)[1].double().exp()
    want = crf.nbest(ref, mask, 3, normalize=True)[1].exp()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_input_validation():
    crf = CRF(3)
    em = torch.randn(2, 4, 3)
    tags = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError):
        crf(em, tags, torch.tensor([[True] * 4, [False, True, True, True]]))  # length 0 / not a prefix
    with pytest.raises(ValueError):
        crf(em, tags, torch.tensor([[True] * 4, [True, False, True, True]]))  # hole
    with pytest.raises(ValueError):
        crf.decode(torch.randn(2, 4, 5), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError):
        crf.set_constraints([True] * 3, [[True] * 2] * 3, [True] * 3)
    with pytest.raises(ValueError):
        crf.nbest(em, torch.ones(2, 4, dtype=torch.bool), 0)
    with pytest.raises(ValueError):  # segment past the sentence end
        crf.span_log_prob(em, torch.tensor([[True] * 4, [True, True, False, False]]),
                          torch.tensor([1]), torch.tensor([1]), torch.tensor([3]), torch.tensor([[0, 0]]))
    assert crf.marginals(em, torch.ones(2, 4, dtype=torch.uint8)).shape == em.shape  # non-bool mask ok


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    case = make_case(6, "bioes", batch=3)
    tags = random_tags(case, 6)
    crf_gpu = make_case(6, "bioes", batch=3).crf.cuda()
    em, mask = case.emissions, case.mask
    emg, maskg, tagsg = em.cuda(), mask.cuda(), tags.cuda()
    torch.testing.assert_close(crf_gpu(emg, tagsg, maskg).cpu(), case.crf(em, tags, mask))
    assert torch.equal(crf_gpu.decode(emg, maskg)[0].cpu(), case.crf.decode(em, mask)[0])
    torch.testing.assert_close(crf_gpu.nbest(emg, maskg, 3)[1].cpu(), case.crf.nbest(em, mask, 3)[1])
    torch.testing.assert_close(crf_gpu.marginals(emg, maskg).cpu(), case.crf.marginals(em, mask))
