"""The networks `cnnkit visualize` knows by name, and any `nn.Module` whose layers a user names.

A `VisualModel` says what the visualizer needs from a network: the module, the
layers a user may pick (name -> sub-module whose output is a feature map),
how pixels become its input, and what input it takes (any size, or square
face chips of one size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import LayerNotFoundError, SettingsError

#: The models known by name.
MODEL_CHOICES = ("vgg19", "face-encoder")


def _scale01(x: Tensor) -> Tensor:
    return x / 255.0


def _identity(x: Tensor) -> Tensor:
    return x


def _rounded_rgb(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    r, g, b = rgb
    return round(r), round(g), round(b)


@dataclass(frozen=True)
class VisualModel:
    """A network prepared for visualization.

    `layers`: user-facing layer name -> dotted path of the sub-module whose
    output is that layer's feature map. `to_input`: float RGB 0-255
    (N, 3, H, W) -> the network's input. `relu`: layers whose hooked output is
    taken through a ReLU (where the network applies it functionally right
    after the module, as VGG's extractor does). `chips`: the network takes
    aligned face chips of this side instead of whole images. `pad_rgb`: the
    colour the network's zero padding stands for, used to fill patches that
    leave the image.
    """

    name: str
    module: nn.Module
    layers: dict[str, str]
    to_input: Callable[[Tensor], Tensor] = _scale01
    relu: frozenset[str] = frozenset()
    default_layers: tuple[str, ...] = ()
    chips: int | None = None
    default_size: int = 224
    pad_rgb: tuple[int, int, int] = (128, 128, 128)
    forward: Callable[[Tensor], object] | None = field(default=None, compare=False)

    def modules_for(self, names: Sequence[str]) -> dict[str, nn.Module]:
        """name -> sub-module for each of `names`; `LayerNotFoundError` listing the valid names otherwise."""
        names = list(names)
        if not names:
            raise LayerNotFoundError(f"no layers asked for; {self.name} has: {', '.join(self.layers)}")
        modules = dict(self.module.named_modules())
        out = {}
        for name in names:
            path = self.layers.get(name)
            if path is None or path not in modules:
                raise LayerNotFoundError(f"{self.name} has no layer {name!r}; valid layers: {', '.join(self.layers)}")
            out[name] = modules[path]
        return out

    def run(self, x: Tensor) -> object:
        return (self.forward or self.module)(x)

    def activation(self, name: str, output: Tensor) -> Tensor:
        return F.relu(output) if name in self.relu else output


def generic(module: nn.Module, *, name: str = "model", to_input: Callable[[Tensor], Tensor] = _scale01,
            chips: int | None = None, default_size: int = 224) -> VisualModel:
    """Any `nn.Module`: every named sub-module is a layer, named by its dotted path."""
    layers = {path: path for path, _ in module.named_modules() if path}
    return VisualModel(name=name, module=module.eval(), layers=layers, to_input=to_input, chips=chips,
                       default_size=default_size)


def vgg19(device: str | torch.device = "cpu") -> VisualModel:
    """VGG19 of "Neural style transfer": layers conv1_1 .. conv5_4, after their ReLU."""
    from ..style.vgg import IMAGENET_MEAN_RGB, LAYER_NAMES, load_vgg19

    module = load_vgg19(device)
    return VisualModel(
        name="vgg19", module=module, layers={n: f"convs.{n}" for n in LAYER_NAMES}, to_input=_scale01,
        relu=frozenset(LAYER_NAMES), default_layers=("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"),
        # VGG pads with zeros after subtracting the mean pixel: padding is the mean colour.
        pad_rgb=_rounded_rgb(IMAGENET_MEAN_RGB), default_size=224,
    )


def face_encoder(device: str | torch.device = "cpu", encoder: str = "dlib-resnet-v1") -> VisualModel:
    """The face encoder of "Faces I" (dlib's ResNet, or a saved encoder folder) on aligned chips.

    Layers: ``stem`` (7x7/2 conv), ``blocks.0`` .. ``blocks.13`` (residual
    blocks, after their ReLU) and their ``blocks.N.conv1`` / ``blocks.N.conv2``.
    """
    from ..faces.encoder import DLIB_RGB_MEANS
    from ..faces.models import encoder_spec, load_encoder

    spec = encoder_spec(encoder)
    module = load_encoder(device, encoder)
    layers = {path: path for path, m in module.named_modules()
              if path and path != "fc" and not isinstance(m, nn.Sequential)}
    defaults = tuple(n for n in ("stem", "blocks.2", "blocks.6", "blocks.9", "blocks.12") if n in layers)
    name = "face-encoder" if encoder == "dlib-resnet-v1" else f"face-encoder:{Path(encoder).name}"
    return VisualModel(name=name, module=module, layers=layers, to_input=_identity, default_layers=defaults,
                       chips=spec.chip_size, default_size=spec.chip_size,
                       pad_rgb=_rounded_rgb(DLIB_RGB_MEANS))


def load_model(model: str | nn.Module | VisualModel, *, device: str | torch.device = "cpu") -> VisualModel:
    """A `VisualModel` from a name in `MODEL_CHOICES`, a saved face-encoder folder, or an `nn.Module`."""
    if isinstance(model, VisualModel):
        return model
    if isinstance(model, nn.Module):
        return generic(model.to(device))
    if model == "vgg19":
        return vgg19(device)
    if model == "face-encoder":
        return face_encoder(device)
    if Path(model).is_dir():
        return face_encoder(device, str(model))
    raise SettingsError(f"unknown model {model!r}; choose from {', '.join(MODEL_CHOICES)} or give the folder of "
                     "a saved face encoder")
