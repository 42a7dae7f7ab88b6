"""Lesson 02 exercises: pretrained backbones and fine-tuning."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="02.trainable",
    question="MobileNetV2's backbone is frozen and a new linear head maps its pooled 1280 features to 2 classes "
             "(face / not a face). How many parameters does the optimizer train?",
    answer=1280 * 2 + 2,
    hints=["only the head learns: a Linear(1280, 2) layer", "weights 1280 x 2, plus one bias per class"],
    explanation="2,562 parameters out of about 2.2 million: that is why the frozen probe trains in a second.",
))
register(Exercise(
    id="02.lower_lr",
    question="Fine-tuning end to end: which part gets the *smaller* learning rate, 'backbone' or 'head'?",
    answer="backbone",
    hints=["which part already knows something useful?", "large steps would wash out the pretrained filters"],
    explanation="The backbone: its ImageNet filters are already good, so they are nudged (e.g. 1e-4) while the "
                "new, random head learns fast (e.g. 1e-3).",
))
register(Exercise(
    id="02.steps",
    question="140 training images, batches of 28, 4 epochs. How many optimizer steps does fit() take?",
    answer=20,
    hints=["one step per batch", "140 / 28 = 5 batches per epoch"],
    explanation="5 batches x 4 epochs = 20 steps: 'equal budget' in the experiment means equal steps.",
))
register(Exercise(
    id="02.grey_to_rgb",
    question="lfw_subset images are 25x25 grey (1 channel). A pretrained backbone's first conv expects how many "
             "input channels?",
    answer=3,
    hints=["look at first_conv(backbone).weight.shape", "ImageNet photos are RGB"],
    explanation="3: the grey image is repeated into R, G and B (x.repeat(1, 3, 1, 1)), and upscaled so that "
                "the deeper stages still have a grid to look at.",
))
