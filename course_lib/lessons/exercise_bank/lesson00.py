"""Lesson 00 exercises: the big picture."""

from __future__ import annotations

from ..exercises import Exercise, register

# ---------------------------------------------------------------- lesson 00
register(Exercise(
    id="00.stride",
    question="Section 3 showed a 224x224 image giving a 7x7 C5 (224 / 32). Now feed MobileNetV2 a 250x400 "
             "photo (height 250, width 400; no crop). 250 and 400 are not multiples of 32. How many cells tall "
             "and wide is C5? Answer as (height, width).",
    answer=(8, 13),  # tests/test_lessons.py traces a zero 250x400 image through mobilenet_v2 and checks this
    hints=["C5 has stride 32: five stride-2 convolutions, each a 3x3 with padding 1. What does one of them do "
           "to an odd size? Try 5 cells: the kernel can sit at positions 0, 2 and 4.",
           "A stride-2 3x3 conv with padding 1 turns n cells into ceil(n / 2): nothing at the border is dropped. "
           "Halve 250 five times, rounding up each time: 125, 63, ...",
           "Rounding up at every step is the same as rounding up once: ceil(250 / 32), ceil(400 / 32)."],
    explanation="250 -> 125 -> 63 -> 32 -> 16 -> 8 and 400 -> 200 -> 100 -> 50 -> 25 -> 13: each stride-2 conv "
                "rounds up (ceil), so C5 is 8x13, not the 7x12 of floor division. The last row and column of "
                "cells cover the padded border. Check it: "
                "cl.backbones.build('mobilenet_v2')(torch.zeros(1, 3, 250, 400))['C5'].shape.",
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
