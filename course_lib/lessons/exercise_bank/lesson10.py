"""Lesson 10 exercises: one backbone, many heads."""

from __future__ import annotations

from ..exercises import Exercise, LazyExercise, register

register(Exercise(
    id="10.passes",
    question="A multi-task model has one backbone, one neck and three heads. How many passes through the "
             "backbone does one image need to get all three answers?",
    answer=1,
    hints=["the heads read the same fused maps", "the backbone is shared, not copied"],
    explanation="One: the backbone and neck run once and every head reads their output.",
))
def _always_commonest(split: str = "test") -> float:
    """The accuracy of a classifier that answers the same shape for every image: the commonest one's share."""
    from collections import Counter

    from ...data import ShapesWorld, dominant_label

    _, targets = ShapesWorld(split).materialize()
    counts = Counter(dominant_label(t) for t in targets)
    return max(counts.values()) / len(targets)


register(LazyExercise(
    id="10.commonest",
    question="A classifier that gives the same answer for every image scores the share of that answer. On "
             "ShapesWorld's 'test' split (500 images), what accuracy does always answering the commonest "
             "dominant shape give? Compute it: ShapesWorld('test').materialize() gives the targets, "
             "cl.data.dominant_label(target) each image's label. (A number between 0 and 1.)",
    compute=_always_commonest,
    rel_tol=0.005,
    hints=["collections.Counter(dominant_label(t) for t in targets) counts each label",
           "the commonest label's count divided by the number of images",
           "it is above 1/3: the three shapes are not equally often the dominant one"],
    explanation="Any classifier must beat this 'always the same shape' score before it has learned anything; "
                "the single-task classifier of section 2 scored exactly such a share: the commonest shape's on the val "
                "split.",
))
register(Exercise(
    id="10.which_head",
    question="Which head answers 'which pixels belong to the square?': classification, detection or segmentation?",
    answer="segmentation",
    hints=["a box is not a set of pixels", "one class per pixel"],
    explanation="Segmentation gives a class for every pixel.",
))


# ---------------------------------------------------------------- an answer that is code
#: The config the learner starts from: lesson 08's backbone and neck with a detection head only.
DETECTION_ONLY: dict = {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 64},
                        "heads": {"detection": {"num_classes": 3}}}


def _with_segmentation() -> dict:
    return {**DETECTION_ONLY, "heads": {**DETECTION_ONLY["heads"], "segmentation": {"num_classes": 4}}}


def _adds_segmentation(config, ref) -> bool:
    """Build both configs on the meta device (no memory): the same backbone and neck, one copy of them read by a
    detection head and a 4-class segmentation head."""
    import torch

    from ...heads.segmentation import SegmentationHead
    from ...measure import count_params
    from ...model import build_model

    with torch.device("meta"):
        mine, theirs = build_model(config), build_model(ref)
    if not mine.multi_head or set(mine.heads) != {"detection", "segmentation"}:
        return False
    seg, det = mine.heads["segmentation"], mine.heads["detection"]
    same_parts = all(count_params(getattr(mine, p)) == count_params(getattr(theirs, p)) for p in ("backbone", "neck"))
    one_copy = count_params(mine) == (count_params(mine.backbone) + count_params(mine.neck)
                                      + count_params(seg) + count_params(det))
    return (isinstance(seg, SegmentationHead) and seg.num_classes == 4 and det.num_classes == 3
            and count_params(det) == count_params(theirs.heads["detection"]) and same_parts and one_copy
            and all(h.in_specs == mine.neck.out_specs for h in mine.heads.values()))


register(Exercise(
    id="10.add_segmentation",
    question="Start from this config of one backbone, one neck and a detection head: "
             f"{DETECTION_ONLY}. Add a segmentation head for ShapesWorld (the 3 shapes plus background) that "
             "reads the same backbone and neck, keeping the detection head as it is. Pass the config dict.",
    answer=_with_segmentation(),
    hints=["keep 'backbone' and 'neck' as they are: one copy, read by every head",
           "add a second entry to the 'heads' dict, under the key 'segmentation'",
           "4 classes: background, circle, square, triangle -- {'num_classes': 4} (the name may be left out when "
           "the key is a head's name)"],
    explanation="Built and checked: one backbone and one neck feed both heads, so the segmentation head adds only "
                "its own parameters; a second, separate model would also copy the backbone and the neck.",
    compare=_adds_segmentation,
))
