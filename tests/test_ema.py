"""The weight average: every k-th step with the product of the decays, read up to date."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tagger.training.ema import WeightEMA


def textbook(values: list[torch.Tensor], decay: float) -> torch.Tensor:
    """Per-step EMA of the weights after each step, with the warm-up of WeightEMA."""
    shadow = values[0].clone()  # the weights when averaging starts
    for n, v in enumerate(values[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * v
    return shadow


@pytest.mark.parametrize("every", [1, 3, 4])
def test_equals_per_step_average_when_weights_change_between_takes(every):
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    start = layer.weight.detach().clone()
    ema = WeightEMA(layer, 0.9, every=every)
    values = [start]
    for step in range(1, 14):
        if (step - 1) % every == 0:  # the weights change only right after a take-in
            with torch.no_grad():
                layer.weight.add_(torch.randn_like(layer.weight))
        values.append(layer.weight.detach().clone())
        ema.update()
    with ema.applied():  # reading takes in the steps still pending
        torch.testing.assert_close(layer.weight.detach(), textbook(values, 0.9), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(layer.weight.detach(), values[-1])  # the raw weights are back
    assert ema.updates == 13


def test_close_to_per_step_average_on_a_drifting_weight():
    torch.manual_seed(1)
    layers = [nn.Linear(4, 4) for _ in range(2)]
    layers[1].load_state_dict(layers[0].state_dict())
    emas = [WeightEMA(layers[0], 0.99, every=1), WeightEMA(layers[1], 0.99, every=4)]
    for _ in range(400):
        step = torch.randn(4, 4) * 0.01
        for layer, ema in zip(layers, emas, strict=True):
            with torch.no_grad():
                layer.weight.add_(step)
            ema.update()
    a, b = (ema.tensors()["ema.weight"] for ema in emas)
    assert (a - b).abs().max() < 0.02 * (a - layers[0].weight.detach()).abs().max() + 1e-3


def test_checkpoint_tensors_are_up_to_date_and_reload():
    layer = nn.Linear(2, 2)
    start = layer.weight.detach().clone()
    ema = WeightEMA(layer, 0.5, every=8)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema.update()
    saved = {k: v.clone() for k, v in ema.tensors().items()}  # taken in on reading
    torch.testing.assert_close(saved["ema.weight"], (2 / 11) * start + (9 / 11) * torch.ones(2, 2))
    other = WeightEMA(nn.Linear(2, 2), 0.5, every=8)
    other.load(saved, ema.updates)
    assert torch.equal(other.tensors()["ema.weight"], saved["ema.weight"]) and other.updates == 1
    with pytest.raises(ValueError):
        WeightEMA(layer, 0.5, every=0)
