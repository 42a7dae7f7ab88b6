"""FPN, the feature pyramid network (特征金字塔网络; Lin et al. 2017).

Deep maps know *what* is in the image but see it coarsely; shallow maps see
sharply but understand little.  FPN gives every level both:

1. **lateral** (横向连接): a 1x1 conv brings each backbone map ``C_i`` to one
   common width (256 in the paper);
2. **top-down** (自顶向下): starting from the deepest map, upsample 2x (nearest)
   and *add* to the next finer lateral;
3. **smoothing**: a 3x3 conv on each sum gives the output ``P_i``.

Optionally one extra, coarser level ``P6`` is made from ``P5`` (``extra="maxpool"``,
a stride-2 subsample as in the paper's RPN, or ``extra="conv"``, a 3x3 stride-2
conv as in RetinaNet).

The paper builds P2-P5 (``in_keys=("C2", "C3", "C4", "C5")``); the default here
is C3-C5, the levels one-stage detectors such as RetinaNet and YOLO read.

With the same weights the output equals ``torchvision.ops.FeaturePyramidNetwork``'s
(see :meth:`FPN.copy_from_torchvision`).  The ``lateral`` and ``top_down``
switches reproduce the paper's ablations: top-down off is the plain
"bottom-up pyramid" (each ``P_i`` is its own smoothed lateral), lateral off is
the "top-down without lateral connections" variant (the deepest lateral stays:
it is the entrance of the top-down path).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..contract import FeatureSpec, Neck
from . import NECKS
from .paths import Switchable, level_name

EXTRAS = (None, "maxpool", "conv")


@NECKS.register("fpn")
class FPN(Switchable, Neck):
    """Feature pyramid: 1x1 laterals, nearest 2x upsample + add top-down, 3x3 smoothing.

    ``in_keys`` are the backbone maps to fuse, fine to coarse; each output is
    named after its input (``C3`` -> ``P3``) and keeps its stride, with
    ``out_channels`` channels.  ``lateral`` / ``top_down`` switch a path off
    (it then carries zeros; see :mod:`course_lib.necks.paths`).
    """

    name = "fpn"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None = ("C3", "C4", "C5"),
                 out_channels: int = 256, extra: str | None = None, lateral: bool = True, top_down: bool = True):
        super().__init__()
        if extra not in EXTRAS:
            raise ValueError(f"extra must be one of {EXTRAS}, got {extra!r}")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive int, got {out_channels!r}")
        who = f"neck {self.name!r}"
        picked = self._take_pyramid(who, in_specs, in_keys)
        self.out_channels = out_channels
        self.extra = extra
        self.lateral = nn.ModuleList(nn.Conv2d(s.channels, out_channels, 1) for s in picked.values())
        self.smooth = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in picked)
        self.extra_conv = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1) if extra == "conv" else None
        for m in self.modules():  # the initialisation torchvision uses
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)
        specs = OrderedDict((o, FeatureSpec(out_channels, s.stride)) for o, s in zip(self.out_keys, picked.values()))
        if extra is not None:
            top = list(picked.values())[-1].stride * 2
            specs[level_name("", FeatureSpec(out_channels, top))] = FeatureSpec(out_channels, top)
        self._init_paths(("lateral", "top_down"), specs, lateral=lateral, top_down=top_down)

    def pyramid(self, feats: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """The FPN levels ``[P_fine, ..., P_coarse]`` (no extra level), recording every step."""
        self.last_intermediates = OrderedDict()
        xs = [feats[k] for k in self.in_keys]
        n = len(xs)
        inner: list[torch.Tensor | None] = [None] * n
        top = self.out_keys[-1]
        inner[-1] = self._record(f"{top} lateral", self.lateral[-1](xs[-1]))
        for i in range(n - 2, -1, -1):
            name = self.out_keys[i]
            lat, down, zeros = self._top_down_step(name, xs[i], self.lateral[i], inner[i + 1])
            merged = (lat if lat is not None else zeros) + (down if down is not None else 0)
            inner[i] = self._record(f"{name} merged", merged)
        outs = [self._record(f"{k} smoothed", s(t)) for k, s, t in zip(self.out_keys, self.smooth, inner)]
        return outs

    def _extra_level(self, top: torch.Tensor) -> torch.Tensor:
        if self.extra == "maxpool":
            return F.max_pool2d(top, kernel_size=1, stride=2, padding=0)
        return self.extra_conv(top)

    def _pack(self, outs: list[torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        res = OrderedDict(zip(self.out_keys, outs))
        if self.extra is not None:
            name = list(self.out_specs)[-1]
            res[name] = self._record(f"{name} extra", self._extra_level(outs[-1]))
        return res

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        return self._pack(self.pyramid(feats))

    @torch.no_grad()
    def copy_from_torchvision(self, tv_fpn: nn.Module) -> FPN:
        """Load the weights of a ``torchvision.ops.FeaturePyramidNetwork`` with the same widths.

        torchvision calls the laterals ``inner_blocks`` and the smoothing convs
        ``layer_blocks``; the arithmetic is the same, so the outputs match.
        """
        inner, layer = tv_fpn.inner_blocks, tv_fpn.layer_blocks
        if len(inner) != len(self.lateral):
            raise ValueError(f"torchvision FPN has {len(inner)} levels, this FPN has {len(self.lateral)}")
        for mine, theirs in [*zip(self.lateral, inner), *zip(self.smooth, layer)]:
            conv = theirs[0] if isinstance(theirs, nn.Sequential) else theirs
            if conv.weight.shape != mine.weight.shape or len(theirs) > 1:
                raise ValueError(f"cannot copy {tuple(conv.weight.shape)} (with norm layers: {len(theirs) > 1}) "
                                 f"into {tuple(mine.weight.shape)}; build both with the same channels and no norm")
            mine.weight.copy_(conv.weight)
            mine.bias.copy_(conv.bias)
        return self
