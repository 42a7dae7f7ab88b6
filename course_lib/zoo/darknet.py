"""Darknet-53, YOLOv3's backbone, rebuilt from the YOLOv3 paper's table ("darknet53").

Redmon & Farhadi, *YOLOv3: An Incremental Improvement* (2018), Table 1:

=====  ==========================================  ==========  ======
stage  layers                                      output      blocks
=====  ==========================================  ==========  ======
C1     Conv 3x3 32; Conv 3x3 64 stride 2; 1 block  64 /2       1
C2     Conv 3x3 128 stride 2; blocks               128 /4      2
C3     Conv 3x3 256 stride 2; blocks               256 /8      8
C4     Conv 3x3 512 stride 2; blocks               512 /16     8
C5     Conv 3x3 1024 stride 2; blocks              1024 /32    4
=====  ==========================================  ==========  ======

A residual block is a 1x1 Conv down to half the channels, a 3x3 Conv back up,
plus the block's input.  Every Conv is Conv2d (no bias) + BatchNorm +
LeakyReLU(0.1): 52 convolutions, and the paper's 53rd layer is the ImageNet
classifier (global average pooling + a 1000-way fully connected layer), which
this backbone leaves out.

Counted with :func:`course_lib.measure.count_params` (conv weights plus the
BatchNorm scale and shift; the running statistics are buffers, not
parameters) the backbone has :data:`BACKBONE_PARAMS` = 40,584,928 parameters;
adding the classifier's 1024 x 1000 weights and 1000 biases gives 41,609,928,
the "about 41.6 M" usually quoted for the Darknet-53 classifier network.
No pretrained weights ship for it: it is here to be counted and compared.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ..backbones import BACKBONES
from ..backbones.torchvision_backbones import DEFAULT_LEVELS, StagedBackbone
from ..contract import FeatureSpec

#: Residual blocks per stage and the stage widths (YOLOv3 paper, Table 1).
BLOCKS = (1, 2, 8, 8, 4)
WIDTHS = (64, 128, 256, 512, 1024)

#: Parameters of the backbone as built here (no classifier), and of the 1000-class classifier on top of it.
BACKBONE_PARAMS = 40_584_928
CLASSIFIER_PARAMS = 1024 * 1000 + 1000


class DarkConv(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> LeakyReLU(0.1): Darknet's one layer type."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.1, inplace=True),
        )


class DarkResidual(nn.Module):
    """1x1 DarkConv to half the channels, 3x3 DarkConv back, plus the input."""

    def __init__(self, c: int):
        super().__init__()
        self.reduce = DarkConv(c, c // 2, 1)
        self.expand = DarkConv(c // 2, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.reduce(x))


def darknet53_stages() -> OrderedDict[str, nn.Sequential]:
    """The five stages C1..C5 of Darknet-53 (the stem's 3x3 32 conv opens C1)."""
    stages: OrderedDict[str, nn.Sequential] = OrderedDict()
    c_in = 32
    for i, (n, c) in enumerate(zip(BLOCKS, WIDTHS)):
        layers: list[nn.Module] = [DarkConv(3, 32, 3)] if i == 0 else []
        layers.append(DarkConv(c_in, c, 3, 2))
        layers += [DarkResidual(c) for _ in range(n)]
        stages[f"C{i + 1}"] = nn.Sequential(*layers)
        c_in = c
    return stages


@BACKBONES.register("darknet53")
def darknet53(pretrained: bool = False, levels: Sequence[str] = DEFAULT_LEVELS) -> StagedBackbone:
    """YOLOv3's Darknet-53 without its classifier: 40.6 M parameters, LeakyReLU, residual blocks."""
    if pretrained:
        raise ValueError("no pretrained weights ship for 'darknet53'; build it with pretrained=False to count it")
    specs = {f"C{i + 1}": FeatureSpec(c, 2 ** (i + 1)) for i, c in enumerate(WIDTHS)}
    return StagedBackbone("darknet53", darknet53_stages(), specs, levels, normalize=False, pretrained=False)


__all__ = ["BACKBONE_PARAMS", "BLOCKS", "CLASSIFIER_PARAMS", "WIDTHS", "DarkConv", "DarkResidual",
           "darknet53", "darknet53_stages"]
