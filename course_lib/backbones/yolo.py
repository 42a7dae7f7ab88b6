"""A YOLO-style CSP backbone built from :mod:`course_lib.blocks` ("yolo_csp").

With the defaults (``width=0.25, depth=0.33``, channels capped at
``max_channels=1024`` before scaling) it has exactly YOLOv8n's backbone, layers
0-9 of ``yolov8.yaml``:

====  =====================  ========  ==========
layer module                 output    stage
====  =====================  ========  ==========
0     Conv 3->16, 3x3, s2    16 /2     C1
1     Conv 16->32, 3x3, s2   32 /4
2     C2f(32), n=1           32 /4     C2
3     Conv 32->64, s2        64 /8
4     C2f(64), n=2           64 /8     C3 (P3)
5     Conv 64->128, s2       128 /16
6     C2f(128), n=2          128 /16   C4 (P4)
7     Conv 128->256, s2      256 /32
8     C2f(256), n=1          256 /32
9     SPPF(256, k=5)         256 /32   C5 (P5)
====  =====================  ========  ==========

Base widths are 64, 128, 256, 512, 1024 and base depths 3, 6, 6, 3: a
``width`` multiplier scales channels (rounded up to a multiple of 8), a
``depth`` multiplier scales how many bottlenecks each C2f repeats
(``max(round(n * depth), 1)``).  The backbone's C2f blocks use shortcuts.
Inputs are images in ``[0, 1]`` without ImageNet normalisation, as YOLO expects.
There are no pretrained weights for it in this course: train it, or use it to
count and compare.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..blocks import SPPF, C2f, Conv
from ..contract import FeatureSpec
from . import BACKBONES
from .torchvision_backbones import DEFAULT_LEVELS, StagedBackbone

BASE_WIDTHS = (64, 128, 256, 512, 1024)
BASE_DEPTHS = (3, 6, 6, 3)


def scale_width(c: int, width: float, max_channels: int = 1024) -> int:
    """YOLO's width rule: ``ceil(min(c, max_channels) * width / 8) * 8``."""
    return int(math.ceil(min(c, max_channels) * width / 8) * 8)


def scale_depth(n: int, depth: float) -> int:
    """YOLO's depth rule: ``max(round(n * depth), 1)`` repeats."""
    return max(round(n * depth), 1) if n > 1 else n


def yolo_layers(width: float = 0.25, depth: float = 0.33, max_channels: int = 1024) -> nn.Sequential:
    """Layers 0-9 of a YOLOv8 backbone as one ``nn.Sequential`` (index = YAML layer number)."""
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth multipliers must be positive, got width={width}, depth={depth}")
    c = [scale_width(b, width, max_channels) for b in BASE_WIDTHS]
    n = [scale_depth(d, depth) for d in BASE_DEPTHS]
    return nn.Sequential(
        Conv(3, c[0], 3, 2),                      # 0  /2
        Conv(c[0], c[1], 3, 2),                   # 1  /4
        C2f(c[1], c[1], n=n[0], shortcut=True),   # 2
        Conv(c[1], c[2], 3, 2),                   # 3  /8
        C2f(c[2], c[2], n=n[1], shortcut=True),   # 4  -> P3
        Conv(c[2], c[3], 3, 2),                   # 5  /16
        C2f(c[3], c[3], n=n[2], shortcut=True),   # 6  -> P4
        Conv(c[3], c[4], 3, 2),                   # 7  /32
        C2f(c[4], c[4], n=n[3], shortcut=True),   # 8
        SPPF(c[4], c[4], k=5),                    # 9  -> P5
    )


#: Which YAML layers make up each stage.
STAGE_LAYERS = OrderedDict(C1=(0, 1), C2=(1, 3), C3=(3, 5), C4=(5, 7), C5=(7, 10))


@BACKBONES.register("yolo_csp")
def yolo_csp(pretrained: bool = False, levels: Sequence[str] = DEFAULT_LEVELS, width: float = 0.25,
             depth: float = 0.33, max_channels: int = 1024, download: bool | None = None) -> StagedBackbone:
    """YOLOv8's CSP backbone (Conv + C2f stages + SPPF); the defaults give YOLOv8n's (about 1.27 M parameters)."""
    if pretrained:
        raise ValueError(
            "no pretrained weights ship for 'yolo_csp' (the course does not redistribute YOLO checkpoints); "
            "build it with pretrained=False and train it, or use 'mobilenet_v2' for a pretrained eye"
        )
    net = yolo_layers(width, depth, max_channels)
    stages = OrderedDict((lv, nn.Sequential(*net[a:b])) for lv, (a, b) in STAGE_LAYERS.items())
    widths = [net[0][0].out_channels, net[2].cv2[0].out_channels, net[4].cv2[0].out_channels,
              net[6].cv2[0].out_channels, net[9].cv2[0].out_channels]
    specs = {lv: FeatureSpec(c, 2 ** (i + 1)) for i, (lv, c) in enumerate(zip(STAGE_LAYERS, widths))}
    bb = StagedBackbone("yolo_csp", stages, specs, levels, normalize=False, pretrained=False)
    bb.width, bb.depth = width, depth
    return bb
