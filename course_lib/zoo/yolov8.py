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
  3x3, Conv 3x3, 1x1 -> ``num_classes``.  Anchor-free (one anchor *point* per cell
  centre), no objectness.

At 640x640 with 80 classes the eval output is ``(1, 84, 8400)``: 4 box numbers
+ 80 class scores at 80^2 + 40^2 + 20^2 locations, from 3,157,200 parameters.
These weights are random: the model is for anatomy, not for detecting.

Every part is a registered name (backbone ``yolo_csp``, neck ``yolov8_pan``,
head ``yolov8_detect``), so :func:`build_yolov8` is a config and
:func:`course_lib.build_model`, and ``cl.build_model(model.config)`` builds
the same network again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.ops import batched_nms, box_convert

from ..backbones import yolo as yolo_backbone
from ..blocks import C2f, Conv
from ..boxes import decode_distances
from ..contract import FeatureSpec, Head, Neck, select_inputs
from ..heads import HEADS
from ..heads.detection import DFL, anchor_grid
from ..hooks import forward_hooks
from ..measure import count_params, evaluating
from ..model import Model, build_model
from ..necks import NECKS

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


class Concat(nn.Module):
    """Concatenate maps along channels: a layer of its own in the YAML, with no parameters."""

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(xs), 1)


@NECKS.register("yolov8_pan")
class YOLOv8Neck(Neck):
    """PAN-FPN with concatenation (YAML layers 10-21).

    Top-down: upsample P5, concat with P4, C2f (12); upsample, concat with P3,
    C2f (15) = output /8.  Bottom-up: Conv 3x3 s2, concat with (12), C2f (18) =
    output /16; Conv 3x3 s2, concat with P5, C2f (21) = output /32.  The C2f
    blocks here have no shortcuts.  One Upsample and one Concat module serve
    every step that needs them (neither has parameters).
    """

    name = "yolov8_pan"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], depth: float = 0.33, width: float = 0.25,
                 max_channels: int = 1024, in_keys: Sequence[str] = ("C3", "C4", "C5")):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        in_keys = tuple(in_keys)
        picked = select_inputs("neck 'yolov8_pan'", in_specs, in_keys, count=3)
        c3, c4, c5 = (s.channels for s in picked.values())
        s3 = picked[in_keys[0]].stride
        self.in_keys = in_keys
        w = lambda c: yolo_backbone.scale_width(c, width, max_channels)  # noqa: E731
        n = yolo_backbone.scale_depth(3, depth)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")                 # 10, 13
        self.concat = Concat()                                               # 11, 14, 17, 20
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
        x12 = self.c2f_12(self.concat([self.up(p5), p4]))          # 10 upsample, 11 concat, 12 C2f
        x15 = self.c2f_15(self.concat([self.up(x12), p3]))         # 13, 14, 15
        x18 = self.c2f_18(self.concat([self.down_16(x15), x12]))   # 16, 17, 18
        x21 = self.c2f_21(self.concat([self.down_19(x18), p5]))    # 19, 20, 21
        return OrderedDict(P3=x15, P4=x18, P5=x21)


@HEADS.register("yolov8_detect")
class YOLOv8Detect(Head):
    """YOLOv8's decoupled, anchor-free detection head with DFL (YAML layer 22).

    ``forward`` in training mode returns the raw per-level maps
    ``(B, 4*reg_max + num_classes, H, W)``; in eval mode it decodes them into
    ``(B, 4 + num_classes, anchors)``: box centre x, y, width, height in pixels
    and a sigmoid score per class -- the published export format.  Anchor
    points and DFL are the course's own (:func:`~course_lib.heads.detection.anchor_grid`,
    :class:`~course_lib.heads.detection.DFL`), shared with the ``detection`` head.
    """

    name = "yolov8_detect"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], num_classes: int = 80, reg_max: int = 16):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        picked = select_inputs("head 'yolov8_detect'", in_specs, None, min_count=1)
        chans = [s.channels for s in picked.values()]
        self.strides = [s.stride for s in picked.values()]
        self.num_classes, self.reg_max = num_classes, reg_max
        c2 = max(16, chans[0] // 4, reg_max * 4)
        c3 = max(chans[0], min(num_classes, 100))
        self.box = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
                                 for c in chans)
        self.cls = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, num_classes, 1))
                                 for c in chans)
        self.dfl = DFL(reg_max)

    def forward(self, feats: Mapping[str, torch.Tensor]):
        maps = [torch.cat([b(x), c(x)], 1) for x, b, c in zip(feats.values(), self.box, self.cls)]
        if self.training:
            return maps
        return self.decode_raw(maps)

    def decode_raw(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-level maps -> ``(B, 4 + num_classes, anchors)`` with xywh boxes in pixels and class probabilities."""
        b = maps[0].shape[0]
        flat = torch.cat([m.view(b, 4 * self.reg_max + self.num_classes, -1) for m in maps], 2)
        box, cls = flat.split((4 * self.reg_max, self.num_classes), 1)
        points, strides, _ = anchor_grid([m.shape[-2:] for m in maps], self.strides, flat.device)
        dist = self.dfl(box).transpose(1, 2)                       # (B, anchors, 4): l, t, r, b in strides
        xywh = box_convert(decode_distances(points, dist, strides), "xyxy", "cxcywh")
        return torch.cat([xywh.transpose(1, 2), cls.sigmoid()], 1)

    @torch.no_grad()
    def decode(self, outputs: torch.Tensor, score_threshold: float = 0.25, iou_threshold: float = 0.7,
               max_det: int = 300) -> list[dict[str, torch.Tensor]]:
        """Eval output -> per image ``{"boxes" (x1y1x2y2), "scores", "labels"}`` after class-wise NMS."""
        results = []
        for pred in outputs:  # (4 + num_classes, anchors)
            xywh, cls = pred[:4].T, pred[4:].T
            scores, labels = cls.max(1)
            keep = scores > score_threshold
            boxes, scores, labels = box_convert(xywh[keep], "cxcywh", "xyxy"), scores[keep], labels[keep]
            k = batched_nms(boxes, scores, labels, iou_threshold)[:max_det]
            results.append({"boxes": boxes[k], "scores": scores[k], "labels": labels[k]})
        return results

    def loss(self, outputs, targets):
        raise NotImplementedError(
            "this YOLOv8 replica is for anatomy (shapes, parameters, FLOPs); to train a dense detector use the "
            "course's 'detection' head (lessons 06-08)"
        )


def yolov8_config(scale: str = "n", num_classes: int = 80) -> dict[str, Any]:
    """The :func:`course_lib.build_model` config of YOLOv8 at a published scale: three registered names."""
    if scale not in SCALES:
        raise ValueError(f"unknown YOLOv8 scale {scale!r}; choose one of {', '.join(SCALES)}")
    depth, width, max_ch = SCALES[scale]
    multipliers = {"depth": depth, "width": width, "max_channels": max_ch}
    return {"backbone": {"name": "yolo_csp", "levels": ("C3", "C4", "C5"), **multipliers},
            "neck": {"name": "yolov8_pan", **multipliers},
            "head": {"name": "yolov8_detect", "num_classes": num_classes}}


def build_yolov8(scale: str = "n", num_classes: int = 80) -> Model:
    """YOLOv8 at a published scale (``"n"``, ``"s"``, ``"m"``, ``"l"``, ``"x"``) as a three-part Model."""
    return build_model(yolov8_config(scale, num_classes))


def _flat_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat_tensors(v)]
    return []


def layer_table(model: Model, size: int = 640) -> list[dict[str, Any]]:
    """The YAML's layer list (index, from, module, params, stride, channels), measured on a ``size`` image.

    One forward pass with a hook on every layer records each call in order:
    backbone layers 0-9, the neck's module calls 10-21 (its one Upsample and one
    Concat appear once per use), the head 22.  ``from`` is found from the data
    itself: which earlier layer produced each input (``-1`` = the layer just before).
    """
    layers = [("backbone", m) for stage in model.backbone.stages.values() for m in stage]
    layers += [("neck", m) for m in model.neck.children()]
    layers.append(("head", model.head))
    calls: list[tuple[str, nn.Module, list[torch.Tensor], torch.Tensor]] = []

    def record(part: str):
        def hook(module, inputs, output):
            calls.append((part, module, _flat_tensors(inputs), _flat_tensors(output)[0]))
        return hook

    with forward_hooks((m, record(part)) for part, m in layers), evaluating(model):
        model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))

    made_by = {id(out): i for i, (_, _, _, out) in enumerate(calls)}  # outputs stay alive in `calls`
    rows: list[dict[str, Any]] = []
    for i, (part, module, inputs, out) in enumerate(calls):
        sources = [made_by[id(t)] for t in inputs if id(t) in made_by]
        if sources in ([], [i - 1]):
            frm: int | str = -1
        else:
            frm = "[" + ", ".join("-1" if k == 0 and s == i - 1 else str(s) for k, s in enumerate(sources)) + "]"
        is_head = part == "head"
        rows.append({"index": i, "from": frm, "module": "Detect" if is_head else type(module).__name__,
                     "part": part, "params": count_params(module),
                     "stride": "/".join(map(str, module.strides)) if is_head else size // out.shape[-1],
                     "channels": out.shape[1]})
    return rows


__all__ = ["SCALES", "PUBLISHED_PARAMS", "Concat", "YOLOv8Neck", "YOLOv8Detect", "DFL", "yolov8_config",
           "build_yolov8", "layer_table"]
