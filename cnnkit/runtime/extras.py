"""Optional dependencies: one way to import them and one message when they are missing.

    av = require("av", extra="video", purpose="reading video files")

raises `MissingDependency` ('reading video files needs av: pip install "cnnkit[video]"')
when the module is not installed. A module that is installed but fails to import
(a broken build) keeps its own error: that is a bug to see, not a missing extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingDependency

#: The extras of pyproject.toml and what each brings.
EXTRAS = {
    "serve": "the HTTP service (fastapi, uvicorn, python-multipart)",
    "ndconv": "ECG records, volumes and video clips (wfdb, nibabel, av, scipy)",
    "video": "watching videos and liveness (av, scipy, tflite)",
    "milvus": "Milvus galleries (pymilvus, milvus-lite)",
    "milvus-server": "an embedded Milvus server for tests and trials (milvus)",
    "distributed": "bulk enrollment on Ray (ray)",
}


def install_hint(extra: str) -> str:
    return f'pip install "cnnkit[{extra}]"'


def require(module: str, *, extra: str, purpose: str = "") -> ModuleType:
    """Import `module`, or raise MissingDependency naming the extra that installs it."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".", maxsplit=1)[0]
        if exc.name is not None and exc.name.split(".")[0] not in (top, module):
            raise  # the module is there, but something it needs is not: not a missing extra
        what = purpose or f"this part of cnnkit ({EXTRAS[extra]})"
        raise MissingDependency(f"{what} needs {top}: {install_hint(extra)}", module=top, extra=extra) from None
