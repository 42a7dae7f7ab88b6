"""Lesson 03's explorers: how a neck fuses scales, and what a dilated conv samples.

* :class:`FusionExplorer` -- pick an image, a neck (FPN, PAN with addition, PAN
  with concatenation), switch its lateral / top-down / bottom-up paths and see
  one level before fusion (the backbone's ``C_i``) and after (the neck's ``P_i``)
  side by side, with a diagram of the paths and the tensor shapes.  The
  backbone runs once per image (``n_forward``); a path switch re-runs only the
  neck (``n_neck_forward``), once per setting; every other control redraws
  from cached tensors.
* :class:`DilationExplorer` -- a rate slider moves the 9 taps of a dilated 3x3
  conv (ASPP's branches) over the image and stamps the backbone's effective
  receptive field at each tap.  One forward and one backward pass in all.

Helpers for the notebook: :func:`grid_overlay` (a map's cells and receptive
field drawn over an image such as :func:`course_lib.data.shapes_scene`) and
:func:`sampling_grid` (where a dilated conv's taps land).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .. import render
from ..data import SceneObject
from ..images import load_image, to_uint8

ORANGE, GREY, BLUE, GREEN, RED = (245, 130, 48), (200, 200, 200), (0, 110, 190), (40, 160, 60), (210, 40, 40)


# ----------------------------------------------------------------- helpers for the notebook
def grid_overlay(image: Any, stride: int, objects: Sequence[SceneObject] = (),
                 rf_size: int | None = None, rf_centre: tuple[float, float] | None = None,
                 title: str = "") -> Image.Image:
    """Draw a stride-``stride`` map's cells over the image, the objects' boxes and one receptive field.

    ``rf_centre`` is ``(x, y)`` in pixels (default: the image centre); ``rf_size`` its side.
    """
    img = Image.fromarray(to_uint8(image)).convert("RGB")
    d = ImageDraw.Draw(img)
    w, h = img.size
    for x in range(0, w, stride):
        d.line([(x, 0), (x, h)], fill=(255, 255, 255), width=1)
    for y in range(0, h, stride):
        d.line([(0, y), (w, y)], fill=(255, 255, 255), width=1)
    for ob in objects:
        d.rectangle(ob.box, outline=ORANGE, width=2)
    if rf_size:
        cx, cy = rf_centre if rf_centre is not None else (w / 2, h / 2)
        r = rf_size / 2
        d.rectangle([cx - r, cy - r, cx + r, cy + r], outline=RED, width=3)
    if title:
        d.rectangle([0, 0, 7 * len(title) + 6, 13], fill=(0, 0, 0))
        d.text((3, 1), title, fill=(255, 255, 255), font=render._font())
    return img


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


def _resized(image: Any, max_side: int) -> torch.Tensor:
    return load_image(image, max_side=max_side) if not isinstance(image, torch.Tensor) else image


def _label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 16), (255, 255, 255))
    out.paste(img, (0, 16))
    ImageDraw.Draw(out).text((2, 2), text, fill=(0, 0, 0), font=render._font())
    return out


def _tile(m: np.ndarray | torch.Tensor, width: int, cmap: str = "viridis") -> Image.Image:
    h, w = m.shape[-2:]
    size = (width, max(1, round(width * h / w)))
    return Image.fromarray(render.colorize(m, cmap)).resize(size, Image.NEAREST)


# ----------------------------------------------------------------- the fusion explorer
NECK_CHOICES: dict[str, tuple[str, dict]] = {
    "FPN": ("fpn", {}),
    "PAN (add)": ("pan", {"fusion": "add"}),
    "PAN (concat)": ("pan", {"fusion": "concat"}),
}
PATHS = ("lateral", "top_down", "bottom_up")


def neck_diagram(levels: Sequence[str], paths: Mapping[str, bool], has_bottom_up: bool, selected: str,
                 width: int = 330, fusion: str = "add") -> Image.Image:
    """A schematic of the neck: backbone maps, top-down column, bottom-up column; off paths in grey."""
    n = len(levels)
    row = 46
    img = Image.new("RGB", (width, n * row + 26), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = render._font()
    cols = [12, 130, 248] if has_bottom_up else [40, 200]
    names = ["C", "P", "N"] if has_bottom_up else ["C", "P"]
    d.text((cols[0], 4), "backbone", fill=(0, 0, 0), font=font)
    d.text((cols[1], 4), "top-down", fill=(0, 0, 0), font=font)
    if has_bottom_up:
        d.text((cols[2], 4), "bottom-up", fill=(0, 0, 0), font=font)
    boxw = 62
    ys = {lv: 20 + (n - 1 - i) * row for i, lv in enumerate(levels)}  # coarsest on top

    def box(col: int, lv: str, prefix: str) -> None:
        y = ys[lv]
        hot = lv == selected
        d.rectangle([col, y + 6, col + boxw, y + 30], outline=ORANGE if hot else (60, 60, 60), width=3 if hot else 1)
        d.text((col + 6, y + 12), f"{prefix}{lv[1:]}", fill=(0, 0, 0), font=font)

    def arrow(p0: tuple[float, float], p1: tuple[float, float], on: bool, label: str = "") -> None:
        col = BLUE if on else GREY
        d.line([p0, p1], fill=col, width=3 if on else 1)
        vx, vy = p1[0] - p0[0], p1[1] - p0[1]
        norm = max(1e-6, (vx * vx + vy * vy) ** 0.5)
        ux, uy = vx / norm, vy / norm
        tip = [p1, (p1[0] - 7 * ux - 4 * uy, p1[1] - 7 * uy + 4 * ux), (p1[0] - 7 * ux + 4 * uy, p1[1] - 7 * uy - 4 * ux)]
        d.polygon(tip, fill=col)
        if label:
            d.text(((p0[0] + p1[0]) / 2 - 8, (p0[1] + p1[1]) / 2 - 11), label, fill=col, font=font)

    for col, prefix in zip(cols, names):
        for lv in levels:
            box(col, lv, prefix)
    top = levels[-1]
    for lv in levels:
        y = ys[lv] + 18
        on = paths.get("lateral", True) or lv == top  # the top lateral always feeds the top-down path
        arrow((cols[0] + boxw, y), (cols[1], y), on, "1x1" if lv == top else "")
        if has_bottom_up:
            arrow((cols[1] + boxw, y), (cols[2], y), True)
    for hi, lo in zip(levels[::-1], levels[::-1][1:]):
        x = cols[1] + boxw / 2
        arrow((x, ys[hi] + 30), (x, ys[lo] + 6), paths.get("top_down", True), "2x")
    if has_bottom_up:
        for lo, hi in zip(levels, levels[1:]):
            x = cols[2] + boxw / 2
            arrow((x, ys[lo] + 6), (x, ys[hi] + 30), paths.get("bottom_up", True), "s2")
    d.text((4, img.height - 14), f"fusion: {'+ (add)' if fusion == 'add' else 'concat + C2f'}; grey = off",
           fill=(90, 90, 90), font=font)
    return img


class FusionExplorer:
    """Before vs after fusion, level by level, with the neck's paths switchable.

    ``images`` maps names to pictures (anything :func:`course_lib.load_image`
    takes); ``backbone`` defaults to the pretrained MobileNetV2.  The necks are
    built once (seeded, untrained, ``out_channels`` wide): what changes with the
    switches is *which information reaches a level*, not learned weights.

    Controls (attributes): ``image``, ``neck``, ``lateral``, ``top_down``,
    ``bottom_up``, ``level``, ``reduce`` ("mean" over channels or one
    "channel"), ``channel``.  Pass ``picker=ImagePicker()`` to add the
    learner's own pictures.  Outputs: ``image_widget`` (input | before | after
    | what the switched-off paths carried), ``diagram_widget``, ``shape_label``;
    ``state`` holds the shapes and maps drawn last.
    """

    def __init__(self, images: Mapping[str, Any], backbone: nn.Module | None = None, out_channels: int = 64,
                 max_side: int = 320, seed: int = 0, tile: int = 200, picker: Any = None):
        if not images:
            raise ValueError("give FusionExplorer at least one image, e.g. {'cat': cl.sample_images()['chelsea']}")
        from .. import backbones, necks

        self.backbone = (backbone if backbone is not None else backbones.build("mobilenet_v2", pretrained=True)).eval()
        specs = self.backbone.out_specs
        missing = [k for k in ("C3", "C4", "C5") if k not in specs]
        if missing:
            raise ValueError(f"FusionExplorer needs a backbone with C3, C4, C5; this one gives {list(specs)}")
        self.max_side = max_side
        self.tile = tile
        self._images: dict[str, torch.Tensor] = {k: _resized(v, max_side) for k, v in images.items()}
        torch.manual_seed(seed)
        self.necks = {label: necks.build(name, specs, out_channels=out_channels, **kw).eval()
                      for label, (name, kw) in NECK_CHOICES.items()}
        self.n_forward = 0  # backbone passes: once per image
        self.n_neck_forward = 0  # neck passes: once per (image, neck, switches)
        self._feats: dict[str, OrderedDict[str, torch.Tensor]] = {}
        self._fused: dict[tuple, tuple[OrderedDict, OrderedDict]] = {}
        self.state: dict[str, Any] = {}
        self._memo: dict[tuple, Any] = {}  # derived arrays and pictures, keyed by what they depend on

        self.image = W.Dropdown(options=list(self._images), description="Image:")
        self.neck = W.Dropdown(options=list(self.necks), description="Neck:")
        self.lateral = W.Checkbox(value=True, description="lateral", indent=False)
        self.top_down = W.Checkbox(value=True, description="top-down", indent=False)
        self.bottom_up = W.Checkbox(value=True, description="bottom-up", indent=False)
        self.level = W.ToggleButtons(options=["P3", "P4", "P5"], value="P3", description="Level:")
        self.reduce = W.ToggleButtons(options=["mean", "channel"], value="mean", description="Show:")
        self.channel = W.IntSlider(value=0, min=0, max=out_channels - 1, description="Channel:")
        self.image_widget = W.Image(format="png")
        self.diagram_widget = W.Image(format="png")
        self.shape_label = W.HTML()
        for c in (self.image, self.neck, self.lateral, self.top_down, self.bottom_up, self.level, self.reduce,
                  self.channel):
            c.observe(lambda _: self.update(), names="value")
        self.update()
        controls = W.VBox([W.HBox([self.image, self.neck]),
                           W.HBox([W.HTML("<b>Paths:</b>&nbsp;"), self.lateral, self.top_down, self.bottom_up]),
                           self.level, W.HBox([self.reduce, self.channel])])
        self.widget = W.VBox([controls, self.shape_label, W.HBox([self.image_widget, self.diagram_widget])])
        if picker is not None:  # an ImagePicker: its pictures (uploads too) join the dropdown as "picked"
            picker.on_change(lambda img: self.add_image("picked", img))

    # -- public API --------------------------------------------------------
    def add_image(self, name: str, image: Any) -> None:
        """Add a picture (e.g. an upload) and show it; a picture already under ``name`` is replaced."""
        self._images[name] = _resized(image, self.max_side)
        self._feats.pop(name, None)  # forget everything computed from the old picture of that name
        self._fused = {k: v for k, v in self._fused.items() if k[0] != name}
        self._memo = {k: v for k, v in self._memo.items() if len(k) < 2 or k[1] != name}
        if list(self.image.options) != list(self._images):
            self.image.options = list(self._images)
        if self.image.value != name:
            self.image.value = name  # fires update()
        else:
            self.update()

    @property
    def paths(self) -> dict[str, bool]:
        """The switches as the current neck understands them (FPN has no bottom-up path)."""
        neck = self.necks[self.neck.value]
        wanted = {"lateral": self.lateral.value, "top_down": self.top_down.value, "bottom_up": self.bottom_up.value}
        return {k: v for k, v in wanted.items() if k in neck.paths}

    def features(self, name: str) -> OrderedDict[str, torch.Tensor]:
        """The backbone's maps for one image (computed once, then cached)."""
        if name not in self._feats:
            with torch.no_grad():
                self._feats[name] = self.backbone(self._images[name][None])
            self.n_forward += 1
        return self._feats[name]

    def fused(self, name: str, neck_label: str, paths: Mapping[str, bool]) -> tuple[OrderedDict, OrderedDict]:
        """The neck's outputs and intermediates for one image and switch setting (run once, then cached)."""
        key = (name, neck_label, tuple(sorted(paths.items())))
        if key not in self._fused:
            neck = self.necks[neck_label]
            neck.set_paths(**paths)
            with torch.no_grad():
                out = neck(self.features(name))
            self._fused[key] = (out, OrderedDict(neck.last_intermediates))
            self.n_neck_forward += 1
        return self._fused[key]

    # -- drawing ---------------------------------------------------------------
    def _reduce(self, key: tuple, t: torch.Tensor) -> np.ndarray:
        """The map to draw: the channel mean (computed once per tensor, in NumPy) or one channel."""
        a = t[0].numpy()
        if self.reduce.value == "mean":
            if key not in self._memo:
                self._memo[key] = a.mean(axis=0)
            return self._memo[key]
        return a[self.channel.value % a.shape[0]]

    def update(self) -> None:
        """Redraw from the caches (running the backbone or the neck only if this setting is new)."""
        label = self.neck.value
        neck = self.necks[label]
        self.bottom_up.disabled = "bottom_up" not in neck.paths
        paths = self.paths
        ref, _ = self.fused(self.image.value, label, {k: True for k in paths})
        out, inter = self.fused(self.image.value, label, paths)
        neck.set_paths(**paths)  # a cached setting leaves the neck as it was: say what is shown
        lv = self.level.value
        c_name = neck.in_keys[neck.out_keys.index(lv)]
        before, after = self.features(self.image.value)[c_name], out[lv]
        setting = (self.image.value, label, tuple(sorted(paths.items())), lv)
        b_map = self._reduce(("before", self.image.value, c_name), before)
        a_map = self._reduce(("after", *setting), after)
        if ("carried", *setting) not in self._memo:
            diff = np.abs(ref[lv][0].numpy() - after[0].numpy())
            self._memo[("carried", *setting)] = (diff.mean(axis=0), float(diff.mean()))
        c_map, carried = self._memo[("carried", *setting)]
        which = "mean over channels" if self.reduce.value == "mean" else f"channel {self.channel.value}"
        panels = [
            _label(Image.fromarray(to_uint8(self._images[self.image.value])).resize(
                (self.tile, round(self.tile * before.shape[-2] / before.shape[-1]))), "input"),
            _label(_tile(b_map, self.tile), f"before: {c_name} {tuple(before.shape[1:])}"),
            _label(_tile(a_map, self.tile), f"after: {lv} {tuple(after.shape[1:])}"),
        ]
        off = [k for k, v in paths.items() if not v]
        if off:
            panels.append(_label(_tile(c_map, self.tile, "magma"), f"|all on - now| at {lv}"))
        self.image_widget.value = render.png_bytes(render.hstack(panels))
        if ("diagram", *setting[1:]) not in self._memo:
            self._memo[("diagram", *setting[1:])] = render.png_bytes(neck_diagram(
                list(neck.out_keys), paths, "bottom_up" in neck.paths, lv, fusion=getattr(neck, "fusion", "add")))
        self.diagram_widget.value = self._memo[("diagram", *setting[1:])]
        steps = [f"{k}: {tuple(v.shape[1:])}" for k, v in inter.items() if k.startswith(lv + " ")]
        self.state = {"before": c_name, "after": lv, "before_shape": tuple(before.shape),
                      "after_shape": tuple(after.shape), "paths": dict(paths), "before_map": b_map,
                      "after_map": a_map, "carried": carried, "steps": steps}
        self.shape_label.value = (
            f"<code>{c_name}</code> {tuple(before.shape)} &rarr; <b>{label}</b> &rarr; <code>{lv}</code> "
            f"{tuple(after.shape)} ({which})<br>paths: {neck.describe_paths()}"
            f"<br><small>steps at {lv}: {'; '.join(steps) if steps else '(none: this level is the top lateral)'}"
            f"</small>")

    def static_figure(self, neck_label: str | None = None, image: str | None = None):
        """Matplotlib grid: rows = switch settings, columns = P3..P5 (mean over channels), for places without widgets."""
        import matplotlib.pyplot as plt

        label = neck_label or self.neck.value
        name = image or self.image.value
        neck = self.necks[label]
        settings = [{k: True for k in neck.paths}]
        for k in neck.paths:
            settings.append({**settings[0], k: False})
        levels = list(neck.out_keys)
        fig, axes = plt.subplots(len(settings), len(levels) + 1, figsize=(2.3 * (len(levels) + 1),
                                                                          1.9 * len(settings)))
        feats = self.features(name)
        for i, paths in enumerate(settings):
            out, _ = self.fused(name, label, paths)
            off = [k for k, v in paths.items() if not v]
            axes[i, 0].imshow(to_uint8(self._images[name]))
            axes[i, 0].set_title("all paths on" if not off else f"{', '.join(off)} OFF", fontsize=8)
            for j, lv in enumerate(levels, start=1):
                axes[i, j].imshow(out[lv][0].mean(0).numpy(), cmap="viridis")
                c = neck.in_keys[j - 1]
                axes[i, j].set_title(f"{lv} {tuple(out[lv].shape[2:])} (from {c} {feats[c].shape[1]}ch)", fontsize=7)
        for ax in axes.flat:
            ax.axis("off")
        fig.suptitle(f"{label}: each level's mean over channels as paths are switched off", fontsize=9)
        fig.tight_layout()
        self.update()  # leave the necks as the controls say
        return fig


# ----------------------------------------------------------------- the dilation explorer
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


class DilationExplorer:
    """Move the rate of a dilated 3x3 conv and see its 9 taps and receptive field on the image.

    The conv sits on the backbone's ``level`` map (default ``C4``, stride 16:
    DeepLab v3's output stride).  One forward and one backward pass give the
    backbone's effective receptive field of the chosen cell; each tap stamps a
    shifted copy of it, so moving the rate or the cell only redraws.

    Controls: ``rate`` (slider over ``rates``), ``cell_x``, ``cell_y``.  Outputs:
    ``image_widget``, ``info_label``; ``state`` holds the taps, how many fall
    inside the map, and the field of view in pixels.
    """

    def __init__(self, image: Any, backbone: nn.Module | None = None, level: str = "C4",
                 rates: Sequence[int] = (1, 3, 6, 12, 18, 24), max_side: int = 320, margin: int = 96):
        from .. import backbones
        from ..backbones.receptive_field import ERF, stage_receptive_fields

        self.backbone = (backbone if backbone is not None else backbones.build("mobilenet_v2", pretrained=True)).eval()
        if level not in self.backbone.out_specs:
            raise ValueError(f"level {level!r} is not one of the backbone's maps {list(self.backbone.out_specs)}")
        if not rates or any(int(r) != r or r < 1 for r in rates):
            raise ValueError(f"rates must be positive ints, got {rates!r}")
        self.level = level
        self.image = _resized(image, max_side)
        self.margin = margin
        self.stride = self.backbone.out_specs[level].stride
        self.rf = stage_receptive_fields(self.backbone)[level]
        erf = ERF(_UpTo(self.backbone, level), self.image)
        self.map_hw = tuple(erf.features[level].shape[-2:])
        cy, cx = self.map_hw[0] // 2, self.map_hw[1] // 2
        self._erf = erf.map(level, cy, cx).numpy()  # the backward pass
        self._erf_centre = self.rf.centre(cy, cx)
        self.n_forward = erf.n_forward
        del erf  # free the graph
        self._base = to_uint8(self.image)
        self.rate = W.SelectionSlider(options=list(rates), value=6 if 6 in rates else rates[0], description="Rate:")
        self.cell_y = W.IntSlider(value=cy, min=0, max=self.map_hw[0] - 1, description="Cell y:")
        self.cell_x = W.IntSlider(value=cx, min=0, max=self.map_hw[1] - 1, description="Cell x:")
        self.image_widget = W.Image(format="png")
        self.info_label = W.HTML()
        self.state: dict[str, Any] = {}
        for c in (self.rate, self.cell_x, self.cell_y):
            c.observe(lambda _: self.update(), names="value")
        self.update()
        self.widget = W.VBox([W.HBox([self.rate, self.cell_y, self.cell_x]), self.info_label, self.image_widget])

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
        heat = self.heat(taps)
        h01 = (render.normalize01(heat) ** 0.35)[..., None]  # heat shown where it is, the photo elsewhere
        col = render.colorize(h01[..., 0], "inferno").astype(np.float32)
        base = (self._base * (1 - 0.7 * h01) + col * 0.7 * h01).astype(np.uint8)
        m = self.margin
        H, W_ = base.shape[:2]
        canvas = Image.new("RGB", (W_ + 2 * m, H + 2 * m), (120, 120, 120))
        canvas.paste(Image.fromarray(base), (m, m))
        d = ImageDraw.Draw(canvas)
        ty, tx = taps[4].pixel[1], taps[4].pixel[0]
        span = 2 * rate * self.stride + self.rf.size  # the field of view: outer taps' receptive fields
        d.rectangle([m + tx - span / 2, m + ty - span / 2, m + tx + span / 2, m + ty + span / 2], outline=ORANGE,
                    width=2)
        for t in taps:  # taps beyond the canvas are pinned to its border
            x = min(max(t.pixel[0] + m, 6), canvas.width - 7)
            y = min(max(t.pixel[1] + m, 6), canvas.height - 7)
            r = 5 if (x, y) == (t.pixel[0] + m, t.pixel[1] + m) else 3
            d.ellipse([x - r, y - r, x + r, y + r], fill=GREEN if t.inside else RED, outline=(255, 255, 255))
        d.text((4, 2), f"rate {rate} on {self.level} (/{self.stride}): taps {rate * self.stride}px apart",
               fill=(255, 255, 255), font=render._font())
        return canvas

    def update(self) -> None:
        """Redraw for the current controls (no network)."""
        rate = self.rate.value
        taps = self.taps()
        inside = sum(t.inside for t in taps)
        fov = 2 * rate * self.stride + self.rf.size
        self.image_widget.value = render.png_bytes(self.render())
        self.state = {"rate": rate, "cell": (self.cell_y.value, self.cell_x.value), "taps": taps,
                      "inside": inside, "gap_px": rate * self.stride, "field_px": fov}
        self.info_label.value = (
            f"3x3 conv, dilation <b>{rate}</b> on {self.level} ({self.map_hw[0]}x{self.map_hw[1]} cells, stride "
            f"{self.stride}): taps {rate * self.stride} px apart; field of view {fov} px "
            f"(= 2&middot;{rate}&middot;{self.stride} + the backbone's {self.rf.size} px); "
            f"<b>{inside}/9</b> taps inside the map (red ones read zero padding).")

    def static_figure(self, rates: Sequence[int] = (6, 12, 18)):
        """One panel per rate (DeepLab v3's 6/12/18 by default), for places without widgets."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(rates), figsize=(4.2 * len(rates), 3.4))
        axes = np.atleast_1d(axes)
        for ax, r in zip(axes, rates):
            ax.imshow(self.render(rate=r))
            inside = sum(t.inside for t in self.taps(r))
            ax.set_title(f"rate {r}: taps {r * self.stride}px apart, {inside}/9 inside", fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        return fig
