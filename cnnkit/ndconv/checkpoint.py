"""Checkpoints: weights in safetensors, the config as JSON (in the file's metadata and beside it).

A checkpoint is one `.safetensors` file; its metadata key "cnnkit_ndconv" holds
the JSON that rebuilds the network (task, architecture, ResNetConfig) and what
the task needs to use it (classes, sampling rate, normalisation, ...). A
`.json` with the same content and the training history is written beside it for
people to read; loading needs only the `.safetensors`. No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, SettingsError
from .models import ResNetConfig, build_model

META_KEY = "cnnkit_ndconv"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    model: nn.Module
    task: str
    architecture: str
    config: ResNetConfig
    info: dict[str, Any]  # task-specific: classes, preprocessing, training summary


def save_checkpoint(path: str | Path, model: nn.Module, *, task: str, architecture: str, config: ResNetConfig,
                    info: dict[str, Any], history: list[dict[str, Any]] | None = None) -> Path:
    """Write `path` (.safetensors, atomically) and `path` with .json (config + history)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise SettingsError(f"checkpoint path must end in .safetensors, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_VERSION, "task": task, "architecture": architecture, "config": config.to_dict(),
            "info": info}
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={META_KEY: json.dumps(meta)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    path.with_suffix(".json").write_text(json.dumps({**meta, "history": history or []}, indent=1) + "\n")
    return path


def read_metadata(path: str | Path, *, task: str | None = None) -> dict[str, Any]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        command = f"cnnkit ndconv {task} train --out {path}" if task else f"cnnkit ndconv TASK train --out {path}"
        raise CheckpointError(f"no checkpoint at {path}; train one with `{command}`")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a cnnkit ndconv checkpoint")
    meta = json.loads(raw)
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer cnnkit (format {meta['format']}); upgrade cnnkit")
    return meta


def load_checkpoint(path: str | Path, *, task: str | None = None, device: torch.device | str = "cpu",
                    builders: dict[str, Callable[[ResNetConfig, dict[str, Any]], nn.Module]] | None = None
                    ) -> Checkpoint:
    """The network in eval mode on `device`, with its task info; CheckpointError if it is for another task.

    `builders` makes the networks of task-specific architectures (by name) from the config and the info.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path, task=task)
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"{path} is a {meta['task']!r} model, not a {task!r} model")
    config = ResNetConfig.from_dict(meta["config"])
    build = (builders or {}).get(meta["architecture"])
    try:
        model = build(config, meta["info"]) if build else build_model(config, architecture=meta["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild its {meta['architecture']!r} network ({exc})") from None
    state = load_file(str(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match its config ({str(exc).splitlines()[0]})") from None
    return Checkpoint(model.eval().to(device), meta["task"], meta["architecture"], config, meta["info"])
