"""Where a backbone looks: the theoretical receptive-field box and the effective one (gradient heat map)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import render
from ..backbones.receptive_field import ERF, RF, mass_radius, stage_receptive_fields
from ..language import tr
from .base import Explorer, as_image, caption, picture, pictures_figure
from .feature_explorer import check_backbone


class ReceptiveFieldExplorer(Explorer):
    """Pick a stage and a cell: the theoretical receptive-field box and the effective one (gradient heat map).

    Controls: ``stage``, ``y``, ``x``, ``show_erf``; a click on the picture (:meth:`click`) picks the cell
    under it.  The box comes from
    :func:`course_lib.receptive_field.stage_receptive_fields`; the heat map is
    ``|d cell / d input|`` from one backward pass through the graph kept from
    the single forward pass (``n_forward``), cached per cell (``n_backward``).
    """

    ALT = caption(lambda: tr("Receptive-field explorer: the input pixels one feature-map cell can see, as a box and a "
                             "gradient heat map"))

    def __init__(self, backbone: nn.Module, image: Any = None, *, picker: Any = None, max_side: int = 224,
                 width: int = 448):
        super().__init__(check_backbone(backbone), image, picker=picker)
        self.backbone = self.source
        self.max_side, self.width = max_side, width
        try:
            self.rf: Mapping[str, RF] | None = stage_receptive_fields(self.backbone)
        except (TypeError, ValueError) as err:  # a module the analytic walk cannot follow
            self.rf, self.rf_problem = None, str(err)
        stages = [s for s, spec in self.backbone.out_specs.items() if spec.stride]
        self.stage = W.Dropdown(options=stages, value=stages[min(1, len(stages) - 1)], description=tr("Stage:"))
        # One backward pass per new cell: update when the slider is released, not while dragging.
        self.y = W.IntSlider(value=0, min=0, max=1, description=tr("cell y:"), continuous_update=False)
        self.x = W.IntSlider(value=0, min=0, max=1, description=tr("cell x:"), continuous_update=False)
        self.show_erf = W.Checkbox(value=True, description=tr("effective RF (gradient)"))
        self.image_widget = picture("jpeg")
        self.key_widget = picture()
        self._observe(self.stage, self.y, self.x, self.show_erf)
        view = self._in_browser([self.stage, self.show_erf, self.y, self.x], [self.image_widget, self.key_widget],
                                click=self.click, derived=[self.y, self.x])
        self._start(image, [self.stage, self.show_erf, self.y, self.x,
                            W.HTML("<small>" + tr("or click the picture to pick a cell") + "</small>")], [view])

    def _trace(self, image: Any) -> None:
        """One forward pass (graph kept for the gradients), then centre the cell."""
        self.image = as_image(image, self.max_side)
        self.erf = ERF(self.backbone, self.image)
        self._views: dict[tuple[str, int, int], tuple[np.ndarray, float]] = {}
        self.n_forward += 1
        self._base = render.photo(self.image, self.width)
        self._scale = self.width / self.image.shape[-1]
        self._sync_ranges(centre=True)

    @property
    def n_backward(self) -> int:
        """Backward passes so far: one per cell seen with the gradient on."""
        return self.erf.n_backward

    def _grid(self) -> tuple[int, int]:
        return tuple(self.erf.features[self.stage.value].shape[-2:])  # type: ignore[return-value]

    def _sync_ranges(self, centre: bool = False) -> None:
        H, W_ = self._grid()
        with self._quietly():
            self.y.max, self.x.max = H - 1, W_ - 1
            if centre:
                self.y.value, self.x.value = H // 2, W_ // 2
            else:
                self.y.value, self.x.value = min(self.y.value, H - 1), min(self.x.value, W_ - 1)

    def _on_control(self, change) -> None:
        if not self._quiet and change["owner"] is self.stage:
            oh, ow = self.erf.features[change["old"]].shape[-2:]
            H, W_ = self._grid()
            fy, fx = (self.y.value + 0.5) / oh, (self.x.value + 0.5) / ow  # keep pointing at the same place
            self._sync_ranges()
            with self._quietly():
                self.y.value, self.x.value = min(H - 1, int(fy * H)), min(W_ - 1, int(fx * W_))
        super()._on_control(change)

    def click(self, x: float, y: float) -> tuple[int, int]:
        """Make the cell under pixel ``(x, y)`` of the shown picture the current one; returns its ``(y, x)``."""
        H, W_ = self._grid()
        h, w = self.image.shape[-2:]
        px, py = x / self._scale, y / self._scale  # picture pixels -> image pixels
        cy, cx = min(max(int(py * H / h), 0), H - 1), min(max(int(px * W_ / w), 0), W_ - 1)
        with self._quietly():
            self.y.value, self.x.value = cy, cx
        self.redraw()
        return cy, cx

    def legend(self) -> Image.Image:
        """The key under the picture: what the box, the square and the heat mean."""
        names, colours = [tr("theoretical RF"), tr("the cell's stride patch")], [(0, 255, 120), render.WHITE]
        key = render.legend(names, colours, width=self.width)
        if not self.show_erf.value:
            return key
        return render.vstack([key, render.colorbar_strip(0, 1, self.width, render.HEAT,
                                                         tr("effective RF: |gradient|, relative"))], pad=0)

    def theoretical_box(self) -> tuple[int, int, int, int] | None:
        """The analytic box ``(x0, y0, x1, y1)`` in image pixels for the current cell (clipped)."""
        if self.rf is None or self.stage.value not in self.rf:
            return None
        return self.rf[self.stage.value].box(self.y.value, self.x.value, tuple(self.image.shape[-2:]))

    def erf_map(self) -> torch.Tensor:
        """``|d cell / d input|`` for the current cell, ``(H, W)`` (one backward pass the first time)."""
        return self.erf.map(self.stage.value, self.y.value, self.x.value)

    def _erf_view(self) -> tuple[np.ndarray, float]:
        """The heat map scaled for display, and the 90 % mass radius, remembered per cell."""
        key = (self.stage.value, self.y.value, self.x.value)
        if key not in self._views:
            raw = self.erf_map()
            heat = raw.sqrt()  # square root: the faint tails stay visible
            top = float(torch.quantile(heat.flatten()[::7], 0.998)) or 1.0
            self._views[key] = ((heat / top).clamp(0, 1).numpy(), mass_radius(raw))
        return self._views[key]

    def render(self) -> Image.Image:
        """The photo, the effective field as heat (where the gradient is) and the theoretical box (green)."""
        if self.show_erf.value:
            img = render.overlay(self._base, self._erf_view()[0], alpha=0.85, cmap=render.HEAT, normalize=False,
                                 by_heat=True, dim=0.75)
        else:
            img = Image.fromarray(self._base)
        box = self.theoretical_box()
        if box is not None:
            s = self._scale
            x0, y0, x1, y1 = box
            img = render.draw_boxes(img, [[x0 * s, y0 * s, (x1 + 1) * s - 1, (y1 + 1) * s - 1]],
                                    colors=[(0, 255, 120)], width=2)
            rf = self.rf[self.stage.value]
            cy, cx = rf.centre(self.y.value, self.x.value)
            j = rf.jump / 2
            img = render.draw_boxes(img, [[(cx - j + 0.5) * s, (cy - j + 0.5) * s, (cx + j + 0.5) * s,
                                           (cy + j + 0.5) * s]], colors=[render.WHITE], width=1)
        return img

    def describe(self) -> str:
        """The one-line explanation under the controls."""
        H, W_ = self._grid()
        name = self.stage.value
        head = tr("<b>{name}</b> cell ({y}, {x}) of {h}×{w}", name=name, y=self.y.value, x=self.x.value, h=H, w=W_)
        if self.rf is not None and name in self.rf:
            rf = self.rf[name]
            x0, y0, x1, y1 = self.theoretical_box()
            txt = tr("{head}: theoretical RF {size}×{size} px (green; {iw}×{ih} inside the image), stride {jump} "
                     "(white square)", head=head, size=rf.size, iw=x1 - x0 + 1, ih=y1 - y0 + 1, jump=rf.jump)
        else:
            txt = tr("{head}: no analytic RF for this module ({problem})", head=head,
                     problem=getattr(self, "rf_problem", ""))
        if self.show_erf.value:
            txt += tr("; 90% of the gradient lies within ±{r:.0f} px", r=self._erf_view()[1])
        return txt

    def redraw(self) -> None:
        """Draw the current cell's fields and their explanation (a backward pass only for a new cell)."""
        self.image_widget.value = render.jpeg_bytes(self.render())
        self.key_widget.value = render.png_bytes(self.legend())
        self.info.value = self.describe()
        self.n_redraw += 1

    def static_figure(self):
        """The centre cell of every stage: theoretical box and effective heat map, side by side (matplotlib).

        Panel ``i`` shows exactly what the explorer draws for stage ``i``'s centre cell, at its own size, titled
        with the stage and its receptive field; the controls are left as they were.
        """
        keep = (self.stage.value, self.y.value, self.x.value, self.show_erf.value)
        stages = list(self.stage.options)
        pics, titles = [], []
        with self._quietly():
            try:
                self.show_erf.value = True
                for s in stages:
                    self.stage.value = s
                    H, W_ = self._grid()
                    self.y.max, self.x.max = H - 1, W_ - 1
                    self.y.value, self.x.value = H // 2, W_ // 2
                    pics.append(self.render())
                    size = tr("RF {n}px", n=self.rf[s].size) if self.rf is not None and s in self.rf else ""
                    titles.append(tr("{stage} centre cell {size}", stage=s, size=size))
            finally:
                self.stage.value = keep[0]
                self._sync_ranges()
                self.y.value, self.x.value, self.show_erf.value = keep[1], keep[2], keep[3]
        return pictures_figure(pics, titles, suptitle=tr("Theoretical receptive field (green box) vs effective one "
                                                         "(gradient heat)"))
