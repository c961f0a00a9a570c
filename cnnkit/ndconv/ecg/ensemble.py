"""The ECG classifier as one module: several 1D ResNets (different seeds) and the RR logistic model.

probabilities = (1 - rr_share) * mean over networks of softmax(network(beat, its RR features))
                + rr_share * softmax(rr_model(its RR features))

`forward` returns the log of those probabilities, so softmax / argmax of the
output work as for a single network. The module takes one side-feature array,
the union of the RR features of the networks and of the RR model in the order
of `beats.RR_FEATURES` (`side_names`), and gives each part its own columns.
It also takes both window channels (the beat, the beat minus the record's median
beat) and hands the networks the `channels` they were trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...errors import SettingsError
from ..models import ResNetConfig, build_model
from .beats import RR_FEATURES, check_rr_names
from .rr_logistic import RRLogistic

ARCHITECTURE = "ecg-ensemble"


def union_names(*groups: Sequence[str]) -> tuple[str, ...]:
    """The features named in any group, in the order of RR_FEATURES."""
    wanted = set().union(*groups)
    return tuple(n for n in RR_FEATURES if n in wanted)


class EcgEnsemble(nn.Module):
    cnn_cols: torch.Tensor  # buffers: the columns of the side features each part reads
    rr_cols: torch.Tensor
    channel_index: torch.Tensor  # the window channels the networks read

    def __init__(self, config: ResNetConfig, *, members: int, cnn_features: Sequence[str],
                 rr_model_features: Sequence[str], rr_share: float, channels: Sequence[int] = (0, 1)):
        super().__init__()
        if members < 1:
            raise SettingsError("an ensemble needs at least one network")
        if not 0 <= rr_share < 1:
            raise SettingsError("rr_share must be in [0, 1)")
        check_rr_names(cnn_features)
        check_rr_names(rr_model_features)
        if config.side_features != len(cnn_features):
            raise SettingsError(f"the networks read {config.side_features} side features, {len(cnn_features)} named")
        self.channels = tuple(int(c) for c in channels)
        if not self.channels or len(set(self.channels)) != len(self.channels) \
                or not set(self.channels) <= {0, 1} or len(self.channels) != config.in_channels:
            raise SettingsError(f"channels must be distinct window channels (0: the beat, 1: the beat minus the "
                                f"median beat), one per network input channel; got {list(channels)}")
        self.side_names = union_names(cnn_features, rr_model_features)
        self.rr_share = float(rr_share)
        self.networks = nn.ModuleList(build_model(config) for _ in range(members))
        self.rr_model = RRLogistic(len(rr_model_features), config.num_classes) if rr_model_features else None
        if rr_share > 0 and self.rr_model is None:
            raise SettingsError("rr_share > 0 needs RR model features")
        self.register_buffer("cnn_cols", torch.tensor([self.side_names.index(n) for n in cnn_features],
                                                      dtype=torch.int64), persistent=False)
        self.register_buffer("rr_cols", torch.tensor([self.side_names.index(n) for n in rr_model_features],
                                                     dtype=torch.int64), persistent=False)
        self.register_buffer("channel_index", torch.tensor(self.channels, dtype=torch.int64), persistent=False)

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        if side is None or side.shape[-1] != len(self.side_names):
            raise SettingsError(f"the ECG ensemble needs the RR features {', '.join(self.side_names)}")
        if self.channels != (0, 1):  # windows come with both channels
            x = x[:, self.channel_index]
        cnn_side = side[:, self.cnn_cols] if len(self.cnn_cols) else None
        p = torch.stack([torch.softmax(net(x, cnn_side), dim=1) for net in self.networks]).mean(0)
        if self.rr_model is not None and self.rr_share > 0:
            p = (1 - self.rr_share) * p + self.rr_share * torch.softmax(self.rr_model(side[:, self.rr_cols]), dim=1)
        return torch.log(p.clamp_min(1e-12))


def ensemble_from_info(config: ResNetConfig, info: dict) -> EcgEnsemble:
    """An empty ensemble shaped as a checkpoint's info['ensemble'] describes (weights loaded after)."""
    e = info["ensemble"]
    return EcgEnsemble(config, members=int(e["members"]), cnn_features=e["cnn_features"],
                       rr_model_features=e["rr_model_features"], rr_share=float(e["rr_share"]),
                       channels=tuple(e.get("channels", (0, 1))))
