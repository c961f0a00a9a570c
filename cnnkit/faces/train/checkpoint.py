"""Saving what training makes: checkpoints (to resume) and the final encoder (to use).

A checkpoint is a folder: `model.safetensors`, `optimizer.safetensors` (the
optimizer's tensors, flattened) and `state.json` (epoch, architecture,
settings, history, the optimizer's other fields). It is written to a temporary
folder and renamed, so an interrupted write never replaces a good checkpoint.

The final model uses the saved-encoder format (see saved_encoder.py): any
cnnkit command loads it by path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from ..saved_encoder import FORMAT

STATE_FILE = "state.json"



def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    other: dict[str, dict] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                other.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": other}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: str | os.PathLike, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / STATE_FILE).write_text(json.dumps({**state, "optimizer": meta}, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(folder: str | os.PathLike, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    architecture: str, arguments: dict) -> dict:
    """Load weights and optimizer state into `model`/`optimizer`; returns the saved state."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: no checkpoint to resume ({exc}); train without --resume") from None
    if state.get("architecture") != architecture or state.get("arguments") != arguments:
        raise CheckpointError(f"{folder}: checkpoint of {state.get('architecture')} {state.get('arguments')}, "
                              f"not of {architecture} {arguments}; resume with the same --encoder and "
                              "--embedding-dim, or use another --out")
    try:
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        optimizer.load_state_dict(_unflatten_optimizer(load_file(str(folder / "optimizer.safetensors")),
                                                       state["optimizer"]))
    except (OSError, SafetensorError, RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{folder}: damaged checkpoint or another architecture ({exc})") from None
    return state


def save_encoder(folder: str | os.PathLike, model: nn.Module, *, architecture: str, arguments: dict,
                 embedding_dim: int, chip_size: int, extra: dict | None = None) -> Path:
    """Write `model` in the saved-encoder format (model.safetensors + config.json with its sha256)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    tmp = folder / "model.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, weights)
    config = {"format": FORMAT, "architecture": architecture, "arguments": arguments,
              "embedding_dim": embedding_dim, "chip_size": chip_size, "sha256": digest, **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
