"""The character CNN's packed matrix-product form against ``nn.Conv1d`` over padded tokens."""

from __future__ import annotations

import pytest
import torch

from tagger.nn.bilstm_crf import CharCNN


def conv_reference(cnn: CharCNN, chars: torch.Tensor) -> torch.Tensor:
    """The textbook form: ``nn.Conv1d`` over each padded token, max over its characters."""
    c = chars.shape[1]
    x = cnn.embed(chars).transpose(1, 2)  # (tokens, dim, max_chars)
    h = cnn.conv(x)[:, :, :c]  # (tokens, filters, max_chars)
    h = h.masked_fill((chars == 0).unsqueeze(1), float("-inf")).amax(dim=2)  # (tokens, filters)
    return h.masked_fill(torch.isinf(h), 0.0)


def random_chars(lengths: list[int], num_chars: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    chars = torch.zeros(len(lengths), max([1, *lengths]), dtype=torch.long)  # (tokens, max_chars)
    for i, n in enumerate(lengths):
        chars[i, :n] = torch.randint(1, num_chars, (n,), generator=g)
    return chars


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("lengths", [[1], [3, 1, 7, 2], [0, 4, 0, 1, 9], [5, 0], [2, 2, 2]])
def test_matches_conv1d(kernel, lengths):
    torch.manual_seed(kernel)
    cnn = CharCNN(num_chars=20, dim=6, filters=5, kernel=kernel, dropout=0.5).eval()
    chars = random_chars(lengths, 20, seed=len(lengths))
    torch.testing.assert_close(cnn(chars), conv_reference(cnn, chars), rtol=1e-5, atol=1e-5)
    for i, n in enumerate(lengths):  # each token's output depends on its own characters alone
        torch.testing.assert_close(cnn(chars[i : i + 1, : max(1, n)])[0], cnn(chars)[i], rtol=1e-5, atol=1e-5)
    assert torch.equal(cnn(chars)[torch.tensor(lengths) == 0], torch.zeros(lengths.count(0), 5))


def test_gradients_match_conv1d():
    torch.manual_seed(0)
    cnn = CharCNN(num_chars=30, dim=4, filters=3, kernel=3, dropout=0.0).double()
    chars = random_chars([4, 1, 0, 6, 3], 30, seed=1)
    weights = torch.randn(5, 3, dtype=torch.float64)
    grads = []
    for f in (cnn, lambda c: conv_reference(cnn, c)):
        cnn.zero_grad()
        (f(chars) * weights).sum().backward()
        grads.append([p.grad.clone() for p in cnn.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_no_tokens():
    cnn = CharCNN(num_chars=5, dim=3, filters=4, kernel=3, dropout=0.0)
    assert cnn(torch.zeros(0, 3, dtype=torch.long)).shape == (0, 4)
