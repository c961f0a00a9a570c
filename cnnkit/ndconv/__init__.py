"""Convolution beyond images: shape arithmetic, 1D/2D/3D building blocks, ECG, CT volumes and video.

    from cnnkit.ndconv import conv_shape, ResNetConfig, build_model
    conv_shape((14, 14, 14), 5, filters=16).output_shape   # (10, 10, 10, 16)

The task packages (`ecg`, `volumes`, `video`) load their dependencies (wfdb,
scipy, nibabel, PyAV) only when used.
"""

from ..errors import CheckpointError, SignalError, VideoError, VolumeError
from .layers import ResidualBlock, conv, count_parameters, global_pool, norm, pool
from .models import FramesAsChannels2D, PerFrame2D, ResNetConfig, ResNetND, build_model
from .shapes import ConvShape, conv_output_size, conv_shape

__all__ = [
           "CheckpointError",
           "ConvShape",
           "FramesAsChannels2D",
           "PerFrame2D",
           "ResNetConfig",
           "ResNetND",
           "ResidualBlock",
           "SignalError",
           "VideoError",
           "VolumeError",
           "build_model",
           "conv",
           "conv_output_size",
           "conv_shape",
           "count_parameters",
           "global_pool",
           "norm",
           "pool",
]
