"""The checkpoint of a run: model, optimiser, averaged weights, RNG and loop state in one file.

The file is safetensors (tensors) with JSON metadata (the loop state ``info`` and the
optimiser's non-tensor state), written atomically; loading checks everything against the model
being trained and never unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from tagger.errors import TaggerError
from tagger.modeldir import save_tensors
from tagger.training.ema import WeightEMA

#: Loop-state fields a checkpoint must carry, with their types.
INFO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "epoch": int, "best": (int, float), "best_epoch": int, "bad_epochs": int, "elapsed": (int, float), "finished": bool,
}


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
    for g, saved in zip(sd["param_groups"], meta["groups"], strict=True):
        ng = dict(saved)
        ng["params"] = g["params"]
        groups.append(ng)
    opt.load_state_dict({"state": state, "param_groups": groups})
    for group in opt.param_groups:
        for p in group["params"]:
            for name, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.dim() > 0 and v.shape != p.shape:
                    raise ValueError(f"optimiser state {name} has shape {tuple(v.shape)}, expected {tuple(p.shape)}")


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, info: dict,
                    ema: WeightEMA | None = None) -> None:
    """Model, optimiser, averaged weights and RNG state in one safetensors file (``info`` as metadata)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update(ema.tensors())
        info = {**info, "ema_updates": ema.updates}
    otensors, ometa = _optimizer_state(opt)
    tensors.update(otensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"info": json.dumps(info), "optim": json.dumps(ometa)}
    save_tensors(path, tensors, metadata=meta)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
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
    return tensors, info, ometa


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                    ema: WeightEMA | None = None) -> dict:
    """Restore model, optimiser, averages and RNG state; returns ``info``.

    Anything inconsistent is a :class:`TaggerError` that names the file.
    """
    tensors, info, ometa = _read(path)

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
        if ema is not None:
            updates = info.get("ema_updates")
            if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
                raise ValueError("bad or missing averaged-weights counter")
            ema.load({k: v for k, v in tensors.items() if k.startswith("ema.")}, updates)
        torch.set_rng_state(rng)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise bad(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return info
