"""Why did it say that? The class activation maps of a classifier's top classes, over the photo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from torch import nn

from .. import explain, render
from ..language import tr
from .base import Explorer, as_image, caption, picture


class CAMExplorer(Explorer):
    """Pick one of the top-``k`` classes and a method (CAM / Grad-CAM) and see where the evidence is.

    The network runs once per image (``n_forward``): that one pass gives the
    top-``k`` classes and every class's map for both methods
    (:func:`course_lib.explain.class_maps`), so switching class or method or
    moving the opacity only redraws.  CAM is offered when the model is GAP +
    linear (:func:`course_lib.explain.supports_cam`); Grad-CAM works for any
    classifier (``layer=None``: its last spatial layer).

    ``prepare`` turns the picture into what the model sees (e.g.
    :func:`course_lib.images.imagenet_view`).
    """

    ALT = caption(lambda: tr("Class activation explorer: a heat map over the photo of where the evidence for one "
                             "class lies"))

    def __init__(self, model: nn.Module, image: Any = None, *, picker: Any = None,
                 prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, top_k: int = 5,
                 layer: nn.Module | str | None = None, width: int = 448):
        super().__init__(model, image, picker=picker)
        self.model = model
        self.prepare = prepare or (lambda x: x)
        self.top_k = top_k
        self.layer = layer
        self.width = width
        self.maps: explain.ClassMaps | None = None
        methods = ["CAM", "Grad-CAM"] if explain.supports_cam(model) else ["Grad-CAM"]
        self.cls = W.Dropdown(description=tr("Class:"))
        self.method = W.ToggleButtons(options=methods, value=methods[0], description=tr("Method:"))
        self.opacity = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description=tr("Opacity:"))
        self.method.disabled = len(methods) == 1  # Grad-CAM only: nothing to switch
        self.image_widget = picture()
        self.key_widget = picture()
        self._observe(self.cls, self.method, self.opacity)
        view = self._in_browser([self.cls, self.method], [self.image_widget, self.key_widget], opacity=self.opacity)
        self._start(image, [self.cls, self.method, self.opacity], [view])

    # -- the expensive part: once per image -------------------------------------
    def _trace(self, image: Any) -> None:
        """One forward pass: the top classes and all their maps, for every method."""
        self.maps = explain.class_maps(self.model, self.prepare(as_image(image)), self.top_k, layer=self.layer)
        self.n_forward += 1
        options = [(f"{n} ({float(self.maps.probs[c]):.1%})", i)
                   for i, (n, c) in enumerate(zip(self.maps.names, self.maps.classes))]
        with self._quietly():
            self.cls.options = options
            self.cls.value = 0

    # -- the cheap part -------------------------------------------------------------
    def heat(self, rank: int | None = None, method: str | None = None) -> torch.Tensor:
        """The cached ``(H, W)`` map of the class at ``rank`` (0 = best) by ``method`` (default: the controls)."""
        rank = self.cls.value if rank is None else rank
        return self.maps.maps[method or self.method.value][rank]

    def picture(self, rank: int | None = None, method: str | None = None):
        """The photo with the map blended over it (PIL image)."""
        return render.overlay(self.maps.image, self.heat(rank, method), alpha=self.opacity.value, normalize=False)

    def redraw(self) -> None:
        """Redraw from the cached maps (no forward pass)."""
        if self.maps is None or self.cls.value is None:
            return
        img = self.picture()
        if img.width != self.width:
            img = img.resize((self.width, max(1, round(img.height * self.width / img.width))))
        self.image_widget.value = render.png_bytes(img)
        self.key_widget.value = render.png_bytes(render.colorbar_strip(0, 1, img.width, render.HEAT,
                                                                       tr("evidence for the class")))
        r = self.cls.value
        c = self.maps.classes[r]
        h = self.heat()
        y, x = np.unravel_index(int(h.argmax()), tuple(h.shape))
        self.info.value = tr("<b>{name}</b> (class {c}, p = {p:.1%}) by {method} on <code>{layer}</code>: hottest at "
                             "x = {x}, y = {y}", name=self.maps.names[r], c=c, p=float(self.maps.probs[c]),
                             method=self.method.value, layer=self.maps.layer, x=x, y=y)
        self.n_redraw += 1

    def static_figure(self, k: int = 2):
        """The photo and the maps of the top-``k`` classes (current method), titled with class and probability."""
        import matplotlib.pyplot as plt

        k = min(k, len(self.maps.classes))
        h, w = self.maps.image.shape[-2:]
        fig, axes = plt.subplots(1, k + 1, figsize=(3.4 * (k + 1), 3.4 * h / w + 0.6), squeeze=False)
        axes[0, 0].imshow(np.clip(self.maps.image.permute(1, 2, 0).cpu().numpy(), 0, 1))
        axes[0, 0].set_title(tr("input"), fontsize=render.MIN_PT)
        for j in range(k):
            c = self.maps.classes[j]
            axes[0, j + 1].imshow(self.picture(j))
            axes[0, j + 1].set_title(f"{self.method.value}: {self.maps.names[j]} ({float(self.maps.probs[c]):.1%})",
                                     fontsize=render.MIN_PT)
        for ax in axes.flat:
            ax.axis("off")
        fig.tight_layout()
        return fig
