"""The one shape every explorer has.

An explorer looks at a *source* (a model, a backbone, a detector ...) on an
image.  The expensive part runs once per image; the cheap part runs on every
control move:

>>> ex = SomeExplorer(source, image)        # or SomeExplorer(source, picker=ImagePicker())  # doctest: +SKIP
>>> ex.set_image(other)     # the network runs once (ex.n_forward counts the passes)
>>> ex.stage.value = "C4"   # a control move: ex.redraw() from the cached outputs, no forward pass
>>> ex.info.value           # the one text field under the controls
>>> ex.static_figure()      # a matplotlib figure of the same view, for places without widgets
>>> ex                      # the last line of a cell shows it: the live widget in JupyterLab,
...                         # the static figure where widgets cannot run (a rendered site, GitHub, a PDF)

Every explorer (and the :class:`~course_lib.widgets.picker.ImagePicker`) is a
:class:`Panel`: ``.widget`` is its root widget and displaying it puts *both*
the live widget and a PNG of :meth:`Panel.static_figure` into the output.
JupyterLab draws the widget; a page without a widget manager draws the PNG.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import ipywidgets as W
import torch

from .. import render
from ..images import load_image


class Panel:
    """Something the notebook displays: a root ``widget``, one ``info`` text field and a ``static_figure()``."""

    widget: W.Widget
    info: W.HTML

    def static_figure(self):
        """A matplotlib figure of what the panel shows (every panel has one)."""
        raise NotImplementedError(f"{type(self).__name__} must define static_figure()")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        """The live widget for JupyterLab plus the static figure as a PNG for everywhere else."""
        import base64

        data = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        data["image/png"] = base64.b64encode(render.figure_png(self.static_figure())).decode("ascii")
        return data


class Explorer(Panel):
    """Base of every explorer: ``Explorer(source, image=None, *, picker=None, ...)``.

    Subclasses build their controls, call :meth:`_observe` on them and
    :meth:`_start` at the end of ``__init__``, and define three methods:

    * ``_trace(image)`` -- the expensive part, once per image (it counts ``n_forward``);
    * ``redraw()`` -- the cheap part: pictures and ``info`` from the cached outputs;
    * ``static_figure()`` -- the same view as a matplotlib figure.

    ``image`` is anything :func:`course_lib.load_image` takes (a path, bytes, PIL,
    an array, a ``(3, H, W)`` tensor); with ``picker=ImagePicker()`` the explorer
    starts on the picker's photo and follows it.
    """

    def __init__(self, source: Any, image: Any = None, *, picker: Any = None):
        self.source = source
        self.picker = picker
        self.n_forward = 0  # forward passes of the network: one per new image
        self.n_redraw = 0
        self.info = W.HTML()
        self._quiet = False

    # -- wiring ---------------------------------------------------------------------
    def _observe(self, *controls: W.Widget) -> None:
        """Redraw when any of ``controls`` changes value."""
        for c in controls:
            c.observe(self._on_control, names="value")

    def _on_control(self, change) -> None:
        if not self._quiet:
            self.redraw()

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change control values (ranges, options) without a redraw for each."""
        was, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = was

    def _start(self, image: Any, controls: Sequence[W.Widget], views: Sequence[W.Widget]) -> None:
        """Lay out ``controls``, ``info``, ``views`` (top to bottom), then trace the first image and draw it."""
        if self.picker is not None:
            image = self.picker.image if image is None else image
            self.picker.on_change(self.set_image)
        if image is None:
            raise ValueError(f"give {type(self).__name__} an image (tensor, array, path) or an ImagePicker "
                             "(picker=...)")
        self.widget = W.VBox([*controls, self.info, *views])
        self.set_image(image)

    # -- the shape every explorer has -------------------------------------------------
    def set_image(self, image: Any) -> None:
        """Run the network once on a new image, then redraw."""
        self._trace(image)
        self.redraw()

    def _trace(self, image: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _trace(image)")

    def redraw(self) -> None:
        """Redraw from the cached outputs (no forward pass)."""
        raise NotImplementedError(f"{type(self).__name__} must define redraw()")


def as_image(image: Any, max_side: int | None = None) -> torch.Tensor:
    """One picture as a ``(3, H, W)`` float tensor in [0, 1] (a batch of one is unwrapped)."""
    if isinstance(image, torch.Tensor):
        if image.ndim == 4:
            image = image[0]
        if image.dtype == torch.uint8:
            image = image.float() / 255
        if max_side is None:
            return image
    return load_image(image, max_side=max_side)


def as_gallery(images: Any, max_side: int | None = None) -> dict[str, torch.Tensor]:
    """Several pictures by name: a dict ``name -> picture``, a ``(N, 3, H, W)`` batch, or one picture."""
    if isinstance(images, Mapping):
        named = dict(images)
    elif isinstance(images, torch.Tensor) and images.ndim == 4:
        named = {f"image {i}": t for i, t in enumerate(images)}
    elif isinstance(images, torch.Tensor) or hasattr(images, "shape") or isinstance(images, (str, bytes)):
        named = {"image": images}
    else:
        raise TypeError("images must be a dict name -> picture, a (N, 3, H, W) tensor or one picture, "
                        f"got {type(images).__name__}")
    if not named:
        raise ValueError("give the explorer at least one image")
    # tensors are shown at the size they have; files and arrays are shrunk to ``max_side``
    return {k: as_image(v, None if isinstance(v, torch.Tensor) else max_side) for k, v in named.items()}


class GalleryExplorer(Explorer):
    """An explorer over several named pictures: the ``gallery`` dropdown picks one, ``image`` is that picture.

    Each picture is traced once, the first time it is shown (``_trace_name``);
    a picker's photo joins the gallery as ``"picked"`` (:meth:`set_image`).
    """

    def __init__(self, source: Any, image: Any = None, *, picker: Any = None, max_side: int | None = None):
        super().__init__(source, image, picker=picker)
        self.max_side = max_side
        self.images: dict[str, torch.Tensor] = as_gallery(image, max_side) if image is not None else {}
        self.gallery = W.Dropdown(options=list(self.images), description="Image:")
        self._observe(self.gallery)

    @property
    def image(self) -> torch.Tensor:
        """The picture shown now."""
        return self.images[self.gallery.value]

    def _start(self, image: Any, controls: Sequence[W.Widget], views: Sequence[W.Widget]) -> None:
        if self.picker is not None:
            self.picker.on_change(self.set_image)
            if not self.images:
                self.images.update(as_gallery({"picked": self.picker.image}, self.max_side))
                self.gallery.options = list(self.images)
        if not self.images:
            raise ValueError(f"give {type(self).__name__} at least one image or an ImagePicker (picker=...)")
        self.widget = W.VBox([*controls, self.info, *views])
        self.redraw()

    def set_image(self, image: Any, name: str = "picked") -> None:
        """Add a picture (e.g. the picker's) under ``name`` and show it; a picture already there is replaced."""
        self.images[name] = as_gallery({name: image}, self.max_side)[name]
        self._forget(name)
        with self._quietly():
            if list(self.gallery.options) != list(self.images):
                self.gallery.options = list(self.images)
            self.gallery.value = name
        self.redraw()

    def _forget(self, name: str) -> None:
        """Drop everything cached for the picture ``name`` (it was replaced)."""

    def names_of(self, which: Sequence[int | str] | None) -> list[str]:
        """Gallery names for positions or names (``None``: the picture shown now)."""
        if which is None:
            return [self.gallery.value]
        names = list(self.images)
        return [names[w] if isinstance(w, int) else w for w in which]
