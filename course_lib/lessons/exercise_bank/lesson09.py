"""Lesson 09 exercises: real-world anatomy."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="09.anchor_points",
    question="YOLOv8 predicts at every cell of its stride-8, 16 and 32 maps. How many predictions does it make "
             "for a 1280x1280 image?",
    answer=(1280 // 8) ** 2 + (1280 // 16) ** 2 + (1280 // 32) ** 2,
    hints=["one anchor point per cell, three maps", "160^2 + 80^2 + 40^2"],
    explanation="160^2 + 80^2 + 40^2 = 33,600 anchor points (8,400 at 640x640).",
))
register(Exercise(
    id="09.channels",
    question="A YOLOv8 model trained on 20 classes: how many numbers does its eval output hold per location "
             "(the first dimension after the batch)?",
    answer=24,
    hints=["4 box numbers + one score per class", "there is no objectness score in YOLOv8"],
    explanation="4 + 20 = 24: box (x, y, w, h) and 20 class scores; no objectness.",
))
register(Exercise(
    id="09.sppf_part",
    question="In YOLOv8, which part (backbone, neck or head) contains SPPF?",
    answer="backbone",
    hints=["look at the layer table: SPPF is layer 9", "layers 0-9 are the backbone"],
    explanation="SPPF is the last layer of the backbone (layer 9), not part of the head.",
))
register(Exercise(
    id="09.fusion",
    question="Does YOLOv8's neck fuse its levels by 'add' or by 'concat'?",
    answer="concat",
    hints=["look at layers 11, 14, 17 and 20 of the table"],
    explanation="Concatenation along channels (then a C2f block), unlike FPN's and PANet's addition.",
))


# ---------------------------------------------------------------- answers that are code
def _yolov5_channels(nc: int) -> int:
    return 3 * (5 + nc)


def _same_function(fn, ref) -> bool:
    """A learner's function agrees with the reference on several class counts."""
    return callable(fn) and all(int(fn(nc)) == ref(nc) for nc in (1, 3, 20, 80, 365))


register(Exercise(
    id="09.yolov5_channels",
    question="Write a function `f(nc)` that returns how many channels YOLOv5's original output conv has at each "
             "level for `nc` classes (3 anchors per cell; each anchor: 4 box numbers, 1 objectness, nc class "
             "scores). Pass the function itself.",
    answer=_yolov5_channels,
    hints=["per anchor: 4 + 1 + nc numbers", "three anchors per cell: multiply by 3", "f = lambda nc: 3 * (5 + nc)"],
    explanation="3 x (5 + nc): 255 channels for COCO's 80 classes; YOLOv8's Detect gives 4 + nc numbers per cell "
                "instead (no anchors, no objectness, the box from 4 x 16 DFL bins).",
    compare=_same_function,
))


def _builds_like(config, ref) -> bool:
    """Build both configs on the meta device (no memory) and compare the networks, part by part."""
    import torch

    from ...measure import count_params
    from ...model import build_model

    with torch.device("meta"):
        mine, theirs = build_model(config), build_model(ref)
    parts = ("backbone", "neck", "head")
    return (mine.head.num_classes == theirs.head.num_classes
            and [count_params(getattr(mine, p)) for p in parts] == [count_params(getattr(theirs, p)) for p in parts])


def _yolov8s_3_classes() -> dict:
    from ...zoo.yolov8 import yolov8_config

    return yolov8_config("s", num_classes=3)


register(Exercise(
    id="09.compose_yolov8s",
    question="Compose, without calling yolov8_config, the cl.build_model config of YOLOv8 at scale s for 3 classes: "
             "backbone 'yolo_csp', neck 'yolov8_pan', head 'yolov8_detect', with scale s's multipliers "
             "(yolov8.SCALES['s']) given to the backbone and the neck. Pass the dict.",
    answer=_yolov8s_3_classes(),
    hints=["yolov8.SCALES['s'] is (depth, width, max_channels) = (0.33, 0.5, 1024)",
           "backbone and neck both take depth=, width=, max_channels=; the backbone also levels=('C3', 'C4', 'C5')",
           "the head takes num_classes=3"],
    explanation="Built and counted part by part: 11,136,761 parameters, YOLOv8s's 11,166,560 minus 3 x 129 x 77 -- "
                "the same backbone and neck; only the class branches' last 1x1 convs (128 weights + 1 bias per "
                "output, one per level) shrink from 80 outputs to 3.",
    compare=_builds_like,
))
