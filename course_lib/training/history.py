"""What a training run leaves behind: a :class:`History` to read and plot, and :class:`LiveCurves` while it runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class History:
    """What happened during :func:`fit`, ready to plot.

    * ``step`` / ``loss``: one entry per optimizer step (the training loss of that batch);
    * ``parts``: per-step values of the named parts of a dict loss;
    * ``eval_step`` / ``eval_epoch`` / ``metrics``: one entry per evaluation;
      ``metrics["train_loss"]`` is the mean training loss since the previous
      evaluation, the other keys come from ``val_fn``.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)
    eval_step: list[int] = field(default_factory=list)
    eval_epoch: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def steps_done(self) -> int:
        return self.step[-1] if self.step else 0

    def final(self, name: str) -> float:
        """The last recorded value of a metric (``"train_loss"``, ``"val_acc"``, ...)."""
        if name not in self.metrics or not self.metrics[name]:
            raise KeyError(f"no metric {name!r}; recorded: {', '.join(self.metrics) or 'none'}")
        return self.metrics[name][-1]

    def best(self, name: str, mode: str = "max") -> float:
        """The best value a metric reached (``mode="min"`` for losses)."""
        if name not in self.metrics or not self.metrics[name]:
            raise KeyError(f"no metric {name!r}; recorded: {', '.join(self.metrics) or 'none'}")
        vals = self.metrics[name]
        return max(vals) if mode == "max" else min(vals)

    def rows(self) -> list[dict[str, float]]:
        """One dict per evaluation: step, epoch and every metric."""
        rows = []
        for i, s in enumerate(self.eval_step):
            row: dict[str, float] = {"step": s, "epoch": self.eval_epoch[i]}
            row.update({k: v[i] for k, v in self.metrics.items() if i < len(v)})
            rows.append(row)
        return rows

    def as_table(self) -> str:
        """A plain-text table, one line per evaluation."""
        rows = self.rows()
        if not rows:
            return "(no evaluation recorded)"
        keys = list(rows[0])
        width = {k: max(len(k), 8) for k in keys}

        def fmt(k: str, v: float) -> str:
            if k == "step":
                return f"{int(v):>{width[k]}d}"
            return f"{v:>{width[k]}.4f}" if isinstance(v, float) else f"{v!s:>{width[k]}}"

        lines = ["  ".join(f"{k:>{width[k]}}" for k in keys)]
        lines += ["  ".join(fmt(k, r.get(k, float("nan"))) for k in keys) for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.metrics.items() if v)
        return f"History({self.steps_done} steps on {self.device}, {self.seconds:.1f}s, stopped by {self.stopped_by}; {last})"


class LiveCurves:
    """A ``callback`` for :func:`fit` that redraws loss and metric curves in place.

    ``LiveCurves(["train_loss", "val_loss"], ["val_acc"])`` draws two panels;
    in a notebook the figure updates after every evaluation.  Call
    :meth:`close` (or use ``figure`` afterwards) to keep a static copy.
    """

    def __init__(self, left: Sequence[str] = ("train_loss", "val_loss"), right: Sequence[str] = ("val_acc",),
                 title: str = "", display: bool = True):
        import matplotlib.pyplot as plt

        self.left, self.right = list(left), list(right)
        self.figure, axes = plt.subplots(1, 2 if self.right else 1, figsize=(8 if self.right else 4.5, 3))
        self.axes = list(np.atleast_1d(axes))
        plt.close(self.figure)  # drawn through the display handle, not twice
        if title:
            self.figure.suptitle(title)
        self._handle = None
        self._display = display
        self.n_updates = 0

    def __call__(self, hist: History) -> None:
        for ax, names in zip(self.axes, (self.left, self.right)):
            ax.clear()
            for name in names:
                if name in hist.metrics:
                    ax.plot(hist.eval_epoch, hist.metrics[name], marker="o", ms=3, label=name)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend()
        self.figure.tight_layout()
        self.n_updates += 1
        if self._display:
            try:
                from IPython.display import display

                if self._handle is None:
                    self._handle = display(self.figure, display_id=True)
                else:
                    self._handle.update(self.figure)
            except ImportError:  # pragma: no cover - IPython ships with jupyter
                pass
