"""Pooling necks on one map: SPP, SPPF (YOLO) and ASPP (DeepLab v3).

* **SPP, YOLO style** (空间金字塔池化): 1x1 conv to half width, then stride-1 max-pools
  of 5, 9 and 13 side by side, concatenated with their input, then a 1x1 conv.
  The map keeps its size; every cell now also knows the strongest response in
  windows up to 13 cells wide.  (SPP-net, He et al. 2014, is a *different*
  operation: it pools any map to fixed-length bins, e.g. 1x1 + 2x2 + 4x4.)
* **SPPF**: the same output from one 5x5 pool applied three times in a chain,
  because max over a 5x5 window of 5x5 maxima is the max over 9x9, and once
  more over 13x13.  Fewer comparisons, same numbers.
* **ASPP** (空洞空间金字塔池化, DeepLab v3): a 1x1 conv, three 3x3 convs with
  dilation 6/12/18 at output stride 16 (rates double at stride 8), and an
  image-pooling branch, concatenated and projected by a 1x1 conv.  A dilated
  3x3 conv reads 9 cells ``rate`` cells apart: a wide view at the cost of 9
  weights.

All three work on one map (``in_keys``, by default the deepest; ASPP prefers the
stride-16 map) and name their output after it (``C5`` -> ``P5``).  With
``keep_others=True`` the other spatial maps pass through unchanged (renamed
likewise).  Every branch is a switchable path (off = zeros in the concat).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import SPP, SPPF
from ..contract import FeatureSpec, Neck, one_input
from . import NECKS
from .paths import Switchable, level_name, zeros_like


def spp_net_pool(x: torch.Tensor, bins: Sequence[int] = (1, 2, 4)) -> torch.Tensor:
    """SPP-net's original pooling: max-pool to ``b x b`` bins for each ``b`` and flatten.

    Any ``(B, C, H, W)`` gives ``(B, C * sum(b*b))`` -- a fixed length whatever the
    image size, which is what SPP-net was for (and not what YOLO's "SPP" does).
    """
    return torch.cat([F.adaptive_max_pool2d(x, b).flatten(1) for b in bins], dim=1)


class OneMapNeck(Switchable, Neck):
    """Base for necks that transform one chosen map (and may pass the others through)."""

    def _pick(self, in_specs: Mapping[str, FeatureSpec], in_keys: str | Sequence[str] | None, keep_others: bool,
              prefer_stride: int | None = None) -> FeatureSpec:
        self.in_specs = OrderedDict(in_specs)
        spatial = [k for k, s in self.in_specs.items() if s.stride is not None]
        preferred = [k for k in spatial if self.in_specs[k].stride == prefer_stride]
        default = preferred[0] if preferred else (spatial[-1] if spatial else "a spatial feature map")
        key, spec = one_input(f"neck {self.name!r}", in_specs, in_keys, default)
        self.in_keys = (key,)
        self.out_key = level_name(key, spec)
        self.keep_others = bool(keep_others)
        self._passed = [k for k in spatial if k != key] if keep_others else []
        return spec

    def _specs(self, out_channels: int) -> OrderedDict[str, FeatureSpec]:
        specs = OrderedDict()
        for k, s in self.in_specs.items():
            if k == self.in_keys[0]:
                specs[self.out_key] = FeatureSpec(out_channels, s.stride)
            elif k in self._passed:
                specs[level_name(k, s)] = s
        return specs

    def _pack(self, feats: Mapping[str, torch.Tensor], y: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        out = OrderedDict()
        for k, s in self.in_specs.items():
            if k == self.in_keys[0]:
                out[self.out_key] = y
            elif k in self._passed:
                out[level_name(k, s)] = feats[k]
        return out


class _MaxPoolPyramid(OneMapNeck):
    """Shared forward of SPP and SPPF: ``cv1`` -> pooled chunks -> concat (paths) -> ``cv2``."""

    block: nn.Module

    def _pooled(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - both override
        raise NotImplementedError

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        self.last_intermediates = OrderedDict()
        x = self.block.cv1(feats[self.in_keys[0]])
        chunks = [x, *self._pooled(x)]
        for name, c in zip(self.paths, chunks):
            self._record(f"{self.out_key} {name}", c)
        cat = torch.cat([c if self.paths[name] else zeros_like(c) for name, c in zip(self.paths, chunks)], dim=1)
        y = self._record(f"{self.out_key} out", self.block.cv2(cat))
        return self._pack(feats, y)


@NECKS.register("spp")
class SPPNeck(_MaxPoolPyramid):
    """YOLO's SPP on one map: parallel stride-1 max-pools (5, 9, 13), concatenated (size kept)."""

    name = "spp"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: str | Sequence[str] | None = None, out_channels: int | None = None,
                 ks: Sequence[int] = (5, 9, 13), keep_others: bool = False, **paths: bool):
        super().__init__()
        spec = self._pick(in_specs, in_keys, keep_others)
        if any(k % 2 == 0 or k < 1 for k in ks):
            raise ValueError(f"pool sizes must be odd positive ints (the map size is kept), got {tuple(ks)}")
        out = out_channels or spec.channels
        self.block = SPP(spec.channels, out, ks)
        self._init_paths(("identity", *[f"max{k}" for k in ks]), self._specs(out), **paths)

    def _pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [m(x) for m in self.block.m]


@NECKS.register("sppf")
class SPPFNeck(_MaxPoolPyramid):
    """SPP-Fast on one map: one ``k x k`` pool three times in a chain (k=5 gives windows 5, 9, 13)."""

    name = "sppf"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: str | Sequence[str] | None = None, out_channels: int | None = None,
                 k: int = 5, keep_others: bool = False, **paths: bool):
        super().__init__()
        spec = self._pick(in_specs, in_keys, keep_others)
        if k % 2 == 0 or k < 1:
            raise ValueError(f"pool size k must be an odd positive int, got {k}")
        out = out_channels or spec.channels
        self.block = SPPF(spec.channels, out, k)
        windows = [k, 2 * k - 1, 3 * k - 2]  # what one, two and three chained k x k pools see
        self._init_paths(("identity", *[f"max{w}" for w in windows]), self._specs(out), **paths)

    def _pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        ys = [x]
        for _ in range(3):
            ys.append(self.block.m(ys[-1]))
        return ys[1:]


def _conv_bn_relu(c_in: int, c_out: int, k: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=dilation * (k - 1) // 2, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ImagePooling(nn.Sequential):
    """ASPP's image-level branch: global average pool -> 1x1 conv -> BN -> ReLU -> spread over the map."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).expand(-1, -1, *x.shape[-2:])


def default_rates(stride: int) -> tuple[int, ...]:
    """DeepLab v3's rates (6, 12, 18) at output stride 16, scaled to another stride (12, 24, 36 at 8)."""
    return tuple(max(1, round(r * 16 / stride)) for r in (6, 12, 18))


@NECKS.register("aspp")
class ASPP(OneMapNeck):
    """Atrous spatial pyramid pooling (DeepLab v3) on one map.

    Branches: 1x1 conv, one 3x3 conv per dilation ``rate``, image pooling; each
    Conv-BN-ReLU with ``out_channels``.  They are concatenated and a 1x1
    Conv-BN-ReLU projects them back to ``out_channels``.  ``rates=None`` uses
    :func:`default_rates` for the chosen map's stride.
    """

    name = "aspp"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: str | Sequence[str] | None = None, out_channels: int = 256,
                 rates: Sequence[int] | None = None, keep_others: bool = False, **paths: bool):
        super().__init__()
        spec = self._pick(in_specs, in_keys, keep_others, prefer_stride=16)
        self.rates = tuple(rates) if rates is not None else default_rates(spec.stride)
        if not self.rates or any(not isinstance(r, int) or r < 1 for r in self.rates):
            raise ValueError(f"rates must be positive ints, got {rates!r}")
        if len(set(self.rates)) != len(self.rates):
            raise ValueError(f"rates must be different from each other, got {self.rates}")
        c, o = spec.channels, out_channels
        self.branches = nn.ModuleList([_conv_bn_relu(c, o, 1), *[_conv_bn_relu(c, o, 3, r) for r in self.rates],
                                       ImagePooling(c, o)])
        self.project = _conv_bn_relu(o * len(self.branches), o, 1)
        names = ("conv1x1", *[f"rate{r}" for r in self.rates], "image_pool")
        self._init_paths(names, self._specs(o), **paths)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        self.last_intermediates = OrderedDict()
        x = feats[self.in_keys[0]]
        outs = []
        for name, branch in zip(self.paths, self.branches):
            y = self._record(f"{self.out_key} {name}", branch(x))
            outs.append(y if self.paths[name] else zeros_like(y))
        y = self._record(f"{self.out_key} out", self.project(torch.cat(outs, dim=1)))
        return self._pack(feats, y)

    def extra_repr(self) -> str:
        return super().extra_repr() + f"\nrates: {self.rates} on a /{self.in_specs[self.in_keys[0]].stride} map"
