"""Switch between the heads of a multi-task model on the same cached features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from PIL import Image

from .. import render
from ..images import to_uint8
from ..language import tr
from ..model import Model
from .base import GalleryExplorer, caption, gallery_label, picture


class HeadSwitcher(GalleryExplorer):
    """Pick an image and a head: the backbone and neck run once per image, every head reads their output.

    ``model`` is a multi-task model (``model.heads``, ``model.trace(x).heads``);
    ``image`` a ``(N, 3, H, W)`` batch or a dict of pictures.  ``n_forward``
    counts the passes through backbone + neck (one per image, cached);
    switching heads or the score threshold only redraws from the cached outputs.
    """

    ALT = caption(lambda: tr("Head switcher: one backbone and neck read by several heads, each head's answer on the "
                             "same image"))

    def __init__(self, model: Model, image: Any = None, *, picker: Any = None, scale: int = 3):
        super().__init__(model.eval(), image, picker=picker)
        self.model = model
        self.scale = scale
        self._traces: dict[str, Any] = {}
        self.head = W.ToggleButtons(options=list(model.heads), description=tr("Head:"))
        self.score = W.FloatSlider(value=0.4, min=0.05, max=0.95, step=0.05, description=tr("Score ≥"))
        self.image_widget = picture()
        self._observe(self.head, self.score)
        view = self._in_browser([self.head, self.score, self.gallery], [self.image_widget], ahead={self.gallery: 4})
        self._start(image, [self.gallery, self.head, self.score], [view])

    def _forget(self, name: str) -> None:
        self._traces.pop(name, None)

    @property
    def trace(self):
        """The cached trace of the picture shown now (backbone + neck + every head, run once per picture)."""
        name = self.gallery.value
        if name not in self._traces:
            self._traces[name] = self.model.trace(self.images[name])
            self.n_forward += 1
        return self._traces[name]

    def picture(self, task: str) -> tuple[Image.Image, str]:
        """What head ``task`` says about the current image, drawn on it, and the sentence that says it."""
        trace = self.trace
        img = trace.image[0]
        out = trace.head[task]
        head = self.model.heads[task]
        if task == "classification":
            top = head.decode(out, k=len(head.class_names))[0]
            text = tr("classification: <b>{name}</b> covers the most pixels ({p:.0%} sure)", name=top[0].name,
                      p=top[0].prob)
            pic = Image.fromarray(to_uint8(img)).resize((img.shape[-1] * self.scale,) * 2, Image.NEAREST)
            bars = render.bars([c.name for c in top], [c.prob for c in top], width=pic.width)
            return render.vstack([pic, bars]), text
        if task == "detection":
            det = head.decode(out, score_threshold=self.score.value)[0]
            names = [head.class_names[int(i)] for i in det["labels"]]
            text = tr("detection: {n} boxes with score ≥ {score:.2f}", n=len(det["boxes"]), score=self.score.value)
            pic = render.draw_boxes(img, det["boxes"], names, det["scores"].tolist(), classes=det["labels"],
                                    scale=self.scale)
            return render.vstack([pic, render.legend(list(head.class_names), width=pic.width)], pad=2), text
        classes = head.decode(out)[0]
        counts = torch.bincount(classes.flatten(), minlength=len(head.class_names))
        text = tr("segmentation: pixels per class {counts}", counts=", ".join(
            f"{n}: {int(c)}" for n, c in zip(head.class_names, counts)))
        pic = render.mask_overlay(img, classes)
        pic = pic.resize((pic.width * self.scale, pic.height * self.scale), Image.NEAREST)
        objects = [n for n in head.class_names if n != "background"]  # masks leave the background clear
        return render.vstack([pic, render.legend(objects, width=pic.width)], pad=2), text

    def redraw(self) -> None:
        """Draw the chosen head's verdict on the current image (from the cached trace)."""
        self.score.disabled = self.head.value != "detection"  # only the detector has a score threshold
        pic, self.info.value = self.picture(self.head.value)
        self.image_widget.value = render.png_bytes(pic)
        self.n_redraw += 1

    def static_figure(self, images: Sequence[int | str] | None = None):
        """A grid: rows are images (gallery positions or names; default: the one shown), columns the input and
        what each head says.

        Panel ``(r, 1 + t)`` is exactly the explorer's picture of head ``t`` for image ``r``, titled with the
        head's name.
        """
        import matplotlib.pyplot as plt

        tasks = list(self.model.heads)
        names = self.names_of(images)
        keep, scale = self.gallery.value, self.scale
        rows = []
        with self._quietly():
            try:
                self.scale = 2  # four 256-px panels fit a notebook's width without shrinking their labels
                for name in names:
                    self.gallery.value = name
                    rows.append([to_uint8(self.trace.image[0])] + [np.asarray(self.picture(t)[0]) for t in tasks])
            finally:
                self.gallery.value, self.scale = keep, scale
        # each panel at the pixel size it was drawn at (the figure is saved at 80 dpi), so the labels drawn into
        # the pictures keep their size instead of shrinking below what the course's figures allow
        side = max(max(p.shape[0], p.shape[1]) for row in rows for p in row[1:]) / 80
        fig, axes = plt.subplots(len(names), len(tasks) + 1, figsize=(side * (len(tasks) + 1), (side + 0.3) * len(names)),
                                 squeeze=False)
        for r, (name, row) in enumerate(zip(names, rows)):
            for c, (pic, title) in enumerate(zip(row, [gallery_label(name), *tasks])):
                axes[r, c].imshow(pic)
                axes[r, c].set_title(title)
        for ax in axes.flat:
            ax.axis("off")
        fig.tight_layout()
        return fig
