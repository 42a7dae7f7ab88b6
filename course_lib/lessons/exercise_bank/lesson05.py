"""Lesson 05 exercises: assemble and train."""

from __future__ import annotations

import math

from ..exercises import Exercise, register

register(Exercise(
    id="05.c5_points",
    question="With no neck the detection head reads only C5 (stride 32). How many anchor points does a "
             "128x128 image give it?",
    answer=16,
    hints=["128 / 32 cells per side"],
    explanation="A 4x4 grid: 16 points for the whole image, so a 10-pixel object is a small part of one cell.",
))
register(Exercise(
    id="05.ap",
    question="Three ground-truth objects of one class. Sorted by score the detections are: hit, hit, miss. "
             "What is the average precision (area under the precision envelope)?",
    answer=2 / 3,
    compare=lambda v, ref: math.isclose(float(v), ref, rel_tol=1e-3),
    hints=["after each detection: recall 1/3, 2/3, 2/3 and precision 1, 1, 2/3",
           "precision is 1 up to recall 2/3, and recall never reaches 1"],
    explanation="AP = 2/3 x 1 = 0.667: the missed third object caps the recall.",
))
register(Exercise(
    id="05.size",
    question="In ShapesWorld (128-pixel images) an object's box is 20 x 10 pixels. Is it small, medium or large?",
    answer="small",
    hints=["the size is sqrt(w * h)", "small < 16 <= medium < 32 <= large"],
    explanation="sqrt(200) = 14.1 pixels: under 16, so small.",
))
register(Exercise(
    id="05.gain",
    question="Adding FPN to a C5-only detector helps objects of which size bucket most: small, medium or large?",
    answer="small",
    hints=["which objects are smaller than one stride-32 cell?", "look at the ablation table's columns"],
    explanation="Small objects: C5 alone sees them as a fraction of one cell; FPN gives them a sharp, "
                "semantically strong stride-8 map (the FPN paper's small-object gain).",
))
