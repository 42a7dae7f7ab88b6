"""Lesson 08 exercises: assemble and train."""

from __future__ import annotations

import math

from ..exercises import Exercise, register

register(Exercise(
    id="08.points_fpn",
    question="The lesson's FPN detector predicts at every cell of P3, P4 and P5 (strides 8, 16, 32). How many "
             "anchor points does a 128x128 image give its head in all, and how many of them are on P5 (the only "
             "map a no-neck detector has)? Answer (total, on_P5).",
    answer=(336, 16),
    hints=["one anchor point per cell: (128 / stride) squared per map", "16^2 + 8^2 + 4^2 in all"],
    explanation="256 + 64 + 16 = 336 points, of which P5 has 16: the pyramid gives the head 21 times more places "
                "to look, most of them (256) on the stride-8 map where small objects live.",
))
register(Exercise(
    id="08.ap",
    question="Three ground-truth objects of one class. Sorted by score the detections are: hit, hit, miss. "
             "What is the average precision (area under the precision envelope)?",
    answer=2 / 3,
    compare=lambda v, ref: math.isclose(float(v), ref, rel_tol=1e-3),
    hints=["after each detection: recall 1/3, 2/3, 2/3 and precision 1, 1, 2/3",
           "precision is 1 up to recall 2/3, and recall never reaches 1"],
    explanation="AP = 2/3 x 1 = 0.667: the missed third object caps the recall.",
))
register(Exercise(
    id="08.size",
    question="In ShapesWorld (128-pixel images) an object's box is 20 x 10 pixels. Is it small, medium or large?",
    answer="small",
    hints=["the size is sqrt(w * h)", "small < 16 <= medium < 32 <= large"],
    explanation="sqrt(200) = 14.1 pixels: under 16, so small.",
))
register(Exercise(
    id="08.gain",
    question="Adding FPN to a C5-only detector helps objects of which size bucket most: small, medium or large?",
    answer="small",
    hints=["which objects are smaller than one stride-32 cell?", "look at the ablation table's columns"],
    explanation="Small objects: C5 alone sees them as a fraction of one cell; FPN gives them a sharp, "
                "semantically strong stride-8 map (the FPN paper's small-object gain).",
))


# ---------------------------------------------------------------- an answer that is code
def _detector_from_stride_16(config, ref) -> bool:
    """Build the learner's config on the meta device (no memory) and check what each part gives the next."""
    import torch

    from ...heads.detection import DetectionHead
    from ...model import build_model
    from ...necks.fpn import FPN

    with torch.device("meta"):
        model = build_model(config)
    specs = list(model.neck.out_specs.values())
    return (config["backbone"]["name"] == "tiny_cnn" and type(model.neck) is FPN  # PAN is an FPN subclass: not this one
            and [s.stride for s in specs] == [16, 32] and all(s.channels == 32 for s in specs)
            and isinstance(model.head, DetectionHead) and model.head.num_classes == 3
            and list(model.head.strides) == [16, 32])


register(Exercise(
    id="08.compose_stride16",
    question="Compose the cl.build_model config of a detector for 3 classes whose objects are never small: "
             "backbone 'tiny_cnn', an FPN neck with 32 output channels whose finest map has stride 16 (so no "
             "stride-8 map at all), and a 'detection' head. Pass the dict; it is checked by building it.",
    answer={"backbone": {"name": "tiny_cnn"},
            "neck": {"name": "fpn", "in_keys": ["C4", "C5"], "out_channels": 32},
            "head": {"name": "detection", "num_classes": 3}},
    hints=["each part is {'name': ..., **keyword arguments}; start from the lesson's config in section 1",
           "tiny_cnn's C3, C4, C5 have strides 8, 16, 32 (cl.describe_specs(model.backbone.out_specs)); "
           "the FPN reads the maps named by in_keys=",
           "neck: {'name': 'fpn', 'in_keys': ['C4', 'C5'], 'out_channels': 32}; head: num_classes=3"],
    explanation="The FPN reads C4 and C5 and gives P4 and P5 (32 channels, strides 16 and 32); the head builds "
                "one branch per map it is given, so it predicts at strides 16 and 32 only. Nothing else had to "
                "change: each part is built from the out_specs of the one before.",
    compare=_detector_from_stride_16,
))
