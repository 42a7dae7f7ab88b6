"""Pick a sample photo or upload your own; bad files get a message, never a crash."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W
import torch

from .. import render
from ..images import ImageError, load_image, sample_images, to_uint8
from ..language import tr
from .base import Panel, caption, fit_labels, picture

#: Uploaded pictures are shrunk so the long side is at most this many pixels
#: (a 12-megapixel phone photo would make every explorer slow).
MAX_SIDE = 640


class ImagePicker(Panel):
    """A dropdown of the offline sample photos plus a ``FileUpload`` button.

    ``picker.image`` is the current picture as a ``(3, H, W)`` tensor in [0, 1];
    ``picker.on_change(fn)`` calls ``fn(image)`` whenever it changes.  A file
    that is not a usable image leaves the current picture in place and shows
    why in ``picker.info``.  Displayed, it shows the dropdown, the upload button and a
    preview; its static figure is the chosen photo.
    """

    ALT = caption(lambda: tr("Image picker: the photo every explorer below looks at"))

    def __init__(self, initial: str = "chelsea", max_side: int = MAX_SIDE, preview_width: int = 220):
        self.max_side = max_side
        self._samples = sample_images()
        if initial not in self._samples:
            raise ValueError(f"unknown sample {initial!r}; choose one of {', '.join(self._samples)}")
        self._callbacks: list[Callable[[torch.Tensor], None]] = []
        self._uploads: dict[str, torch.Tensor] = {}
        self._quiet = False
        self.name = initial
        self.image = load_image(self._samples[initial], max_side=max_side)
        self.dropdown = W.Dropdown(options=list(self._samples), value=initial, description=tr("Photo:"))
        self.upload = W.FileUpload(accept="image/*", multiple=False, description=tr("Upload your own"))
        self.info = W.HTML(value=self._ok_message())
        self.preview = picture("png", max_width=preview_width)
        self.preview.value = render.png_bytes(self._thumb())
        self.dropdown.observe(self._on_dropdown, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.widget = fit_labels(W.VBox([W.HBox([self.dropdown, self.upload], layout=W.Layout(flex_flow="row wrap")),
                                         self.info, self.preview]))

    def static_figure(self):
        """The chosen photo, titled with its name and size (matplotlib)."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(3, 3 * self.image.shape[1] / self.image.shape[2]))
        ax.imshow(to_uint8(self.image))
        ax.set_title(tr("{name}: {w}×{h} pixels", name=self.name, w=self.image.shape[2], h=self.image.shape[1]),
                     fontsize=render.MIN_PT)
        ax.axis("off")
        fig.tight_layout()
        return fig

    # -- public API -------------------------------------------------------
    def on_change(self, fn: Callable[[torch.Tensor], None]) -> None:
        """Call ``fn(image)`` every time the picture changes."""
        self._callbacks.append(fn)

    def load_bytes(self, data: bytes, name: str = "upload") -> bool:
        """Use the bytes of an image file (what the upload button gives). Returns True on success."""
        try:
            img = load_image(data, max_side=self.max_side)
        except ImageError as err:
            self.info.value = ("<span style='color:#b00020'>⚠ " + tr("Could not use {name!r}: {err}", name=name, err=err)
                               + "</span>")
            return False
        key = f"upload: {name}"
        self._uploads[key] = img
        self._quiet = True  # new options reset the dropdown's value: ignore that event
        try:
            self.dropdown.options = list(self._samples) + list(self._uploads)
            self.dropdown.value = key
        finally:
            self._quiet = False
        self._set(key, img)
        return True

    def add(self, name: str, image: torch.Tensor) -> None:
        """Offer one more picture (e.g. an explorer's own) in the dropdown, under ``name``; it is not shown yet."""
        self._uploads[name] = image
        self._quiet = True
        try:
            self.dropdown.options = list(self._samples) + list(self._uploads)
            self.dropdown.value = self.name
        finally:
            self._quiet = False

    def select(self, name: str) -> None:
        """Show a sample photo (or an earlier upload) by name."""
        self.dropdown.value = name

    # -- internals -------------------------------------------------------------
    def _set(self, name: str, img: torch.Tensor) -> None:
        self.name, self.image = name, img
        self.preview.value = render.png_bytes(self._thumb())
        self.info.value = self._ok_message()
        for fn in self._callbacks:
            fn(img)

    def _on_dropdown(self, change) -> None:
        name = change["new"]
        if self._quiet or name is None or name == self.name:
            return
        if name in self._uploads:
            self._set(name, self._uploads[name])
        elif name in self._samples:
            self._set(name, load_image(self._samples[name], max_side=self.max_side))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        f = files[-1] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        self.load_bytes(bytes(f["content"]), f.get("name", "upload"))

    def _thumb(self):
        _, h, w = self.image.shape
        return render.photo(self.image, max(1, round(w * 220 / max(h, w))))

    def _ok_message(self) -> str:
        _, h, w = self.image.shape
        return "<span style='color:#1b5e20'>✓ " + tr("{name}: {w}×{h} pixels", name=self.name, w=w, h=h) + "</span>"
