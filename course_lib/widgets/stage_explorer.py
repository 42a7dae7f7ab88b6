"""Walk through a model stage by stage: shape, most active channels, and the verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import torch

from .. import render
from ..language import tr
from ..model import Model, Trace
from .base import Explorer, as_image, caption, offstage, picture
from .browser import MapView, bar_group, map_group


class StageExplorer(Explorer):
    """Pick a stage of ``model`` and see what it holds for the current image.

    The network runs once per image (``n_forward`` counts the passes); moving
    the stage dropdown or the top-k slider only redraws from the cached
    :class:`~course_lib.model.Trace`.  In JupyterLab the picture is drawn in the browser
    (:class:`~course_lib.widgets.browser.MapView`, ``view``): each stage's top 16 channels go to the page once
    per image, and the two controls redraw there without waiting for the kernel.

    * a spatial map ``(1, C, H, W)``: the ``k`` channels with the highest mean
      activation, side by side;
    * a vector ``(1, C)`` (after pooling) or logits: the ``k`` largest entries
      as bars, named by the head's classes when there are any.

    ``prepare`` turns the picture into what the model expects (e.g.
    :func:`course_lib.images.imagenet_view`).
    """

    ALT = caption(lambda: tr("Stage explorer: what one stage of the backbone holds for the photo"))

    def __init__(self, model: Model, image: Any = None, *, picker: Any = None,
                 prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, top_k: int = 8, cell: int = 96):
        super().__init__(model, image, picker=picker)
        self.model = model
        self.prepare = prepare or (lambda x: x)
        self.cell = cell
        self.trace: Trace | None = None
        self._rows: dict[str, torch.Tensor] = {}
        self.stage = W.Dropdown(description=tr("Stage:"))
        self.top_k = W.IntSlider(value=top_k, min=1, max=16, description=tr("Top k:"), continuous_update=True)
        self.image_widget = picture()        # the same picture drawn by Python: static figures, tests, no browser
        offstage(self.image_widget)
        self.verdict_widget = picture()
        self.view = MapView()
        self._observe(self.stage, self.top_k)
        self._start(image, [self.stage, self.top_k],
                    [self.view, W.HTML("<b>" + tr("Verdict of the head (top 5)") + "</b>"), self.verdict_widget])
        self.view.follow({"group": (self.stage, "index"), "k": (self.top_k, "value")})

    # -- the expensive part: once per image -------------------------------------
    def _trace(self, image: Any) -> None:
        """Run the model once on a new image."""
        self.trace = self.model.trace(self.prepare(as_image(image)))
        self.n_forward += 1
        self._rows = {f"{part} · {name}": t for part, name, t in self.trace.stages()}
        keep = self.stage.value if self.stage.value in self._rows else None
        with self._quietly():  # changing the options fires observers; redraw once at the end
            if list(self.stage.options) != list(self._rows):
                self.stage.options = list(self._rows)
            self.stage.value = keep or list(self._rows)[1]
        self.verdict_widget.value = render.png_bytes(self.verdict_image())
        self.view.show([self._view_group(s) for s in self._rows], cmap=render.SEQUENTIAL, cell=self.cell,
                       controls={"group": True, "k": {"min": 1, "max": 16}},
                       text={"group": tr("Stage:"), "k": tr("Top k:")}, alt=self.ALT)

    def _view_group(self, stage: str) -> dict:
        """What the browser view gets of one stage: the input's colours, the top 16 channels of a map (best
        first), or the 16 largest entries of a vector, as :meth:`stage_image` draws them."""
        t = self._rows[stage][0]
        if t.ndim == 3 and stage.startswith("input"):
            return map_group(stage, t[:3], labels=["R", "G", "B"], fixed=True, cmap="gray")
        top = self.top_channels(stage, 16)
        if t.ndim == 3:
            return map_group(stage, t[top], labels=[f"#{c}" for c in top])
        vals = t[top]
        shown = torch.softmax(t, 0)[top] if stage.startswith("head") else vals / vals.abs().max().clamp_min(1e-8)
        names = self._names(stage, top)
        return bar_group(stage, shown.tolist(), names)

    # -- the cheap part: every slider move ---------------------------------------
    def redraw(self) -> None:
        """Redraw the current stage from the cached trace (no forward pass)."""
        if self.trace is None or self.stage.value not in self._rows:
            return
        self.top_k.disabled = self.stage.value.startswith("input")  # the input shows its 3 colour channels
        self.image_widget.value = render.png_bytes(self.stage_image(self.stage.value, self.top_k.value))
        t = self._rows[self.stage.value]
        part, name = self.stage.value.split(" · ")
        spec = self.trace.specs.get(part, {}).get(name)
        extra = f" — {spec}" if spec is not None else ""
        self.info.value = tr("<code>{name}</code>: tensor of shape <b>{shape}</b>{extra}", name=name,
                             shape=tuple(t.shape), extra=extra)
        self.n_redraw += 1

    def top_channels(self, stage: str, k: int) -> list[int]:
        """Indices of the ``k`` channels of ``stage`` with the largest mean activation."""
        t = self._rows[stage][0]
        score = t.mean(dim=(1, 2)) if t.ndim == 3 else t
        return score.topk(min(k, score.numel())).indices.tolist()

    def stage_image(self, stage: str, k: int):
        """The picture of one stage: its top-``k`` channels, or bars for a vector."""
        t = self._rows[stage][0]
        if t.ndim == 3 and stage.startswith("input"):
            return render.feature_grid(t, [0, 1, 2], ncols=3, cell=self.cell * 2, cmap="gray")
        if t.ndim == 3:
            return render.feature_grid(t, self.top_channels(stage, k), ncols=min(k, 4), cell=self.cell)
        idx = self.top_channels(stage, k)
        names = self._names(stage, idx)
        vals = t[idx]
        shown = torch.softmax(t, 0)[idx] if stage.startswith("head") else vals / vals.abs().max().clamp_min(1e-8)
        return render.bars(names, shown.tolist())

    def verdict_image(self):
        """The head's top 5 classes as bars (or a note when the head does not classify)."""
        out = self.trace.head if self.trace is not None else None
        if isinstance(out, torch.Tensor) and out.ndim == 2 and hasattr(self.model.head, "decode"):
            top = self.model.head.decode(out, k=5)[0]
            return render.bars([c.name for c in top], [c.prob for c in top])
        return render.bars([tr("(this head does not classify)")], [0.0])

    def _names(self, stage: str, idx: list[int]) -> list[str]:
        cats = getattr(self.model.head, "class_names", None)
        if stage.startswith("head") and cats is not None:
            return [cats[i] for i in idx]
        return [tr("channel {i}", i=i) for i in idx]

    def static_figure(self, k: int = 4, top: int = 5):
        """A matplotlib figure of every stage (top channels) and the verdict, for places without widgets.

        Row 0 holds the input and the head's ``top`` classes as bars (:func:`render.bars`); then one row per
        spatial stage, titled with the stage, the channel and the map's size, its ``k`` maps on one colour
        scale with one colour bar (channels of one stage are comparable; stages differ too much to share one).
        """
        import matplotlib.pyplot as plt

        spatial = [(s, t) for s, t in self._rows.items() if t.ndim == 4 and not s.startswith("input")]
        fig = plt.figure(figsize=(1.9 * k + 0.8, 1.9 * (len(spatial) + 1)), layout="constrained")
        gs = fig.add_gridspec(len(spatial) + 1, k)
        ax_in, ax_v = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1:])
        img = self.trace.image[0].permute(1, 2, 0).cpu().numpy()
        ax_in.imshow(np.clip(img, 0, 1))
        ax_in.set_title(tr("input"), fontsize=render.MIN_PT)
        verdict = self.model.head.decode(self.trace.head, k=top)[0] if self.trace.head.ndim == 2 else []
        if verdict:
            ax_v.imshow(render.bars([c.name for c in verdict], [c.prob for c in verdict], width=150 * (k - 1)))
            ax_v.set_title(tr("the head's verdict: {name} ({p:.1%}), top {n}", name=verdict[0].name, p=verdict[0].prob,
                              n=len(verdict)), fontsize=render.MIN_PT)
        rows = []
        for i, (s, t) in enumerate(spatial, start=1):
            chans = self.top_channels(s, k)
            maps = [t[0, c].cpu().numpy() for c in chans]
            kw = render.imshow_kwargs(maps)                   # one scale for the row
            row = []
            for j, (c, m) in enumerate(zip(chans, maps)):
                ax = fig.add_subplot(gs[i, j])
                im = ax.imshow(m, **kw)
                ax.set_title(f"{s.split(' · ')[1]} #{c} {tuple(t.shape[2:])}", fontsize=render.MIN_PT)
                row.append(ax)
            rows.append((im, row))
        for ax in fig.axes:
            ax.axis("off")
        for im, row in rows:
            fig.colorbar(im, ax=row, fraction=0.03, pad=0.01)
        fig.suptitle(tr("top channels of every stage (one colour scale per row)"), fontsize=render.TEXT_PT)
        return fig
