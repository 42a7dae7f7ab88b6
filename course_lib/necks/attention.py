"""Attention necks (注意力机制): let the features re-weight themselves.

* **SE** (squeeze-and-excitation, Hu et al. 2018): squeeze each channel to one
  number (global average), pass the vector through a small MLP (C -> C/r -> C),
  sigmoid, and scale each channel by its weight -- *which* channels matter.
* **CBAM** (Woo et al. 2018): channel attention first (average- and max-pooled
  vectors through one shared MLP, r=16, summed, sigmoid), then spatial
  attention (空间注意力): the channel-wise max and mean of the map, stacked as two
  channels -> 7x7 conv -> sigmoid -- *where* to look.
  ``spatial="pointwise"`` swaps in YOLOv4's "modified SAM": a point-wise 1x1
  conv -> sigmoid, one weight per cell *and* channel, no pooling.

Both wrap every input map by default (``in_keys=None``; each map gets its own
module) and keep the channels.  The attention maps of the last forward pass
are kept in ``neck.last_attention[level][kind]`` for display:
``"channel"`` is ``(B, C)``, ``"spatial"`` is ``(B, 1, H, W)`` (``(B, C, H, W)``
for the point-wise kind).  Switching a path off makes its weights all 1.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..contract import FeatureSpec, Neck, select_inputs
from . import NECKS
from .paths import Switchable, level_name


class SEBlock(nn.Module):
    """Squeeze (global average) -> 1x1 conv C->C/r -> ReLU -> 1x1 conv C/r->C -> sigmoid: one weight per channel."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights ``(B, C, 1, 1)`` in (0, 1)."""
        return torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


class ChannelAttention(nn.Module):
    """CBAM's channel attention: average- and max-pooled vectors through one shared MLP, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM's spatial attention: [max over channels, mean over channels] -> 7x7 conv -> sigmoid, ``(B, 1, H, W)``."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the map keeps its size, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    @staticmethod
    def describe(x: torch.Tensor) -> torch.Tensor:
        """The two maps the 7x7 conv reads: channel-wise max and mean, ``(B, 2, H, W)``."""
        return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(self.describe(x)))


class PointwiseSpatialAttention(nn.Module):
    """YOLOv4's "modified SAM": 1x1 conv C->C -> sigmoid, a weight for every cell and channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


class _AttentionNeck(Switchable, Neck):
    """Base: one attention module per chosen map; outputs renamed ``C_i`` -> ``P_i``, channels kept."""

    def _pick(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None) -> OrderedDict:
        self.in_specs = OrderedDict(in_specs)
        if in_keys is None:
            in_keys = [k for k, s in self.in_specs.items() if s.stride is not None] or None
        picked = select_inputs(f"neck {self.name!r}", in_specs, in_keys)
        self.in_keys = tuple(picked)
        self.out_keys = tuple(level_name(k, s) for k, s in picked.items())
        self.last_attention: dict[str, dict[str, torch.Tensor]] = {}
        return picked


@NECKS.register("se")
class SENeck(_AttentionNeck):
    """Squeeze-and-excitation on each chosen map (``in_keys=None``: every spatial map); path ``excite``."""

    name = "se"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None = None, reduction: int = 16,
                 excite: bool = True):
        super().__init__()
        picked = self._pick(in_specs, in_keys)
        self.se = nn.ModuleList(SEBlock(s.channels, reduction) for s in picked.values())
        specs = OrderedDict((o, s) for o, s in zip(self.out_keys, picked.values()))
        self._init_paths(("excite",), specs, excite=excite)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        self.last_intermediates, self.last_attention, out = OrderedDict(), {}, OrderedDict()
        for k, o, se in zip(self.in_keys, self.out_keys, self.se):
            x = feats[k]
            w = se(x) if self.paths["excite"] else x.new_ones(x.shape[0], x.shape[1], 1, 1)
            self.last_attention[o] = {"channel": w.detach().flatten(1)}
            out[o] = self._record(o, x * w)
        return out


@NECKS.register("cbam")
class CBAMNeck(_AttentionNeck):
    """CBAM on each chosen map: channel attention, then spatial attention; paths ``channel`` and ``spatial``."""

    name = "cbam"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None = None, reduction: int = 16,
                 kernel_size: int = 7, spatial_kind: str = "cbam", channel: bool = True, spatial: bool = True):
        super().__init__()
        if spatial_kind not in ("cbam", "pointwise"):
            raise ValueError(f"spatial_kind must be 'cbam' (7x7 on max+mean) or 'pointwise' (YOLOv4 SAM), "
                             f"got {spatial_kind!r}")
        picked = self._pick(in_specs, in_keys)
        self.spatial_kind = spatial_kind
        self.channel_att = nn.ModuleList(ChannelAttention(s.channels, reduction) for s in picked.values())
        self.spatial_att = nn.ModuleList(
            SpatialAttention(kernel_size) if spatial_kind == "cbam" else PointwiseSpatialAttention(s.channels)
            for s in picked.values())
        specs = OrderedDict((o, s) for o, s in zip(self.out_keys, picked.values()))
        self._init_paths(("channel", "spatial"), specs, channel=channel, spatial=spatial)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        self.last_intermediates, self.last_attention, out = OrderedDict(), {}, OrderedDict()
        for k, o, ca, sa in zip(self.in_keys, self.out_keys, self.channel_att, self.spatial_att):
            x = feats[k]
            wc = ca(x) if self.paths["channel"] else x.new_ones(x.shape[0], x.shape[1], 1, 1)
            x = self._record(f"{o} after channel", x * wc)
            if self.paths["spatial"]:
                ws = sa(x)
            else:
                ws = x.new_ones(x.shape[0], 1 if self.spatial_kind == "cbam" else x.shape[1], *x.shape[-2:])
            self.last_attention[o] = {"channel": wc.detach().flatten(1), "spatial": ws.detach()}
            out[o] = self._record(o, x * ws)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f"\nspatial attention: {self.spatial_kind}"
