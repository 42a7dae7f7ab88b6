"""Where a transformer looks: pick a layer, a head and a query cell, see its attention over the photo.

Works on the course's ViT (``cl.backbones.build("tiny_vit")``, or a Model built on it), on
:func:`course_lib.backbones.vit.torchvision_vit` and on torchvision's own ``vit_b_16``.  The attention of
every layer is caught in one forward pass (:func:`course_lib.explain.attention_maps`); every control move
redraws from that cache.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import explain, render
from ..language import tr
from .base import Explorer, as_image, caption, picture

CLS, PATCH = "class token", "patch"


class AttentionExplorer(Explorer):
    """Layer, head and query (a patch cell, or the class token) -> that query's attention over the image.

    Controls (attributes): ``layer``, ``head`` (``"mean"`` or a head index), ``query`` ("patch" /
    "class token"), ``qy`` / ``qx`` (the query cell), ``opacity``; :meth:`click` picks the query cell from a
    pixel of the picture.  Output: ``image_widget`` (the map over the photo, the query cell outlined) and
    ``info``.  ``n_forward`` counts forward passes: one per image.
    """

    ALT = caption(lambda: tr("Attention explorer: where one query of a vision transformer looks, as a heat map over "
                             "the photo"))

    def __init__(self, model: nn.Module, image: Any = None, *, picker: Any = None, max_side: int = 256,
                 width: int = 384):
        explain.attention_layers(model)  # a clear error now for a model without attention
        super().__init__(model, image, picker=picker)
        self.model = model
        self.max_side, self.width = max_side, width
        self.maps: explain.AttentionMaps | None = None
        self.layer = W.Dropdown(description=tr("Layer:"))
        self.head = W.Dropdown(description=tr("Head:"))
        self.query = W.ToggleButtons(options=[(tr("patch"), PATCH), (tr("class token"), CLS)], value=PATCH,
                                     description=tr("Query:"))
        self.qy = W.IntSlider(value=0, min=0, max=1, description=tr("cell y:"), continuous_update=False)
        self.qx = W.IntSlider(value=0, min=0, max=1, description=tr("cell x:"), continuous_update=False)
        self.opacity = W.FloatSlider(value=0.6, min=0.0, max=1.0, step=0.05, description=tr("Opacity:"))
        self.image_widget = picture()
        self.key_widget = picture()
        self._observe(self.layer, self.head, self.query, self.qy, self.qx, self.opacity)
        view = self._in_browser([self.layer, self.head, self.query, self.qy, self.qx],
                                [self.image_widget, self.key_widget], opacity=self.opacity, click=self.click)
        self._start(image, [self.layer, self.head, self.query, self.qy, self.qx,
                            W.HTML("<small>" + tr("or click the picture to pick the query patch") + "</small>"), self.opacity],
                    [view])

    # -- once per image -------------------------------------------------------------
    def _trace(self, image: Any) -> None:
        """One forward pass: the attention of every layer, cached (``(heads, tokens, tokens)`` each)."""
        first = self.maps is None
        self.maps = explain.attention_maps(self.model, as_image(image, self.max_side))
        self.n_forward += 1
        gh, gw = self.maps.grid
        with self._quietly():
            layers = [(f"{i}: {n}", i) for i, n in enumerate(self.maps.layers)]
            if list(self.layer.options) != layers:
                self.layer.options = layers
                self.layer.value = len(layers) - 1
            heads = [(tr("mean"), "mean"), *((str(h), h) for h in range(self.maps.num_heads))]
            if list(self.head.options) != heads:
                self.head.options = heads
                self.head.value = "mean"
            self.qy.max, self.qx.max = gh - 1, gw - 1
            if first:  # start on the centre cell; later images keep the cell (clamped to their grid)
                self.qy.value, self.qx.value = gh // 2, gw // 2
            self.qy.value, self.qx.value = min(self.qy.value, gh - 1), min(self.qx.value, gw - 1)
            if self.maps.prefix < 1:
                self.query.value = PATCH
            self.query.disabled = self.maps.prefix < 1  # no class token to ask about
        self._base = render.photo(self.maps.image, self.width)

    # -- the cheap part -------------------------------------------------------------
    def query_cell(self) -> tuple[int, int] | str:
        """The query now: ``(y, x)`` of a patch, or ``"cls"``."""
        return "cls" if self.query.value == CLS else (self.qy.value, self.qx.value)

    def heat(self, layer: int | None = None, head: int | str | None = None) -> torch.Tensor:
        """The current query's attention over the patch grid, ``(h, w)`` (from the cache)."""
        return self.maps.map(self.layer.value if layer is None else layer,
                             self.head.value if head is None else head, self.query_cell())

    def click(self, x: float, y: float) -> tuple[int, int]:
        """Make the patch under pixel ``(x, y)`` of the shown picture the query; returns its cell ``(y, x)``."""
        scale = self.maps.image.shape[-1] / self._base.shape[1]
        p = self.maps.patch
        cy, cx = int(y * scale // p), int(x * scale // p)
        cy, cx = min(max(cy, 0), self.maps.grid[0] - 1), min(max(cx, 0), self.maps.grid[1] - 1)
        with self._quietly():
            self.query.value = PATCH
            self.qy.value, self.qx.value = cy, cx
        self.redraw()
        return cy, cx

    def render(self, layer: int | None = None, head: int | str | None = None, base: np.ndarray | None = None) -> Image.Image:
        """The attention map over the photo, the query cell outlined (no forward pass)."""
        base = self._base if base is None else base
        img = render.overlay(base, self.heat(layer, head), alpha=self.opacity.value)
        if self.query.value == PATCH:
            k = self.maps.patch * base.shape[1] / self.maps.image.shape[-1]
            y, x = self.qy.value, self.qx.value
            img = render.draw_boxes(img, [[x * k, y * k, (x + 1) * k, (y + 1) * k]], colors=[(255, 255, 255)])
        return img

    def describe(self) -> str:
        """The line under the controls: where the query looks most, and how far it looks on average."""
        m = self.maps
        li = self.layer.value
        row = m.row(li, self.head.value, self.query_cell())
        grid = explain.row_to_grid(row, m.grid, m.prefix)
        ty, tx = np.unravel_index(int(grid.argmax()), tuple(grid.shape))
        who = self._who()
        head = tr("all heads (mean)") if self.head.value == "mean" else tr("head {h}", h=self.head.value)
        cls_share = tr("; {share:.0%} to the class token", share=float(row[:m.prefix].sum())) if m.prefix else ""
        dist = m.mean_distance(li, self.head.value)
        return tr("<b>layer {li}</b>, {head}: {who} looks most at patch ({ty}, {tx}) ({top:.0%} of its "
                  "attention{cls_share}). Mean attention distance of this layer and head, over every patch: "
                  "{dist:.0f} px ({gh}×{gw} patches of {p} px)", li=li, head=head, who=who, ty=ty, tx=tx,
                  top=float(grid.max()), cls_share=cls_share, dist=dist, gh=m.grid[0], gw=m.grid[1], p=m.patch)

    def _who(self) -> str:
        """The query in words: the class token, or the patch at its cell."""
        if self.query.value == CLS:
            return tr("the class token")
        return tr("patch ({y}, {x})", y=self.qy.value, x=self.qx.value)

    def redraw(self) -> None:
        """Draw the current view and its explanation from the cache."""
        if self.maps is None or self.layer.value is None:
            return
        self.qy.disabled = self.qx.disabled = self.query.value == CLS  # the class token has no cell
        self.image_widget.value = render.png_bytes(self.render())
        self.key_widget.value = render.png_bytes(render.colorbar_strip(
            0, 1, self._base.shape[1], render.HEAT, tr("attention, relative (white box: the query)")))
        self.info.value = self.describe()
        self.n_redraw += 1

    def static_figure(self, layers: int = 4, heads: int = 3):
        """The current query's attention in a few layers (rows: first to last) for the mean and ``heads`` heads.

        Panel ``(r, j)`` is titled ``"layer <i> <head>"`` and is what the explorer draws for that layer and head;
        every panel is stretched to its own largest weight, and one colour bar says so.
        """
        import matplotlib.pyplot as plt

        n = len(self.maps.layers)
        rows = sorted({round(i * (n - 1) / max(1, layers - 1)) for i in range(min(layers, n))})
        cols = ["mean", *range(min(heads, self.maps.num_heads))]
        base = render.photo(self.maps.image, 160)
        fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.9 * len(cols), 1.9 * len(rows) + 0.4),
                                 squeeze=False)
        for r, li in enumerate(rows):
            for j, h in enumerate(cols):
                ax = axes[r, j]
                ax.imshow(self.render(li, h, base))
                ax.set_xticks([])
                ax.set_yticks([])
                which = tr("mean") if h == "mean" else tr("head {h}", h=h)
                ax.set_title(tr("layer {li} {which}", li=li, which=which), fontsize=render.MIN_PT)
        fig.suptitle(tr("Where {who} looks, layer by layer (each panel on its own scale: 0 to its largest weight)",
                        who=self._who()), fontsize=render.TEXT_PT)
        fig.tight_layout()
        bar = plt.cm.ScalarMappable(cmap=render.HEAT, norm=plt.Normalize(0, 1))
        fig.colorbar(bar, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02).set_label(tr("attention / panel's largest"))
        return fig
