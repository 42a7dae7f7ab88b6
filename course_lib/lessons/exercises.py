"""Exercises that check a learner's answer instantly, with hints.

Each lesson registers a few :class:`Exercise` objects under ids like
``"00.stride"``.  In a notebook::

    ex = cl.exercises.get("00.stride")
    answer = None         # the learner writes the answer here
    ex.check(answer)      # the question once, then a ✓ or a ✗ with a hint

``ex.check`` never raises on a wrong answer (a learner's notebook keeps
running).  It returns a :class:`Verdict`: true or false like a bool, and shown
(as a cell's result, or with ``print``) as the question and one ✓ / ✗ line, so
a notebook cell prints nothing twice and never shows a bare ``False``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..language import tr


@dataclass(frozen=True)
class Verdict:
    """The result of :meth:`Exercise.check`: ``bool(verdict)`` is whether the answer was right.

    Its text is the question, then one line: ``✓ Correct! ...``, ``✗ Not quite: ... Hint: ...`` or
    ``✗ Not answered yet ... Hint: ...``.  A notebook shows it as the cell's result; ``print`` shows the same.
    """

    ok: bool
    question: str
    line: str

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return self.ok is other
        if isinstance(other, Verdict):
            return (self.ok, self.line) == (other.ok, other.line)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.ok, self.line))

    def __str__(self) -> str:
        return f"{self.question}\n{self.line}"

    __repr__ = __str__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:   # IPython: the same text, without quotes
        p.text(str(self))


@dataclass
class Exercise:
    """One question with an instant checker.

    ``answer`` is the reference; ``compare`` decides whether a learner's value
    matches it (default: equal, or within ``rel_tol`` for numbers).
    """

    id: str
    question: str
    answer: Any
    hints: list[str] = field(default_factory=list)
    explanation: str = ""
    rel_tol: float = 0.0
    compare: Callable[[Any, Any], bool] | None = None
    tries: int = 0

    def is_correct(self, value: Any) -> bool:
        """True if ``value`` matches the reference answer (silent; used by tests)."""
        if self.compare is not None:
            try:
                return bool(self.compare(value, self.answer))
            except Exception:
                return False
        return _same(value, self.answer, self.rel_tol)

    def check(self, value: Any) -> Verdict:
        """Whether ``value`` is right, as a :class:`Verdict` (the question once, then ✓ or ✗ with a hint).

        After each wrong try the next hint is given; a blank answer (``None`` or ``...``) gets the first hint.
        Everything it says follows :func:`course_lib.language.set_language`.
        """
        question = f"[{self.id}] {tr(self.question)}"
        if value is None or value is ...:
            hint = tr(" Hint: {hint}", hint=tr(self.hints[0])) if self.hints else ""
            return Verdict(False, question, tr("✗ Not answered yet: replace None with your answer.") + hint)
        ok = self.is_correct(value)
        if ok:
            return Verdict(True, question, tr("✓ Correct! {explanation}", explanation=tr(self.explanation)).rstrip())
        hint = tr(self.hints[min(self.tries, len(self.hints) - 1)]) if self.hints else tr("read the lesson again")
        self.tries += 1
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return Verdict(False, question, tr("✗ Not quite: {shown}. Hint: {hint}", shown=shown, hint=hint))

    def solution(self) -> Any:
        """The reference answer (peek only after trying)."""
        return self.answer

    def __repr__(self) -> str:
        return tr("Exercise {id}: {question}", id=self.id, question=tr(self.question))


class LazyExercise(Exercise):
    """An exercise whose reference answer is computed from the library the first time it is needed
    (``compute()``), so importing the exercise bank stays cheap and the answer can never drift from the code."""

    def __init__(self, *args: Any, compute: Callable[[], Any], **kw: Any):
        super().__init__(*args, answer=None, **kw)
        self._compute = compute

    def is_correct(self, value: Any) -> bool:
        self.solution()
        return super().is_correct(value)

    def solution(self) -> Any:
        if self.answer is None:
            self.answer = self._compute()
        return self.answer


def _same(value: Any, ref: Any, rel_tol: float) -> bool:
    if isinstance(ref, bool) or isinstance(value, bool):
        return value is ref or value == ref
    if isinstance(ref, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(value, ref, rel_tol=rel_tol, abs_tol=1e-9)
    if isinstance(ref, (tuple, list)) and isinstance(value, (tuple, list)):
        return len(ref) == len(value) and all(_same(v, r, rel_tol) for v, r in zip(value, ref))
    if isinstance(ref, str) and isinstance(value, str):
        return value.strip().lower() == ref.strip().lower()
    return value == ref


_REGISTRY: dict[str, Exercise] = {}


def register(ex: Exercise) -> Exercise:
    """Add an exercise to the catalogue (ids are unique)."""
    if ex.id in _REGISTRY:
        raise KeyError(f"exercise {ex.id!r} is registered twice")
    _REGISTRY[ex.id] = ex
    return ex


def get(ex_id: str) -> Exercise:
    """The exercise with this id, e.g. ``"00.stride"``."""
    _load_banks()
    if ex_id not in _REGISTRY:
        raise KeyError(f"no exercise {ex_id!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[ex_id]


def for_lesson(lesson: str) -> list[Exercise]:
    """All exercises of one lesson (``"00"``, ``"01"``, ...)."""
    _load_banks()
    return [ex for ex_id, ex in sorted(_REGISTRY.items()) if ex_id.split(".")[0] == lesson]


def all_exercises() -> list[Exercise]:
    _load_banks()
    return [ex for _, ex in sorted(_REGISTRY.items())]


_loaded = False


def _load_banks() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        from . import exercise_bank  # noqa: F401  (registers every lesson's exercises)
