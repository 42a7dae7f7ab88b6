"""Lesson 04's head explorer: score maps per level, thresholds, NMS and the mask overlay, live.

The detector (and the optional segmenter) run once per image; the outputs are
cached, and every slider move only re-decodes and redraws them with PIL.

>>> ex = HeadExplorer(detector, images, segmenter=segmenter)
>>> ex.widget                     # in a notebook
>>> ex.score.value = 0.5          # tests move sliders like this ...
>>> ex.n_before, ex.n_after       # ... and read the state
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .. import render
from ..images import to_uint8
from ..model import Model

MASK_COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                         [145, 30, 180]], dtype=np.float32)
BOX_COLOURS = [tuple(int(v) for v in c) for c in MASK_COLOURS[1:]]


def mask_overlay(image: torch.Tensor | np.ndarray, classes: torch.Tensor | np.ndarray, opacity: float = 0.5) -> Image.Image:
    """Colour every pixel by its class (0 = background stays clear) and blend it over the image."""
    base = to_uint8(image).astype(np.float32)
    cls = np.asarray(classes.cpu() if isinstance(classes, torch.Tensor) else classes).astype(np.int64)
    col = MASK_COLOURS[cls % len(MASK_COLOURS)]
    a = (cls > 0)[..., None] * float(opacity)
    return Image.fromarray((base * (1 - a) + col * a).astype(np.uint8))


class HeadExplorer:
    """Image, level, class, score / IoU thresholds, mask opacity -> boxes, score maps and counts.

    ``images`` is a ``(N, 3, H, W)`` tensor or a dict ``name -> (3, H, W)``.  Attributes
    for tests: ``n_forward`` (forward passes so far), ``n_before`` / ``n_after`` (boxes above
    the threshold before and after NMS), ``image_widget`` and ``info`` (what is shown).
    """

    def __init__(self, detector: Model, images: torch.Tensor | Mapping[str, torch.Tensor],
                 segmenter: Model | None = None, scale: int = 3):
        import ipywidgets as W

        if isinstance(images, Mapping):
            self.names, tensors = list(images), list(images.values())
        elif isinstance(images, torch.Tensor) and images.ndim == 4:
            self.names, tensors = [f"image {i}" for i in range(len(images))], list(images)
        else:
            raise TypeError("images must be a (N, 3, H, W) tensor or a dict name -> (3, H, W) tensor")
        if not tensors:
            raise ValueError("give the explorer at least one image")
        self.images = [t.float() / 255 if t.dtype == torch.uint8 else t for t in tensors]
        self.detector = detector.eval()
        self.segmenter = segmenter.eval() if segmenter is not None else None
        self.head = detector.head
        self.scale = scale
        self.n_forward = 0
        self._cache: dict[int, tuple[dict[str, torch.Tensor], torch.Tensor | None]] = {}
        self.n_before = self.n_after = 0

        style = {"description_width": "90px"}
        self.image = W.Dropdown(options=[(n, i) for i, n in enumerate(self.names)], value=0, description="image",
                                style=style)
        self.level = W.Dropdown(options=["all", *self.head.levels], value="all", description="level", style=style)
        self.cls = W.Dropdown(options=[("all", -1)] + [(n, i) for i, n in enumerate(self.head.class_names)],
                              value=-1, description="class", style=style)
        self.score = W.FloatSlider(value=0.3, min=0.05, max=0.95, step=0.05, description="score ≥", style=style)
        self.iou = W.FloatSlider(value=0.5, min=0.1, max=0.9, step=0.05, description="NMS IoU >", style=style)
        self.opacity = W.FloatSlider(value=0.4, min=0.0, max=1.0, step=0.1, description="mask opacity",
                                     style=style, disabled=segmenter is None)
        self.image_widget = W.Image(format="png")
        self.info = W.HTML()
        controls = [self.image, self.level, self.cls, self.score, self.iou, self.opacity]
        for c in controls:
            c.observe(lambda _change: self.update(), names="value")
        self.widget = W.VBox([W.HBox([W.VBox(controls[:3]), W.VBox(controls[3:])]), self.image_widget, self.info])
        self.update()

    # ------------------------------------------------------------------ cache
    @torch.no_grad()
    def outputs(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The cached head outputs (and segmentation classes) of image ``i``; computed on first use."""
        if i not in self._cache:
            x = self.images[i][None]
            det = {k: v.detach() for k, v in self.detector(x).items()}
            seg = self.segmenter.head.decode(self.segmenter(x))[0] if self.segmenter is not None else None
            self.n_forward += 1
            self._cache[i] = (det, seg)
        return self._cache[i]

    def detections(self, nms: bool = True) -> dict[str, torch.Tensor]:
        """The current image's boxes under the current level / class / thresholds."""
        det, _ = self.outputs(self.image.value)
        levels = None if self.level.value == "all" else [self.level.value]
        r = self.head.decode(det, score_thresh=self.score.value, iou_thresh=self.iou.value, levels=levels,
                             nms=nms, max_det=1000, pre_nms_topk=5000)[0]
        if self.cls.value >= 0:
            keep = r["labels"] == self.cls.value
            r = {k: v[keep] for k, v in r.items()}
        return r

    def score_map(self, level: str) -> torch.Tensor:
        """Class probability per cell of one level: the chosen class, or the best class for "all"."""
        det, _ = self.outputs(self.image.value)
        p = det[f"cls.{level}"][0].sigmoid()
        return p[self.cls.value] if self.cls.value >= 0 else p.max(0).values

    # ------------------------------------------------------------------ drawing
    def _base(self) -> Image.Image:
        img = self.images[self.image.value]
        _, seg = self.outputs(self.image.value)
        if seg is not None and self.opacity.value > 0:
            return mask_overlay(img, seg, self.opacity.value)
        return Image.fromarray(to_uint8(img))

    def _boxes_picture(self, r: Mapping[str, torch.Tensor], title: str) -> Image.Image:
        names = [self.head.class_names[int(c)] for c in r["labels"]]
        cols = [BOX_COLOURS[int(c) % len(BOX_COLOURS)] for c in r["labels"]]
        pic = render.draw_boxes(self._base(), r["boxes"], labels=names, scores=r["scores"].tolist(),
                                colors=cols, width=1, scale=self.scale)
        ImageDraw.Draw(pic).text((4, pic.height - 12), title, fill=(255, 255, 255))
        return pic

    def _maps_picture(self, size: int) -> Image.Image:
        levels = self.head.levels if self.level.value == "all" else [self.level.value]
        tiles = []
        for lv in levels:
            m = self.score_map(lv).numpy()
            tile_size = size if len(levels) == 1 else size // 2
            tile = Image.fromarray(render.colorize(m, "magma", normalize=False)).resize((tile_size, tile_size),
                                                                                        Image.NEAREST)
            ImageDraw.Draw(tile).text((3, 2), f"{lv} {m.shape[0]}x{m.shape[1]}", fill=(255, 255, 255))
            tiles.append(tile)
        if len(tiles) == 1:
            return tiles[0]
        grid = Image.new("RGB", (size, size), (255, 255, 255))
        for k, t in enumerate(tiles[:4]):
            grid.paste(t, ((k % 2) * (size // 2), (k // 2) * (size // 2)))
        return grid

    def picture(self) -> Image.Image:
        """The whole view: boxes before NMS | after NMS | class-score map(s)."""
        before, after = self.detections(nms=False), self.detections(nms=True)
        self.n_before, self.n_after = len(before["boxes"]), len(after["boxes"])
        left = self._boxes_picture(before, f"before NMS: {self.n_before}")
        mid = self._boxes_picture(after, f"after NMS: {self.n_after}")
        return render.hstack([left, mid, self._maps_picture(left.height)])

    def update(self) -> None:
        self.image_widget.value = render.png_bytes(self.picture())
        what = "every class" if self.cls.value < 0 else self.head.class_names[self.cls.value]
        self.info.value = (f"<b>{self.n_before}</b> boxes score ≥ {self.score.value:.2f} ({what}, level "
                           f"{self.level.value}); NMS at IoU > {self.iou.value:.2f} keeps <b>{self.n_after}</b>. "
                           f"Forward passes so far: {self.n_forward}.")

    def static_figure(self, indices: Sequence[int] | None = None):
        """A matplotlib figure for places without widgets: per image, before / after NMS and the score maps."""
        import matplotlib.pyplot as plt

        indices = list(indices) if indices is not None else [self.image.value]
        old = self.image.value
        fig, axes = plt.subplots(len(indices), 1, figsize=(10, 3.4 * len(indices)), squeeze=False)
        try:
            for ax, i in zip(axes[:, 0], indices):
                self.image.value = i
                ax.imshow(self.picture())
                ax.set_title(f"{self.names[i]}: {self.n_before} boxes before NMS, {self.n_after} after "
                             f"(score ≥ {self.score.value:.2f}, IoU > {self.iou.value:.2f})", fontsize=9)
                ax.axis("off")
        finally:
            self.image.value = old
        fig.tight_layout()
        plt.close(fig)
        return fig
