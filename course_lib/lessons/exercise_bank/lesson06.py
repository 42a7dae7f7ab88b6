"""Lesson 06 exercises: real-world anatomy."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="06.anchor_points",
    question="YOLOv8 predicts at every cell of its stride-8, 16 and 32 maps. How many predictions does it make "
             "for a 1280x1280 image?",
    answer=(1280 // 8) ** 2 + (1280 // 16) ** 2 + (1280 // 32) ** 2,
    hints=["one anchor point per cell, three maps", "160^2 + 80^2 + 40^2"],
    explanation="160^2 + 80^2 + 40^2 = 33,600 anchor points (8,400 at 640x640).",
))
register(Exercise(
    id="06.channels",
    question="A YOLOv8 model trained on 20 classes: how many numbers does its eval output hold per location "
             "(the first dimension after the batch)?",
    answer=24,
    hints=["4 box numbers + one score per class", "there is no objectness score in YOLOv8"],
    explanation="4 + 20 = 24: box (x, y, w, h) and 20 class scores; no objectness.",
))
register(Exercise(
    id="06.sppf_part",
    question="In YOLOv8, which part (backbone, neck or head) contains SPPF?",
    answer="backbone",
    hints=["look at the layer table: SPPF is layer 9", "layers 0-9 are the backbone"],
    explanation="SPPF is the last layer of the backbone (layer 9), not part of the head.",
))
register(Exercise(
    id="06.fusion",
    question="Does YOLOv8's neck fuse its levels by 'add' or by 'concat'?",
    answer="concat",
    hints=["look at layers 11, 14, 17 and 20 of the table"],
    explanation="Concatenation along channels (then a C2f block), unlike FPN's and PANet's addition.",
))
