"""Switch between the heads of a multi-task model on the same cached features."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import torch
from PIL import Image

from .. import render
from ..images import to_uint8
from ..model import Model

#: colours of background + the three ShapesWorld classes
PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]], dtype=np.uint8)


def mask_overlay(image: torch.Tensor, classes: torch.Tensor, alpha: float = 0.5) -> Image.Image:
    """Colour each pixel by its class (background stays the photo)."""
    base = to_uint8(image).astype(np.float32)
    cls = classes.cpu().numpy()
    colour = PALETTE[np.clip(cls, 0, len(PALETTE) - 1)].astype(np.float32)
    a = (cls > 0)[..., None] * alpha
    return Image.fromarray((base * (1 - a) + colour * a).astype(np.uint8))


class HeadSwitcher:
    """Pick an image and a head: the backbone and neck run once per image, every head reads their output.

    ``n_forward`` counts the passes through backbone + neck; switching heads or
    the score threshold only redraws from the cached outputs.
    """

    def __init__(self, model: Model, images: torch.Tensor, scale: int = 3):
        self.model = model.eval()
        self.images = images
        self.scale = scale
        self.n_forward = 0
        self.index = W.IntSlider(value=0, min=0, max=len(images) - 1, description="Image:")
        self.head = W.ToggleButtons(options=list(model.heads), description="Head:")
        self.score = W.FloatSlider(value=0.4, min=0.05, max=0.95, step=0.05, description="Score ≥")
        self.label = W.HTML()
        self.image_widget = W.Image(format="png")
        self.index.observe(lambda _: self._run(), names="value")
        self.head.observe(lambda _: self.redraw(), names="value")
        self.score.observe(lambda _: self.redraw(), names="value")
        self._run()
        self.widget = W.VBox([W.HBox([self.index, self.score]), self.head, self.label, self.image_widget])

    def _run(self) -> None:
        x = self.images[self.index.value]
        self.trace = self.model.trace(x.float() / 255 if x.dtype == torch.uint8 else x)
        self.n_forward += 1
        self.redraw()

    def picture(self, task: str) -> Image.Image:
        """What head ``task`` says about the current image, drawn on it."""
        img = self.trace.image[0]
        out = self.trace.head[task]
        if task == "classification":
            head = self.model.heads[task]
            top = head.decode(out, k=len(head.class_names))[0]
            self.label.value = f"classification: <b>{top[0].name}</b> covers the most pixels ({top[0].prob:.0%} sure)"
            pic = Image.fromarray(to_uint8(img)).resize((img.shape[-1] * self.scale,) * 2, Image.NEAREST)
            return render.hstack([pic, render.bars([c.name for c in top], [c.prob for c in top], width=300)])
        if task == "detection":
            head = self.model.heads[task]
            det = head.decode(out, score_thresh=self.score.value)[0]
            names = [head.class_names[int(i)] for i in det["labels"]]
            self.label.value = f"detection: {len(det['boxes'])} boxes with score ≥ {self.score.value:.2f}"
            return render.draw_boxes(img, det["boxes"], names, det["scores"].tolist(), scale=self.scale)
        classes = self.model.heads[task].decode(out)[0]
        counts = torch.bincount(classes.flatten(), minlength=len(PALETTE))
        self.label.value = "segmentation: pixels per class " + ", ".join(
            f"{n}: {int(c)}" for n, c in zip(self.model.heads[task].class_names, counts))
        pic = mask_overlay(img, classes)
        return pic.resize((pic.width * self.scale, pic.height * self.scale), Image.NEAREST)

    def redraw(self) -> None:
        self.image_widget.value = render.png_bytes(self.picture(self.head.value))

    def static_figure(self, indices: tuple[int, ...] = (0, 1, 2)):
        """A grid: rows are images, columns the input and what each head says."""
        import matplotlib.pyplot as plt

        tasks = list(self.model.heads)
        fig, axes = plt.subplots(len(indices), len(tasks) + 1, figsize=(3 * (len(tasks) + 1), 3 * len(indices)))
        keep = self.index.value
        for r, i in enumerate(indices):
            self.index.value = i
            axes[r, 0].imshow(to_uint8(self.trace.image[0]))
            axes[r, 0].set_title(f"image {i}")
            for c, task in enumerate(tasks, start=1):
                axes[r, c].imshow(self.picture(task))
                axes[r, c].set_title(task)
        for ax in axes.flat:
            ax.axis("off")
        self.index.value = keep
        fig.tight_layout()
        return fig
