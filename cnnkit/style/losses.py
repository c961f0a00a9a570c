"""The style-transfer objective as small modules whose targets live in buffers.

The targets (the content activation, the style Gram matrices) are computed
once per output size, without gradients, and never again; each evaluation of
the objective then costs one forward and one backward pass of VGG19 up to the
deepest layer used, plus a Gram matrix per style layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import SettingsError
from .costs import content_cost, gram_cost, gram_matrix, total_variation_cost
from .vgg import LAYER_CHANNELS, LAYER_NAMES, VGG19Features


class ContentLoss(nn.Module):
    """J_content(C, G) at one layer; the content activation a_C is a buffer."""

    target: Tensor  # a buffer

    def __init__(self, a_C: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", a_C.detach())

    def forward(self, a_G: Tensor) -> Tensor:
        return content_cost(self.target, a_G)


class StyleLoss(nn.Module):
    """J_l for one layer against one style image or a weighted blend of several.

    Departure (several style images, weights w_i summing to 1): the cost is
    sum_i w_i J_l(S_i, G), as the course's definition extends to several
    styles. Since sum_i w_i |G_Si - G|^2 = |G_blend - G|^2 + sum_i w_i |G_Si|^2
    - |G_blend|^2 with G_blend = sum_i w_i G_Si, only the blended Gram matrix and
    that constant are kept: the same value and gradient for the price of one style.
    """

    target: Tensor  # a buffer: the blended Gram matrix

    def __init__(self, grams: Sequence[Tensor], weights: Sequence[float], positions: int) -> None:
        super().__init__()
        if len(grams) != len(weights) or not grams:
            raise SettingsError("one weight per style Gram matrix is needed")
        w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
        w = w / w.sum()
        stack = torch.stack([g.detach().double() for g in grams])
        blend = torch.einsum("s,sij->ij", w, stack)
        offset = (w * stack.square().sum(dim=(1, 2))).sum() - blend.square().sum()
        n_C = grams[0].shape[0]
        self.n_C, self.positions = n_C, positions
        self.register_buffer("target", blend.to(grams[0].dtype))
        # The constant, already normalised like J_l; clamped at 0 against round-off.
        self.offset = float(offset.clamp_min(0)) / (4 * n_C**2 * float(positions) ** 2)

    def forward(self, a_G: Tensor) -> Tensor:
        return gram_cost(self.target, gram_matrix(a_G), self.n_C, self.positions) + self.offset


@dataclass
class Costs:
    """One evaluation of the objective: the parts and the weighted total (floats)."""

    content: float
    style: float
    tv: float
    total: float
    style_layers: dict[str, float]


class StyleObjective(nn.Module):
    """alpha J_content + beta sum_l lambda_l J_l + tv_weight J_tv of a generated image.

    Built from the targets for one output size (`build`); called with the
    generated image (1, 3, H, W) it returns (total, parts) where parts holds the
    unweighted costs as 0-d tensors.
    """

    def __init__(self, vgg: VGG19Features, content_layer: str, content: ContentLoss,
                 styles: Mapping[str, StyleLoss], layer_weights: Mapping[str, float], *,
                 alpha: float, beta: float, tv_weight: float) -> None:
        super().__init__()
        self.vgg = vgg
        self.content_layer = content_layer
        self.content = content
        self.styles = nn.ModuleDict(dict(styles))
        self.layer_weights = dict(layer_weights)
        self.alpha, self.beta, self.tv_weight = float(alpha), float(beta), float(tv_weight)
        # The deepest layer bounds the forward pass (VGG19Features stops there).
        self.layers = sorted({content_layer, *self.styles}, key=LAYER_NAMES.index)

    @classmethod
    @torch.no_grad()
    def build(cls, vgg: VGG19Features, content: Tensor, styles: Sequence[Tensor], blend: Sequence[float], *,
              content_layer: str, layer_weights: Mapping[str, float], alpha: float, beta: float,
              tv_weight: float) -> StyleObjective:
        """Compute the targets: a_C at `content_layer`, the style Gram matrices at every style layer.

        `content` (1, 3, H, W) fixes the output size; the style images may have any size.
        """
        positions = {name: _positions(content.shape[-2:], name) for name in layer_weights}
        a_C = vgg(content, [content_layer])[content_layer]
        grams: dict[str, list[Tensor]] = {name: [] for name in layer_weights}
        for style in styles:
            acts = vgg(style, list(layer_weights))
            for name, a_S in acts.items():
                G_S = gram_matrix(a_S)
                # Departure (see costs.layer_style_cost): rescale to the output's number of positions.
                G_S = G_S * (positions[name] / (a_S.shape[-2] * a_S.shape[-1]))
                grams[name].append(G_S)
            del acts
        losses = {name: StyleLoss(grams[name], blend, positions[name]) for name in layer_weights}
        return cls(vgg, content_layer, ContentLoss(a_C), losses, layer_weights,
                   alpha=alpha, beta=beta, tv_weight=tv_weight)

    def forward(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        acts = self.vgg(image, self.layers)
        J_content = self.content(acts[self.content_layer])
        style_layers = {name: loss(acts[name]) for name, loss in self.styles.items()}
        J_style = sum((self.layer_weights[name] * cost for name, cost in style_layers.items()),
                      torch.zeros((), device=image.device))
        total = self.alpha * J_content + self.beta * J_style
        J_tv = torch.zeros((), device=image.device)
        if self.tv_weight:
            J_tv = total_variation_cost(image)
            total = total + self.tv_weight * J_tv
        return total, {"content": J_content, "style": J_style, "tv": J_tv, "total": total, **{
            f"style/{name}": cost for name, cost in style_layers.items()}}

    @staticmethod
    def to_costs(parts: Mapping[str, Tensor]) -> Costs:
        """Tensors -> floats (one device sync)."""
        keys = list(parts)
        values = torch.stack([parts[k].detach().float().reshape(()) for k in keys]).tolist()
        got = dict(zip(keys, values))
        return Costs(content=got["content"], style=got["style"], tv=got["tv"], total=got["total"],
                     style_layers={k.split("/", 1)[1]: v for k, v in got.items() if k.startswith("style/")})


def _positions(size: Sequence[int], layer: str) -> int:
    """n_H * n_W of `layer` for an input of `size` (H, W): floor-halved once per max-pool."""
    h, w = int(size[0]), int(size[1])
    block = int(layer[4]) - 1
    for _ in range(block):
        h, w = h // 2, w // 2
    return h * w


def default_layer_weights(layers: Sequence[str]) -> dict[str, float]:
    """Equal lambda_l = 1 / L over the style layers (the course's choice)."""
    return {name: 1.0 / len(layers) for name in layers}


def check_channels(layer_weights: Mapping[str, float]) -> None:  # pragma: no cover - trivial
    for name in layer_weights:
        LAYER_CHANNELS[name]
