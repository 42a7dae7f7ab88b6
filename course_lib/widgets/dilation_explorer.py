"""What a dilated conv samples: a rate slider moves the 9 taps of a dilated 3x3 conv (ASPP's branches).

Each tap stamps the backbone's effective receptive field on the image, so the
learner sees the field of view grow with the rate and the taps fall into the
zero padding.  One forward and one backward pass per image in all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import render
from ..backbones.receptive_field import ERF, stage_receptive_fields
from ..language import tr
from .base import Explorer, as_image, caption, picture, pictures_figure


@dataclass(frozen=True)
class Tap:
    """One sampling point of a dilated 3x3 conv: map cell ``(y, x)``, pixel centre, inside the map or padding."""

    cell: tuple[int, int]
    pixel: tuple[float, float]
    inside: bool


def sampling_grid(cell: tuple[int, int], rate: int, stride: int, map_hw: tuple[int, int],
                  start: float = 0.0) -> list[Tap]:
    """Where the 9 taps of a 3x3 conv with dilation ``rate`` land for output cell ``(y, x)``.

    Taps are ``rate`` cells apart; a tap outside the ``map_hw`` map reads the
    zero padding, so it sees nothing.  ``pixel`` is ``(x, y)`` in input pixels
    (cell centre ``start + stride * index``).
    """
    y, x = cell
    H, W = map_hw
    taps = []
    for dy in (-rate, 0, rate):
        for dx in (-rate, 0, rate):
            ty, tx = y + dy, x + dx
            taps.append(Tap((ty, tx), (start + stride * tx, start + stride * ty), 0 <= ty < H and 0 <= tx < W))
    return taps


class _UpTo(nn.Module):
    """Run a course backbone only as far as ``level`` (the gradient pass then skips the deeper stages)."""

    def __init__(self, backbone: nn.Module, level: str):
        super().__init__()
        self.backbone, self.level = backbone, level

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        stages = getattr(self.backbone, "stages", None)
        if not isinstance(stages, nn.ModuleDict):
            return self.backbone(x)
        x = self.backbone.normalize(x)
        for name, stage in stages.items():
            x = stage(x)
            if name == self.level:
                break
        return OrderedDict([(self.level, x)])


class DilationExplorer(Explorer):
    """Move the rate of a dilated 3x3 conv and see its 9 taps and receptive field on the image.

    The conv sits on the backbone's ``level`` map (default ``C4``, stride 16:
    DeepLab v3's output stride); ``backbone=None`` uses the pretrained
    MobileNetV2.  One forward and one backward pass per image give the
    backbone's effective receptive field of the centre cell; each tap stamps a
    shifted copy of it, so moving the rate or the cell only redraws.

    Controls: ``rate`` (a dropdown of ``rates``), ``cell_x``, ``cell_y``.  Outputs:
    ``image_widget``, ``info``; ``state`` holds the taps, how many fall
    inside the map, and the field of view in pixels.
    """

    ALT = caption(lambda: tr("Dilation explorer: the nine sampling points of a dilated 3x3 convolution drawn over the "
                             "photo, and the map it makes"))

    def __init__(self, backbone: nn.Module | None, image: Any = None, *, picker: Any = None, level: str = "C4",
                 rates: Sequence[int] = (1, 3, 6, 12, 18, 24), max_side: int = 320, margin: int = 96):
        from .. import backbones

        backbone = (backbone if backbone is not None else backbones.build("mobilenet_v2", pretrained=True)).eval()
        super().__init__(backbone, image, picker=picker)
        self.backbone = backbone
        if level not in self.backbone.out_specs:
            raise ValueError(f"level {level!r} is not one of the backbone's maps {list(self.backbone.out_specs)}")
        if not rates or any(int(r) != r or r < 1 for r in rates):
            raise ValueError(f"rates must be positive ints, got {rates!r}")
        self.level = level
        self.max_side = max_side
        self.margin = margin
        self.stride = self.backbone.out_specs[level].stride
        self.rf = stage_receptive_fields(self.backbone)[level]
        self.state: dict[str, Any] = {}
        self.rate = W.Dropdown(options=list(rates), value=6 if 6 in rates else rates[0], description=tr("Rate:"))
        self.cell_y = W.IntSlider(value=0, min=0, max=1, description=tr("Cell y:"))
        self.cell_x = W.IntSlider(value=0, min=0, max=1, description=tr("Cell x:"))
        self.image_widget = picture()
        self.key_widget = picture()
        self._observe(self.rate, self.cell_x, self.cell_y)
        view = self._in_browser([self.rate, self.cell_y, self.cell_x], [self.image_widget, self.key_widget])
        self._start(image, [self.rate, self.cell_y, self.cell_x], [view])

    def _trace(self, image: Any) -> None:
        """One forward and one backward pass: the backbone's effective receptive field of the centre cell."""
        self.image = as_image(image, None if isinstance(image, torch.Tensor) else self.max_side)
        erf = ERF(_UpTo(self.backbone, self.level), self.image)
        self.map_hw = tuple(erf.features[self.level].shape[-2:])
        cy, cx = self.map_hw[0] // 2, self.map_hw[1] // 2
        self._erf = erf.map(self.level, cy, cx).numpy()  # the backward pass
        self._erf_centre = self.rf.centre(cy, cx)
        self.n_forward += erf.n_forward
        del erf  # free the graph
        self._base = self.image
        with self._quietly():
            self.cell_y.max, self.cell_x.max = self.map_hw[0] - 1, self.map_hw[1] - 1
            self.cell_y.value, self.cell_x.value = cy, cx

    def taps(self, rate: int | None = None, cell: tuple[int, int] | None = None) -> list[Tap]:
        """The 9 taps for ``rate`` and ``cell`` (default: the controls' values)."""
        rate = self.rate.value if rate is None else rate
        cell = (self.cell_y.value, self.cell_x.value) if cell is None else cell
        return sampling_grid(cell, rate, self.stride, self.map_hw, self.rf.start)

    def heat(self, taps: Sequence[Tap]) -> np.ndarray:
        """The effective receptive field of the dilated conv: the backbone's, stamped at every tap inside the map."""
        H, W_ = self._erf.shape
        out = np.zeros_like(self._erf)
        cy, cx = self._erf_centre
        for t in taps:
            if not t.inside:
                continue
            dy, dx = int(round(t.pixel[1] - cy)), int(round(t.pixel[0] - cx))
            ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
            xs, xd = (slice(0, W_ - dx), slice(dx, W_)) if dx >= 0 else (slice(-dx, W_), slice(0, W_ + dx))
            out[yd, xd] += self._erf[ys, xs]
        return out

    def render(self, rate: int | None = None, cell: tuple[int, int] | None = None) -> Image.Image:
        """The image (with a grey margin, so taps in the padding show) with taps, field of view and heat."""
        rate = self.rate.value if rate is None else rate
        taps = self.taps(rate, cell)
        # heat shown where it is, the photo elsewhere
        pic = render.overlay(self._base, self.heat(taps), alpha=0.7, cmap=render.HEAT, gamma=0.35, by_heat=True)
        m = self.margin
        canvas = render.frame(pic, m)
        ty, tx = taps[4].pixel[1], taps[4].pixel[0]
        half = (2 * rate * self.stride + self.rf.size) / 2  # the field of view: outer taps' receptive fields
        canvas = render.draw_boxes(canvas, [[m + tx - half, m + ty - half, m + tx + half, m + ty + half]],
                                   colors=[render.ORANGE], width=2)
        points, pinned = [], []
        for t in taps:  # taps beyond the canvas are pinned to its border
            x = min(max(t.pixel[0] + m, 6), canvas.width - 7)
            y = min(max(t.pixel[1] + m, 6), canvas.height - 7)
            points.append((x, y))
            pinned.append((x, y) != (t.pixel[0] + m, t.pixel[1] + m))
        render.tap_markers(canvas, points, [t.inside for t in taps], pinned)
        return render.badge(canvas, (2, 2), tr("rate {rate} on {level} (/{stride}): taps {gap}px apart", rate=rate,
                                               level=self.level, stride=self.stride, gap=rate * self.stride), bg=None)

    @staticmethod
    def legend(width: int) -> Image.Image:
        """The key under the picture: taps inside the map, taps in the zero padding, the field of view."""
        names, colours = render.tap_legend()
        return render.legend(names, colours, width=width)

    def redraw(self) -> None:
        """Redraw for the current controls (no network)."""
        rate = self.rate.value
        taps = self.taps()
        inside = sum(t.inside for t in taps)
        fov = 2 * rate * self.stride + self.rf.size
        pic = self.render()
        self.image_widget.value = render.png_bytes(pic)
        self.key_widget.value = render.png_bytes(self.legend(pic.width))
        self.state = {"rate": rate, "cell": (self.cell_y.value, self.cell_x.value), "taps": taps,
                      "inside": inside, "gap_px": rate * self.stride, "field_px": fov}
        self.info.value = tr(
            "3x3 conv, dilation <b>{rate}</b> on {level} ({mh}x{mw} cells, stride {stride}): taps {gap} px apart; "
            "field of view {fov} px (= 2&middot;{rate}&middot;{stride} + the backbone's {rf} px); <b>{inside}/9</b> "
            "taps inside the map (rings with a cross read zero padding).", rate=rate, level=self.level,
            mh=self.map_hw[0], mw=self.map_hw[1], stride=self.stride, gap=rate * self.stride, fov=fov,
            rf=self.rf.size, inside=inside)
        self.n_redraw += 1

    def static_figure(self, rates: Sequence[int] = (6, 12, 18)):
        """One panel per rate (DeepLab v3's 6/12/18 by default), for places without widgets.

        Each panel is :meth:`render` for that rate at the current cell, titled with the tap spacing and how
        many of the 9 taps fall inside the map.
        """
        pics = [self.render(rate=r) for r in rates]
        titles = [tr("rate {r}: taps {gap}px apart, {inside}/9 inside", r=r, gap=r * self.stride,
                     inside=sum(t.inside for t in self.taps(r))) for r in rates]
        fig = pictures_figure(pics, titles, ncols=len(rates), legend_in=0.45)
        fig.legend(*render.tap_legend_handles(), loc="lower center", ncol=3, frameon=False)
        return fig
