"""Lesson 07 exercises: one backbone, many heads."""

from __future__ import annotations

from ..exercises import Exercise, register


def _shared_params() -> int:
    from ...measure import count_params
    from ...model import build_model
    from ...training import CONFIGS

    model = build_model(CONFIGS["multitask"]["model"])
    return count_params(model.backbone) + count_params(model.neck)


class _Lazy(Exercise):
    """An exercise whose answer is computed from the library the first time it is needed."""

    def __init__(self, *args, compute, **kw):
        super().__init__(*args, answer=None, **kw)
        self._compute = compute

    def is_correct(self, value):
        if self.answer is None:
            self.answer = self._compute()
        return super().is_correct(value)

    def solution(self):
        if self.answer is None:
            self.answer = self._compute()
        return self.answer


register(Exercise(
    id="07.passes",
    question="A multi-task model has one backbone, one neck and three heads. How many passes through the "
             "backbone does one image need to get all three answers?",
    answer=1,
    hints=["the heads read the same fused maps", "the backbone is shared, not copied"],
    explanation="One: the backbone and neck run once and every head reads their output.",
))
register(_Lazy(
    id="07.saved",
    question="Three separate single-task models would each carry their own backbone + neck. How many "
             "parameters does sharing one save? (use the lesson's summary table)",
    compute=lambda: 2 * _shared_params(),
    hints=["three copies become one", "saved = 2 x (backbone + neck parameters)"],
    explanation="Two copies of the backbone and neck are saved.",
))
register(Exercise(
    id="07.which_head",
    question="Which head answers 'which pixels belong to the square?': classification, detection or segmentation?",
    answer="segmentation",
    hints=["a box is not a set of pixels", "one class per pixel"],
    explanation="Segmentation gives a class for every pixel.",
))
