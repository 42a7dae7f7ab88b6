"""Lesson 01's explorers: what a backbone sees (features) and where it looks (receptive fields).

Both accept any backbone the contract accepts: a course backbone
(``cl.backbones.build("mobilenet_v2", pretrained=True)``) or a learner's own
module wrapped with :func:`course_lib.backbones.from_module`.  The network runs
once per image (``n_forward``); every slider move redraws from cached tensors
with PIL (:mod:`course_lib.render`).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .. import render
from ..backbones.receptive_field import ERF, RF, mass_radius, stage_receptive_fields
from ..images import load_image, to_uint8


def jpeg_bytes(img: Image.Image, quality: int = 88) -> bytes:
    """Encode a picture as JPEG for ``ipywidgets.Image``: photo overlays encode in well under a millisecond,
    about 30x faster than PNG at this size, which is what keeps a slider move within a few milliseconds."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _as_image(image: Any, max_side: int) -> torch.Tensor:
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        image = image[0]
    return load_image(image, max_side=max_side)


def _check_backbone(backbone: Any) -> nn.Module:
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"the explorer needs a backbone (torch.nn.Module), got {type(backbone).__name__}")
    if hasattr(backbone, "backbone") and not hasattr(backbone, "out_specs"):
        backbone = backbone.backbone  # a whole Model: look at its eye
    if not isinstance(getattr(backbone, "out_specs", None), Mapping):
        raise TypeError(
            f"{type(backbone).__name__} does not follow the backbone contract (no out_specs). Wrap your module: "
            "course_lib.backbones.from_module(net, taps={'C3': 'layer2', ...})"
        )
    return backbone


def _base_picture(image: torch.Tensor, width: int) -> np.ndarray:
    arr = to_uint8(image)
    h, w = arr.shape[:2]
    return render.resize(arr, (width, max(1, round(h * width / w))), smooth=True)


class FeatureExplorer:
    """Pick a stage and a channel (or the top-k most active channels) and see its map, alone or over the photo.

    Controls (attributes): ``stage``, ``mode`` ("channel" / "top-k"),
    ``channel``, ``top_k``, ``overlay``.  Output: ``image_widget`` and the text
    in ``info``.  ``n_forward`` counts forward passes (one per image).
    """

    def __init__(self, backbone: nn.Module, image: Any = None, picker: Any = None, max_side: int = 320,
                 width: int = 448):
        self.backbone = _check_backbone(backbone)
        self.max_side, self.width = max_side, width
        self.n_forward = 0
        self.n_redraw = 0
        stages = list(self.backbone.out_specs)
        self.stage = W.Dropdown(options=stages, value=stages[min(1, len(stages) - 1)], description="Stage:")
        self.mode = W.ToggleButtons(options=["channel", "top-k"], value="channel", description="Show:")
        self.channel = W.IntSlider(value=0, min=0, max=1, description="Channel:", continuous_update=True)
        self.top_k = W.IntSlider(value=8, min=1, max=16, description="Top k:", continuous_update=True)
        self.overlay = W.Checkbox(value=True, description="over the photo")
        self.info = W.HTML()
        self.image_widget = W.Image(format="jpeg")
        for w in (self.stage, self.mode, self.channel, self.top_k, self.overlay):
            w.observe(self._on_change, names="value")
        self._quiet = False
        if picker is not None:
            image = picker.image
            picker.on_change(self.set_image)
        if image is None:
            raise ValueError("give the explorer an image (tensor, array, path) or an ImagePicker (picker=...)")
        self.set_image(image)
        self.widget = W.VBox([W.HBox([self.stage, self.mode]), W.HBox([self.channel, self.top_k, self.overlay]),
                              self.info, self.image_widget])

    # -- once per image -------------------------------------------------------------
    @torch.no_grad()
    def set_image(self, image: Any) -> None:
        """Run the backbone once on a new image and cache every stage (as float32 on the CPU)."""
        self.image = _as_image(image, self.max_side)
        was = self.backbone.training
        self.backbone.eval()
        try:
            device = next(self.backbone.parameters()).device
            feats = self.backbone(self.image[None].to(device))
        finally:
            self.backbone.train(was)
        self.n_forward += 1
        self.features: OrderedDict[str, torch.Tensor] = OrderedDict(
            (k, v[0].detach().float().cpu()) for k, v in feats.items() if v.ndim == 4)
        self._ranking = {k: v.mean(dim=(1, 2)).argsort(descending=True) for k, v in self.features.items()}
        self._base = _base_picture(self.image, self.width)
        self._tiles: dict[int, np.ndarray] = {}
        self._sync_channel_range()
        self.redraw()

    # -- every control change -------------------------------------------------------
    def _on_change(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] is self.stage:
            self._sync_channel_range()
        self.redraw()

    def _sync_channel_range(self) -> None:
        n = self.features[self.stage.value].shape[0]
        self._quiet = True
        try:
            self.channel.max = n - 1
            self.channel.value = min(self.channel.value, n - 1)
        finally:
            self._quiet = False

    def top_channels(self, k: int | None = None) -> list[int]:
        """The ``k`` channels of the current stage with the largest mean activation on this image."""
        k = self.top_k.value if k is None else k
        return self._ranking[self.stage.value][:k].tolist()

    def render(self) -> Image.Image:
        """The picture for the current control values (from the cache; no forward pass)."""
        maps = self.features[self.stage.value]
        if self.mode.value == "channel":
            m = maps[self.channel.value]
            if self.overlay.value:
                return self._blend(self._base, m)
            h = self._base.shape[0]
            return Image.fromarray(render.resize(render.colorize(m), (self.width, h)))
        chans = self.top_channels()
        if not self.overlay.value:
            return render.feature_grid(maps, chans, ncols=4, cell=self.width // 4 - 3)
        return self._overlay_grid(maps, chans)

    def _blend(self, base: np.ndarray, m: torch.Tensor, alpha: float = 0.55) -> Image.Image:
        h, w = base.shape[:2]
        col = render.resize(render.colorize(m, "jet"), (w, h), smooth=True)
        out = base.astype(np.float32) * (1 - alpha) + col.astype(np.float32) * alpha
        return Image.fromarray(out.astype(np.uint8))

    def _overlay_grid(self, maps: torch.Tensor, chans: list[int], ncols: int = 4, pad: int = 2) -> Image.Image:
        cell = self.width // ncols - pad
        if cell not in self._tiles:
            self._tiles[cell] = _base_picture(self.image, cell)
        tile = self._tiles[cell]
        th = tile.shape[0]
        nrows = (len(chans) + ncols - 1) // ncols
        canvas = Image.new("RGB", (ncols * (cell + pad) + pad, nrows * (th + pad) + pad), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for i, c in enumerate(chans):
            x, y = pad + (i % ncols) * (cell + pad), pad + (i // ncols) * (th + pad)
            canvas.paste(self._blend(tile, maps[c]), (x, y))
            draw.rectangle([x, y, x + 34, y + 11], fill=(0, 0, 0))
            draw.text((x + 2, y), f"#{c}", fill=(255, 255, 255))
        return canvas

    def describe(self) -> str:
        """The one-line explanation under the controls."""
        maps = self.features[self.stage.value]
        spec = self.backbone.out_specs.get(self.stage.value)
        c, h, w = maps.shape
        where = f"stride {spec.stride}, " if spec is not None and spec.stride else ""
        if self.mode.value == "channel":
            m = maps[self.channel.value]
            rank = int((self._ranking[self.stage.value] == self.channel.value).nonzero()[0, 0]) + 1
            what = (f"channel {self.channel.value} of {c} (rank {rank} by mean activation; "
                    f"min {float(m.min()):.2f}, max {float(m.max()):.2f})")
        else:
            what = f"the {self.top_k.value} most active of {c} channels: {self.top_channels()}"
        return f"<b>{self.stage.value}</b>: map {c}×{h}×{w} ({where}one cell per {self.image.shape[-1] // w} px) — {what}"

    def redraw(self) -> None:
        self.image_widget.value = jpeg_bytes(self.render())
        self.info.value = self.describe()
        self.n_redraw += 1

    def static_figure(self, k: int = 6):
        """Every stage's top-``k`` channels over the photo, one row per stage (matplotlib)."""
        import matplotlib.pyplot as plt

        stages = list(self.features)
        fig, axes = plt.subplots(len(stages), k, figsize=(1.6 * k, 1.35 * len(stages) + 0.3), squeeze=False)
        for r, s in enumerate(stages):
            for j, c in enumerate(self._ranking[s][:k].tolist()):
                ax = axes[r, j]
                ax.imshow(self._blend(self._tiles.setdefault(160, _base_picture(self.image, 160)),
                                      self.features[s][c]))
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{s} #{c}", fontsize=7)
        fig.suptitle("Most active channels per stage (edges and colours -> textures -> parts)", fontsize=9)
        fig.tight_layout()
        return fig


class ReceptiveFieldExplorer:
    """Pick a stage and a cell: the theoretical receptive-field box and the effective one (gradient heat map).

    Controls: ``stage``, ``y``, ``x``, ``show_erf``.  The box comes from
    :func:`course_lib.backbones.receptive_field.stage_receptive_fields`; the heat map is
    ``|d cell / d input|`` from one backward pass through the graph kept from
    the single forward pass (``n_forward``), cached per cell (``n_backward``).
    """

    def __init__(self, backbone: nn.Module, image: Any = None, picker: Any = None, max_side: int = 224,
                 width: int = 448):
        self.backbone = _check_backbone(backbone)
        self.max_side, self.width = max_side, width
        self.n_forward = 0
        self.n_redraw = 0
        try:
            self.rf: Mapping[str, RF] | None = stage_receptive_fields(self.backbone)
        except (TypeError, ValueError) as err:  # a module the analytic walk cannot follow
            self.rf, self.rf_problem = None, str(err)
        stages = [s for s, spec in self.backbone.out_specs.items() if spec.stride]
        self.stage = W.Dropdown(options=stages, value=stages[min(1, len(stages) - 1)], description="Stage:")
        # One backward pass per new cell: update when the slider is released, not while dragging.
        self.y = W.IntSlider(value=0, min=0, max=1, description="cell y:", continuous_update=False)
        self.x = W.IntSlider(value=0, min=0, max=1, description="cell x:", continuous_update=False)
        self.show_erf = W.Checkbox(value=True, description="effective RF (gradient)")
        self.info = W.HTML()
        self.image_widget = W.Image(format="jpeg")
        self._quiet = False
        for w in (self.stage, self.y, self.x, self.show_erf):
            w.observe(self._on_change, names="value")
        if picker is not None:
            image = picker.image
            picker.on_change(self.set_image)
        if image is None:
            raise ValueError("give the explorer an image (tensor, array, path) or an ImagePicker (picker=...)")
        self.set_image(image)
        self.widget = W.VBox([W.HBox([self.stage, self.show_erf]), W.HBox([self.y, self.x]), self.info,
                              self.image_widget])

    def set_image(self, image: Any) -> None:
        """One forward pass (graph kept for the gradients), then centre the cell and redraw."""
        self.image = _as_image(image, self.max_side)
        self.erf = ERF(self.backbone, self.image)
        self._views: dict[tuple[str, int, int], tuple[np.ndarray, float]] = {}
        self.n_forward += 1
        self._base = _base_picture(self.image, self.width)
        self._scale = self.width / self.image.shape[-1]
        self._sync_ranges(centre=True)
        self.redraw()

    @property
    def n_backward(self) -> int:
        return self.erf.n_backward

    def _grid(self) -> tuple[int, int]:
        return tuple(self.erf.features[self.stage.value].shape[-2:])  # type: ignore[return-value]

    def _sync_ranges(self, centre: bool = False) -> None:
        H, W_ = self._grid()
        self._quiet = True
        try:
            self.y.max, self.x.max = H - 1, W_ - 1
            if centre:
                self.y.value, self.x.value = H // 2, W_ // 2
            else:
                self.y.value, self.x.value = min(self.y.value, H - 1), min(self.x.value, W_ - 1)
        finally:
            self._quiet = False

    def _on_change(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] is self.stage:
            old = change["old"]
            oh, ow = self.erf.features[old].shape[-2:]
            H, W_ = self._grid()
            fy, fx = (self.y.value + 0.5) / oh, (self.x.value + 0.5) / ow  # keep pointing at the same place
            self._sync_ranges()
            self._quiet = True
            try:
                self.y.value, self.x.value = min(H - 1, int(fy * H)), min(W_ - 1, int(fx * W_))
            finally:
                self._quiet = False
        self.redraw()

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
        base = self._base
        if self.show_erf.value:
            heat, _ = self._erf_view()
            h, w = base.shape[:2]
            col = render.resize(render.colorize(heat, "inferno", normalize=False), (w, h), smooth=True)
            col = col.astype(np.float32)
            a = render.resize((heat * 255).astype(np.uint8), (w, h), smooth=True)
            a = (a.astype(np.float32) / 255 * 0.85)[..., None]
            base = (base.astype(np.float32) * (1 - a) * 0.75 + col * a).astype(np.uint8)
        img = Image.fromarray(base)
        draw = ImageDraw.Draw(img)
        s = self._scale
        box = self.theoretical_box()
        if box is not None:
            x0, y0, x1, y1 = box
            draw.rectangle([x0 * s, y0 * s, (x1 + 1) * s - 1, (y1 + 1) * s - 1], outline=(0, 255, 120), width=2)
            rf = self.rf[self.stage.value]
            cy, cx = rf.centre(self.y.value, self.x.value)
            j = rf.jump / 2
            draw.rectangle([(cx - j + 0.5) * s, (cy - j + 0.5) * s, (cx + j + 0.5) * s, (cy + j + 0.5) * s],
                           outline=(255, 255, 255), width=1)
        return img

    def describe(self) -> str:
        H, W_ = self._grid()
        name = self.stage.value
        head = f"<b>{name}</b> cell ({self.y.value}, {self.x.value}) of {H}×{W_}"
        if self.rf is not None and name in self.rf:
            rf = self.rf[name]
            x0, y0, x1, y1 = self.theoretical_box()
            txt = (f"{head}: theoretical RF {rf.size}×{rf.size} px (green; {x1 - x0 + 1}×{y1 - y0 + 1} inside the "
                   f"image), stride {rf.jump} (white square)")
        else:
            txt = f"{head}: no analytic RF for this module ({getattr(self, 'rf_problem', '')})"
        if self.show_erf.value:
            txt += f"; 90% of the gradient lies within ±{self._erf_view()[1]:.0f} px"
        return txt

    def redraw(self) -> None:
        self.image_widget.value = jpeg_bytes(self.render())
        self.info.value = self.describe()
        self.n_redraw += 1

    def static_figure(self):
        """The centre cell of every stage: theoretical box and effective heat map, side by side (matplotlib)."""
        import matplotlib.pyplot as plt

        keep = (self.stage.value, self.y.value, self.x.value, self.show_erf.value)
        stages = list(self.stage.options)
        fig, axes = plt.subplots(1, len(stages), figsize=(2.6 * len(stages), 2.4), squeeze=False)
        self._quiet = True
        try:
            self.show_erf.value = True
            for ax, s in zip(axes[0], stages):
                self.stage.value = s
                H, W_ = self._grid()
                self.y.max, self.x.max = H - 1, W_ - 1
                self.y.value, self.x.value = H // 2, W_ // 2
                ax.imshow(self.render())
                size = f"RF {self.rf[s].size}px" if self.rf is not None and s in self.rf else ""
                ax.set_title(f"{s} centre cell {size}", fontsize=8)
                ax.axis("off")
            self.stage.value = keep[0]
            self._sync_ranges()
            self.y.value, self.x.value, self.show_erf.value = keep[1], keep[2], keep[3]
        finally:
            self._quiet = False
        fig.suptitle("Theoretical receptive field (green box) vs effective one (gradient heat)", fontsize=9)
        fig.tight_layout()
        return fig
