"""Default decision thresholds per encoder (Euclidean distance between embeddings).

A pair is "the same person" when its distance is at most the threshold. The
values are the accuracy-maximising thresholds on LFW View 1 (pairsDevTrain.txt,
the development split), measured with `python -m tools.dev_encoders` (every
encoder, flip-averaged; `python tools/dev_threshold.py` for dlib without flip);
never tuned on View 2. They decide 1:1 verification; identification among many
people uses the size-aware thresholds of gallery/openset.py. A gallery can
record its own (see `cnnkit faces calibrate`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import SettingsError
from .models import DEFAULT_ENCODER

# (encoder name, flip averaging) -> threshold
THRESHOLDS: dict[tuple[str, bool], float] = {
    ("dlib-resnet-v1", True): 0.6041,   # View-1 DevTest accuracy at this threshold: 99.0 %
    ("dlib-resnet-v1", False): 0.6189,  # 98.5 % (dlib's own rule of thumb is 0.6)
    # python -m tools.dev_encoders (bench/results/dev_encoders.json): DevTrain-chosen, DevTest accuracy
    ("sface-2021dec", True): 1.1143,    # 99.1 %
    ("w600k-mbf", True): 1.2088,        # 99.4 %
    ("dlib-resnet-v1+sface-2021dec", True): 0.7577,  # 99.1 % (AUC 0.9991)
}


def default_threshold(encoder: str = DEFAULT_ENCODER, *, flip: bool = True) -> float:
    """The table's threshold, or the one a saved encoder's config.json records (set by its training)."""
    if (encoder, flip) in THRESHOLDS:
        return THRESHOLDS[(encoder, flip)]
    from .saved_encoder import is_saved_encoder

    if is_saved_encoder(encoder):
        config = json.loads((Path(encoder) / "config.json").read_text())
        if "threshold" in config:
            return float(config["threshold"])
    raise SettingsError(f"no default threshold for encoder {encoder!r}; calibrate one "
                     "(`cnnkit faces calibrate`) or give it explicitly")
