"""Lesson 07 exercises: the detection and segmentation heads — decoding a box, DFL and NMS."""

from __future__ import annotations

import math

from ...boxes import nms
from ..exercises import Exercise, register


def _same_set(value, ref) -> bool:
    return {str(v).strip().upper() for v in value} == set(ref)


register(Exercise(
    id="07.decode",
    question="The cell whose anchor point is (44, 20) on a stride-8 level predicts distances "
             "(l, t, r, b) = (1.5, 0.5, 2.0, 1.0) in strides. Which box (x1, y1, x2, y2) is that?",
    answer=(32.0, 16.0, 60.0, 28.0),
    hints=["multiply each distance by the stride first", "x1 = 44 - 1.5*8, y1 = 20 - 0.5*8, x2 = 44 + 2*8, y2 = 20 + 1*8"],
    explanation="Distances times the stride: 12, 4, 16, 8 pixels from the point -> (32, 16, 60, 28).",
))
register(Exercise(
    id="07.nms",
    question="Boxes A, B, C have scores 0.9, 0.8, 0.7; IoU(A,B) = 0.7, IoU(A,C) = 0.1, IoU(B,C) = 0.6. "
             "NMS with an IoU threshold of 0.5 keeps which boxes? Answer a list of letters, e.g. ['A'].",
    answer=("A", "C"),
    compare=_same_set,
    hints=["start with the best box and remove everything that overlaps it by more than 0.5",
           "B is removed by A; is C still overlapping a kept box by more than 0.5?"],
    explanation="A is kept and removes B (0.7 > 0.5); C only overlaps A by 0.1, and B is already gone, so C stays.",
))
register(Exercise(
    id="07.dfl",
    question="With DFL, one side's distance is a distribution over bins 0, 1, 2, 3 (in strides) with "
             "probabilities [0.1, 0.2, 0.6, 0.1]. On a stride-16 level, how many pixels is that side from the point?",
    answer=27.2,
    rel_tol=1e-3,
    compare=lambda v, ref: math.isclose(float(v), ref, rel_tol=1e-3),
    hints=["the distance is the expectation: sum of bin x probability", "0*0.1 + 1*0.2 + 2*0.6 + 3*0.1 = 1.7 strides"],
    explanation="1.7 strides x 16 pixels = 27.2 pixels.",
))


def _check_nms_fn(fn) -> bool:
    """The learner's ``fn(boxes, scores, iou_threshold)`` must keep what ``torchvision.ops.nms`` keeps, best first."""
    import torch
    from torchvision.ops import nms as tv_nms

    g = torch.Generator().manual_seed(5)
    for trial in range(20):
        n = 1 + trial * 2
        xy = torch.rand(n, 2, generator=g) * 50
        boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 30 + 2], 1)
        scores = torch.rand(n, generator=g)
        for thr in (0.3, 0.5, 0.7):
            got = fn(boxes.clone(), scores.clone(), thr)
            got = got.tolist() if isinstance(got, torch.Tensor) else list(got)
            if [int(i) for i in got] != tv_nms(boxes, scores, thr).tolist():
                return False
    return True


register(Exercise(
    id="07.write_nms",
    question="Write nms(boxes, scores, iou_threshold): boxes an (N, 4) tensor of xyxy boxes, scores (N,). Return "
             "the indices of the boxes kept, best score first (a list or a tensor). A box is removed when its IoU "
             "with an already kept box is above the threshold. Checked against torchvision.ops.nms on 20 random "
             "sets at three thresholds each; course_lib.boxes.box_iou may be used.",
    answer=nms,  # the reference is the library's own step-by-step NMS
    compare=lambda fn, ref: callable(fn) and _check_nms_fn(fn),
    hints=["sort the indices by score, highest first: order = scores.argsort(descending=True).tolist()",
           "loop: keep order[0], then drop from the rest every box whose IoU with it is > iou_threshold",
           "box_iou(boxes[best][None], boxes[rest])[0] gives the IoU of the kept box with each remaining one"],
    explanation="Greedy NMS: the best box survives, its duplicates go, and the next best surviving box is treated "
                "the same way, until none are left. torchvision's C++ nms is this loop.",
))
