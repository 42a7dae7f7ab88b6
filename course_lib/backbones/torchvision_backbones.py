"""torchvision's classic backbones cut into stages C1..C5.

Each network is built from torchvision's own architecture (so its official
weights load key for key), then cut where the resolution halves:

=============  =====================  ==========================
stage          ResNet                 MobileNetV2 (``features``)
=============  =====================  ==========================
C1  stride 2   conv1 + bn1 + relu     [0:2]   16 ch
C2  stride 4   maxpool + layer1       [2:4]   24 ch
C3  stride 8   layer2                 [4:7]   32 ch
C4  stride 16  layer3                 [7:14]  96 ch
C5  stride 32  layer4                 [14:19] 1280 ch
=============  =====================  ==========================

VGG-11 is cut after each max-pool.  The classifier at the end of each network
is dropped here: it belongs to the head (see
:class:`course_lib.heads.ClassificationHead`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision import models as tvm

from .. import weights as W
from ..contract import Backbone, FeatureSpec, check_image_batch
from . import BACKBONES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ALL_LEVELS = ("C1", "C2", "C3", "C4", "C5")
DEFAULT_LEVELS = ("C2", "C3", "C4", "C5")


class Normalize(nn.Module):
    """``(x - mean) / std`` with ImageNet's statistics: images in [0, 1] go straight in."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class StagedBackbone(Backbone):
    """A chain of stages; returns the outputs of the stages named in ``levels``.

    ``stages`` maps a name to a module and ``specs`` gives each stage's output
    :class:`FeatureSpec`.  Stages after the deepest requested level are not
    kept, so asking only for ``("C2", "C3")`` also makes the network cheaper.
    """

    def __init__(
        self,
        name: str,
        stages: OrderedDict[str, nn.Module],
        specs: dict[str, FeatureSpec],
        levels: Sequence[str] = DEFAULT_LEVELS,
        normalize: bool = True,
        pretrained: bool = False,
    ):
        super().__init__()
        unknown = [lv for lv in levels if lv not in stages]
        if unknown or not levels:
            raise ValueError(f"backbone {name!r} has stages {', '.join(stages)}; cannot output {list(levels)}")
        self.name = name
        self.pretrained = pretrained
        self.levels = tuple(sorted(levels, key=list(stages).index))
        last = list(stages).index(self.levels[-1])
        self.normalize = Normalize() if normalize else nn.Identity()
        self.stages = nn.ModuleDict(list(stages.items())[: last + 1])
        self.out_specs = OrderedDict((lv, specs[lv]) for lv in self.levels)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        check_image_batch(x, f"backbone {self.name!r}")
        x = self.normalize(x)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, stage in self.stages.items():
            x = stage(x)
            if name in self.out_specs:
                out[name] = x
        return out


def _load(net: nn.Module, name: str, pretrained: bool, download: bool | None) -> None:
    if pretrained:
        state = W.load_state_dict(name, download=download)
        net.load_state_dict(state)  # strict: every key must match


def _resnet(name: str, ctor, widths, pretrained, levels, normalize, download) -> StagedBackbone:
    net = ctor(weights=None)
    _load(net, name, pretrained, download)
    stages = OrderedDict(
        C1=nn.Sequential(net.conv1, net.bn1, net.relu),
        C2=nn.Sequential(net.maxpool, net.layer1),
        C3=net.layer2,
        C4=net.layer3,
        C5=net.layer4,
    )
    specs = {lv: FeatureSpec(c, 2 ** (i + 1)) for i, (lv, c) in enumerate(zip(ALL_LEVELS, widths))}
    return StagedBackbone(name, stages, specs, levels, normalize, pretrained)


@BACKBONES.register("resnet18")
def resnet18(pretrained: bool = False, levels: Sequence[str] = DEFAULT_LEVELS, normalize: bool = True,
             download: bool | None = None) -> StagedBackbone:
    """ResNet-18 (basic blocks): C2..C5 have 64, 128, 256, 512 channels."""
    return _resnet("resnet18", tvm.resnet18, (64, 64, 128, 256, 512), pretrained, levels, normalize, download)


@BACKBONES.register("resnet50")
def resnet50(pretrained: bool = False, levels: Sequence[str] = DEFAULT_LEVELS, normalize: bool = True,
             download: bool | None = None) -> StagedBackbone:
    """ResNet-50 (bottleneck blocks, 1x1 -> 3x3 -> 1x1): C2..C5 have 256, 512, 1024, 2048 channels."""
    return _resnet("resnet50", tvm.resnet50, (64, 256, 512, 1024, 2048), pretrained, levels, normalize, download)


@BACKBONES.register("mobilenet_v2")
def mobilenet_v2(pretrained: bool = False, levels: Sequence[str] = DEFAULT_LEVELS, normalize: bool = True,
                 download: bool | None = None) -> StagedBackbone:
    """MobileNetV2 (inverted residuals): C2..C5 have 24, 32, 96, 1280 channels.

    Its official ImageNet weights ship offline, so ``pretrained=True`` works
    without internet.
    """
    net = tvm.mobilenet_v2(weights=None)
    _load(net, "mobilenet_v2", pretrained, download)
    f = net.features
    cuts = {"C1": (0, 2), "C2": (2, 4), "C3": (4, 7), "C4": (7, 14), "C5": (14, 19)}
    stages = OrderedDict((lv, f[a:b]) for lv, (a, b) in cuts.items())
    widths = (16, 24, 32, 96, 1280)
    specs = {lv: FeatureSpec(c, 2 ** (i + 1)) for i, (lv, c) in enumerate(zip(ALL_LEVELS, widths))}
    return StagedBackbone("mobilenet_v2", stages, specs, levels, normalize, pretrained)


@BACKBONES.register("vgg11")
def vgg11(pretrained: bool = False, levels: Sequence[str] = DEFAULT_LEVELS, normalize: bool = True,
          download: bool | None = None) -> StagedBackbone:
    """VGG-11 (plain 3x3 convs, no shortcuts): C1..C5 end at each max-pool, 64..512 channels."""
    net = tvm.vgg11(weights=None)
    _load(net, "vgg11", pretrained, download)
    pools = [i for i, m in enumerate(net.features) if isinstance(m, nn.MaxPool2d)]
    starts = [0] + [p + 1 for p in pools[:-1]]
    stages = OrderedDict((lv, net.features[a : b + 1]) for lv, a, b in zip(ALL_LEVELS, starts, pools))
    widths = (64, 128, 256, 512, 512)
    specs = {lv: FeatureSpec(c, 2 ** (i + 1)) for i, (lv, c) in enumerate(zip(ALL_LEVELS, widths))}
    return StagedBackbone("vgg11", stages, specs, levels, normalize, pretrained)
