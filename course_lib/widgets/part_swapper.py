"""The part swapper: pick a backbone, a neck and a head from the registries, and see whether they fit.

The contract (:mod:`course_lib.contract`) is what lets any part plug into any other: each part is built from
the ``out_specs`` of the one before it.  When a part cannot read what it is given, :func:`course_lib.build_model`
stops with a :class:`~course_lib.contract.ContractError` that names both sides; the swapper shows that
message instead of raising it.  For parts that fit it shows the built model: the levels its head reads, the
neck's ``out_specs``, the parameter count (:func:`course_lib.measure.count_params`) and the shape of every map
on the way through, from one trace of the image.

>>> sw = PartSwapper(config, image)                 # doctest: +SKIP
>>> sw.select("tiny_cnn", "gap", "detection")        # False: a pooled vector has no grid for a detector
>>> sw.message                                       # "head 'detection' expects ... but neck 'gap' ... gives ..."
>>> sw.select("yolo_csp", "pan", "segmentation")     # True: sw.params, sw.levels, sw.shapes
"""

from __future__ import annotations

import contextlib
import html
import textwrap
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import torch

from .. import backbones, heads, necks, render
from ..contract import ContractError, describe_specs
from ..language import tr
from ..measure import count_params, evaluating
from ..model import Model, Trace, build_model
from .base import Explorer, as_image, caption

PARTS = ("backbone", "neck", "head")


def part_label(part: str) -> str:
    """The dropdown label of a part (``"Backbone:"``), in the learner's language."""
    return {"backbone": tr("Backbone:"), "neck": tr("Neck:"), "head": tr("Head:")}[part]


def _name_and_kwargs(cfg: Mapping[str, Any] | str) -> tuple[str, dict[str, Any]]:
    if isinstance(cfg, str):
        return cfg, {}
    kw = dict(cfg)
    return kw.pop("name"), kw


class PartSwapper(Explorer):
    """Three dropdowns (backbone, neck, head, from the registries); the verdict and the built model at once.

    ``config`` is a ``build_model`` dict: its three names are where the dropdowns start, and its keyword
    arguments are used whenever that name is picked (``kwargs={name: {...}}`` adds or overrides arguments
    for any other name; every other part is built with its defaults, random weights).  ``options`` may
    limit the dropdowns (``{"backbone": [...], ...}``; default: every registered name).

    The expensive part is the backbone's pass over the image: it runs once per image and backbone
    (``n_forward`` counts those passes) and its maps are cached.  A new combination is built once
    (``n_builds``; parts are built under a fixed seed, so the same backbone config gives the same weights
    and its cached maps are exactly what the new model's backbone would give) and its neck and head run on
    the cached maps; a combination seen before is redrawn from its cached result.  Nothing is trained.
    """

    ALT = caption(lambda: tr("Part swapper: a backbone, a neck and a head chosen from the registries, and whether "
                             "they fit together"))

    def __init__(self, config: Mapping[str, Any], image: Any = None, *, picker: Any = None,
                 options: Mapping[str, Sequence[str]] | None = None,
                 kwargs: Mapping[str, Mapping[str, Any]] | None = None, max_side: int = 224):
        super().__init__(config, image, picker=picker)
        self.max_side = max_side
        start = {part: _name_and_kwargs(config[part]) for part in PARTS}
        self.kwargs: dict[str, dict[str, dict[str, Any]]] = {
            part: {start[part][0]: start[part][1]} for part in PARTS}
        for name, kw in (kwargs or {}).items():
            for part in PARTS:
                self.kwargs[part].setdefault(name, {}).update(kw)
        registered = {"backbone": backbones.names(), "neck": necks.names(), "head": heads.names()}
        options = dict(options or {})
        self.dropdowns: dict[str, W.Dropdown] = {}
        for part in PARTS:
            names = list(options.get(part, registered[part]))
            if start[part][0] not in names:
                names.insert(0, start[part][0])
            self.dropdowns[part] = W.Dropdown(options=names, value=start[part][0],
                                              description=part_label(part))
        self.backbone, self.neck, self.head = (self.dropdowns[p] for p in PARTS)
        self.n_builds = 0
        self._features: dict[str, OrderedDict[str, torch.Tensor]] = {}  # backbone config -> its maps
        self._results: dict[str, dict[str, Any]] = {}                   # combination -> verdict, model, trace
        self.table = W.HTML()
        self._observe(*self.dropdowns.values())
        view = self._in_browser(list(self.dropdowns.values()), [self.table])
        self._start(image, list(self.dropdowns.values()), [view])

    # -- the state a cell (or a test) reads --------------------------------------------
    @property
    def config(self) -> dict[str, dict[str, Any]]:
        """The ``build_model`` config of the three parts picked now."""
        return {part: {"name": self.dropdowns[part].value,
                       **self.kwargs[part].get(self.dropdowns[part].value, {})} for part in PARTS}

    @property
    def result(self) -> dict[str, Any]:
        """What the picked combination gives: ``fits``, ``message``, and for a fit ``model`` and ``trace``."""
        key = repr(self.config)
        if key not in self._results:
            self._results[key] = self._build(self.config)
        return self._results[key]

    @property
    def fits(self) -> bool:
        """Whether the three picked parts build into a model and run on the image."""
        return self.result["fits"]

    @property
    def message(self) -> str:
        """Why they do not fit (the contract's message, naming both sides); ``""`` when they do."""
        return self.result["message"]

    @property
    def model(self) -> Model | None:
        """The built model (random weights), or ``None`` when the parts do not fit."""
        return self.result.get("model")

    @property
    def params(self) -> int | None:
        """Parameters of the built model (``count_params``), or ``None``."""
        return count_params(self.model) if self.fits else None

    @property
    def levels(self) -> list[str]:
        """The maps the head reads (its levels), or ``[]``."""
        if not self.fits:
            return []
        head = self.model.head
        return list(getattr(head, "levels", None) or getattr(head, "in_keys", None) or head.in_specs)

    @property
    def out_specs(self) -> OrderedDict:
        """The neck's ``out_specs``: what the head is built from (empty when the parts do not fit)."""
        return OrderedDict(self.model.neck.out_specs) if self.fits else OrderedDict()

    @property
    def shapes(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """``(part, name, shape)`` of every map of the trace, input to head output (``[]`` for a misfit)."""
        return self.result["trace"].shapes() if self.fits else []

    def select(self, backbone: str | None = None, neck: str | None = None, head: str | None = None) -> bool:
        """Pick up to three parts at once (one redraw); returns :attr:`fits`."""
        with self._quietly():
            for part, name in zip(PARTS, (backbone, neck, head)):
                if name is not None:
                    self.dropdowns[part].value = name
        self.redraw()
        return self.fits

    # -- the work ------------------------------------------------------------------------
    def _trace(self, image: Any) -> None:
        """A new image: forget every cached map and verdict (the next redraw runs the backbone again)."""
        self.image = as_image(image, None if isinstance(image, torch.Tensor) else self.max_side)
        self._features.clear()
        self._results.clear()

    def _build(self, config: dict[str, dict[str, Any]]) -> dict[str, Any]:
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = build_model(config)
        except ContractError as err:
            return {"fits": False, "kind": "contract", "message": str(err)}
        except (ValueError, TypeError) as err:
            return {"fits": False, "kind": "build", "message": str(err)}
        self.n_builds += 1
        x = self.image[None]
        key = repr(config["backbone"])
        try:
            with evaluating(model):
                if key not in self._features:
                    self._features[key] = model.backbone(x)
                    self.n_forward += 1
                feats = self._features[key]
                fused = model.neck(feats)
                out = model.judge(fused)
        except (RuntimeError, ValueError) as err:
            return {"fits": False, "kind": "run", "message": f"the parts build but fail on this image: {err}"}
        trace = Trace(image=x, backbone=feats, neck=fused, head=out,
                      specs={"backbone": model.backbone.out_specs, "neck": model.neck.out_specs})
        return {"fits": True, "kind": "", "message": "", "model": model, "trace": trace}

    # -- drawing ---------------------------------------------------------------------------
    def verdict(self) -> str:
        """One plain sentence: what fits or why not."""
        names = " + ".join(self.dropdowns[p].value for p in PARTS)
        if not self.fits:
            kind = self.result["kind"]
            what = {"contract": tr("{names}: these parts do not fit. {message}", names=names, message=self.message),
                    "build": tr("{names}: these parts do not build. {message}", names=names, message=self.message),
                    "run": tr("{names}: these parts do not run. {message}", names=names, message=self.message)}
            return what[kind]
        return tr("{names}: these parts fit. {built}", names=names, built=self._built_text())

    def _built_text(self) -> str:
        parts = ", ".join(f"{r['part']} {r['params']:,d}" for r in self.model.summary())
        return tr("The neck gives {specs}; the head reads {levels}. {params:,d} parameters ({parts}).",
                  specs=describe_specs(self.out_specs), levels=", ".join(self.levels), params=self.params, parts=parts)

    def redraw(self) -> None:
        """The verdict in ``info`` and the shape of every map in the table (from the cached results)."""
        self.n_redraw += 1
        if not self.fits:
            kind = self.result["kind"]
            advice = (tr("The message names the part that complained and what the part before it gives: "
                         "change one of the two.") if kind == "contract" else "")
            verdict = tr("These parts do not fit") if kind == "contract" else tr("These parts do not build")
            self.info.value = ("<div style='background:#fff4e5;padding:6px;border-left:4px solid #e69500'>"
                               f"<b>{verdict}</b> &mdash; "
                               + tr("nothing is broken, the contract caught it at build time.")
                               + f"<br><code>{html.escape(self.message)}</code><br>{advice}</div>")
            self.table.value = ""
            return
        self.info.value = ("<div style='background:#eef7ee;padding:6px;border-left:4px solid #2a7f62'>"
                           f"<b>{tr('These parts fit.')}</b> {html.escape(self._built_text())}"
                           "</div>")
        rows = "".join(f"<tr><td>{part}</td><td>{html.escape(name)}</td><td>{' x '.join(map(str, shape))}</td></tr>"
                       for part, name, shape in self.shapes)
        self.table.value = (f"<table><tr><th>{tr('part')}</th><th>{tr('map')}</th>"
                            f"<th>{tr('shape (batch, channels, height, width)')}</th></tr>{rows}</table>")

    def static_figure(self, combinations: Sequence[Sequence[str]] | None = None):
        """The verdict and map shapes of the picked parts (or of each ``(backbone, neck, head)`` given), as text."""
        import matplotlib.pyplot as plt

        combos = [tuple(c) for c in combinations] if combinations else [tuple(self.dropdowns[p].value for p in PARTS)]
        keep = tuple(self.dropdowns[p].value for p in PARTS)
        blocks = []
        with self._quietly():
            try:
                for combo in combos:
                    for part, name in zip(PARTS, combo):
                        self.dropdowns[part].value = name
                    lines = textwrap.wrap(self.verdict(), 96)
                    lines += [f"  {part:9s}{name:16s}{' x '.join(map(str, shape))}" for part, name, shape in self.shapes]
                    blocks.append((self.fits, lines))
            finally:
                with contextlib.suppress(Exception):
                    for part, name in zip(PARTS, keep):
                        self.dropdowns[part].value = name
        height = sum(len(lines) + 1.5 for _, lines in blocks)
        fig, axes = plt.subplots(len(blocks), 1, figsize=(9, 0.2 * height + 0.3), squeeze=False,
                                 gridspec_kw={"height_ratios": [len(lines) + 1.5 for _, lines in blocks]})
        for ax, (ok, lines) in zip(axes[:, 0], blocks):
            ax.axis("off")
            ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family=render.monospace(), fontsize=render.MIN_PT,
                    transform=ax.transAxes,
                    bbox={"facecolor": "#eef7ee" if ok else "#fff4e5", "edgecolor": "#2a7f62" if ok else "#e69500"})
        fig.tight_layout()
        return fig
