"""What a backbone sees: pick a stage and a channel (or the top-k), alone or over the photo.

Accepts any backbone the contract accepts: a course backbone
(``cl.backbones.build("mobilenet_v2", pretrained=True)``) or a learner's own
module wrapped with :func:`course_lib.backbones.from_module`.
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
from ..language import tr
from ..measure import evaluating
from .base import Explorer, as_image, caption, offstage, picture
from .browser import MapView, map_group


def check_backbone(backbone: Any) -> nn.Module:
    """The backbone to explore (a whole Model gives its backbone); a clear error for anything else."""
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


class FeatureExplorer(Explorer):
    """Pick a stage and a channel (or the top-k most active channels) and see its map, alone or over the photo.

    Controls (attributes): ``stage``, ``mode`` ("channel" / "top-k"),
    ``channel``, ``top_k``, ``overlay``.  Output: ``image_widget`` and the text
    in ``info``.  ``n_forward`` counts forward passes (one per image); every
    control move redraws from the cached maps with :mod:`course_lib.render`.
    """

    ALT = caption(lambda: tr("Feature explorer: feature maps of one backbone stage, alone or over the photo"))

    def __init__(self, backbone: nn.Module, image: Any = None, *, picker: Any = None, max_side: int = 320,
                 width: int = 448):
        super().__init__(check_backbone(backbone), image, picker=picker)
        self.backbone = self.source
        self.max_side, self.width = max_side, width
        stages = [k for k, s in self.backbone.out_specs.items() if s.stride is not None]  # maps, not vectors
        self.stage = W.Dropdown(options=stages, value=stages[min(1, len(stages) - 1)], description=tr("Stage:"))
        self.mode = W.ToggleButtons(options=[(tr("channel"), "channel"), (tr("top-k"), "top-k")], value="channel",
                                    description=tr("Show:"))
        self.channel = W.IntSlider(value=0, min=0, max=1, description=tr("Channel:"), continuous_update=True)
        self.top_k = W.IntSlider(value=8, min=1, max=16, description=tr("Top k:"), continuous_update=True)
        self.overlay = W.Checkbox(value=True, description=tr("over the photo"))
        self.image_widget = picture("jpeg")   # the same picture drawn by Python: static figures, tests
        offstage(self.image_widget)
        self.key_widget = picture()
        self.view = MapView(opacity=0.55)      # drawn in the browser: every stage's channels, sent once per image
        self._observe(self.stage, self.mode, self.channel, self.top_k, self.overlay)
        self._start(image, [self.stage, self.mode, self.channel, self.top_k, self.overlay],
                    [self.view, self.key_widget])
        self.view.follow({"group": (self.stage, "index"), "mode": (self.mode, "index"),
                          "channel": (self.channel, "value"), "k": (self.top_k, "value"),
                          "overlay": (self.overlay, "value")})

    # -- once per image -------------------------------------------------------------
    def _trace(self, image: Any) -> None:
        """Run the backbone once on a new image and cache every stage (as float32 on the CPU)."""
        self.image = as_image(image, self.max_side)
        with evaluating(self.backbone):
            device = next(self.backbone.parameters()).device
            feats = self.backbone(self.image[None].to(device))
        self.n_forward += 1
        self.features: OrderedDict[str, torch.Tensor] = OrderedDict(
            (k, v[0].detach().float().cpu()) for k, v in feats.items() if v.ndim == 4)
        self._ranking = {k: v.mean(dim=(1, 2)).argsort(descending=True) for k, v in self.features.items()}
        self._base = render.photo(self.image, self.width)
        self._tiles: dict[int, np.ndarray] = {}
        self._sync_channel_range()
        stages = list(self.stage.options)                     # the dropdown's index is the view's group
        self.view.show([map_group(k, self.features[k], order=self._ranking[k].tolist()) for k in stages],
                       cmap=render.SEQUENTIAL, overlay_cmap=render.HEAT, photo=self._base,
                       cell=self.width // 4 - 3, single=self.width, modes=("channel", "topk"),
                       controls={"group": True, "mode": {"options": [tr("channel"), tr("top-k")]},
                                 "channel": {"min": 0, "max": max(len(self.features[k]) for k in stages) - 1},
                                 "k": {"min": 1, "max": 16}, "overlay": True},
                       text={"group": tr("Stage:"), "mode": tr("Show:"), "channel": tr("Channel:"),
                             "k": tr("Top k:"), "overlay": tr("over the photo")}, alt=self.ALT)

    # -- every control change -------------------------------------------------------
    def _on_control(self, change) -> None:
        if not self._quiet and change["owner"] is self.stage:
            self._sync_channel_range()
        super()._on_control(change)

    def _sync_channel_range(self) -> None:
        n = self.features[self.stage.value].shape[0]
        with self._quietly():
            self.channel.max = n - 1
            self.channel.value = min(self.channel.value, n - 1)

    def top_channels(self, k: int | None = None) -> list[int]:
        """The ``k`` channels of the current stage with the largest mean activation on this image."""
        k = self.top_k.value if k is None else k
        return self._ranking[self.stage.value][:k].tolist()

    def _photo(self, width: int) -> np.ndarray:
        if width not in self._tiles:
            self._tiles[width] = render.photo(self.image, width)
        return self._tiles[width]

    def render(self) -> Image.Image:
        """The picture for the current control values (from the cache; no forward pass)."""
        maps = self.features[self.stage.value]
        if self.mode.value == "channel":
            m = maps[self.channel.value]
            if self.overlay.value:
                return render.overlay(self._base, m, alpha=0.55)
            return render.tile(m, self.width)
        chans = self.top_channels()
        if not self.overlay.value:
            return render.feature_grid(maps, chans, ncols=4, cell=self.width // 4 - 3)
        tile = self._photo(self.width // 4 - 2)
        return render.grid([render.badge(render.overlay(tile, maps[c], alpha=0.55), (0, 0), f"#{c}")
                            for c in chans], ncols=4)

    def describe(self) -> str:
        """The one-line explanation under the controls."""
        maps = self.features[self.stage.value]
        spec = self.backbone.out_specs.get(self.stage.value)
        c, h, w = maps.shape
        where = tr("stride {s}, ", s=spec.stride) if spec is not None and spec.stride else ""
        if self.mode.value == "channel":
            m = maps[self.channel.value]
            rank = int((self._ranking[self.stage.value] == self.channel.value).nonzero()[0, 0]) + 1
            what = tr("channel {ch} of {c} (rank {rank} by mean activation; min {lo:.2f}, max {hi:.2f})",
                      ch=self.channel.value, c=c, rank=rank, lo=float(m.min()), hi=float(m.max()))
        else:
            what = tr("the {k} most active of {c} channels: {chans}", k=self.top_k.value, c=c,
                      chans=self.top_channels())
        return tr("<b>{stage}</b>: map {c}×{h}×{w} ({where}one cell per {px} px) — {what}", stage=self.stage.value,
                  c=c, h=h, w=w, where=where, px=self.image.shape[-1] // w, what=what)

    def redraw(self) -> None:
        """Draw the current view and its explanation from the cache."""
        one = self.mode.value == "channel"
        self.channel.disabled, self.top_k.disabled = not one, one  # each slider only means something in its mode
        pic = self.render()
        self.image_widget.value = render.jpeg_bytes(pic)
        cmap = render.HEAT if self.overlay.value else render.SEQUENTIAL
        self.key_widget.value = render.png_bytes(render.colorbar_strip(
            0, 1, pic.width, cmap, tr("activation, low → high (each map on its own scale)")))
        self.info.value = self.describe()
        self.n_redraw += 1

    def static_figure(self, k: int = 6):
        """Every stage's top-``k`` channels over the photo, one row per stage (matplotlib).

        Panel ``(r, j)`` is titled ``"<stage> #<channel>"``: the ``j``-th most active channel of stage ``r``.
        Each map is stretched over its own range (channels of different stages differ by orders of magnitude),
        and the colour bar says so.
        """
        import matplotlib.pyplot as plt

        stages = list(self.features)
        fig, axes = plt.subplots(len(stages), k, figsize=(1.6 * k, 1.35 * len(stages) + 0.3), squeeze=False)
        for r, s in enumerate(stages):
            for j, c in enumerate(self._ranking[s][:k].tolist()):
                ax = axes[r, j]
                ax.imshow(render.overlay(self._photo(160), self.features[s][c], alpha=0.55))
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{s} #{c}", fontsize=render.MIN_PT)
        fig.suptitle(tr("Most active channels per stage (edges and colours -> textures -> parts)"),
                     fontsize=render.TEXT_PT)
        fig.tight_layout()
        from matplotlib.cm import ScalarMappable

        bar = fig.colorbar(ScalarMappable(cmap=render.HEAT), ax=axes.ravel().tolist(), fraction=0.02, pad=0.01,
                           ticks=[0, 1])
        bar.ax.set_yticklabels([tr("its lowest"), tr("its highest")])
        bar.set_label(tr("each panel on its own scale"))
        return fig
