"""``tiny_cnn``: a small from-scratch backbone for the synthetic ShapesWorld (≈0.46 M parameters).

Five stages, each halving the resolution with a strided 3x3 :class:`~course_lib.blocks.Conv`;
the deeper three add a residual :class:`~course_lib.blocks.Bottleneck`.  It trains in
seconds on a CPU, which is what lessons 06-08 need; it has no ImageNet weights.

=====  ======  ========
stage  stride  channels
=====  ======  ========
C1     2       16
C2     4       32
C3     8       64
C4     16      96
C5     32      128
=====  ======  ========
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ..blocks import Bottleneck, Conv
from ..contract import FeatureSpec
from . import BACKBONES
from .torchvision_backbones import ALL_LEVELS, StagedBackbone

TINY_WIDTHS = (16, 32, 64, 96, 128)


@BACKBONES.register("tiny_cnn")
def tiny_cnn(pretrained: bool = False, levels: Sequence[str] = ("C3", "C4", "C5"),
             widths: Sequence[int] = TINY_WIDTHS) -> StagedBackbone:
    """A 5-stage CNN (Conv s2 + residual bottleneck per stage); outputs ``levels`` (default C3..C5)."""
    if pretrained:
        raise ValueError(
            "tiny_cnn has no ImageNet weights: it is trained from scratch on ShapesWorld. "
            "Use pretrained=False, or load a trained course checkpoint with course_lib.training.load_trained(name)."
        )
    if len(widths) != 5:
        raise ValueError(f"tiny_cnn needs 5 stage widths (C1..C5), got {list(widths)}")
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    c_prev = 3
    for i, (lv, c) in enumerate(zip(ALL_LEVELS, widths)):
        layers = [Conv(c_prev, c, 3, 2)]
        if i >= 2:
            layers.append(Bottleneck(c, c, shortcut=True, e=0.5))
        stages[lv] = nn.Sequential(*layers)
        c_prev = c
    specs = {lv: FeatureSpec(c, 2 ** (i + 1)) for i, (lv, c) in enumerate(zip(ALL_LEVELS, widths))}
    return StagedBackbone("tiny_cnn", stages, specs, levels, normalize=False, pretrained=False)


@BACKBONES.register("mobilenet_v2_320")
def mobilenet_v2_320(pretrained: bool = False, levels: Sequence[str] = ("C3", "C4", "C5"),
                     download: bool | None = None) -> StagedBackbone:
    """MobileNetV2 with C5 = ``features[17]`` (320 ch) instead of the final 1x1 conv to 1280 ch.

    The last layer of MobileNetV2 only widens 320 -> 1280 channels for the ImageNet
    classifier; a detector's neck does not need it, and dropping it saves 410k
    parameters and a quarter of the C5 compute.  Same ImageNet weights otherwise.
    """
    from .torchvision_backbones import mobilenet_v2

    bb = mobilenet_v2(pretrained=pretrained, levels=levels, download=download)
    if "C5" in bb.stages:
        bb.stages["C5"] = bb.stages["C5"][:4]  # features[14:18]: drop features[18] (320 -> 1280)
        bb.out_specs["C5"] = FeatureSpec(320, 32)
    bb.name = "mobilenet_v2_320"
    return bb
