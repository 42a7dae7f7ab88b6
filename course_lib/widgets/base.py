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

Every explorer is laid out by the same rules (:func:`explorer_layout`): the controls in one column
(:func:`controls_box`, each label shown whole) beside the pictures, which are shown at their own size and never
wider than :data:`PICTURE_PX` (:func:`picture`), so a small picture is not stretched across the page and the
controls never scroll away; on a narrow page the controls wrap above the pictures.  The pictures are drawn in
the browser (:mod:`course_lib.widgets.browser`: a click there picks a cell), and a static figure shows PIL
pictures at their own size (:func:`pictures_figure`).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ipywidgets as W
import torch

from .. import render
from ..images import load_image
from ..language import tr

#: The widest a picture is shown, in screen pixels: room for the controls beside it on a laptop.
PICTURE_PX = 512
#: The width of the controls column, in screen pixels.
CONTROLS_PX = 340


def picture(fmt: str = "png", max_width: int = PICTURE_PX) -> W.Image:
    """An image widget shown at its own size, at most ``max_width`` pixels wide (never stretched to the page)."""
    return W.Image(format=fmt, layout=W.Layout(max_width=f"{max_width}px", width="auto", height="auto",
                                               object_fit="contain", align_self="flex-start"))


def fit_labels(widget: W.Widget) -> W.Widget:
    """Let every description in ``widget`` (and the boxes inside it) take the room it needs, never cut off."""
    for w in getattr(widget, "children", ()):
        fit_labels(w)
    style = getattr(widget, "style", None)
    if getattr(widget, "description", "") and style is not None and hasattr(style, "description_width"):
        if not style.description_width:
            style.description_width = "initial"
    if style is not None and hasattr(style, "button_width") and not style.button_width:
        style.button_width = "auto"  # toggle buttons as wide as their text, not 148 px each
    if isinstance(widget, (W.Checkbox, W.FileUpload, W.Button)) and widget.layout.width is None:
        widget.layout.width = "auto"
    return widget


def controls_box(controls: Sequence[W.Widget], width: int = CONTROLS_PX) -> W.VBox:
    """The controls in one column ``width`` pixels wide, one per row (a row of small ones wraps)."""
    for c in controls:
        fit_labels(c)
        if isinstance(c, W.HBox):
            c.layout.flex_flow = "row wrap"
    return W.VBox(list(controls), layout=W.Layout(width=f"{width}px", min_width=f"{width}px"))


def explorer_layout(controls: Sequence[W.Widget], info: W.Widget, views: Sequence[W.Widget]) -> W.Box:
    """Controls and ``info`` in a column beside the pictures (above them when the page is narrow)."""
    for v in views:
        if isinstance(v, W.Image) and v.layout.max_width is None:
            v.layout = picture(v.format).layout
    info.layout.width = "100%"
    pictures = W.VBox(list(views), layout=W.Layout(align_items="flex-start", max_width=f"{PICTURE_PX + 8}px"))
    return W.HBox([controls_box([*controls, info]), pictures],
                  layout=W.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap="8px"))


def pictures(widget: W.Widget) -> list[W.Image]:
    """Every image widget inside ``widget`` (what a learner looks at)."""
    if isinstance(widget, W.Image):
        return [widget]
    return [p for w in getattr(widget, "children", ()) for p in pictures(w)]


def offstage(*widgets: W.Widget) -> None:
    """Pictures Python keeps drawing for the static figure and the tests but that are never on the page (a
    browser view shows what they show): their link to the browser is closed, so a redraw sends nothing there."""
    for w in widgets:
        w.close()


def pictures_figure(images: Sequence[Any], titles: Sequence[str] = (), ncols: int | None = None,
                    suptitle: str = "", dpi: int = 100, max_width_in: float = 13.0, legend_in: float = 0.0):
    """A matplotlib figure of PIL pictures, each shown at (about) its own pixel size, not shrunk into a small panel.

    At ``dpi`` one picture pixel is one figure pixel until the row would be wider than ``max_width_in``;
    ``ncols=None`` puts at most three in a row, the rows filled evenly; ``legend_in`` inches are kept free
    under the pictures for a ``fig.legend(..., loc="lower center")``.
    """
    import matplotlib.pyplot as plt

    images = list(images)
    if ncols is None:  # at most three a row, rows filled evenly (four pictures: two by two)
        ncols = -(-len(images) // -(-len(images) // 3))
    nrows = (len(images) + ncols - 1) // ncols
    w = max(im.size[0] if hasattr(im, "size") and not callable(im.size) else im.shape[1] for im in images)
    h = max(im.size[1] if hasattr(im, "size") and not callable(im.size) else im.shape[0] for im in images)
    title_in = 0.35 if titles else 0.0
    scale = min(1.0, max_width_in / (ncols * w / dpi))
    height = nrows * (h / dpi * scale + title_in) + (0.4 if suptitle else 0.1) + legend_in
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, dpi=dpi, figsize=(ncols * w / dpi * scale, height))
    for ax in axes.flat[len(images):]:
        fig.delaxes(ax)  # no empty panels in a last, short row
    for i, im in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(im)
        ax.axis("off")
        if i < len(titles):
            ax.set_title(titles[i], fontsize=render.MIN_PT)
    if suptitle:
        fig.suptitle(suptitle, fontsize=render.TEXT_PT)
    fig.tight_layout(pad=0.3, rect=(0, legend_in / height, 1, 1))
    return fig


class caption:
    """A class attribute in the learner's language, read when it is used: ``ALT = caption(lambda: tr("..."))``.

    Reading it (on the class or on an instance) gives a plain ``str``, translated then -- after
    :func:`course_lib.set_language`, not when the module was imported -- and the text stays a literal that
    ``tools/translate.py --strings`` finds.
    """

    def __init__(self, text: Callable[[], str]):
        self._text = text

    def __get__(self, obj: Any, owner: type | None = None) -> str:
        return self._text()


class Panel:
    """Something the notebook displays: a root ``widget``, one ``info`` text field and a ``static_figure()``."""

    widget: W.Widget
    info: W.HTML

    def static_figure(self):
        """A matplotlib figure of what the panel shows (every panel has one)."""
        raise NotImplementedError(f"{type(self).__name__} must define static_figure()")

    #: What this panel draws, in one sentence: the start of its static figure's alt text.
    ALT = caption(lambda: tr("An interactive picture of the model"))

    def __init_subclass__(cls, **kwargs):
        """Every ``static_figure`` a subclass defines returns a figure with alt text (:meth:`alt_text`)."""
        super().__init_subclass__(**kwargs)
        draw = cls.__dict__.get("static_figure")
        if draw is None:
            return

        @functools.wraps(draw)
        def static_figure(self, *args, **kw):
            fig = draw(self, *args, **kw)
            if fig is not None and render.alt_text(fig) is None:
                render.describe(fig, self.alt_text(fig))
            return fig

        cls.static_figure = static_figure
        paint = cls.__dict__.get("redraw")
        if paint is not None:
            @functools.wraps(paint)
            def redraw(self, *args, **kw):
                out = paint(self, *args, **kw)
                keep = getattr(self, "_keep_frame", None)
                if keep is not None:
                    keep()   # drawn in the browser from pictures Python made: keep this one there
                return out

            cls.redraw = redraw

    def alt_text(self, fig=None) -> str:
        """Alt text of the static figure ``fig``: :attr:`ALT`, then what the figure's titles say it shows now."""
        if fig is not None and render.alt_text(fig):
            return render.alt_text(fig)
        titles = render.figure_titles(fig) if fig is not None else []
        if titles:
            return tr("{alt}. Shown: {titles}.", alt=self.ALT, titles="; ".join(titles))
        return tr("{alt}.", alt=self.ALT)

    def view_expect(self) -> dict[str, Any]:
        """What a browser-drawn view must show in its current state, as Python counts it (the site's browser
        test compares): nothing by default."""
        return {}

    def view_snapshot(self) -> dict[str, Any]:
        """What the offline site embeds to bring the view alive: its payload and state, and what it must show."""
        return {**self.view.snapshot(), "expect": self.view_expect()}

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The live widget for JupyterLab plus the static figure as a PNG (with its alt text) for everywhere else."""
        import matplotlib.pyplot as plt

        data = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        fig = self.static_figure()
        try:
            picture, meta = render.picture_bundle(fig, self.alt_text(fig))
        finally:
            plt.close(fig)
        data["image/png"] = picture["image/png"]
        from .browser import PANEL_MIME, SNAPSHOT_MIME

        data[PANEL_MIME] = {"panel": type(self).__name__, "explorer": isinstance(self, Explorer)}
        view = getattr(self, "view", None)
        if getattr(self, "_frames", None) is not None:
            self.make_frames()            # the pictures the page keeps: what the offline site can show
        if view is not None and hasattr(view, "snapshot"):   # drawn in the browser: the offline site can redraw it
            data[SNAPSHOT_MIME] = self.view_snapshot()
        return data, meta


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
        self.widget = explorer_layout(controls, self.info, views)
        self.set_image(image)

    # -- pictures kept in the browser -------------------------------------------------
    def _in_browser(self, controls: Sequence[W.Widget | tuple[W.Widget, str]], outputs: Sequence[W.Widget], *,
                    opacity: W.FloatSlider | None = None, ahead: Mapping[W.Widget, int] | None = None,
                    click: Callable[[float, float], Any] | None = None, names: Mapping[W.Widget, str] | None = None,
                    derived: Sequence[W.Widget] = ()) -> W.Widget:
        """Show ``outputs`` (the explorer's pictures and HTML, drawn by ``redraw``) through a
        :class:`~course_lib.widgets.browser.FramesView` that keeps every combination of ``controls`` it has seen
        (a control, or ``(control, "index")`` for an option's position) and swaps it in with no kernel round
        trip.  ``opacity`` is blended in the page; ``ahead`` says how many values of a control
        :meth:`make_frames` makes in advance where that costs a forward pass each (0: none, for a new model to
        build; a few, for a gallery's pictures); ``click(x, y)`` hears a click on the first picture, in its pixels;
        ``names`` names a control that has no description of its own (for the offline site's controls);
        ``derived`` are controls the explorer moves itself when another one moves (a cell that keeps pointing at
        the same place when the stage changes): until the kernel has moved them, the page shows the picture
        made for the new value with them where the explorer put them.
        Returns the view, to lay out where ``outputs`` were."""
        from .browser import FramesView, axis_of

        self.view = FramesView()
        # an option is followed by its position: ipywidgets syncs a selection's index, not its value
        pairs = [c if isinstance(c, tuple) else (c, "index" if isinstance(c, W.widgets.widget_selection._Selection)
                                                 else "value") for c in controls]
        axes = [axis_of(c, attr, ahead=(ahead or {}).get(c)) for c, attr in pairs]
        for axis in axes:
            axis["name"] = (names or {}).get(axis["control"], axis["name"])
            axis["derived"] = axis["control"] in derived
        offstage(*outputs)
        self._frames = {"axes": axes, "text": {"opacity": opacity.description.rstrip(": ")} if opacity else {},
                        "outputs": list(outputs), "opacity": opacity, "image": -1, "made": None, "busy": False,
                        "shown": False}
        links = {f"a{i}": pair for i, pair in enumerate(pairs)}
        if opacity is not None:
            links["opacity"] = (opacity, "value")
        self.view.follow(links)
        if click is not None:
            self.view.observe(lambda ch: click(*ch["new"][:2]) if ch["new"] else None, names="clicked")
        # a page that shows the view before the explorer was displayed (``ex.widget`` in a box) asks for them
        self.view.on_msg(lambda _view, msg, _buffers: self.make_frames() if msg.get("ask") == "frames" else None)
        return self.view

    def _keep_frame(self) -> None:
        """After a redraw: keep what the outputs show now in the page, if it is not there yet."""
        f = getattr(self, "_frames", None)
        if f is None or f["busy"]:
            return
        from .browser import axis_of, frame_key

        f["axes"] = [{**axis_of(a["control"], a["attr"], ahead=a["ahead"]), "name": a["name"], "derived": a["derived"]}
                     for a in f["axes"]]
        if f["image"] != getattr(self, "_image_count", 0):      # a new image: every picture kept is stale
            f["image"] = getattr(self, "_image_count", 0)
            f["made"] = None
            self.view.setup(f["axes"], blend=f["opacity"] is not None, text=f["text"], alt=self.ALT)
        else:
            self.view.describe(f["axes"], blend=f["opacity"] is not None, text=f["text"], alt=self.ALT)
        key = frame_key([getattr(a["control"], a["attr"]) for a in f["axes"]])
        if key not in self.view.frames:
            self.view.add(key, *self._frame_now(), send=f["shown"])

    def _frame_now(self) -> tuple[list[dict[str, Any]], str]:
        """What the outputs show now, as a FramesView's parts (with the blend's two layers), and ``info``."""
        f = self._frames
        parts = [_part(w) for w in f["outputs"]]
        slider = f["opacity"]
        if slider is not None:
            keep = slider.value
            f["busy"] = True
            try:
                with self._quietly():
                    layers = []
                    for a in (0.0, 1.0):
                        slider.value = a
                        self.redraw()
                        layers.append([_part(w) for w in f["outputs"]])
                    slider.value = keep
                self.redraw()
            finally:
                f["busy"] = False
            for part, low, high in zip(parts, *layers):
                if "img" in part and low["img"] != high["img"]:
                    part["img"], part["over"] = low["img"], high["img"]
        return parts, self.info.value

    def make_frames(self) -> None:
        """Make, in advance, the pictures of every value of each control (one control moved at a time from
        where they all are now; a long slider at evenly spaced steps), so the page -- and the offline site --
        can show them without a kernel.  Each move is made as a learner makes it (the explorer's own rules for
        that control run, and its redraw keeps the picture); done once per image, then sent at once."""
        f = self._frames
        if f["made"] == f["image"] and f["image"] == getattr(self, "_image_count", 0):
            return

        start = [getattr(a["control"], a["attr"]) for a in f["axes"]]
        f["shown"] = False                  # no picture goes by message now: all of them go at once, below
        with contextlib.ExitStack() as held:
            # the page sees none of these moves: each widget sends its state once, at the end, as it was
            for w in {id(w): w for w in [*(a["control"] for a in f["axes"]), self.view, self.info]}.values():
                held.enter_context(w.hold_sync())
            self._make_frames(f, start)
        f["made"], f["shown"] = f["image"], True
        self.view.publish()

    def _make_frames(self, f: dict[str, Any], start: list[Any]) -> None:
        from .browser import AHEAD

        def put(axis: dict[str, Any], value: Any) -> None:
            if getattr(axis["control"], axis["attr"]) != value:
                setattr(axis["control"], axis["attr"], value)

        try:
            for i, axis in enumerate(list(f["axes"])):
                cap = AHEAD[axis["kind"]] if axis["ahead"] is None else axis["ahead"]
                if cap == 0 or getattr(axis["control"], "disabled", False):
                    continue
                values = axis["values"]
                picks = values if len(values) <= cap else sorted(
                    {values[round(j * (len(values) - 1) / max(1, cap - 1))] for j in range(cap)} | {start[i]},
                    key=values.index)
                for v in picks:
                    for a, s in zip(f["axes"], start):
                        put(a, s)
                    put(f["axes"][i], v)
        finally:
            for a, s in zip(f["axes"], start):
                put(a, s)

    # -- the shape every explorer has -------------------------------------------------
    def set_image(self, image: Any) -> None:
        """Run the network once on a new image, then redraw."""
        self._image_count = getattr(self, "_image_count", 0) + 1
        self._trace(image)
        self.redraw()

    def _trace(self, image: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _trace(image)")

    def redraw(self) -> None:
        """Redraw from the cached outputs (no forward pass)."""
        raise NotImplementedError(f"{type(self).__name__} must define redraw()")


def _part(widget: W.Widget) -> dict[str, Any]:
    """One output of an explorer as a FramesView part: a picture (JPEG, or PNG where that is smaller: flat
    diagrams and text) or HTML."""
    if isinstance(widget, W.Image):
        if not widget.value:
            return {"html": ""}
        import io

        from PIL import Image

        img = Image.open(io.BytesIO(widget.value))
        png = widget.value if widget.format == "png" else render.png_bytes(img)
        jpeg = render.jpeg_bytes(img.convert("RGB"), quality=85)
        return {"img": (jpeg, "jpeg") if len(jpeg) < 0.8 * len(png) else (png, "png")}
    return {"html": widget.value}


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


def gallery_label(name: str) -> str:
    """How a gallery picture's name is shown: the names the course gives (``"picked"``, ``"image"``,
    ``"image 3"``) in the learner's language, any other name as it is."""
    if name == "picked":
        return tr("picked")
    if name == "image":
        return tr("image")
    m = re.fullmatch(r"image (\d+)", name)
    return tr("image {i}", i=int(m.group(1))) if m else name


class GalleryExplorer(Explorer):
    """An explorer over several named pictures: the ``gallery`` dropdown picks one, ``image`` is that picture.

    Each picture is traced once, the first time it is shown (``_trace_name``);
    a picker's photo joins the gallery as ``"picked"`` (:meth:`set_image`).
    """

    def __init__(self, source: Any, image: Any = None, *, picker: Any = None, max_side: int | None = None):
        super().__init__(source, image, picker=picker)
        self.max_side = max_side
        self.images: dict[str, torch.Tensor] = as_gallery(image, max_side) if image is not None else {}
        self.gallery = W.Dropdown(options=self._gallery_options(), description=tr("Image:"))
        self._observe(self.gallery)

    @property
    def image(self) -> torch.Tensor:
        """The picture shown now."""
        return self.images[self.gallery.value]

    def _start(self, image: Any, controls: Sequence[W.Widget], views: Sequence[W.Widget]) -> None:
        if self.picker is not None:
            self.picker.on_change(self._on_picker)
            if not self.images:
                self.images.update(as_gallery({"picked": self.picker.image}, self.max_side))
                self.gallery.options = self._gallery_options()
            # one picker: the gallery's pictures join the picker's list, and the gallery dropdown is not shown
            for name, img in self.images.items():
                if name != "picked":
                    self.picker.add(name, img)
            self.gallery.layout.display = "none"
        if not self.images:
            raise ValueError(f"give {type(self).__name__} at least one image or an ImagePicker (picker=...)")
        self.widget = explorer_layout(controls, self.info, views)
        self.redraw()

    def _on_picker(self, image: Any) -> None:
        """The picker changed: one of the gallery's own pictures is shown from its cache, any other as "picked"."""
        name = getattr(self.picker, "name", None)
        if name in self.images and name != "picked" and self.images[name] is image:
            self.gallery.value = name
        else:
            self.set_image(image)

    def set_image(self, image: Any, name: str = "picked") -> None:
        """Add a picture (e.g. the picker's) under ``name`` and show it; a picture already there is replaced."""
        self.images[name] = as_gallery({name: image}, self.max_side)[name]
        self._image_count = getattr(self, "_image_count", 0) + 1
        self._forget(name)
        with self._quietly():
            if list(self.gallery.options) != self._gallery_options():
                self.gallery.options = self._gallery_options()
            self.gallery.value = name
        self.redraw()

    def _gallery_options(self) -> list[tuple[str, str]]:
        """The gallery dropdown's ``(label, name)`` pairs: the names stay as they are, the label a learner reads
        is in their language (``"picked"`` and ``"image 0"`` are the course's names, a dict's keys are the user's)."""
        return [(gallery_label(name), name) for name in self.images]

    def _forget(self, name: str) -> None:
        """Drop everything cached for the picture ``name`` (it was replaced)."""

    def names_of(self, which: Sequence[int | str] | None) -> list[str]:
        """Gallery names for positions or names (``None``: the picture shown now)."""
        if which is None:
            return [self.gallery.value]
        names = list(self.images)
        return [names[w] if isinstance(w, int) else w for w in which]
