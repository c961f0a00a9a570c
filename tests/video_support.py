"""Fixtures of the video and liveness tests: the face-mesh weights, small clips from LFW photos."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mesh_weights(raw_weights, face_weights) -> None:
    """MTCNN, the encoder and MediaPipe's face mesh and iris models in the cnnkit cache (converted once)."""
    from cnnkit.weights import fetch, is_cached

    for name in ("face-mesh", "mediapipe-iris"):
        if not is_cached(name):
            fetch(name, source=raw_weights(name)[0].parent)
