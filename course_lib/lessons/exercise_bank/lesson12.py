"""Lesson 12 exercises: the mixed review quiz."""

from __future__ import annotations

from ..exercises import Exercise, register


def _one_of(*accepted: str):
    ok = {a.strip().lower() for a in accepted}
    return lambda value, _ref: isinstance(value, str) and value.strip().lower() in ok


register(Exercise(
    id="12.receptive_field",
    question="What is 感受野 in English?",
    answer="receptive field",
    hints=["it is about how much of the image one cell can see", "lesson 01"],
    explanation="感受野 = receptive field: the input region that one output cell depends on.",
))
register(Exercise(
    id="12.nms",
    question="Which step removes duplicate boxes that overlap a better-scoring box? (name or abbreviation)",
    answer="NMS",
    compare=_one_of("nms", "non-maximum suppression", "non maximum suppression", "非极大值抑制"),
    hints=["it happens after decoding, before the boxes are shown", "lesson 07"],
    explanation="Non-maximum suppression (非极大值抑制).",
))
register(Exercise(
    id="12.fpn_part",
    question="Is an FPN a backbone, a neck or a head?",
    answer="neck",
    hints=["it fuses maps the backbone produced", "even though torchvision stores it inside .backbone"],
    explanation="A neck: it fuses the backbone's maps across scales for the head.",
))
register(Exercise(
    id="12.bottleneck_weights",
    question="How many weights (no biases) does a 1x1 conv from 1024 to 256 channels have?",
    answer=1024 * 256,
    hints=["a 1x1 conv has one weight per (input channel, output channel) pair"],
    explanation="1024 x 256 = 262,144.",
))
