"""The numpy CRF decoding of the ONNX runtime (tagger.onnx.decode) against tagger.nn.crf and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tagger import schemes
from tagger.nn.crf import CRF
from tagger.onnx import decode
from tagger.spans import SpanReader as TorchSpanReader


def random_crf(rng: np.random.Generator, t: int, constrained: bool) -> tuple[CRF, decode.Potentials]:
    crf = CRF(t)
    with torch.no_grad():
        crf.transitions.copy_(torch.from_numpy(rng.normal(size=(t, t)).astype(np.float32)))
        crf.start_transitions.copy_(torch.from_numpy(rng.normal(size=t).astype(np.float32)))
        crf.end_transitions.copy_(torch.from_numpy(rng.normal(size=t).astype(np.float32)))
    if constrained:
        sa, ta, ea = rng.random(t) > 0.3, rng.random((t, t)) > 0.3, rng.random(t) > 0.3
        sa[0] = ta[0, 0] = ea[0] = True  # at least one allowed path
        crf.set_constraints(sa, ta, ea)
    pot = decode.Potentials(crf.start_transitions.detach().numpy(), crf.transitions.detach().numpy(),
                            crf.end_transitions.detach().numpy(), crf.start_allowed.numpy(),
                            crf.trans_allowed.numpy(), crf.end_allowed.numpy())
    return crf, pot


def random_batch(rng, b: int, n: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    em = (rng.normal(size=(b, n, t)) * 2).astype(np.float32)
    lens = rng.integers(1, n + 1, size=b)
    lens[0] = n
    return em, lens


def torch_mask(lens, n):
    return torch.arange(n)[None, :] < torch.as_tensor(lens)[:, None]


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_against_torch_crf(seed, constrained):
    rng = np.random.default_rng(seed)
    t, b, n = int(rng.integers(1, 7)), int(rng.integers(1, 9)), int(rng.integers(1, 12))
    crf, pot = random_crf(rng, t, constrained)
    em, lens = random_batch(rng, b, n, t)
    mask = torch_mask(lens, n)
    ref_paths, ref_scores = crf.decode(torch.from_numpy(em), mask)
    paths, scores = decode.viterbi(em, lens, pot)
    assert paths.tolist() == ref_paths.tolist()
    np.testing.assert_allclose(scores, ref_scores.numpy(), rtol=1e-6, atol=1e-4)

    ref_marg = crf.marginals(torch.from_numpy(em).double(), mask).numpy()
    np.testing.assert_allclose(decode.marginals(em, lens, pot), ref_marg, atol=1e-9)

    # span probabilities of the best paths' spans, and of random segments
    starts = [int(rng.integers(0, n_)) for n_ in lens]
    ends = [int(rng.integers(s + 1, n_ + 1)) for s, n_ in zip(starts, lens)]
    width = max(e - s for s, e in zip(starts, ends))
    tags = rng.integers(0, t, size=(b, width))
    ref = crf.span_log_prob(torch.from_numpy(em).double(), mask, torch.arange(b), torch.tensor(starts),
                            torch.tensor(ends), torch.from_numpy(tags)).detach().numpy()
    got = decode.span_log_prob(em, decode.forward_backward(em, lens, pot), pot, np.arange(b), np.array(starts),
                               np.array(ends), tags)
    np.testing.assert_allclose(np.exp(got), np.exp(ref), atol=1e-9)

    k = 4
    ref_p, ref_s = crf.nbest(torch.from_numpy(em).double(), mask, k, normalize=True)
    log_z = decode.forward_backward(em, lens, pot, betas=False)[2]
    got_p, got_s = decode.nbest(em.astype(np.float64), lens, pot, k, log_z=log_z)
    np.testing.assert_allclose(np.exp(got_s), np.exp(ref_s.detach().numpy()), atol=1e-9)
    assert got_p.tolist() == ref_p.tolist()


def brute(em, n, pot):
    """Every path of one sentence with its constrained score."""
    start, trans, end = pot.constrained(np.float64)
    t = em.shape[1]
    out = {}
    for y in itertools.product(range(t), repeat=n):
        s = start[y[0]] + end[y[-1]] + sum(float(em[i, y[i]]) for i in range(n))
        s += sum(trans[y[i - 1], y[i]] for i in range(1, n))
        out[y] = s
    return out


@pytest.mark.parametrize("seed", range(8))
def test_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    t, b, n = int(rng.integers(1, 4)), 3, int(rng.integers(1, 5))
    _, pot = random_crf(rng, t, constrained=bool(seed % 2))
    em, lens = random_batch(rng, b, n, t)
    paths, _ = decode.viterbi(em.astype(np.float64), lens, pot)
    marg = decode.marginals(em, lens, pot)
    fb = decode.forward_backward(em, lens, pot)
    for s in range(b):
        scores = brute(em[s].astype(np.float64), int(lens[s]), pot)
        ys = list(scores)
        vals = np.array([scores[y] for y in ys])
        assert tuple(paths[s, : lens[s]]) == ys[int(vals.argmax())]
        probs = np.exp(vals - np.logaddexp.reduce(vals))
        np.testing.assert_allclose(fb[2][s], np.logaddexp.reduce(vals), rtol=1e-10)
        for i in range(lens[s]):
            for j in range(t):
                want = sum(p for y, p in zip(ys, probs) if y[i] == j)
                assert marg[s, i, j] == pytest.approx(want, abs=1e-9)
        # a span: positions 0..len-1 carrying the best path
        lp = decode.span_log_prob(em, fb, pot, np.array([s]), np.array([0]), np.array([lens[s]]),
                                  paths[s : s + 1, : lens[s]])
        assert np.exp(lp[0]) == pytest.approx(probs.max(), abs=1e-9)
        kp, ks = decode.nbest(em.astype(np.float64)[s : s + 1], lens[s : s + 1], pot, 3, log_z=fb[2][s : s + 1])
        order = np.sort(probs)[::-1][:3]
        np.testing.assert_allclose(np.exp(ks[0][: len(order)]), order, atol=1e-9)


def test_no_allowed_path_falls_back_to_log_space():
    """Every path uses a disallowed transition: the rescaled pass underflows, the log-space one answers."""
    t = 2
    pot = decode.Potentials(np.zeros(t, np.float32), np.zeros((t, t), np.float32), np.zeros(t, np.float32),
                            np.array([True, False]), np.array([[False, True], [True, True]]), np.array([True, False]))
    em = np.zeros((1, 3, t), np.float32)  # start 0 and end 0, but 0 -> 0 disallowed: every path is disallowed
    lens = np.array([3])
    a, b, z = decode.forward_backward(em, lens, pot)
    a2, b2, z2 = decode.forward_backward_log(em, lens, pot)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(z, z2)
    np.testing.assert_allclose(np.exp(a + b - z[:, None, None]), np.exp(a2 + b2 - z2[:, None, None]), atol=1e-12)


def test_softmax_and_spans():
    em = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(decode.softmax(em), torch.from_numpy(em).softmax(-1).numpy(), rtol=1e-6)
    itos = ["<pad>", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-ORG"]
    reader, ref = decode.SpanReader(itos), TorchSpanReader(itos)
    rng = np.random.default_rng(1)
    for _ in range(200):
        ids = rng.integers(0, len(itos), size=int(rng.integers(1, 9))).tolist()
        assert reader.spans(ids) == ref.flat(torch.tensor(ids), [len(ids)])[0]
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC"]
    assert reader.spans([itos.index(x) for x in tags]) == schemes.to_spans(tags, "iob2")
