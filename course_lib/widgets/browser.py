"""Explorers drawn in the browser: the maps go to the page once per image, every control move redraws there.

Why: in JupyterLab every ipywidgets change makes a round trip through the kernel (tens of milliseconds) before
the picture can change, however fast the Python side draws.  A :class:`MapView` (an anywidget, whose JupyterLab
extension ships in its wheel and works offline) holds what an explorer can show for the current image --
each group's maps quantised to ``uint8``, one colour scale per map (what the Python pictures show), the colour
map's lookup table, the photo -- and ``static/explorer.js`` draws them on a ``<canvas>``.  The explorer's own
ipywidgets controls are *jslinked* to the view (:meth:`MapView.follow`): the browser moves the view with the
slider, the kernel hears of it too (``info``, the static figure) but the picture does not wait for it.

Three views: :class:`MapView` (a grid of maps), :class:`BoxesView` (a detector's boxes, NMS in the page) and
:class:`FramesView`, for the explorers whose pictures are not maps or boxes: it keeps every picture Python has
drawn, one per combination of the explorer's controls, and swaps them in the page (``Explorer._in_browser``).

The same script draws the offline site's explorers: ``tools/build_site.py`` embeds each view's snapshot
(payload and state) in the page, and the script gives it controls of its own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as W
import numpy as np
import torch
import traitlets

from .. import render
from ..language import tr

#: The script that draws every browser view (JupyterLab and the offline site).
SCRIPT = Path(__file__).with_name("static") / "explorer.js"
#: The mime type of an explorer's snapshot in a notebook's output (read by the site build).
SNAPSHOT_MIME = "application/vnd.course.explorer+json"
#: The mime type that says which panel an output is (``{"panel": class name, "explorer": bool}``): the site
#: build reports an explorer that came without its snapshot.
PANEL_MIME = "application/vnd.course.panel+json"


@cache
def module_source(render_function: str = "courseExplorerRender") -> str:
    """A view's JavaScript module for JupyterLab: :data:`SCRIPT` with the ``render`` anywidget calls."""
    return SCRIPT.read_text(encoding="utf-8") + (
        f"\nexport default {{ render({{ model, el }}) {{ return {render_function}(model, el, false); }} }};\n")


@cache
def lut(cmap: str) -> str:
    """A matplotlib colour map as a 256 x RGB lookup table, base64 (what the browser colours ``uint8`` maps with)."""
    from matplotlib import colormaps

    table = (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    return base64.b64encode(table.tobytes()).decode()


def quantise(maps: torch.Tensor | np.ndarray) -> str:
    """``(N, H, W)`` maps as base64 ``uint8``, each map stretched to its own min..max (a flat map is 0)."""
    m = torch.as_tensor(maps).detach().float().cpu()
    lo = m.amin(dim=(1, 2), keepdim=True)
    span = (m.amax(dim=(1, 2), keepdim=True) - lo).clamp_min(1e-12)
    q = ((m - lo) / span * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return base64.b64encode(q.tobytes()).decode()


def map_group(name: str, maps: torch.Tensor, *, order: Sequence[int] | None = None,
              labels: Sequence[str] | None = None, caption: str = "", fixed: bool = False,
              cmap: str | None = None) -> dict[str, Any]:
    """One group of a :class:`MapView`: ``maps`` ``(N, H, W)``, their ranking for top-k (``order``), their labels;
    ``fixed``: always all of them (an image's colour channels), in ``cmap`` rather than the view's."""
    n, h, w = maps.shape
    group = {"name": name, "n": int(n), "h": int(h), "w": int(w), "data": quantise(maps),
             "order": [int(i) for i in (order if order is not None else range(n))],
             "labels": list(labels) if labels is not None else [f"#{i}" for i in range(n)], "caption": caption,
             "fixed": fixed}
    if cmap is not None:
        group["lut"] = lut(cmap)
    return group


def bar_group(name: str, values: Sequence[float], labels: Sequence[str], caption: str = "") -> dict[str, Any]:
    """A group of a :class:`MapView` that is a vector: its entries drawn as bars, the ``k`` largest first."""
    vals = [float(v) for v in values]
    order = sorted(range(len(vals)), key=lambda i: -vals[i])
    return {"name": name, "kind": "bars", "n": len(vals), "values": vals, "order": order, "labels": list(labels),
            "caption": caption}


class BrowserView(anywidget.AnyWidget):
    """What every view drawn in the browser has: a ``payload`` (sent once per image), state traits named in
    ``STATE`` that controls are jslinked to (:meth:`follow`), and a :meth:`snapshot` for the offline site."""

    payload = traitlets.Dict().tag(sync=True)
    STATE: tuple[str, ...] = ()

    def follow(self, links: dict[str, tuple[W.Widget, str]]) -> list[W.jslink]:
        """Tie the view's state to controls in the browser: ``{"k": (slider, "value"), "group": (dropdown,
        "index"), ...}``.  The kernel side follows as well, so Python reads the same state."""
        out = []
        for name, (widget, attr) in links.items():
            setattr(self, name, getattr(widget, attr))
            out.append(W.jslink((widget, attr), (self, name)))
            widget.observe(lambda ch, name=name: setattr(self, name, ch["new"]), names=attr)
        return out

    def snapshot(self) -> dict[str, Any]:
        """What the offline site needs to bring this view alive without a kernel: the payload and the state."""
        return {"payload": self.payload, "state": {k: getattr(self, k) for k in self.STATE}}


class MapView(BrowserView):
    """A grid of maps drawn on a canvas in the browser; ``group``, ``k``, ``channel``, ``mode``, ``overlay``,
    ``opacity`` pick what it shows, with no round trip to the kernel when they are jslinked to controls."""

    _esm = module_source()
    group = traitlets.Int(0).tag(sync=True)
    k = traitlets.Int(8).tag(sync=True)
    channel = traitlets.Int(0).tag(sync=True)
    mode = traitlets.Int(0).tag(sync=True)      # an index into the payload's ``modes`` ("topk", "channel")
    overlay = traitlets.Bool(False).tag(sync=True)
    opacity = traitlets.Float(0.6).tag(sync=True)

    STATE = ("group", "k", "channel", "mode", "overlay", "opacity")

    def show(self, groups: list[dict[str, Any]], *, cmap: str = render.HEAT, overlay_cmap: str | None = None,
             photo: Any = None, cell: int = 96, single: int | None = None, ncols: int = 4,
             modes: Sequence[str] = ("topk",), controls: dict[str, Any] | None = None,
             text: dict[str, str] | None = None, alt: str = "") -> None:
        """Send what the view can show for one image (once per image): its groups of maps, the colour maps
        (alone, and over the photo), the photo, what each ``mode`` index means, and for the offline site the
        controls it draws itself (``controls``, their labels in ``text``)."""
        payload = {"groups": groups, "lut": lut(cmap), "lut_over": lut(overlay_cmap or cmap), "cell": cell,
                   "single": single or cell, "ncols": ncols, "modes": list(modes), "controls": controls or {},
                   "text": text or {}, "alt": alt}
        if photo is not None:
            payload["photo"] = "data:image/jpeg;base64," + base64.b64encode(render.jpeg_bytes(photo)).decode()
        self.payload = payload


class BoxesView(BrowserView):
    """A detector's boxes before and after NMS, its score maps and the mask, drawn in the browser.

    The payload holds every candidate box of one image above the lowest score threshold (its class, level and
    score); ``score``, ``iou``, ``level`` (0 = all), ``cls`` (0 = all) and ``opacity`` filter and redraw in the
    page, class-wise NMS included.  A click on the canvas comes back as ``clicked`` ``[x, y, time]`` in the
    picture's pixels; ``cell`` ``[y, x]`` marks the picked image pixel.
    """

    _esm = module_source("courseBoxesRender")
    score = traitlets.Float(0.3).tag(sync=True)
    iou = traitlets.Float(0.5).tag(sync=True)
    level = traitlets.Int(0).tag(sync=True)
    cls = traitlets.Int(0).tag(sync=True)
    opacity = traitlets.Float(0.4).tag(sync=True)
    cell = traitlets.List().tag(sync=True)
    clicked = traitlets.List().tag(sync=True)

    STATE = ("score", "iou", "level", "cls", "opacity", "cell")


#: How many values of one control a view makes in advance (beyond that, evenly spaced ones); the rest come from
#: the kernel, once each, when a learner asks for them.
AHEAD = {"select": 16, "slider": 8, "checkbox": 2}


def axis_of(control: W.Widget, attr: str = "value", *, ahead: int | None = None) -> dict[str, Any]:
    """What a :class:`FramesView` needs to know of one of an explorer's discrete controls: the values its
    ``attr`` takes (an option's ``index``, a slider's steps, a checkbox's two states), their labels, the kind of
    control the offline site draws for it, and how many of its values the view makes in advance (``ahead``;
    ``None``: as many as :data:`AHEAD` allows for its kind)."""
    if isinstance(control, W.Checkbox):
        values, labels, kind = [False, True], [tr("off"), tr("on")], "checkbox"
    elif isinstance(control, (W.IntSlider, W.FloatSlider)):
        step = control.step or 1
        n = int(round((control.max - control.min) / step)) + 1
        values = [control.min + i * step for i in range(n)]
        values = [int(v) for v in values] if isinstance(control, W.IntSlider) else [round(v, 6) for v in values]
        labels, kind = [f"{v:g}" for v in values], "slider"
    elif attr == "index":
        labels = [str(label) for label in control._options_labels]
        values, kind = list(range(len(labels))), "select"
    else:
        labels = [str(label) for label in control._options_labels]
        values, kind = [v for v in control._options_values], "select"
    return {"control": control, "attr": attr, "values": values, "labels": labels, "kind": kind,
            "name": (control.description or "").rstrip(": ≥") or type(control).__name__, "ahead": ahead}


def data_url(data: bytes, fmt: str = "png") -> str:
    """Picture bytes as a ``data:`` URL the page can show without asking anyone."""
    return f"data:image/{fmt};base64," + base64.b64encode(data).decode()


def frame_key(values: Sequence[Any]) -> str:
    """The key of one combination of control values, spelled as the page spells it (``JSON.stringify``, numbers
    rounded to 6 decimals, whole floats as integers)."""
    def norm(v: Any) -> Any:
        if isinstance(v, float):
            v = round(v, 6)
            return int(v) if v.is_integer() else v
        return v
    return json.dumps([norm(v) for v in values], separators=(",", ":"), ensure_ascii=False)


class FramesView(BrowserView):
    """An explorer's pictures, one per combination of its controls, drawn by Python and kept in the page.

    The explorers whose pictures are not maps or boxes (a network's tree, a receptive field, a neck's wiring, a
    table of shapes) still answer in the browser: every combination of the controls (``a0`` .. ``a7``, each
    jslinked to one control) that the kernel has drawn is kept here, keyed by the controls' values
    (:func:`frame_key`), and a move to a combination already drawn swaps it in with no round trip.  A new
    combination goes to the kernel once (its picture arrives by a message and stays).  ``opacity`` blends a
    picture's two layers in the page (drawn at opacity 0 and 1: every blend the course draws is linear in it).
    """

    _esm = module_source("courseFramesRender")
    a0 = traitlets.Any(None).tag(sync=True)
    a1 = traitlets.Any(None).tag(sync=True)
    a2 = traitlets.Any(None).tag(sync=True)
    a3 = traitlets.Any(None).tag(sync=True)
    a4 = traitlets.Any(None).tag(sync=True)
    a5 = traitlets.Any(None).tag(sync=True)
    a6 = traitlets.Any(None).tag(sync=True)
    a7 = traitlets.Any(None).tag(sync=True)
    opacity = traitlets.Float(0.5).tag(sync=True)
    clicked = traitlets.List().tag(sync=True)     # [x, y, time] in the first picture's own pixels

    STATE = ("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "opacity")
    MAX_AXES = 8

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.frames: dict[str, dict[str, Any]] = {}
        self.images: dict[str, str] = {}          # one copy of each picture (id -> data URL): frames name the ids
        self._ids: dict[str, str] = {}
        self._head: dict[str, Any] = {}

    def setup(self, axes: Sequence[dict[str, Any]], *, blend: bool = False, text: dict[str, str] | None = None,
              alt: str = "") -> None:
        """Describe the controls (from :func:`axis_of`) and forget every picture (a new image)."""
        if len(axes) > self.MAX_AXES:
            raise ValueError(f"a FramesView follows at most {self.MAX_AXES} controls, got {len(axes)}")
        self.frames, self.images, self._ids = {}, {}, {}
        self.describe(axes, blend=blend, text=text, alt=alt)
        self.publish()

    def describe(self, axes: Sequence[dict[str, Any]], *, blend: bool = False, text: dict[str, str] | None = None,
                 alt: str = "") -> None:
        """The controls as the offline site draws them (their names, kinds, values and labels)."""
        self._head = {"kind": "frames", "blend": blend, "text": text or {}, "alt": alt,
                      "axes": [{k: a.get(k, False) for k in ("name", "values", "labels", "kind", "derived")}
                               for a in axes]}

    def add(self, key: str, parts: Sequence[dict[str, Any]], info: str = "", *, send: bool = True) -> None:
        """Keep one combination's picture: ``parts`` top to bottom, each ``{"img": (bytes, fmt)}`` (with an
        ``"over"`` layer to blend over it) or ``{"html": text}``; a picture seen before is kept once."""
        new_images: dict[str, str] = {}
        frame = []
        for part in parts:
            if "html" in part:
                frame.append({"html": part["html"]})
                continue
            entry = {}
            for layer in ("img", "over"):
                if part.get(layer) is None:
                    continue
                url = data_url(*part[layer])
                ident = self._ids.setdefault(url, f"i{len(self._ids)}")
                if ident not in self.images:
                    self.images[ident] = new_images[ident] = url
                entry[layer] = ident
            frame.append(entry)
        self.frames[key] = {"parts": frame, "info": info}
        if send:
            self.send({"frame": key, "data": self.frames[key], "images": new_images, "axes": self._head["axes"]})

    def publish(self) -> None:
        """Send every picture made so far at once (after making them in advance)."""
        self.payload = {**self._head, "frames": dict(self.frames), "images": dict(self.images)}
