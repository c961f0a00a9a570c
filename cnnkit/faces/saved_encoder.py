"""Encoders saved by `cnnkit faces train` (or by hand): a folder that any cnnkit command loads by path.

    MODEL/config.json        {"format": "cnnkit-encoder", "architecture": NAME, "arguments": {...},
                              "embedding_dim": D, "chip_size": S, "sha256": <of model.safetensors>, ...}
    MODEL/model.safetensors  the weights

`architecture` names a builder in `architectures.ARCHITECTURES`: a function from the
`arguments` dict to an nn.Module that takes (N, 3, S, S) RGB 0-255 chips and
returns (N, D) embeddings. The sha256 is checked on every load and becomes the
model's version, so a gallery knows exactly which weights made its embeddings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WeightsError

FORMAT = "cnnkit-encoder"

@dataclass(frozen=True)
class SavedEncoderConfig:
    path: Path
    architecture: str
    arguments: dict
    embedding_dim: int
    chip_size: int
    sha256: str


def is_saved_encoder(ref: str | Path) -> bool:
    return (Path(ref) / "config.json").is_file()


def read_config(path: str | Path) -> SavedEncoderConfig:
    path = Path(path)
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a saved cnnkit encoder ({exc})") from None
    if config.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a saved cnnkit encoder (config.json has no format {FORMAT!r})")
    try:
        return SavedEncoderConfig(path=path.resolve(), architecture=config["architecture"],
                                  arguments=config.get("arguments", {}), embedding_dim=int(config["embedding_dim"]),
                                  chip_size=int(config["chip_size"]), sha256=config["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{config_file}: incomplete encoder config ({exc})") from None


def load_saved_encoder(path: str | Path, device: str = "cpu") -> Any:
    """Build the architecture, check the weights' sha256, load them; eval mode on `device`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .architectures import ARCHITECTURES

    config = read_config(path)
    if config.architecture not in ARCHITECTURES:
        raise WeightsError(f"{path}: unknown architecture {config.architecture!r}; "
                           f"known: {', '.join(sorted(ARCHITECTURES))}")
    weights = config.path / "model.safetensors"
    try:
        actual = hashlib.sha256(weights.read_bytes()).hexdigest()
    except OSError as exc:
        raise WeightsError(f"{weights}: cannot read ({exc.strerror})") from None
    if actual != config.sha256:
        raise WeightsError(f"{weights}: sha256 {actual[:12]}... does not match config.json "
                           f"({config.sha256[:12]}...); the file is damaged or was replaced")
    model = ARCHITECTURES[config.architecture](config.arguments)
    try:
        model.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError) as exc:
        raise WeightsError(f"{weights}: weights do not fit architecture {config.architecture!r} ({exc})") from None
    return model.eval().to(device)
