"""Lesson 04 exercises: the head, the judgement."""

from __future__ import annotations

import math

from ..exercises import Exercise, register


def _same_set(value, ref) -> bool:
    return {str(v).strip().upper() for v in value} == set(ref)


register(Exercise(
    id="04.points",
    question="A detection head reads P3, P4 and P5 (strides 8, 16, 32) of a 128x128 image. "
             "How many anchor points (cells) vote in total?",
    answer=336,
    hints=["each level has (128 / stride) x (128 / stride) cells", "16*16 + 8*8 + 4*4"],
    explanation="256 + 64 + 16 = 336 anchor points, each with its own class scores and box.",
))
register(Exercise(
    id="04.decode",
    question="The cell whose anchor point is (44, 20) on a stride-8 level predicts distances "
             "(l, t, r, b) = (1.5, 0.5, 2.0, 1.0) in strides. Which box (x1, y1, x2, y2) is that?",
    answer=(32.0, 16.0, 60.0, 28.0),
    hints=["multiply each distance by the stride first", "x1 = 44 - 1.5*8, y1 = 20 - 0.5*8, x2 = 44 + 2*8, y2 = 20 + 1*8"],
    explanation="Distances times the stride: 12, 4, 16, 8 pixels from the point -> (32, 16, 60, 28).",
))
register(Exercise(
    id="04.nms",
    question="Boxes A, B, C have scores 0.9, 0.8, 0.7; IoU(A,B) = 0.7, IoU(A,C) = 0.1, IoU(B,C) = 0.6. "
             "NMS with an IoU threshold of 0.5 keeps which boxes? Answer a list of letters, e.g. ['A'].",
    answer=("A", "C"),
    compare=_same_set,
    hints=["start with the best box and remove everything that overlaps it by more than 0.5",
           "B is removed by A; is C still overlapping a kept box by more than 0.5?"],
    explanation="A is kept and removes B (0.7 > 0.5); C only overlaps A by 0.1, and B is already gone, so C stays.",
))
register(Exercise(
    id="04.dfl",
    question="With DFL, one side's distance is a distribution over bins 0, 1, 2, 3 (in strides) with "
             "probabilities [0.1, 0.2, 0.6, 0.1]. On a stride-16 level, how many pixels is that side from the point?",
    answer=27.2,
    rel_tol=1e-3,
    compare=lambda v, ref: math.isclose(float(v), ref, rel_tol=1e-3),
    hints=["the distance is the expectation: sum of bin x probability", "0*0.1 + 1*0.2 + 2*0.6 + 3*0.1 = 1.7 strides"],
    explanation="1.7 strides x 16 pixels = 27.2 pixels.",
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
    id="04.cam",
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
