"""The verification head of DeepFace (Taigman et al. 2014) and of the course's "binary classification".

A pair of embeddings becomes per-dimension features, and a logistic
regression decides "same person": p = sigmoid(sum_k w_k x_k + b), with

* ``abs``:  x_k = |f(a)_k - f(b)_k|
* ``chi2``: x_k = (f(a)_k - f(b)_k)^2 / (f(a)_k + f(b)_k)

DeepFace's features are non-negative (a ReLU output, then normalised), which
keeps the chi-square denominator positive. The dlib embedding has both signs,
so the chi-square form is applied to its positive and negative parts,
g(f) = [max(f, 0), max(-f, 0)] (2D non-negative numbers that lose nothing),
with 0/0 taken as 0. Where the signs of f(a)_k and f(b)_k differ, the two
terms add up to |f(a)_k - f(b)_k|; where they agree it is the usual
chi-square term. The head has 2D + 1 weights for chi2, D + 1 for abs.

The head trains on frozen precomputed embeddings (`fit_binary_head`, full-batch
L-BFGS, seconds) or end to end with the encoder (`BinaryHeadLoss` in the
training loop). Saved as `head.safetensors` + `head.json` (with its sha256 and
the embedding model it was trained on), it can replace a gallery's threshold.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import SettingsError, WeightsError

FEATURE_CHOICES = ("abs", "chi2")
HEAD_FORMAT = "cnnkit-binary-head"
_EPS = 1e-8


def pair_features(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """(N, D) x (N, D) -> (N, D) abs or (N, 2D) chi-square features."""
    if kind == "abs":
        return (a - b).abs()
    if kind == "chi2":
        ga = torch.cat([F.relu(a), F.relu(-a)], dim=1)
        gb = torch.cat([F.relu(b), F.relu(-b)], dim=1)
        return (ga - gb) ** 2 / (ga + gb + _EPS)
    raise SettingsError(f"features must be one of {FEATURE_CHOICES}, got {kind!r}")


class BinaryHead(nn.Module):
    """Logistic regression on pair features; `forward(a, b)` returns logits (N,)."""

    def __init__(self, dim: int, *, features: str = "abs") -> None:
        super().__init__()
        if features not in FEATURE_CHOICES:
            raise SettingsError(f"features must be one of {FEATURE_CHOICES}, got {features!r}")
        self.dim = dim
        self.features = features
        n = dim * (2 if features == "chi2" else 1)
        # Start as "large distance means different", so early training is sensible.
        self.weight = nn.Parameter(torch.full((n,), -1.0 / np.sqrt(n)))
        self.bias = nn.Parameter(torch.tensor(1.0))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return pair_features(a, b, self.features) @ self.weight + self.bias

    @torch.no_grad()
    def probability(self, a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
        """P(same person) for rows of `a` and `b` (broadcast: one row against many works)."""
        ta = torch.as_tensor(np.asarray(a, dtype=np.float32)).reshape(-1, self.dim)
        tb = torch.as_tensor(np.asarray(b, dtype=np.float32)).reshape(-1, self.dim)
        ta, tb = torch.broadcast_tensors(ta, tb)
        return torch.sigmoid(self(ta.to(self.weight.device), tb.to(self.weight.device))).cpu().numpy()


def fit_binary_head(a: np.ndarray, b: np.ndarray, same: np.ndarray, *, features: str = "abs",
                    l2: float = 1e-4, max_iter: int = 500) -> BinaryHead:
    """Fit the head on precomputed pair embeddings (balanced classes, L2 penalty l2 * |w|^2)."""
    a_t = torch.as_tensor(np.asarray(a, dtype=np.float32))
    b_t = torch.as_tensor(np.asarray(b, dtype=np.float32))
    y = torch.as_tensor(np.asarray(same, dtype=np.float32))
    if a_t.shape != b_t.shape or a_t.ndim != 2 or len(y) != len(a_t):
        raise SettingsError(f"need (N, D) embeddings for both sides and N labels, got {tuple(a_t.shape)}, "
                         f"{tuple(b_t.shape)}, {tuple(y.shape)}")
    if y.min() == y.max():
        raise SettingsError("the head needs both same-person and different-person pairs")
    head = BinaryHead(a_t.shape[1], features=features)
    x = pair_features(a_t, b_t, features)
    pos_weight = (len(y) - y.sum()) / y.sum()
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ head.weight + head.bias
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight) + l2 * (head.weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head.eval()


class BinaryHeadLoss(nn.Module):
    """Class-balanced cross-entropy of the head on pairs of a batch: trains head (and encoder) end to end.

    Takes `(embeddings, labels, indices_tuple=None)` like the other losses:
    None means every pair of the batch; triplets give their (A,P) and (A,N) pairs.
    """

    def __init__(self, head: BinaryHead) -> None:
        super().__init__()
        self.head = head
        self.stats: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices_tuple: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        from .losses import _pairs

        a1, p, a2, n = _pairs(indices_tuple, labels.to(embeddings.device))
        first, second = torch.cat([a1, a2]), torch.cat([p, n])
        target = torch.cat([torch.ones(len(a1)), torch.zeros(len(a2))]).to(embeddings.device)
        if len(target) == 0:
            self.stats = {"pairs": 0.0, "active": 0.0}
            return embeddings.sum() * 0.0 + self.head.bias * 0.0
        logits = self.head(embeddings[first], embeddings[second])
        # Each class weighs half, however many pairs of it the batch has.
        weight = torch.where(target > 0, 0.5 / max(len(a1), 1), 0.5 / max(len(a2), 1))
        loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum()
        wrong = (logits > 0).float() != target
        self.stats = {"pairs": float(len(target)), "active": float(wrong.float().mean())}
        return loss


# ---------------------------------------------------------------------------------------------
# Saving and loading


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_head(head: BinaryHead, folder: str | os.PathLike, *, embedding_model: dict | None = None,
              extra: dict | None = None) -> Path:
    """Write `folder/head.safetensors` and `folder/head.json`; returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "head.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(weights))
    config = {"format": HEAD_FORMAT, "features": head.features, "dim": head.dim, "sha256": _sha256(weights),
              "embedding_model": embedding_model or {}, **(extra or {})}
    (folder / "head.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_head(folder: str | os.PathLike) -> tuple[BinaryHead, dict]:
    """The saved head (eval mode) and its config; `WeightsError` if missing or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / "head.json").read_text())
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}: no binary head here (head.json: {exc})") from None
    if config.get("format") != HEAD_FORMAT:
        raise WeightsError(f"{folder}/head.json: not a cnnkit binary head")
    weights = folder / "head.safetensors"
    try:
        actual = _sha256(weights)
    except OSError as exc:
        raise WeightsError(f"{weights}: cannot read ({exc.strerror})") from None
    if actual != config.get("sha256"):
        raise WeightsError(f"{weights}: sha256 does not match head.json; the file is damaged or was replaced")
    head = BinaryHead(int(config["dim"]), features=config["features"])
    try:
        head.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError) as exc:
        raise WeightsError(f"{weights}: does not fit a {config['features']} head of dim {config['dim']} "
                           f"({exc})") from None
    return head.eval(), config
