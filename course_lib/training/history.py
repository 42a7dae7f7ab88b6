"""What a training run leaves behind: a :class:`History` to read and plot, and :class:`LiveCurves` while it runs.

A comparison is drawn on **one** figure: every arm (run) on the same axes, so the same y-scale; x in whole
epochs (or in optimizer steps when evaluations fall between epochs, and then labelled so); and the baselines a
reader needs to judge an accuracy -- computed from the labels (:func:`accuracy_baselines`), never a guessed
"chance" line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..language import tr


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
    cpu_seconds: float = 0.0
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


def accuracy_baselines(labels: Sequence[int] | np.ndarray | object, names: Sequence[str] | None = None
                       ) -> dict[str, float]:
    """The accuracies of a model that always answers one class, computed from the labels it is scored on.

    Returns ``{"majority class (always 'non-face')": 0.533, "minority class (always 'face')": 0.467}`` for a
    validation split of 32 non-faces and 28 faces: a classifier must beat the *majority* line to have learned
    anything, and one stuck on the *minority* line has learned to say one (wrong) class.  ``names[c]`` names
    class ``c`` (default: its index).
    """
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).astype(int).ravel()
    if y.size == 0:
        raise ValueError("accuracy_baselines needs at least one label")
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    major, minor = present[np.argmax(counts[present])], present[np.argmin(counts[present])]

    def name(c: int) -> str:
        return str(names[c]) if names is not None else str(c)

    out = {tr("majority class (always '{name}')", name=name(major)): float(counts[major] / y.size)}
    if minor != major:
        out[tr("minority class (always '{name}')", name=name(minor))] = float(counts[minor] / y.size)
    return out


def draw_baselines(ax, baselines: Mapping[str, float], vertical: bool = False) -> None:
    """Grey labelled lines at each baseline value.  Horizontal (``ax.axhline``): the label sits on its line,
    inside the axes; ``vertical`` (``ax.axvline``, for an accuracy on the x axis): the labels go in a legend
    in the lower right, since long labels along close vertical lines would cross each other."""
    from .. import render

    styles = ("--", ":", "-.")
    for i, (label, v) in enumerate(baselines.items()):
        kw = dict(color="0.35", lw=1.2, ls=styles[i % len(styles)], zorder=1)
        if vertical:
            ax.axvline(v, label=f"{label}: {v:.3f}", **kw)
        else:
            ax.axhline(v, **kw)
            ax.text(0.01, v, f"{label}: {v:.3f}", transform=ax.get_yaxis_transform(), va="bottom" if i == 0 else "top",
                    ha="left", fontsize=render.MIN_PT, color="0.25")
    if vertical and baselines:
        ax.legend(fontsize=render.MIN_PT, loc="lower right")


def _x_of(hist: History, x: str) -> tuple[list[float], str]:
    if x == "auto":
        x = "epoch" if all(float(e).is_integer() for e in hist.eval_epoch) else "step"
    return (list(hist.eval_epoch), "epoch") if x == "epoch" else (list(hist.eval_step), "optimizer step")


def draw_curves(axes: Sequence, runs: Mapping[str, History], panels: Sequence[Sequence[str]],
                baselines: Mapping[str, float] | None = None, x: str = "auto") -> None:
    """Draw every run of ``runs`` (arm name -> :class:`History`) on shared axes: one axes per entry of
    ``panels`` (the metric names it shows).

    An arm keeps one colour (:func:`course_lib.render.class_colour` of its position) in every panel; a metric
    keeps one line style (solid, dashed, dotted) -- so one legend per panel reads both.  x is in whole epochs
    (integer ticks) when every evaluation falls on an epoch's end, else in optimizer steps (``x="auto"``; or
    force ``"epoch"`` / ``"step"``).  ``baselines`` (see :func:`accuracy_baselines`) go on the panels that show
    an accuracy, and an accuracy panel spans 0..1 so arms and baselines are read on one honest scale.
    """
    from matplotlib.ticker import MaxNLocator

    from .. import render

    styles = ("-", "--", ":", "-.")
    for ax, names in zip(axes, panels):
        ax.clear()
        xlabel = "epoch"
        for a, (arm, hist) in enumerate(runs.items()):
            xs, xlabel = _x_of(hist, x)
            colour = render.mpl_colour(a)
            for m, name in enumerate(names):
                if name in hist.metrics:
                    label = " · ".join(t for t in (arm, name if len(names) > 1 or not arm else "") if t)
                    ax.plot(xs, hist.metrics[name], marker="o", ms=3, color=colour, ls=styles[m % len(styles)],
                            label=label or name)
        is_acc = bool(names) and all("acc" in n for n in names)
        if is_acc:
            ax.set_ylim(0, 1.02)
            if baselines:
                draw_baselines(ax, baselines)
        ax.set_xlabel(tr("epoch") if xlabel == "epoch" else tr("optimizer step"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(" / ".join(names) if len(runs) > 1 or len(names) > 1 else names[0] if names else "")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=render.MIN_PT, loc="lower right" if is_acc else "best")


def curves_alt(runs: Mapping[str, History], panels: Sequence[Sequence[str]],
               baselines: Mapping[str, float] | None = None, title: str = "", x: str = "auto") -> str:
    """Alt text for a figure :func:`draw_curves` drew: what each panel plots, the runs, the baselines and every
    run's last values, e.g. ``"Line charts per epoch, one line per run (frozen, scratch): left val_loss, right
    val_acc, with baselines majority class (always 'non-face') 0.533. At the end: frozen (epoch 4) val_loss
    0.395, val_acc 0.95; ..."`` -- the words stay true for whatever runs are drawn."""
    shown = [list(names) for names in panels if names]
    done = {arm: hist for arm, hist in runs.items() if hist.eval_step}
    xlabel = _x_of(next(iter(done.values())), x)[1] if done else "epoch"
    sides = ("left", "right") if len(shown) == 2 else tuple(f"panel {i + 1}" for i in range(len(shown)))
    what = ", ".join(f"{side} {' and '.join(names)}" for side, names in zip(sides, shown)) if len(shown) > 1 else (
        " and ".join(shown[0]) if shown else "nothing")
    named = [arm for arm in runs if arm]
    lines = f", one line per run ({', '.join(named)})" if len(named) > 1 else ""
    has_acc = any(names and all("acc" in n for n in names) for names in shown)
    base = (", with baselines " + ", ".join(f"{k} {v:.3f}" for k, v in baselines.items())
            if baselines and has_acc else "")
    head = f"{title}. " if title else ""
    text = f"{head}{'Line charts' if len(shown) > 1 else 'Line chart'} per {xlabel}{lines}: {what}{base}."
    metrics = [n for names in shown for n in names]
    last = []  # (arm, its last x, its last values)
    for arm, hist in done.items():
        vals = ", ".join(f"{n} {hist.metrics[n][-1]:.3g}" for n in metrics if hist.metrics.get(n))
        if vals:
            last.append((arm, f"{_x_of(hist, x)[0][-1]:g}", vals))
    if len(last) == 1 and not last[0][0]:  # one unnamed run: "At the end (epoch 3): train_loss 0.41."
        text += f" At the end ({xlabel} {last[0][1]}): {last[0][2]}."
    elif last:
        text += " At the end: " + "; ".join(f"{arm or 'run'} ({xlabel} {at}) {vals}" for arm, at, vals in last) + "."
    return text


class LiveCurves:
    """A ``callback`` for :func:`fit` that redraws loss and metric curves in place -- of one run, or of several
    runs on **one** shared figure.

    ``LiveCurves(["train_loss", "val_loss"], ["val_acc"])`` draws two panels; in a notebook the figure updates
    after every evaluation.  To compare arms, give each run its own callback from :meth:`run`::

        curves = LiveCurves(["val_loss"], ["val_acc"], baselines=accuracy_baselines(yva, ["non-face", "face"]))
        for arm in arms:
            fit(..., callback=curves.run(arm))

    Every arm is drawn on the same axes (one y-scale per panel), so the figure that stays on the page after the
    last run is the comparison itself: live while it trains, the finished comparison in a rendered page.  The
    figure says in words what it draws (its alt text, :func:`curves_alt`, kept up to date at every redraw).
    """

    def __init__(self, left: Sequence[str] = ("train_loss", "val_loss"), right: Sequence[str] = ("val_acc",),
                 title: str = "", display: bool = True, baselines: Mapping[str, float] | None = None,
                 x: str = "auto"):
        import matplotlib.pyplot as plt

        self.left, self.right = list(left), list(right)
        self.baselines, self.x = dict(baselines or {}), x
        self.figure, axes = plt.subplots(1, 2 if self.right else 1, figsize=(10 if self.right else 5, 3.6))
        self.axes = list(np.atleast_1d(axes))
        plt.close(self.figure)  # drawn through the display handle, not twice
        if title:
            self.figure.suptitle(title)
        self.title = title
        self.runs: dict[str, History] = {}
        self._alt: str | None = None
        self._handle = None
        self._display = display
        self.n_updates = 0

    def run(self, name: str) -> Callable[[History], None]:
        """The callback for the run (arm) called ``name``: its curves join the others on the same axes."""
        def callback(hist: History) -> None:
            self.update(hist, name)
        return callback

    def __call__(self, hist: History) -> None:
        self.update(hist, "")

    def describe(self) -> str:
        """Give the figure its alt text (:func:`curves_alt`: the runs drawn so far and their last values) and
        return it; a caller's own ``render.describe(curves.figure, ...)`` is kept.  :meth:`update` calls it."""
        from .. import render

        current = render.alt_text(self.figure)
        if current is None or current == self._alt:
            self._alt = curves_alt(self.runs, [self.left, self.right][:len(self.axes)], self.baselines, self.title,
                                   self.x)
            render.describe(self.figure, self._alt)
        return render.alt_text(self.figure)

    def update(self, hist: History, name: str = "") -> None:
        """Record ``hist`` as run ``name`` and redraw every run."""
        self.runs[name] = hist
        draw_curves(self.axes, self.runs, [self.left, self.right][:len(self.axes)], self.baselines, self.x)
        self.figure.tight_layout()
        self.describe()
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


def compare_curves(runs: Mapping[str, History], left: Sequence[str] = ("val_loss",),
                   right: Sequence[str] = ("val_acc",), baselines: Mapping[str, float] | None = None,
                   title: str = "", x: str = "auto"):
    """The static comparison figure of finished runs (arm name -> :class:`History`), drawn as
    :class:`LiveCurves` draws it: all arms on shared axes, whole-epoch ticks, labelled baselines, and its alt
    text (:func:`curves_alt`)."""
    curves = LiveCurves(left, right, title=title, display=False, baselines=baselines, x=x)
    for name, hist in runs.items():
        curves.runs[name] = hist
    draw_curves(curves.axes, curves.runs, [curves.left, curves.right][:len(curves.axes)], curves.baselines, x)
    curves.figure.tight_layout()
    curves.describe()
    return curves.figure
