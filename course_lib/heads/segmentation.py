"""The segmentation head: one class for every pixel (语义分割).

Each input level is projected to ``width`` channels by a 1x1 conv, upsampled
to the finest level and summed (a light "semantic FPN" fusion); two 3x3 convs
and a 1x1 classifier give per-cell logits, and bilinear upsampling by the
finest stride gives logits for every image pixel.  Class 0 is the background.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import Conv
from ..contract import FeatureSpec, Head, select_inputs
from . import HEADS


@HEADS.register("segmentation")
class SegmentationHead(Head):
    """Fuse the levels, upsample, classify every pixel: ``(B, K, H, W)`` logits at image size.

    ``num_classes`` counts the background (ShapesWorld with 3 shapes: 4).
    """

    name = "segmentation"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], num_classes: int = 4, in_keys: Sequence[str] | None = None,
                 width: int = 48, class_names: Sequence[str] | None = None):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        picked = select_inputs("head 'segmentation'", in_specs, in_keys)
        self.in_keys = tuple(picked)
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be at least 2, got {num_classes}")
        self.levels = list(picked)
        self.strides = [int(s.stride) for s in picked.values()]
        self.out_stride = min(self.strides)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else \
            ["background"] + [f"class {i}" for i in range(1, num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names given for {num_classes} classes")
        self.lateral = nn.ModuleDict((lv, Conv(spec.channels, width, 1)) for lv, spec in picked.items())
        self.fuse = nn.Sequential(Conv(width, width, 3), Conv(width, width, 3))
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        finest = self.levels[self.strides.index(self.out_stride)]
        size = feats[finest].shape[-2:]
        x = None
        for lv, lat in self.lateral.items():
            y = lat(feats[lv])
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            x = y if x is None else x + y
        logits = self.classifier(self.fuse(x))
        return F.interpolate(logits, scale_factor=self.out_stride, mode="bilinear", align_corners=False)

    def loss(self, logits: torch.Tensor, targets) -> torch.Tensor:
        """Per-pixel cross-entropy; ``targets`` is a ``(B, H, W)`` class map or a list of dicts with ``semantic``."""
        sem = self._semantic(targets, logits)
        return F.cross_entropy(logits, sem)

    @staticmethod
    def _semantic(targets, logits: torch.Tensor) -> torch.Tensor:
        if isinstance(targets, torch.Tensor):
            sem = targets
        else:
            sem = torch.stack([t["semantic"] for t in targets])
        sem = sem.to(logits.device).long()
        if sem.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f"the target mask is {tuple(sem.shape[-2:])} but the logits are "
                             f"{tuple(logits.shape[-2:])}: the image size must be a multiple of the coarsest stride")
        return sem

    @torch.no_grad()
    def decode(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Logits -> per image an ``(H, W)`` map of class indices (0 = background)."""
        return list(logits.argmax(1))
