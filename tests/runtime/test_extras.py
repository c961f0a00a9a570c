"""Optional dependencies: one error, naming the pip extra, wherever a missing one is needed."""

from __future__ import annotations

import sys

import pytest

from cnnkit.errors import CnnkitError, MissingDependency
from cnnkit.runtime.extras import require


def test_an_installed_module_is_returned():
    import json

    assert require("json", extra="serve") is json


def test_a_missing_module_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wfdb", None)  # as if it were not installed
    with pytest.raises(MissingDependency,
                       match=r'reading WFDB records needs wfdb: pip install "cnnkit\[ndconv\]"') as info:
        require("wfdb", extra="ndconv", purpose="reading WFDB records")
    assert isinstance(info.value, CnnkitError) and isinstance(info.value, ImportError)
    assert (info.value.module, info.value.extra) == ("wfdb", "ndconv")


@pytest.mark.parametrize("module, extra, call", [
    ("wfdb", "ndconv", lambda tmp: __import__("cnnkit.ndconv.ecg.records", fromlist=["x"]).read_record(tmp / "100")),
    ("scipy", "video", lambda tmp: _track_two_frames()),
    ("pymilvus", "milvus", lambda tmp: __import__("cnnkit.faces.gallery", fromlist=["x"]).Gallery(
        f"milvus-lite://{tmp}/g.db", create=True)),
])
def test_library_parts_report_a_missing_extra_the_same_way(module, extra, call, tmp_path, monkeypatch):
    (tmp_path / "100.hea").write_text("100 1 360 10\n100.dat 212 200 11 1024 0 0 0 MLII\n")
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependency, match=rf'pip install "cnnkit\[{extra}\]"'):
        call(tmp_path)


def _track_two_frames() -> None:
    from cnnkit.faces.video.tracker import FaceTracker

    tracker = FaceTracker()
    for frame in range(2):  # the second frame matches faces to the first frame's tracks
        tracker.update([_face(0), _face(1)], time=frame / 25, frame=frame)


def _face(i: int):
    import numpy as np

    from cnnkit.faces.types import Face

    return Face(box=(10.0 + 50 * i, 10.0, 50.0 + 50 * i, 50.0), score=0.99, landmarks=np.zeros((5, 2), np.float32))
