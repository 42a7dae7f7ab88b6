"""Lesson 07's head explorer: score maps per level, thresholds, NMS and the mask overlay, live.

The detector (and the optional segmenter) run once per image; the outputs are
cached, and every slider move only re-decodes and redraws them.  In JupyterLab the picture is drawn in the
browser (:class:`~course_lib.widgets.browser.BoxesView`): every candidate box goes to the page once per image,
and the thresholds, level, class and opacity filter them there, NMS included.

>>> ex = HeadExplorer(detector, images, segmenter=segmenter)   # doctest: +SKIP
>>> ex                            # in a notebook
>>> ex.score.value = 0.5          # tests move sliders like this ...
>>> ex.n_before, ex.n_after       # ... and read the state
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import torch
from PIL import Image

from .. import render
from ..images import to_uint8
from ..language import tr
from ..measure import evaluating
from ..model import Model
from .base import GalleryExplorer, caption, gallery_label, offstage, picture, pictures_figure
from .browser import BoxesView, lut


class HeadExplorer(GalleryExplorer):
    """Image, level, class, score / IoU thresholds, mask opacity -> boxes, score maps and counts.

    ``image`` is a ``(N, 3, H, W)`` tensor or a dict ``name -> (3, H, W)``.  Attributes
    for tests: ``n_forward`` (forward passes so far), ``n_before`` / ``n_after`` (boxes above
    the threshold before and after NMS), ``image_widget`` and ``info`` (what is shown).  A click on a
    picture of boxes (:meth:`click`) picks an image cell: ``info`` then lists each level's class scores there.
    """

    ALT = caption(lambda: tr("Head explorer: a detector's boxes, score maps and counts on one image"))

    def __init__(self, detector: Model, image: Any = None, *, picker: Any = None, segmenter: Model | None = None,
                 scale: int = 2):
        if image is not None and not isinstance(image, (Mapping, torch.Tensor)):
            raise TypeError("images must be a (N, 3, H, W) tensor or a dict name -> (3, H, W) tensor")
        super().__init__(detector.eval(), image, picker=picker)
        self.detector = detector
        self.segmenter = segmenter.eval() if segmenter is not None else None
        self.head = detector.head
        self.scale = scale
        self._cache: dict[str, tuple[dict[str, torch.Tensor], torch.Tensor | None]] = {}
        self.n_before = self.n_after = 0
        self.cell: tuple[int, int] | None = None  # the clicked image pixel (y, x), if any

        style = {"description_width": "initial"}
        self.gallery.style = style
        self.level = W.Dropdown(options=[(tr("all"), "all"), *((lv, lv) for lv in self.head.levels)], value="all",
                                description=tr("level"), style=style)
        self.cls = W.Dropdown(options=[(tr("all"), -1)] + [(n, i) for i, n in enumerate(self.head.class_names)],
                              value=-1, description=tr("class"), style=style)
        self.score = W.FloatSlider(value=0.3, min=0.05, max=0.95, step=0.05, description=tr("score ≥"), style=style)
        self.iou = W.FloatSlider(value=0.5, min=0.1, max=0.9, step=0.05, description=tr("NMS IoU >"), style=style)
        self.opacity = W.FloatSlider(value=0.4, min=0.0, max=1.0, step=0.1, description=tr("mask opacity"),
                                     style=style, disabled=segmenter is None)
        self.image_widget = picture()        # the same picture drawn by Python: static figures, tests
        offstage(self.image_widget)
        self._observe(self.level, self.cls, self.score, self.iou, self.opacity)
        self.view = BoxesView()
        self._sent: str | None = None          # the picture whose boxes the view holds
        self.view.observe(lambda ch: self.click(*ch["new"][:2]) if ch["new"] else None, names="clicked")
        self.view.follow({"score": (self.score, "value"), "iou": (self.iou, "value"), "level": (self.level, "index"),
                          "cls": (self.cls, "index"), "opacity": (self.opacity, "value")})
        self._start(image, [self.gallery, self.level, self.cls, self.score, self.iou, self.opacity,
                            W.HTML("<small>" + tr("click a picture of boxes to read the scores of a cell") + "</small>")],
                    [self.view])

    # ------------------------------------------------------------------ cache
    def _forget(self, name: str) -> None:
        self._cache.pop(name, None)
        if name == self._sent:
            self._sent = None                  # a new picture under that name: send its boxes again

    def outputs(self, name: str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The cached head outputs (and segmentation classes) of one picture; computed on first use."""
        name = self.gallery.value if name is None else name
        if name not in self._cache:
            x = self.images[name][None]
            with evaluating(self.detector):
                det = {k: v.detach() for k, v in self.detector(x).items()}
            seg = None
            if self.segmenter is not None:
                with evaluating(self.segmenter):
                    seg = self.segmenter.head.decode(self.segmenter(x))[0]
            self.n_forward += 1
            self._cache[name] = (det, seg)
        return self._cache[name]

    def detections(self, nms: bool = True) -> dict[str, torch.Tensor]:
        """The current image's boxes under the current level / class / thresholds."""
        det, _ = self.outputs()
        levels = None if self.level.value == "all" else [self.level.value]
        r = self.head.decode(det, score_threshold=self.score.value, iou_threshold=self.iou.value, levels=levels,
                             nms=nms, max_det=1000, pre_nms_topk=5000)[0]
        if self.cls.value >= 0:
            keep = r["labels"] == self.cls.value
            r = {k: v[keep] for k, v in r.items()}
        return r

    def score_map(self, level: str) -> torch.Tensor:
        """Class probability per cell of one level: the chosen class, or the best class for "all"."""
        det, _ = self.outputs()
        p = det[f"cls.{level}"][0].sigmoid()
        return p[self.cls.value] if self.cls.value >= 0 else p.max(0).values

    # ------------------------------------------------------------------ drawing
    def _base(self) -> Image.Image:
        _, seg = self.outputs()
        if seg is not None and self.opacity.value > 0:
            return render.mask_overlay(self.image, seg, self.opacity.value)
        return Image.fromarray(to_uint8(self.image))

    def _boxes_picture(self, r: Mapping[str, torch.Tensor], title: str) -> Image.Image:
        names = [self.head.class_names[int(c)] for c in r["labels"]]
        pic = render.draw_boxes(self._base(), r["boxes"], labels=names, scores=r["scores"].tolist(),
                                classes=r["labels"], width=1, scale=self.scale)
        if self.cell is not None:
            y, x = self.cell
            render.dots(pic, [((x + 0.5) * self.scale, (y + 0.5) * self.scale)], [4], [render.BLACK])
        return render.badge(pic, (2, pic.height), title)  # kept inside the picture, at its bottom

    def _maps_picture(self, size: int) -> Image.Image:
        levels = self.head.levels if self.level.value == "all" else [self.level.value]
        side = size if len(levels) == 1 else size // 2
        tiles = []
        for lv in levels:
            m = self.score_map(lv)
            tile = render.tile(m, side, render.HEAT, normalize=False).resize((side, side), Image.NEAREST)
            tiles.append(render.badge(tile, (1, 2), f"{lv} {m.shape[0]}x{m.shape[1]}", bg=None))
        if len(tiles) == 1:
            return tiles[0]
        return render.grid(tiles[:4], ncols=2, pad=0)

    def picture(self) -> Image.Image:
        """The whole view, two by two: boxes before NMS | after NMS, then the class-score map(s) | the class
        colours (boxes and masks share them) over the score maps' colour bar (0 to 1)."""
        before, after = self.detections(nms=False), self.detections(nms=True)
        self.n_before, self.n_after = len(before["boxes"]), len(after["boxes"])
        left = self._boxes_picture(before, tr("before NMS: {n}", n=self.n_before))
        mid = self._boxes_picture(after, tr("after NMS: {n}", n=self.n_after))
        maps = self._maps_picture(left.height)
        names = list(self.head.class_names)
        key = render.legend(names, [render.class_colour(i) for i in range(len(names))], width=mid.width)
        bar = render.colorbar_strip(0, 1, mid.width, render.HEAT, tr("class score"))
        return render.vstack([render.hstack([left, mid]), render.hstack([maps, render.vstack([key, bar], pad=2)])],
                             pad=6)

    def click(self, x: float, y: float) -> tuple[int, int] | None:
        """Pick the image cell under pixel ``(x, y)`` of the shown picture (either picture of boxes).

        Returns the image pixel ``(y, x)``, or ``None`` when the click is outside both pictures of boxes.
        """
        h, w = self.image.shape[-2:]
        side_w, side_h = w * self.scale, h * self.scale
        for x0 in (0, side_w + 6):  # before NMS | after NMS, ``hstack``'s 6-pixel gap between them
            if x0 <= x < x0 + side_w and 0 <= y < side_h:
                self.cell = (int(y // self.scale), int((x - x0) // self.scale))
                self.redraw()
                return self.cell
        return None

    def cell_scores(self) -> str:
        """The class scores at the clicked cell on each level (``""`` before any click)."""
        if self.cell is None:
            return ""
        det, _ = self.outputs()
        h, w = self.image.shape[-2:]
        y, x = self.cell
        parts = []
        for lv in self.head.levels:
            p = det[f"cls.{lv}"][0].sigmoid()
            gy, gx = min(int(y * p.shape[1] / h), p.shape[1] - 1), min(int(x * p.shape[2] / w), p.shape[2] - 1)
            scores = ", ".join(f"{n} {float(p[i, gy, gx]):.2f}" for i, n in enumerate(self.head.class_names))
            parts.append(tr("{level} cell ({gy}, {gx}): {scores}", level=lv, gy=gy, gx=gx, scores=scores))
        return "<br>" + tr("At pixel (x = {x}, y = {y}): ", x=x, y=y) + "; ".join(parts)

    def view_payload(self) -> dict:
        """What the browser view gets of the current picture, once: every candidate box above the slider's
        lowest score (class, level, score), the photo and the segmenter's classes as bytes, the score maps of
        every level (each class, then the best class, as 0..255 for 0..1) and the words it writes."""
        import base64

        import numpy as np

        det, seg = self.outputs()
        c = self.head.decode(det, score_threshold=self.score.min, nms=False, max_det=100_000,
                             pre_nms_topk=100_000)[0]
        h, w = self.image.shape[-2:]
        b64 = lambda a: base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode()  # noqa: E731
        maps = {}
        for lv in self.head.levels:
            p = det[f"cls.{lv}"][0].sigmoid()
            both = torch.cat([p, p.max(0, keepdim=True).values]).mul(255).round().clamp(0, 255)
            maps[lv] = {"h": int(p.shape[1]), "w": int(p.shape[2]), "data": b64(both.to(torch.uint8).numpy())}
        payload = {
            "kind": "boxes", "w": int(w), "h": int(h), "scale": self.scale, "photo": b64(to_uint8(self.image)),
            "levels": list(self.head.levels), "class_names": list(self.head.class_names),
            "class_colours": [list(render.class_colour(i)) for i in range(len(self.head.class_names))],
            "palette": render.PALETTE.tolist(), "lut": lut(render.HEAT), "maps": maps, "alt": self.ALT,
            "cands": {"boxes": c["boxes"].tolist(), "scores": c["scores"].tolist(),   # unrounded: the same
                      "labels": c["labels"].tolist(), "level": c["level"].tolist()},  # cuts as Python's
            "controls": {"score": {"min": self.score.min, "max": self.score.max, "step": self.score.step},
                         "iou": {"min": self.iou.min, "max": self.iou.max, "step": self.iou.step},
                         "level": True, "cls": True, "opacity": {"min": 0, "max": 1, "step": 0.1}},
            "text": {"before NMS: {n}": tr("before NMS: {n}", n="{n}"), "after NMS: {n}": tr("after NMS: {n}", n="{n}"),
                     "all": tr("all"), "score": tr("score ≥"), "iou": tr("NMS IoU >"), "level": tr("level"),
                     "cls": tr("class"), "opacity": tr("mask opacity"), "score_bar": tr("class score")},
        }
        if seg is not None:
            cls = seg.cpu().numpy().astype(np.int64)
            if cls.shape != (h, w):
                from PIL import Image as PILImage

                cls = np.asarray(PILImage.fromarray(cls.astype(np.int32)).resize((w, h), PILImage.NEAREST))
            payload["seg"] = b64(cls)
        return payload

    #: How many of the gallery's pictures the offline site gets (each runs the network once, when shown).
    SITE_IMAGES = 4

    def view_snapshot(self) -> dict[str, Any]:
        """The site's snapshot: the boxes of the picture shown and of the gallery's first few (its
        :data:`SITE_IMAGES`), so the page's image list works without a kernel too."""
        snap = super().view_snapshot()
        keep, payloads = self.gallery.value, []
        names = list(dict.fromkeys([keep, *list(self.images)[:self.SITE_IMAGES]]))[:self.SITE_IMAGES]
        with self._quietly():
            try:
                for name in names:
                    self.gallery.value = name
                    payloads.append({"name": gallery_label(name), "payload": self.view_payload()})
            finally:
                self.gallery.value = keep
        if len(payloads) > 1:
            snap["payload"] = {**snap["payload"], "gallery": payloads,
                               "controls": {**snap["payload"]["controls"], "image": True},
                               "text": {**snap["payload"]["text"], "image": tr("Image:").rstrip(":： ")}}
            snap["state"] = {**snap["state"], "image": 0}
        return snap

    def view_expect(self) -> dict[str, int]:
        """The boxes before and after NMS under the current controls, as Python's decode and torchvision's
        batched NMS count them: the browser's filter and NMS must give the same."""
        return {"before": self.n_before, "after": self.n_after}

    def redraw(self) -> None:
        """Re-decode the cached outputs under the current controls and draw them."""
        if self._sent != self.gallery.value:
            self.view.payload = self.view_payload()
            self._sent = self.gallery.value
        self.view.cell = list(self.cell) if self.cell is not None else []
        self.image_widget.value = render.png_bytes(self.picture())
        what = tr("every class") if self.cls.value < 0 else self.head.class_names[self.cls.value]
        level = tr("all") if self.level.value == "all" else self.level.value
        self.info.value = tr("<b>{before}</b> boxes score ≥ {score:.2f} ({what}, level {level}); NMS at IoU > "
                             "{iou:.2f} keeps <b>{after}</b>. Forward passes so far: {n}.", before=self.n_before,
                             score=self.score.value, what=what, level=level, iou=self.iou.value, after=self.n_after,
                             n=self.n_forward) + self.cell_scores()
        self.n_redraw += 1

    def static_figure(self, images: Sequence[int | str] | None = None):
        """A matplotlib figure for places without widgets: per image, before / after NMS and the score maps.

        ``images`` are gallery positions or names (default: the one shown); each row is exactly the
        explorer's picture for it, titled with its name and box counts.
        """
        import matplotlib.pyplot as plt

        names = self.names_of(images)
        old = self.gallery.value
        pics, titles = [], []
        try:
            with self._quietly():
                for name in names:
                    self.gallery.value = name
                    pics.append(self.picture())
                    titles.append(tr("{name}: {before} boxes before NMS, {after} after (score ≥ {score:.2f}, IoU > "
                                     "{iou:.2f})", name=gallery_label(name), before=self.n_before,
                                     after=self.n_after, score=self.score.value, iou=self.iou.value))
        finally:
            with self._quietly():
                self.gallery.value = old
            self.redraw()
        fig = pictures_figure(pics, titles, ncols=min(2, len(pics)))
        plt.close(fig)
        return fig
