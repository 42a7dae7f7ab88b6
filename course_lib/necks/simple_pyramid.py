"""ViTDet's simple feature pyramid (简单特征金字塔; Li et al. 2022, "Exploring Plain Vision Transformer
Backbones for Object Detection").

A plain ViT gives one map, at stride 16.  A detector wants several strides (small objects on fine maps,
large ones on coarse maps).  FPN builds its pyramid from a backbone that already has one; ViTDet found it
is enough to build the pyramid *from the last map alone*, with no top-down path and no lateral
connections:

======  ==========  ===============================================================
level   stride      from the stride-16 map
======  ==========  ===============================================================
P2      4           two 2x2 stride-2 deconvolutions (width /2 each), LayerNorm + GELU between
P3      8           one 2x2 stride-2 deconvolution (width /2)
P4      16          the map itself
P5      32          2x2 max-pool, stride 2
P6      64          (optional) P5's output subsampled by a stride-2 max-pool, kernel 1 (the "top block")
======  ==========  ===============================================================

then, on every level, a 1x1 conv to ``out_channels`` and a 3x3 conv, each followed by a norm
(LayerNorm over the channels in the paper, ``norm="ln"``).  The default levels are P3..P5 (the ones the
course's detection head reads); ``levels=("P2", ..., "P6")`` gives the paper's full set.  Any input
stride works: the number of deconvolutions or pools follows from it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..contract import ContractError, FeatureSpec, Neck, select_inputs
from . import NECKS

NORMS = ("ln", "bn", None)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each cell of a ``(B, C, H, W)`` map (the transformer's norm, on a map)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


def _norm(kind: str | None, c: int) -> nn.Module:
    if kind == "ln":
        return LayerNorm2d(c)
    if kind == "bn":
        return nn.BatchNorm2d(c)
    return nn.Identity()


def _conv_norm(c_in: int, c_out: int, k: int, norm: str | None) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=norm is None), _norm(norm, c_out))


class _Pool2(nn.Module):
    """2x2 max-pool, stride 2; an odd side keeps its last cell (``ceil``), as a stride-2 conv would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


def _level(name: str) -> int:
    if not (name.startswith("P") and name[1:].isdigit()):
        raise ValueError(f"pyramid levels are named P<k> (stride 2**k), got {name!r}")
    return int(name[1:])


def default_input(consumer: str, in_specs: Mapping[str, FeatureSpec]) -> str:
    """The map a one-input pyramid reads when none is named: the stride-16 one, else the only spatial one."""
    spatial = [k for k, s in in_specs.items() if s.stride is not None]
    at16 = [k for k in spatial if in_specs[k].stride == 16]
    if at16:
        return at16[-1]
    if len(spatial) == 1:
        return spatial[0]
    raise ContractError(consumer, "one map at stride 16 (or exactly one spatial map; else name it with in_keys=[...])",
                        in_specs)


@NECKS.register("simple_pyramid")
class SimplePyramid(Neck):
    """One map in (default: the stride-16 one), ``levels`` out (default P3, P4, P5), ``out_channels`` each.

    ``norm`` is ``"ln"`` (the paper), ``"bn"`` or ``None`` (convs with biases, no norm).
    """

    name = "simple_pyramid"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | str | None = None,
                 out_channels: int = 256, levels: Sequence[str] = ("P3", "P4", "P5"), norm: str | None = "ln"):
        super().__init__()
        who = f"neck {self.name!r}"
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive int, got {out_channels!r}")
        self.in_specs = OrderedDict(in_specs)
        if in_keys is None:
            key = default_input(who, in_specs)
        else:
            keys = [in_keys] if isinstance(in_keys, str) else list(in_keys)
            if len(keys) != 1:
                raise ValueError(f"{who} builds its pyramid from one map; got in_keys={keys}")
            key = keys[0]
        spec = select_inputs(who, in_specs, [key])[key]
        if 2 ** round(math.log2(spec.stride)) != spec.stride:
            raise ContractError(who, "an input whose stride is a power of two", in_specs)
        self.in_keys = (key,)
        ks = sorted(_level(lv) for lv in levels)
        if not ks or ks != list(range(ks[0], ks[0] + len(ks))):
            raise ValueError(f"levels must be consecutive, e.g. ('P3', 'P4', 'P5'); got {list(levels)}")
        k_in = round(math.log2(spec.stride))
        self.levels = tuple(f"P{k}" for k in ks)
        self.norm = norm
        self.scale = nn.ModuleDict()   # the resampling of the input map, per level (None: the top block)
        self.top: list[str] = []       # levels made from the level below's output (ViTDet's P6)
        self.convs = nn.ModuleDict()
        c = spec.channels
        for k in ks:
            lv = f"P{k}"
            if k < k_in:                                   # up: one stride-2 deconv per halving
                layers: list[nn.Module] = []
                width = c
                for i in range(k_in - k):
                    if i:
                        layers += [_norm(norm, width), nn.GELU()]
                    layers.append(nn.ConvTranspose2d(width, max(1, width // 2), 2, stride=2))
                    width = max(1, width // 2)
                self.scale[lv], c_lv = nn.Sequential(*layers), width
            elif k == k_in:
                self.scale[lv], c_lv = nn.Identity(), c
            elif k == k_in + 1:
                self.scale[lv], c_lv = _Pool2(), c
            else:                                          # beyond /2: subsample the level below's output
                if k - 1 not in ks or k - 1 <= k_in:
                    raise ValueError(f"{lv} is made from P{k - 1}'s output: ask for P{k - 1} too")
                self.top.append(lv)
                continue
            self.convs[lv] = nn.Sequential(_conv_norm(c_lv, out_channels, 1, norm),
                                           _conv_norm(out_channels, out_channels, 3, norm))
        self.out_channels = out_channels
        self.out_specs = OrderedDict((f"P{k}", FeatureSpec(out_channels, 2 ** k)) for k in ks)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        x = feats[self.in_keys[0]]
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for lv in self.levels:
            if lv in self.top:
                below = out[f"P{_level(lv) - 1}"]
                out[lv] = F.max_pool2d(below, kernel_size=1, stride=2)
            else:
                out[lv] = self.convs[lv](self.scale[lv](x))
        return out
