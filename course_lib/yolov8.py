"""YOLOv8 rebuilt from course_lib blocks, wired as published, split into backbone / neck / head.

Built from the published description of ``yolov8.yaml`` (no code from the
original project is used, and it is not a dependency):

* **backbone** (YAML layers 0-9): Conv and C2f stages, **SPPF last** -- this
  is :func:`course_lib.backbones.yolo.yolo_csp`;
* **neck** (layers 10-21, filed under ``head:`` in the YAML): a PAN-FPN that
  fuses by **concatenation** -- upsample + concat + C2f top-down, then
  stride-2 Conv + concat + C2f bottom-up;
* **head** (layer 22, ``Detect``): per level two separate branches (decoupled)
  -- box: Conv 3x3, Conv 3x3, 1x1 -> 4 x ``reg_max`` (DFL bins); class: Conv
  3x3, Conv 3x3, 1x1 -> ``nc``.  Anchor-free (one anchor *point* per cell
  centre), no objectness.

At 640x640 with 80 classes the eval output is ``(1, 84, 8400)``: 4 box numbers
+ 80 class scores at 80^2 + 40^2 + 20^2 locations, from 3,157,200 parameters.
These weights are random: the model is for anatomy, not for detecting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .backbones import yolo as yolo_backbone
from .blocks import C2f, Conv
from .contract import FeatureSpec, Head, Neck, select_inputs
from .model import Model

#: depth, width, max_channels of the published scales.
SCALES = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}

#: Parameter counts published for the detection models at 80 classes.
PUBLISHED_PARAMS = {"n": 3_157_200, "s": 11_166_560, "m": 25_902_640, "l": 43_691_520, "x": 68_229_648}


class YOLOv8Neck(Neck):
    """PAN-FPN with concatenation (YAML layers 10-21).

    Top-down: upsample P5, concat with P4, C2f (12); upsample, concat with P3,
    C2f (15) = output /8.  Bottom-up: Conv 3x3 s2, concat with (12), C2f (18) =
    output /16; Conv 3x3 s2, concat with P5, C2f (21) = output /32.  The C2f
    blocks here have no shortcuts.
    """

    name = "yolov8_pan"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], depth: float = 0.33, width: float = 0.25,
                 max_channels: int = 1024, in_keys: tuple[str, str, str] = ("C3", "C4", "C5")):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        picked = select_inputs("neck 'yolov8_pan'", in_specs, in_keys)
        c3, c4, c5 = (s.channels for s in picked.values())
        s3 = picked[in_keys[0]].stride
        self.in_keys = in_keys
        w = lambda c: yolo_backbone.scale_width(c, width, max_channels)  # noqa: E731
        n = yolo_backbone.scale_depth(3, depth)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")                 # 10, 13
        self.c2f_12 = C2f(c5 + c4, w(512), n, shortcut=False)                # 12
        self.c2f_15 = C2f(w(512) + c3, w(256), n, shortcut=False)            # 15 -> P3 out
        self.down_16 = Conv(w(256), w(256), 3, 2)                            # 16
        self.c2f_18 = C2f(w(256) + w(512), w(512), n, shortcut=False)        # 18 -> P4 out
        self.down_19 = Conv(w(512), w(512), 3, 2)                            # 19
        self.c2f_21 = C2f(w(512) + c5, w(1024), n, shortcut=False)           # 21 -> P5 out
        self.out_specs = OrderedDict(
            P3=FeatureSpec(w(256), s3), P4=FeatureSpec(w(512), s3 * 2), P5=FeatureSpec(w(1024), s3 * 4))

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        p3, p4, p5 = (feats[k] for k in self.in_keys)
        x12 = self.c2f_12(torch.cat([self.up(p5), p4], 1))          # 10 upsample, 11 concat, 12 C2f
        x15 = self.c2f_15(torch.cat([self.up(x12), p3], 1))         # 13, 14, 15
        x18 = self.c2f_18(torch.cat([self.down_16(x15), x12], 1))   # 16, 17, 18
        x21 = self.c2f_21(torch.cat([self.down_19(x18), p5], 1))    # 19, 20, 21
        return OrderedDict(P3=x15, P4=x18, P5=x21)


class DFL(nn.Module):
    """Distribution focal loss decoding: a softmax over ``reg_max`` bins, then its expectation.

    Each box side is predicted as a distribution over distances 0..reg_max-1
    (in cells); the fixed 1x1 conv with weights 0, 1, ..., reg_max-1 computes
    the expected distance.  Its 16 weights are parameters that never train.
    """

    def __init__(self, reg_max: int = 16):
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape  # (B, 4 * reg_max, anchors)
        probs = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)
        return self.conv(probs).view(b, 4, a)


class YOLOv8Detect(Head):
    """YOLOv8's decoupled, anchor-free detection head with DFL (YAML layer 22).

    ``forward`` in training mode returns the raw per-level maps
    ``(B, 4*reg_max + nc, H, W)``; in eval mode it decodes them into
    ``(B, 4 + nc, anchors)``: box centre x, y, width, height in pixels and a
    sigmoid score per class -- the published export format.
    """

    name = "yolov8_detect"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], nc: int = 80, reg_max: int = 16):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        picked = select_inputs("head 'yolov8_detect'", in_specs, None, min_count=1)
        chans = [s.channels for s in picked.values()]
        self.strides = [s.stride for s in picked.values()]
        self.nc, self.reg_max = nc, reg_max
        c2 = max(16, chans[0] // 4, reg_max * 4)
        c3 = max(chans[0], min(nc, 100))
        self.box = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
                                 for c in chans)
        self.cls = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1))
                                 for c in chans)
        self.dfl = DFL(reg_max)

    def forward(self, feats: Mapping[str, torch.Tensor]):
        maps = [torch.cat([b(x), c(x)], 1) for x, b, c in zip(feats.values(), self.box, self.cls)]
        if self.training:
            return maps
        return self.decode_raw(maps)

    def anchor_points(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell centres ``(anchors, 2)`` in grid units and each anchor's stride ``(anchors, 1)``."""
        points, strides = [], []
        for x, s in zip(maps, self.strides):
            h, w = x.shape[-2:]
            ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
            points.append(torch.stack([xs, ys], -1).view(-1, 2).float() + 0.5)
            strides.append(torch.full((h * w, 1), float(s), device=x.device))
        return torch.cat(points), torch.cat(strides)

    def decode_raw(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-level maps -> ``(B, 4 + nc, anchors)`` with xywh boxes in pixels and class probabilities."""
        b = maps[0].shape[0]
        flat = torch.cat([m.view(b, 4 * self.reg_max + self.nc, -1) for m in maps], 2)
        box, cls = flat.split((4 * self.reg_max, self.nc), 1)
        points, strides = self.anchor_points(maps)
        lt, rb = self.dfl(box).chunk(2, 1)            # distances to left/top and right/bottom, in cells
        x1y1 = points.T[None] - lt
        x2y2 = points.T[None] + rb
        xywh = torch.cat([(x1y1 + x2y2) / 2, x2y2 - x1y1], 1) * strides.T[None]
        return torch.cat([xywh, cls.sigmoid()], 1)

    @torch.no_grad()
    def decode(self, outputs: torch.Tensor, score_threshold: float = 0.25, iou_threshold: float = 0.7,
               max_det: int = 300) -> list[dict[str, torch.Tensor]]:
        """Eval output -> per image ``{"boxes" (x1y1x2y2), "scores", "labels"}`` after class-wise NMS."""
        from torchvision.ops import batched_nms

        results = []
        for pred in outputs:  # (4 + nc, anchors)
            xywh, cls = pred[:4].T, pred[4:].T
            scores, labels = cls.max(1)
            keep = scores > score_threshold
            xywh, scores, labels = xywh[keep], scores[keep], labels[keep]
            boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
            k = batched_nms(boxes, scores, labels, iou_threshold)[:max_det]
            results.append({"boxes": boxes[k], "scores": scores[k], "labels": labels[k]})
        return results

    def loss(self, outputs, targets):
        raise NotImplementedError(
            "this YOLOv8 replica is for anatomy (shapes, parameters, FLOPs); to train a dense detector use the "
            "course's 'detection' head (lessons 04-05)"
        )


def build_yolov8(scale: str = "n", nc: int = 80) -> Model:
    """YOLOv8 at a published scale (``"n"``, ``"s"``, ``"m"``, ``"l"``, ``"x"``) as a three-part Model."""
    if scale not in SCALES:
        raise ValueError(f"unknown YOLOv8 scale {scale!r}; choose one of {', '.join(SCALES)}")
    depth, width, max_ch = SCALES[scale]
    backbone = yolo_backbone.yolo_csp(levels=("C3", "C4", "C5"), width=width, depth=depth, max_channels=max_ch)
    neck = YOLOv8Neck(backbone.out_specs, depth=depth, width=width, max_channels=max_ch)
    head = YOLOv8Detect(neck.out_specs, nc=nc)
    config = {"backbone": {"name": "yolo_csp", "width": width, "depth": depth, "max_channels": max_ch},
              "neck": {"name": "yolov8_pan"}, "head": {"name": "yolov8_detect", "nc": nc}, "scale": scale}
    return Model(backbone, neck, head, config=config)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def layer_table(model: Model, size: int = 640) -> list[dict[str, Any]]:
    """The YAML's layer list (index, from, module, params, stride, channels), measured on a ``size`` image."""
    layers = [m for stage in model.backbone.stages.values() for m in stage]
    neck, head = model.neck, model.head
    rows: list[dict[str, Any]] = []
    x = torch.zeros(1, 3, size, size)
    outs = []
    model.eval()
    for i, layer in enumerate(layers):
        x = layer(x)
        outs.append(x)
        rows.append({"index": i, "from": -1, "module": type(layer).__name__, "part": "backbone",
                     "params": _params(layer), "stride": size // x.shape[-1], "channels": x.shape[1]})
    feats = OrderedDict(C3=outs[4], C4=outs[6], C5=outs[9])
    fused = neck(feats)
    x12 = neck.c2f_12(torch.cat([neck.up(feats["C5"]), feats["C4"]], 1))
    steps = [
        (10, -1, "Upsample", None, neck.up(feats["C5"])),
        (11, "[-1, 6]", "Concat", None, torch.cat([neck.up(feats["C5"]), feats["C4"]], 1)),
        (12, -1, "C2f", neck.c2f_12, x12),
        (13, -1, "Upsample", None, neck.up(x12)),
        (14, "[-1, 4]", "Concat", None, torch.cat([neck.up(x12), feats["C3"]], 1)),
        (15, -1, "C2f", neck.c2f_15, fused["P3"]),
        (16, -1, "Conv", neck.down_16, neck.down_16(fused["P3"])),
        (17, "[-1, 12]", "Concat", None, torch.cat([neck.down_16(fused["P3"]), x12], 1)),
        (18, -1, "C2f", neck.c2f_18, fused["P4"]),
        (19, -1, "Conv", neck.down_19, neck.down_19(fused["P4"])),
        (20, "[-1, 9]", "Concat", None, torch.cat([neck.down_19(fused["P4"]), feats["C5"]], 1)),
        (21, -1, "C2f", neck.c2f_21, fused["P5"]),
    ]
    for i, frm, name, mod, t in steps:
        rows.append({"index": i, "from": frm, "module": name, "part": "neck",
                     "params": _params(mod) if mod is not None else 0,
                     "stride": size // t.shape[-1], "channels": t.shape[1]})
    out = head(fused)
    rows.append({"index": 22, "from": "[15, 18, 21]", "module": "Detect", "part": "head", "params": _params(head),
                 "stride": "8/16/32", "channels": out.shape[1]})
    return rows


def count_flops(model: nn.Module, size: int = 640) -> int:
    """FLOPs of one forward pass at ``size`` x ``size``, counting a multiply-add as 2 (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops())


__all__ = ["SCALES", "PUBLISHED_PARAMS", "YOLOv8Neck", "YOLOv8Detect", "DFL", "build_yolov8", "layer_table",
           "count_flops"]
