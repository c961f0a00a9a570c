"""The encoder architectures a saved encoder folder can name, and how each is built from its arguments.

    ARCHITECTURES[name](arguments) -> nn.Module taking (N, 3, S, S) RGB 0-255 chips, returning (N, D)

* ``dlib-resnet``: dlib's pretrained ResNet (encoder.py), fine-tuned end to end
  (same module, new weights).
* ``small-resnet``: a ResNet of a few million parameters for 96-112 px chips,
  to train from scratch. A 3x3/2 stem and a 3x3/2 max pool bring a 96 px chip to
  24 px; four stages of basic residual blocks (batch norm, ReLU, 1x1 strided
  projection shortcuts as in He et al. 2016) at widths w, 2w, 4w, 8w; global
  average pool; a linear layer to D; L2-normalised output (FaceNet's
  embedding lives on the unit sphere, so a margin of 0.2 has a fixed meaning).
* ``dlib-resnet-projection``: the frozen pretrained encoder followed by a
  trained linear map D0 -> D (initialised to the identity when D = D0). The
  cheap form of fine-tuning: it trains on precomputed embeddings in seconds.
  The map is linear with no bias, so averaging the embeddings of a chip and
  its mirror image (the recognizer's `flip`) commutes with it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SettingsError
from .encoder import EMBEDDING_DIM, DlibResNet


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, *, width: int = 32, blocks: tuple[int, ...] = (1, 1, 1, 1), embedding_dim: int = 128,
                 normalize: bool = True) -> None:
        super().__init__()
        if width < 4 or embedding_dim < 2:
            raise SettingsError("width must be >= 4 and embedding_dim >= 2")
        self.embedding_dim = embedding_dim
        self.normalize = normalize
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        cin = width
        for stage, count in enumerate(blocks):
            cout = width * 2**stage
            for i in range(count):
                layers.append(_Block(cin, cout, 2 if (i == 0 and stage > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise SettingsError(f"SmallResNet wants (N, 3, S, S) RGB 0-255, got {tuple(x.shape)}")
        x = (x.float() - 127.5) * (1.0 / 128.0)
        x = self.blocks(self.stem(x))
        x = self.fc(x.mean(dim=(2, 3)))
        return F.normalize(x, dim=1) if self.normalize else x


class ProjectedEncoder(nn.Module):
    """A frozen base encoder and a trained linear projection (no bias)."""

    def __init__(self, base: nn.Module, base_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.base = base
        self.projection = nn.Linear(base_dim, embedding_dim, bias=False)
        with torch.no_grad():
            if base_dim == embedding_dim:
                self.projection.weight.copy_(torch.eye(base_dim))
        self.base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.base(x))


class ScaledInput(nn.Module):
    """`model((x - mean) * scale)`: an encoder that wants its RGB 0-255 chips normalised first."""

    def __init__(self, model: nn.Module, *, mean: float, scale: float) -> None:
        super().__init__()
        self.model, self.mean, self.scale = model, float(mean), float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x.float() - self.mean) * self.scale)


def build_dlib_resnet(arguments: dict) -> nn.Module:
    return DlibResNet()


def build_small_resnet(arguments: dict) -> nn.Module:
    return SmallResNet(width=int(arguments.get("width", 32)), blocks=tuple(arguments.get("blocks", (1, 1, 1, 1))),
                       embedding_dim=int(arguments.get("embedding_dim", 128)),
                       normalize=bool(arguments.get("normalize", True)))


def build_dlib_projection(arguments: dict) -> nn.Module:
    return ProjectedEncoder(DlibResNet(), EMBEDDING_DIM, int(arguments.get("embedding_dim", EMBEDDING_DIM)))


#: architecture name -> builder(arguments)
ARCHITECTURES: dict[str, Callable[[dict], nn.Module]] = {
    "small-resnet": build_small_resnet,
    "dlib-resnet": build_dlib_resnet,
    "dlib-resnet-projection": build_dlib_projection,
}
