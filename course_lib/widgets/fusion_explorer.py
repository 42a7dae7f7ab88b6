"""How a neck fuses scales: one level before fusion (``C_i``) and after (``P_i``), with its paths switchable.

Pick an image, a neck (FPN, PAN with addition, PAN with concatenation), switch
its lateral / top-down / bottom-up paths and see the level side by side with a
diagram of the paths and the tensor shapes.  The backbone runs once per image
(``n_forward``); a path switch re-runs only the neck (``n_neck_forward``), once
per setting; every other control redraws from cached tensors.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image
from torch import nn

from .. import render
from ..images import to_uint8
from ..language import tr
from ..measure import evaluating
from .base import GalleryExplorer, caption, picture

NECK_CHOICES: dict[str, tuple[str, dict]] = {
    "FPN": ("fpn", {}),
    "PAN (add)": ("pan", {"fusion": "add"}),
    "PAN (concat)": ("pan", {"fusion": "concat"}),
}


def neck_choice_label(name: str) -> str:
    """A key of :data:`NECK_CHOICES` as a learner reads it (the key itself stays the dropdown's value)."""
    return {"PAN (add)": tr("PAN (add)"), "PAN (concat)": tr("PAN (concat)")}.get(name, name)


def paths_text(paths: Mapping[str, bool]) -> str:
    """``"lateral on, top_down OFF"`` in the learner's language (the path names stay as the code spells them)."""
    return ", ".join(tr("{path} on", path=k) if v else tr("{path} OFF", path=k) for k, v in paths.items())


class FusionExplorer(GalleryExplorer):
    """Before vs after fusion, level by level, with the neck's paths switchable.

    ``backbone`` (``None``: the pretrained MobileNetV2) must give C3, C4, C5;
    ``image`` is one picture or a dict ``name -> picture`` (anything
    :func:`course_lib.load_image` takes).  The necks are built once (seeded,
    untrained, ``out_channels`` wide): what changes with the switches is *which
    information reaches a level*, not learned weights.

    Controls (attributes): ``gallery``, ``neck``, ``lateral``, ``top_down``,
    ``bottom_up``, ``level``, ``reduce`` ("mean" over channels or one
    "channel"), ``channel``.  With ``picker=ImagePicker()`` the learner's
    pictures join the gallery as "picked".  Outputs: ``image_widget`` (input |
    before | after | what the switched-off paths carried), ``diagram_widget``,
    ``info``; ``state`` holds the shapes and maps drawn last.
    """

    ALT = caption(lambda: tr("Fusion explorer: each pyramid level before and after the neck's fusion, with the "
                             "neck's wiring"))

    def __init__(self, backbone: nn.Module | None, image: Any = None, *, picker: Any = None, out_channels: int = 64,
                 max_side: int = 320, seed: int = 0, tile: int = 200):
        from .. import backbones, necks

        if image is not None and isinstance(image, Mapping) and not image:
            raise ValueError("give FusionExplorer at least one image, e.g. {'cat': cl.sample_images()['chelsea']}")
        backbone = (backbone if backbone is not None else backbones.build("mobilenet_v2", pretrained=True)).eval()
        specs = backbone.out_specs
        missing = [k for k in ("C3", "C4", "C5") if k not in specs]
        if missing:
            raise ValueError(f"FusionExplorer needs a backbone with C3, C4, C5; this one gives {list(specs)}")
        super().__init__(backbone, image, picker=picker, max_side=max_side)
        self.backbone = backbone
        self.tile = tile
        torch.manual_seed(seed)
        self.necks = {label: necks.build(name, specs, out_channels=out_channels, **kw).eval()
                      for label, (name, kw) in NECK_CHOICES.items()}
        self.n_neck_forward = 0  # neck passes: once per (image, neck, switches)
        self._feats: dict[str, OrderedDict[str, torch.Tensor]] = {}
        self._fused: dict[tuple, tuple[OrderedDict, OrderedDict]] = {}
        self.state: dict[str, Any] = {}
        self._memo: dict[tuple, Any] = {}  # derived arrays and pictures, keyed by what they depend on

        self.neck = W.Dropdown(options=[(neck_choice_label(k), k) for k in self.necks], description=tr("Neck:"))
        self.lateral = W.Checkbox(value=True, description=tr("lateral"), indent=False)
        self.top_down = W.Checkbox(value=True, description=tr("top-down"), indent=False)
        self.bottom_up = W.Checkbox(value=True, description=tr("bottom-up"), indent=False)
        self.level = W.ToggleButtons(options=["P3", "P4", "P5"], value="P3", description=tr("Level:"))
        self.reduce = W.ToggleButtons(options=[(tr("mean"), "mean"), (tr("channel"), "channel")], value="mean",
                                      description=tr("Show:"))
        self.channel = W.IntSlider(value=0, min=0, max=out_channels - 1, description=tr("Channel:"))
        self.image_widget = picture()
        self.diagram_widget = picture()
        self._observe(self.neck, self.lateral, self.top_down, self.bottom_up, self.level, self.reduce, self.channel)
        controls = [self.gallery, self.neck,
                    W.HBox([W.HTML("<b>" + tr("Paths:") + "</b>&nbsp;"), self.lateral, self.top_down, self.bottom_up]),
                    self.level, self.reduce, self.channel]
        view = self._in_browser([self.level, self.neck, self.lateral, self.top_down, self.bottom_up, self.reduce,
                                 self.channel, self.gallery], [self.image_widget, self.diagram_widget],
                                ahead={self.gallery: 4})
        self._start(image, controls, [view])

    # -- public API --------------------------------------------------------
    def _forget(self, name: str) -> None:
        self._feats.pop(name, None)  # forget everything computed from the old picture of that name
        self._fused = {k: v for k, v in self._fused.items() if k[0] != name}
        self._memo = {k: v for k, v in self._memo.items() if len(k) < 2 or k[1] != name}

    @property
    def paths(self) -> dict[str, bool]:
        """The switches as the current neck understands them (FPN has no bottom-up path)."""
        neck = self.necks[self.neck.value]
        wanted = {"lateral": self.lateral.value, "top_down": self.top_down.value, "bottom_up": self.bottom_up.value}
        return {k: v for k, v in wanted.items() if k in neck.paths}

    def features(self, name: str) -> OrderedDict[str, torch.Tensor]:
        """The backbone's maps for one image (computed once, then cached)."""
        if name not in self._feats:
            with evaluating(self.backbone):
                self._feats[name] = self.backbone(self.images[name][None])
            self.n_forward += 1
        return self._feats[name]

    def fused(self, name: str, neck_label: str, paths: Mapping[str, bool]) -> tuple[OrderedDict, OrderedDict]:
        """The neck's outputs and intermediates for one image and switch setting (run once, then cached)."""
        key = (name, neck_label, tuple(sorted(paths.items())))
        if key not in self._fused:
            neck = self.necks[neck_label]
            neck.set_paths(**paths)
            with evaluating(neck):
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

    def redraw(self) -> None:
        """Redraw from the caches (running the backbone or the neck only if this setting is new)."""
        name = self.gallery.value
        label = self.neck.value
        neck = self.necks[label]
        self.bottom_up.disabled = "bottom_up" not in neck.paths
        self.channel.disabled = self.reduce.value == "mean"  # the slider means nothing for a channel mean
        paths = self.paths
        ref, _ = self.fused(name, label, {k: True for k in paths})
        out, inter = self.fused(name, label, paths)
        neck.set_paths(**paths)  # a cached setting leaves the neck as it was: say what is shown
        lv = self.level.value
        c_name = neck.in_keys[neck.out_keys.index(lv)]
        before, after = self.features(name)[c_name], out[lv]
        setting = (name, label, tuple(sorted(paths.items())), lv)
        b_map = self._reduce(("before", name, c_name), before)
        a_map = self._reduce(("after", *setting), after)
        if ("carried", *setting) not in self._memo:
            diff = np.abs(ref[lv][0].numpy() - after[0].numpy())
            self._memo[("carried", *setting)] = (diff.mean(axis=0), float(diff.mean()))
        c_map, carried = self._memo[("carried", *setting)]
        which = tr("mean over channels") if self.reduce.value == "mean" else tr("channel {i}", i=self.channel.value)
        panels = [
            render.label(Image.fromarray(to_uint8(self.images[name])).resize(
                (self.tile, round(self.tile * before.shape[-2] / before.shape[-1]))), tr("input")),
            render.label(render.tile(b_map, self.tile),
                         tr("before: {c} {shape}", c=c_name, shape=tuple(before.shape[1:]))),
            render.label(render.tile(a_map, self.tile), tr("after: {p} {shape}", p=lv, shape=tuple(after.shape[1:]))),
        ]
        if not all(paths.values()):
            panels.append(render.label(render.tile(c_map, self.tile, render.HEAT), tr("|all on - now| at {p}", p=lv)))
        pics = render.grid(panels, ncols=2, pad=4)
        bar = render.colorbar_strip(0, 1, pics.width, render.SEQUENTIAL, tr("low → high, each map on its own scale"))
        self.image_widget.value = render.png_bytes(render.vstack([pics, bar], pad=2))
        if ("diagram", *setting[1:]) not in self._memo:
            self._memo[("diagram", *setting[1:])] = render.png_bytes(render.neck_diagram(
                list(neck.out_keys), paths, "bottom_up" in neck.paths, lv, fusion=getattr(neck, "fusion", "add")))
        self.diagram_widget.value = self._memo[("diagram", *setting[1:])]
        steps = [f"{k}: {tuple(v.shape[1:])}" for k, v in inter.items() if k.startswith(lv + " ")]
        self.state = {"before": c_name, "after": lv, "before_shape": tuple(before.shape),
                      "after_shape": tuple(after.shape), "paths": dict(paths), "before_map": b_map,
                      "after_map": a_map, "carried": carried, "steps": steps}
        self.info.value = (
            f"<code>{c_name}</code> {tuple(before.shape)} &rarr; <b>{neck_choice_label(label)}</b> &rarr; <code>{lv}</code> "
            f"{tuple(after.shape)} ({which})<br>" + tr("paths: {paths}", paths=paths_text(neck.paths)) + "<br><small>"
            + tr("steps at {p}: {steps}", p=lv,
                 steps="; ".join(steps) if steps else tr("(none: this level is the top lateral)")) + "</small>")
        self.n_redraw += 1

    def static_figure(self, neck_label: str = "PAN (add)", image: str | None = None):
        """For places without widgets: the image and each level's strength, then what each path carried.

        Drawn by :func:`course_lib.render.fusion_rows`: row 0 the outputs with every path on, then one row per
        path switched off, with what that leaves and ``mean |on - off|`` per level (one shared scale).
        """
        label = neck_label or self.neck.value
        name = image or self.gallery.value
        neck = self.necks[label]
        on = {k: True for k in neck.paths}
        levels = list(neck.out_keys)
        ref, _ = self.fused(name, label, on)
        feats = self.features(name)
        carried = {}
        for k in neck.paths:
            out, _ = self.fused(name, label, {**on, k: False})
            carried[k] = [np.abs(ref[lv][0].numpy() - out[lv][0].numpy()).mean(0) for lv in levels]
        fig = render.fusion_rows(self.images[name], levels, [render.strength(ref[lv][0]) for lv in levels],
                                 carried, title=tr("{neck}, untrained, on pretrained features: what each path carries",
                                                   neck=neck_choice_label(label)))
        for j, lv in enumerate(levels, start=1):
            c = neck.in_keys[j - 1]
            fig.axes[j].set_title(tr("{p} (from {c} {ch}ch)", p=lv, c=c, ch=feats[c].shape[1]))
        self.redraw()  # leave the necks as the controls say
        return fig
