"""The costs of neural style transfer, with the course's definitions (Gatys et al. 2016).

Activations are tensors of shape (n_C, n_H, n_W) or (1, n_C, n_H, n_W) — one
image; a leading batch axis of 1 is accepted and dropped.

    content cost     J_content(C, G) = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2
    Gram matrix      G = A A^T,  A = the activation unrolled to (n_C, n_H * n_W)
    layer style cost J_l(S, G) = 1 / (4 n_C^2 (n_H n_W)^2) * sum (G_S - G_G)^2
    style cost       J_style(S, G) = sum_l lambda_l J_l(S, G)
    total cost       J(G) = alpha J_content(C, G) + beta J_style(S, G) [+ tv_weight * J_tv(G)]

Departures from the paper, marked where they happen:

- Gatys et al. write the content cost as 1/2 sum (a_C - a_G)^2 and the layer
  style cost as 1 / (4 N_l^2 M_l^2) sum (G_S - G_G)^2; the course normalises the
  content cost too (1 / (4 n_H n_W n_C)), which makes it independent of the size.
- The total variation cost is not in the paper (Mahendran & Vedaldi 2015; used
  by most implementations since): the mean squared difference of neighbouring
  pixels, off by default.
- A style image of another size than G: see `layer_style_cost`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..errors import SettingsError

__all__ = ["content_cost", "gram_matrix", "layer_style_cost", "style_cost", "total_cost",
           "total_variation_cost"]


def _single(a: Tensor) -> Tensor:
    if a.dim() == 4:
        if a.shape[0] != 1:
            raise SettingsError(f"costs take one image at a time; got a batch of {a.shape[0]}")
        a = a[0]
    if a.dim() != 3:
        raise SettingsError(f"an activation has shape (n_C, n_H, n_W) or (1, n_C, n_H, n_W); got {tuple(a.shape)}")
    return a


def content_cost(a_C: Tensor, a_G: Tensor) -> Tensor:
    """J_content = 1 / (4 n_H n_W n_C) * sum (a_C - a_G)^2, a scalar tensor.

    `a_C` and `a_G` are the activations of the content image and of the
    generated image at the same layer and of the same shape.
    """
    a_C, a_G = _single(a_C), _single(a_G)
    if a_C.shape != a_G.shape:
        raise SettingsError(f"content and generated activations differ in shape: "
                            f"{tuple(a_C.shape)} vs {tuple(a_G.shape)}")
    n_C, n_H, n_W = a_G.shape
    return (a_C - a_G).square().sum() / (4 * n_H * n_W * n_C)


def gram_matrix(A: Tensor) -> Tensor:
    """G = A A^T, (n_C, n_C), where A is (n_C, n_H * n_W) or an activation (n_C, n_H, n_W).

    G[i, j] = sum over positions of a_i * a_j: how much channels i and j fire
    together. Not normalised (the layer style cost divides by the size).
    """
    if A.dim() != 2:
        A = _single(A).flatten(1)
    return A @ A.T


def layer_style_cost(a_S: Tensor, a_G: Tensor) -> Tensor:
    """J_l = 1 / (4 n_C^2 (n_H n_W)^2) * sum (G_S - G_G)^2 at one layer, a scalar tensor.

    `a_S`, `a_G`: activations (n_C, n_H, n_W) of the style and generated images.
    Departure: the course assumes S and G have the same n_H n_W. When they do
    not, G_S is rescaled by (n_H n_W)_G / (n_H n_W)_S first, i.e. the Gram
    matrices are compared per position (G / n_H n_W); with equal sizes this is
    exactly the course's formula.
    """
    a_S, a_G = _single(a_S), _single(a_G)
    if a_S.shape[0] != a_G.shape[0]:
        raise SettingsError(f"style and generated activations have {a_S.shape[0]} and {a_G.shape[0]} channels")
    G_S = gram_matrix(a_S)
    n_C, n_H, n_W = a_G.shape
    positions_S = a_S.shape[1] * a_S.shape[2]
    if positions_S != n_H * n_W:
        G_S = G_S * (n_H * n_W / positions_S)
    return gram_cost(G_S, gram_matrix(a_G), n_C, n_H * n_W)


def gram_cost(G_S: Tensor, G_G: Tensor, n_C: int, positions: int) -> Tensor:
    """1 / (4 n_C^2 positions^2) * sum (G_S - G_G)^2, from Gram matrices already computed."""
    return (G_S - G_G).square().sum() / (4 * n_C**2 * float(positions) ** 2)


def style_cost(a_S: Mapping[str, Tensor], a_G: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """J_style = sum_l lambda_l J_l(S, G) over the layers named in `weights` (layer -> lambda_l).

    `a_S`, `a_G`: activations by layer name (what `VGG19Features` returns).
    """
    missing = [name for name in weights if name not in a_S or name not in a_G]
    if missing:
        raise SettingsError(f"no activations for style layer(s) {', '.join(missing)}")
    terms = [float(lam) * layer_style_cost(a_S[name], a_G[name]) for name, lam in weights.items()]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def total_variation_cost(image: Tensor) -> Tensor:
    """J_tv = mean squared difference between neighbouring pixels (down and right), a scalar.

    Not part of Gatys et al. or the course: a smoothness prior that removes
    high-frequency noise. `image` is (3, H, W) or (1, 3, H, W), in [0, 1].
    """
    x = _single(image)
    return (x[:, 1:, :] - x[:, :-1, :]).square().mean() + (x[:, :, 1:] - x[:, :, :-1]).square().mean()


def total_cost(J_content: Tensor | float, J_style: Tensor | float, *, alpha: float = 1.0, beta: float = 1.0,
               J_tv: Tensor | float = 0.0, tv_weight: float = 0.0) -> Tensor | float:
    """J = alpha * J_content + beta * J_style (+ tv_weight * J_tv, off by default)."""
    return alpha * J_content + beta * J_style + tv_weight * J_tv
