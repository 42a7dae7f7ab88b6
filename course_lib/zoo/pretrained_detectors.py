"""A real detector trained on COCO, on the learner's own photo, when its weights can be had.

Two of torchvision's small COCO detectors (80 everyday classes: person, cat, dog, car, ...):

* ``fasterrcnn_mobilenet_v3_large_fpn``: two stages (a region proposal network, then a box head on the
  FPN's levels), 19.4 M parameters;
* ``ssdlite320_mobilenet_v3_large``: one stage on a 320x320 view, 3.4 M parameters.

Their weights come through the course's resolver (:mod:`course_lib.weights`: torch's hub cache first, a
sha256 check, ``torch.load(weights_only=True)``), never from a download the learner did not ask for.
Offline (the default), :func:`detect` returns a :class:`DetectorUnavailable` that says what it would show
and the one line that gets the weights, so a lesson cell stays green:

>>> result = detect(cl.load_image("my_photo.jpg"))     # doctest: +SKIP
>>> result                                            # doctest: +SKIP
>>> result.draw()                                     # the photo with the boxes (or with the note)  # doctest: +SKIP

Once, online: ``cl.weights.download("fasterrcnn_mobilenet_v3_large_fpn")``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import nn

from .. import render
from .. import weights as W
from ..language import tr
from ..measure import evaluating

#: the detectors :func:`detect` knows (their names in :data:`course_lib.weights.OFFICIAL` and torchvision)
DETECTORS = W.DETECTORS
DEFAULT = "fasterrcnn_mobilenet_v3_large_fpn"

__all__ = ["DEFAULT", "DETECTORS", "Detections", "DetectorUnavailable", "build_detector", "coco_names", "detect"]


def _check(name: str) -> None:
    if name not in DETECTORS:
        raise ValueError(f"unknown pretrained detector {name!r}; known: {', '.join(DETECTORS)}")


def coco_names(name: str = DEFAULT) -> list[str]:
    """The detector's class names, index = label id (91 entries: ``"__background__"``, ``"person"``, ...,
    with ``"N/A"`` for the ids COCO left unused), from torchvision's weights metadata."""
    _check(name)
    return list(W.OFFICIAL[name].meta["categories"])


def build_detector(name: str = DEFAULT, pretrained: bool = True, download: bool | None = None) -> nn.Module:
    """torchvision's detector ``name`` in eval mode; ``pretrained=True`` loads its COCO weights through the resolver
    (:class:`~course_lib.weights.WeightsNotFoundError` when they are not on this machine)."""
    from torchvision.models import detection

    _check(name)
    net = getattr(detection, name)(weights=None, weights_backbone=None, num_classes=len(coco_names(name)))
    if pretrained:
        net.load_state_dict(W.load_state_dict(name, download=download))  # strict: every key must match
    return net.eval()


_built: dict[tuple[str, str], nn.Module] = {}


def _cached(name: str, download: bool | None) -> nn.Module:
    path = W.resolve(name, download=download)  # verified (sha256) before anything is loaded
    key = (name, f"{path}:{path.stat().st_mtime_ns}")
    if key not in _built:
        _built.clear()  # keep one detector in memory
        _built[key] = build_detector(name, pretrained=True, download=False)
    return _built[key]


@dataclass
class Detections:
    """What the detector found on one image: ``boxes`` ``(N, 4)`` as ``x1, y1, x2, y2`` in the image's pixels,
    ``labels`` (COCO class names), ``label_ids`` and ``scores`` (best first)."""

    model: str
    image: torch.Tensor
    boxes: torch.Tensor
    labels: list[str]
    label_ids: torch.Tensor
    scores: torch.Tensor
    score_threshold: float
    available: bool = field(default=True, init=False)

    def __len__(self) -> int:
        return len(self.labels)

    def draw(self, width: int | None = None) -> Image.Image:
        """The photo with every box, its class and score (:func:`course_lib.render.draw_boxes`); its alt text
        (:func:`course_lib.render.describe`) lists what was found."""
        scale = 1.0 if width is None else width / self.image.shape[-1]
        found = ", ".join(f"{r['label']} {r['score']:.2f}" for r in self.rows()[:8]) + (tr(" and more") if len(self) > 8 else "")
        alt = (tr("The photo with the {n} box(es) {model} found with a score of {t} or more, each tagged with its class "
                  "and score, best first: {found}.", n=len(self), model=self.model, t=self.score_threshold, found=found)
               if len(self) else
               tr("The photo without boxes: {model} found nothing with a score of {t} or more.", model=self.model,
                  t=self.score_threshold))
        return render.describe(render.draw_boxes(self.image, self.boxes, self.labels, self.scores.tolist(), scale=scale),
                               alt)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per detection: ``label``, ``score`` and ``box`` (rounded pixels)."""
        return [{"label": lb, "score": round(float(s), 3), "box": [round(float(v)) for v in b]}
                for lb, s, b in zip(self.labels, self.scores, self.boxes)]

    def __repr__(self) -> str:
        found = ", ".join(f"{r['label']} {r['score']:.2f}" for r in self.rows()[:8]) or "nothing"
        more = f" (+{len(self) - 8} more)" if len(self) > 8 else ""
        return f"{self.model}: {len(self)} detection(s) with score >= {self.score_threshold}: {found}{more}"

    def _repr_png_(self) -> bytes:
        return render.png_bytes(self.draw())


@dataclass
class DetectorUnavailable:
    """The detector's weights are not on this machine: what it would show, and the one line that gets them.

    It is falsy (``if result: ...``), prints a plain message, and :meth:`draw` gives the photo with that
    note, so a lesson cell that shows it runs green offline.
    """

    model: str
    file: str
    get_weights: str
    image: torch.Tensor | None = None
    available: bool = field(default=False, init=False)

    def __bool__(self) -> bool:
        return False

    @property
    def message(self) -> str:
        return (f"{self.model} would draw boxes around the everyday objects it finds on this photo (COCO's 80 "
                f"classes: people, cats, dogs, cars, cups, ...), each with its class and score. Its weights "
                f"({self.file}) are not on this machine, and the course never downloads without being asked. "
                f"To get them, run once while online:\n    {self.get_weights}")

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        text, line = self.message.split("\n    ")
        return f"<p>{html.escape(text, quote=False)}</p><pre>{html.escape(line, quote=False)}</pre>"

    def draw(self, width: int | None = None) -> Image.Image:
        """The photo, captioned with the line that gets the weights (no boxes: no weights)."""
        if self.image is None:
            raise ValueError(self.message)
        img = Image.fromarray(render.photo(self.image, width or self.image.shape[-1]))
        return render.describe(render.label(img, tr("no weights: {line}", line=self.get_weights)),
                               tr("The photo without boxes: the weights of {model} are not on this machine; a caption "
                                  "at its top gives the line that gets them, {line}.", model=self.model,
                                  line=self.get_weights))


def _set_threshold(net: nn.Module, t: float) -> None:
    """The score below which the detector itself drops boxes (Faster R-CNN: 0.05, SSDlite: 0.001 by default)."""
    if hasattr(net, "roi_heads"):
        net.roi_heads.score_thresh = min(t, 0.05)
    elif hasattr(net, "score_thresh"):
        net.score_thresh = min(t, 0.001)


def detect(image: Any, model: str = DEFAULT, score_threshold: float = 0.5, *, download: bool | None = None,
           strict: bool = False) -> Detections | DetectorUnavailable:
    """Run pretrained detector ``model`` on one image (anything :func:`course_lib.load_image` takes).

    Returns :class:`Detections` (boxes in the image's own pixels, COCO names, scores >= ``score_threshold``,
    best first) or, when the weights are not on this machine and ``download`` is not allowed, a
    :class:`DetectorUnavailable` (``strict=True``: raise :class:`~course_lib.weights.WeightsNotFoundError`).
    """
    from ..widgets.base import as_image

    _check(model)
    img = as_image(image)
    try:
        net = _cached(model, download)
    except W.WeightsNotFoundError:
        if strict:
            raise
        fname = W.file_name(W.OFFICIAL[model])
        return DetectorUnavailable(model, fname, W.get_line(model), img)
    _set_threshold(net, score_threshold)
    with evaluating(net):
        out = net([img.float()])[0]
    keep = out["scores"] >= score_threshold
    order = out["scores"][keep].argsort(descending=True)
    ids = out["labels"][keep][order]
    names = coco_names(model)
    return Detections(model, img, out["boxes"][keep][order], [names[int(i)] for i in ids], ids,
                      out["scores"][keep][order], score_threshold)
