"""PAN, the path aggregation network (路径聚合网络; Liu et al. 2018): FPN plus a bottom-up path.

FPN carries meaning *down* the pyramid.  But the sharp, low-level detail of
``C3`` reaches the deepest output only by climbing the whole backbone (100+
layers in a ResNet-101).  PANet adds a short **bottom-up** path (自底向上)
after the FPN: ``N3 = P3`` and ``N_{i+1} = 3x3( 3x3-stride-2(N_i) + P_{i+1} )``,
so detail climbs to the top in a handful of layers.

Two ways to fuse two maps (``fusion=``):

* ``"add"`` -- PANet / MMDetection's PAFPN: both maps have the same width and
  are added; plain convs as in FPN (:class:`PAFPN`).
* ``"concat"`` -- YOLOv8's neck: stack the maps along channels and let a C2f
  block mix them (:class:`ConcatPAN`).  Concatenation keeps both inputs apart
  until a learned conv decides how to combine them, at the price of twice the
  input channels for that conv.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..blocks import C2f, Conv
from ..contract import FeatureSpec, Neck
from . import NECKS
from .fpn import FPN
from .paths import Switchable, upsample_to

PAN_PATHS = ("lateral", "top_down", "bottom_up")


def _match(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A stride-2 conv of an odd-sized map can differ by a cell from the next level: resize (nearest) to fit."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return upsample_to(x, like)


class PAFPN(FPN):
    """FPN + bottom-up path with **addition** (PANet; MMDetection's ``PAFPN``).

    ``bottom_up=False`` returns the FPN's outputs unchanged.
    """

    name = "pan"
    fusion = "add"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None = ("C3", "C4", "C5"),
                 out_channels: int = 256, lateral: bool = True, top_down: bool = True, bottom_up: bool = True):
        super().__init__(in_specs, in_keys, out_channels, extra=None, lateral=lateral, top_down=top_down)
        c = out_channels
        self.down = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for _ in self.in_keys[1:])
        self.post = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in self.in_keys[1:])
        for m in [*self.down, *self.post]:
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.constant_(m.bias, 0)
        self._init_paths(PAN_PATHS, self.out_specs, lateral=lateral, top_down=top_down, bottom_up=bottom_up)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        p = self.pyramid(feats)
        if not self.paths["bottom_up"]:
            return self._pack(p)
        n = [p[0]]
        for i, (down, post) in enumerate(zip(self.down, self.post)):
            name = self.out_keys[i + 1]
            climb = self._record(f"{name} bottom-up", _match(down(n[-1]), p[i + 1]))
            n.append(self._record(f"{name} aggregated", post(climb + p[i + 1])))
        return self._pack(n)

    def extra_repr(self) -> str:
        return super().extra_repr() + f"\nfusion: {self.fusion}"


class ConcatPAN(Switchable, Neck):
    """FPN + PAN with **concatenation** and C2f blocks, the way YOLOv8's neck fuses.

    Each input first gets a 1x1 Conv-BN-SiLU to ``out_channels`` (the lateral),
    then::

        top-down   T5 = L5;   T_i = C2f(concat(up(T_{i+1}), L_i))
        bottom-up  N3 = T3;   N_{i+1} = C2f(concat(Conv3x3 s2(N_i), T_{i+1}))

    A switched-off path feeds zeros into its half of the concatenation, so the
    C2f blocks keep their weights and shapes.
    """

    name = "pan"
    fusion = "concat"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None = ("C3", "C4", "C5"),
                 out_channels: int = 256, n: int = 1, lateral: bool = True, top_down: bool = True,
                 bottom_up: bool = True):
        super().__init__()
        if not isinstance(out_channels, int) or out_channels < 2:
            raise ValueError(f"out_channels must be an int >= 2, got {out_channels!r}")
        who = f"neck {self.name!r} (concat)"
        picked = self._take_pyramid(who, in_specs, in_keys)
        self.out_channels = c = out_channels
        self.lateral = nn.ModuleList(Conv(s.channels, c, 1) for s in picked.values())
        self.td_blocks = nn.ModuleList(C2f(2 * c, c, n) for _ in self.in_keys[:-1])
        self.down = nn.ModuleList(Conv(c, c, 3, 2) for _ in self.in_keys[:-1])
        self.bu_blocks = nn.ModuleList(C2f(2 * c, c, n) for _ in self.in_keys[:-1])
        specs = OrderedDict((o, FeatureSpec(c, s.stride)) for o, s in zip(self.out_keys, picked.values()))
        self._init_paths(PAN_PATHS, specs, lateral=lateral, top_down=top_down, bottom_up=bottom_up)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        self.last_intermediates = OrderedDict()
        xs = [feats[k] for k in self.in_keys]
        n = len(xs)
        top = self.out_keys[-1]
        t: list[torch.Tensor | None] = [None] * n
        t[-1] = self._record(f"{top} lateral", self.lateral[-1](xs[-1]))
        for i in range(n - 2, -1, -1):
            name = self.out_keys[i]
            lat, down, zeros = self._top_down_step(name, xs[i], self.lateral[i], t[i + 1])
            both = torch.cat([down if down is not None else zeros, lat if lat is not None else zeros], dim=1)
            self._record(f"{name} concat", both)
            t[i] = self._record(f"{name} fused", self.td_blocks[i](both))
        outs = [t[0]]
        for i in range(n - 1):
            name = self.out_keys[i + 1]
            if not self.paths["bottom_up"]:
                outs.append(t[i + 1])
                continue
            climb = self._record(f"{name} bottom-up", _match(self.down[i](outs[-1]), t[i + 1]))
            outs.append(self._record(f"{name} aggregated", self.bu_blocks[i](torch.cat([climb, t[i + 1]], dim=1))))
        return OrderedDict(zip(self.out_keys, outs))

    def extra_repr(self) -> str:
        return super().extra_repr() + f"\nfusion: {self.fusion}"


@NECKS.register("pan")
def build_pan(in_specs: Mapping[str, FeatureSpec], fusion: str = "add", **kw) -> nn.Module:
    """PAN with ``fusion="add"`` (PANet, :class:`PAFPN`) or ``"concat"`` (YOLOv8-style, :class:`ConcatPAN`)."""
    if fusion == "add":
        return PAFPN(in_specs, **kw)
    if fusion == "concat":
        return ConcatPAN(in_specs, **kw)
    raise ValueError(f"fusion must be 'add' (PANet) or 'concat' (YOLOv8), got {fusion!r}")
