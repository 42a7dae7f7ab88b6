"""Lesson 06 exercises: the head, the judgement — the classification head, CAM, IoU and anchor points."""

from __future__ import annotations

import math

from ..exercises import Exercise, register

register(Exercise(
    id="06.points",
    question="The lesson counted the anchor points of a 128x128 image. A detection head reads P3, P4 and P5 "
             "(strides 8, 16, 32) of a 320x320 image: how many anchor points (cells) vote in total?",
    answer=2100,
    hints=["each level has (320 / stride) x (320 / stride) cells", "40*40 + 20*20 + 10*10"],
    explanation="1600 + 400 + 100 = 2100 anchor points, each with its own class scores and box; at 640x640 the "
                "same head has 8400 (YOLOv8's number), four times as many: the count grows with the image's area.",
))


def _check_cam_fn(fn) -> bool:
    """The learner's ``fn(maps, weight, k)`` must give the class-weighted sum of the maps (the raw CAM)."""
    import torch

    g = torch.Generator().manual_seed(4)
    maps, weight = torch.randn(1, 6, 3, 5, generator=g), torch.randn(4, 6, generator=g)
    for k in range(4):
        out = torch.as_tensor(fn(maps, weight, k), dtype=torch.float32)
        if out.shape != (3, 5) or not torch.allclose(out, torch.einsum("c,chw->hw", weight[k], maps[0]), atol=1e-5):
            return False
    return True


def _reference_cam(maps, weight, k):
    """The reference answer: channel c of the map weighted by weight[k, c], summed over the channels."""
    return (weight[k][:, None, None] * maps[0]).sum(0)


register(Exercise(
    id="06.cam",
    question="Write cam(maps, weight, k): maps is the (1, C, h, w) map that global average pooling reads, weight "
             "the (num_classes, C) matrix of the linear head. Return the (h, w) class activation map of class k "
             "(no bias, no scaling), whose mean plus the bias is the logit.",
    answer=_reference_cam,
    compare=lambda fn, ref: callable(fn) and _check_cam_fn(fn),
    hints=["each channel c of the map gets the weight weight[k, c]",
           "weight[k][:, None, None] * maps[0] has shape (C, h, w); sum over the channels"],
    explanation="CAM_k = sum_c w_kc A_c, e.g. torch.einsum('c,chw->hw', weight[k], maps[0]). Averaging it over "
                "the cells is the same as pooling first and then applying the linear layer: the logit minus the bias.",
))


def _random_box_pairs(n: int = 200, seed: int = 4):
    """Random xyxy box pairs, with disjoint, nested, touching and identical pairs among them."""
    import torch

    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, 2, generator=g) * 60
    wh = torch.rand(n, 2, 2, generator=g) * 40 + 1
    boxes = torch.cat([xy, xy + wh], -1)                      # (n, 2 boxes, 4)
    fixed = torch.tensor([[[0., 0, 10, 10], [20, 20, 30, 30]],    # disjoint
                          [[0., 0, 40, 40], [10, 10, 20, 20]],    # nested (b inside a)
                          [[10., 10, 20, 20], [0, 0, 40, 40]],    # nested (a inside b)
                          [[0., 0, 10, 10], [10, 0, 20, 10]],     # touching: IoU 0
                          [[5., 5, 15, 25], [5, 5, 15, 25]]])     # identical: IoU 1
    return torch.cat([fixed, boxes])


def _check_iou_fn(fn) -> bool:
    """The learner's ``fn(a, b)`` on two xyxy boxes must match :func:`course_lib.boxes.box_iou`."""
    import torch

    from ...boxes import box_iou

    for a, b in _random_box_pairs():
        ref = float(box_iou(a[None], b[None])[0, 0])
        got = fn(a.tolist(), b.tolist())
        if not math.isclose(float(got), ref, rel_tol=1e-4, abs_tol=1e-6):
            return False
    return bool(torch.isfinite(torch.tensor(float(fn([0, 0, 1, 1], [0, 0, 1, 1])))))


def _reference_iou(a, b):
    """The reference answer: overlap rectangle (clamped at zero), then intersection / union."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


register(Exercise(
    id="06.write_iou",
    question="Write iou(a, b): a and b are two boxes [x1, y1, x2, y2] (lists of 4 numbers). Return their "
             "intersection over union as a number. It is checked against course_lib.boxes.box_iou on 205 "
             "box pairs, disjoint, nested and touching ones among them.",
    answer=_reference_iou,
    compare=lambda fn, ref: callable(fn) and _check_iou_fn(fn),
    hints=["the overlap is a rectangle: left = max(a[0], b[0]), right = min(a[2], b[2]); the same for top, bottom",
           "boxes that do not overlap give a negative width or height: clamp each at 0 (max(0, ...))",
           "union = area(a) + area(b) - intersection (the overlap was counted twice)"],
    explanation="inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)); IoU = inter / (A + B - inter). "
                "Disjoint boxes give 0, a box inside another gives the ratio of their areas.",
))
