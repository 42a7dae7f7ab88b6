"""Lesson 00 exercises: the big picture."""

from __future__ import annotations

from ..exercises import Exercise, register

# ---------------------------------------------------------------- lesson 00
register(Exercise(
    id="00.stride",
    question="A 224x224 image goes through a backbone whose deepest map C5 has stride 32. "
             "How many cells tall and wide is C5? Answer as (height, width).",
    answer=(7, 7),
    hints=["stride 32 means one cell steps over 32 input pixels", "224 / 32 = ?"],
    explanation="224 / 32 = 7: a 7x7 grid of cells, each summarising a 32-pixel step of the image.",
))
register(Exercise(
    id="00.parts",
    question="Name the part (backbone, neck or head) that turns fused features into 'this is a cat'.",
    answer="head",
    hints=["eye -> brain -> judgement", "the judgement is the last part"],
    explanation="The head (头部) gives the verdict; the backbone (主干网络) sees and the neck (颈部) fuses.",
))
register(Exercise(
    id="00.gap_shape",
    question="MobileNetV2's C5 map for one image is (1, 1280, 10, 15). What shape does global average "
             "pooling (the 'gap' neck) give? Answer as a tuple.",
    answer=(1, 1280),
    hints=["pooling averages over height and width", "the channels stay; the spatial axes go"],
    explanation="Each of the 1280 channels becomes one number: (1, 1280).",
))
