"""Lesson 01 exercises: the backbone, the eye (filters, stride, receptive field)."""

from __future__ import annotations

from ..exercises import Exercise, register


def _library_rf(layers) -> tuple[int, int]:
    """The library's answer for ``(kernel, stride, dilation)`` triples: (size, jump) after the last layer."""
    from ...backbones.receptive_field import INPUT, Layer, receptive_field

    steps = receptive_field([Layer(f"layer{i}", k, s, 0, d) for i, (k, s, d) in enumerate(layers)])
    last = steps[-1] if steps else INPUT
    return last.size, last.jump


# Stacks the learner's function is tried on: the lesson's worked example, ResNet's stem, dilated convs, nothing.
RF_STACKS = (
    [(3, 2, 1), (3, 2, 1), (3, 1, 1)],
    [(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)],
    [(3, 1, 2), (3, 1, 4), (3, 2, 1), (1, 1, 1)],
    [(5, 2, 1), (3, 2, 1), (3, 2, 1)],
    [],
)


def _check_rf_fn(fn) -> bool:
    """The learner's ``fn(layers)`` must give the library's (size, jump) on every stack in ``RF_STACKS``."""
    return all(tuple(int(v) for v in fn([tuple(t) for t in stack])) == _library_rf(stack) for stack in RF_STACKS)


def _reference_rf(layers):
    """The reference answer: the two-number recurrence, with the effective kernel of a dilated conv."""
    r, j = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * j
        j *= s
    return r, j


register(Exercise(
    id="01.rf_resnet_stem",
    question="ResNet's stem is a 7x7 conv with stride 2 and a 3x3 max-pool with stride 2; the first basic block "
             "then adds two 3x3 convs with stride 1. After those four layers, how many input pixels wide is one "
             "cell's receptive field, and what is its jump? Answer as a tuple (size, jump).",
    answer=_library_rf([(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)]),
    hints=["start r=1, j=1; at every layer r grows by (k - 1) * j, then j is multiplied by the stride",
           "after the 7x7: r=7, j=2; after the pool: r = 7 + 2*2 = 11, j = 4; the two 3x3s each add 2*4"],
    explanation="1 -> 7 -> 11 -> 19 -> 27, jump 4: a pooling layer counts like a conv, and the 3x3s after the "
                "stride-4 stem each add 8 pixels, not 2.",
))
register(Exercise(
    id="01.rf_recurrence",
    question="Write rf(layers): layers is a list of (kernel, stride, dilation) triples, first layer first. "
             "Return (size, jump) of one output cell's receptive field (an empty list is the input: (1, 1)). "
             "It is checked against course_lib.backbones.receptive_field on five stacks, dilated ones included.",
    answer=_reference_rf,
    compare=lambda fn, ref: callable(fn) and _check_rf_fn(fn),
    hints=["keep two numbers, r = 1 and j = 1; for each layer: r += (k_eff - 1) * j, then j *= s",
           "a dilated kernel covers k_eff = d * (k - 1) + 1 pixels: a 3x3 with dilation 2 spans 5"],
    explanation="r += d(k-1)j; j *= s. The jump is the product of the strides so far, so a layer's reach is "
                "multiplied by every stride before it: that is why deep stages see so far.",
))
register(Exercise(
    id="01.stage_shape",
    question="A 320x480 (height x width) photo goes into ResNet-50. What is the shape of its C4 map "
             "(1024 channels, stride 16) for a batch of one? Answer as a tuple (B, C, H, W).",
    answer=(1, 1024, 20, 30),
    hints=["divide height and width by the stride", "320 / 16 = 20"],
    explanation="(1, 1024, 20, 30): the channels come from the stage, the grid from the image size divided by 16.",
))
