"""What every benchmark shares: where the data is, the machine it ran on, and one way to save a result.

Benchmarks are modules run from the repository root, `python -m bench.<app>.<script>`
(for example `python -m bench.faces.lfw_verification --skip-peer`), with the
`bench` extra installed (`pip install -e ".[bench]"`): dlib-bin and
face_recognition_models, the peers cnnkit is compared with. Each saves its
result with `save_result`, which adds how to reproduce it and what it ran on.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = ROOT.parent / "shared" / "data"
LFW = Path(os.environ.get("CNNKIT_LFW", DATA / "lfw"))

#: The machine's 1-minute load average when the benchmark started (when it imported this module).
LOAD_BEFORE = os.getloadavg()[0]


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
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["-m", spec.name] if spec else [sys.argv[0]]
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "MKL_"))]
    return " ".join([*env, shlex.join(["python", *program, *sys.argv[1:]])])


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its largest finished child), MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    rss = resource.getrusage(who).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def save_result(name: str, payload: dict, *, out: str | os.PathLike | None = None) -> Path:
    """Write `payload` as JSON to `out` (default bench/results/NAME.json), with what every result carries.

    Added to the payload: `command` (what reproduces the run), `machine`,
    `load_average_before` / `load_average_after` (1-minute, at the start and now),
    `peak_rss_mib` (this process; `peak_rss_mib_children` too where it ran
    subprocesses: the largest of them) and `date` (UTC). A script that saves
    after every step simply calls this again.
    """
    path = Path(out) if out else RESULTS / f"{name}.json"
    children = peak_rss_mib(children=True)
    record = {**payload, "command": command(), "machine": machine(),
              "load_average_before": round(LOAD_BEFORE, 2), "load_average_after": round(os.getloadavg()[0], 2),
              "peak_rss_mib": round(peak_rss_mib(), 1),
              **({"peak_rss_mib_children": round(children, 1)} if children else {}),
              "date": datetime.now(UTC).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
