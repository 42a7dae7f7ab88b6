"""Browse a model as backbone / neck / head trees; click a layer to see its output on the image."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import torch
import torch.nn.functional as F
from torch import nn

from .. import render
from ..backbones.custom import first_tensor
from ..hooks import forward_hooks
from ..images import to_uint8
from ..language import tr
from ..measure import count_params, evaluating
from ..model import Model
from ..zoo.torchvision_parts import split_torchvision, trace_torchvision
from .base import PICTURE_PX, Explorer, as_image, caption, picture


def model_parts(model: nn.Module) -> OrderedDict[str, nn.Module]:
    """The three parts of a course :class:`Model` or of a torchvision detector / segmenter."""
    if isinstance(model, Model):
        return OrderedDict(backbone=model.backbone, neck=model.neck, head=model.head)
    return OrderedDict((k, m) for k, (_, m) in split_torchvision(model).items())


@torch.no_grad()
def run_with_hooks(model: nn.Module, x: torch.Tensor, depth: int = 2) -> list[dict[str, Any]]:
    """One forward pass that records every module down to ``depth`` levels inside each part.

    Returns rows ``{"part", "path", "depth", "type", "params", "output"}`` in
    tree order; ``output`` is the module's (first) output tensor, detached.
    Forward hooks are removed before returning, even on error.
    """
    parts = model_parts(model)
    rows: list[dict[str, Any]] = []
    hooks = []
    index: dict[int, dict[str, Any]] = {}
    for part, root in parts.items():
        for path, mod in root.named_modules():
            d = 0 if path == "" else path.count(".") + 1
            if d > depth:
                continue
            row = {"part": part, "path": f"{part}.{path}" if path else part, "depth": d,
                   "type": type(mod).__name__, "params": count_params(mod), "output": None}
            rows.append(row)

            def hook(_m, _inp, out, row=row):
                t = first_tensor(out)
                if t is not None and row["output"] is None:
                    row["output"] = t.detach()

            hooks.append((mod, hook))
            index[id(mod)] = row
    with forward_hooks(hooks), evaluating(model):
        if isinstance(model, Model):
            model(x)
        else:
            trace_torchvision(model, x)
    return rows


class ArchitectureBrowser(Explorer):
    """Pick a model -> its three parts as a tree with parameters, shapes and strides; pick a layer -> its output.

    ``builders`` maps a display name to a function that builds the model
    (called once, on first use); one model alone is fine too.  Each (model,
    image) pair runs the network once (``n_forward``); choosing layers only
    redraws from the recorded outputs.  ``info`` holds the model's parameter
    summary and the chosen layer's output.
    """

    ALT = caption(lambda: tr("Architecture browser: one model split into backbone, neck and head, with the output of "
                             "the chosen layer"))

    def __init__(self, builders: Mapping[str, Callable[[], nn.Module]] | nn.Module, image: Any = None, *,
                 picker: Any = None, size: int = 256, depth: int = 2):
        if isinstance(builders, nn.Module):
            builders = {type(builders).__name__: lambda m=builders: m}
        super().__init__(dict(builders), image, picker=picker)
        self.builders = self.source
        self.size = size
        self.depth = depth
        self._models: dict[str, nn.Module] = {}
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self.model_dropdown = W.Dropdown(options=list(self.builders), description=tr("Model:"))
        self.tree = W.Select(options=[], rows=16, layout=W.Layout(width=f"{PICTURE_PX}px"))
        self.summary = ""
        self.image_widget = picture()
        self.model_dropdown.observe(lambda _: self._show_model(), names="value")
        self._observe(self.tree)
        # the tree's rows are long: it goes under the picture, where it has the picture's width
        view = self._in_browser([self.tree, self.model_dropdown], [self.image_widget], ahead={self.model_dropdown: 0},
                                names={self.tree: tr("Layer")})
        self._start(image, [self.model_dropdown], [view, self.tree])

    def _trace(self, image: Any) -> None:
        """A new image: forget the recordings (each model runs again once, when shown)."""
        self.x = F.interpolate(as_image(image)[None], size=(self.size, self.size), mode="bilinear",
                               antialias=True, align_corners=False).clamp(0, 1)
        self._rows.clear()
        self._show_model(draw=False)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The recorded rows of the current model."""
        return self._rows[self.model_dropdown.value]

    def _show_model(self, draw: bool = True) -> None:
        name = self.model_dropdown.value
        if name not in self._rows:
            model = self._models.get(name) or self.builders[name]()
            self._models[name] = model
            self._rows[name] = run_with_hooks(model, self.x, self.depth)
            self.n_forward += 1
        rows = self._rows[name]
        totals = {r["part"]: r["params"] for r in rows if r["depth"] == 0}
        total = sum(totals.values())
        self.summary = tr("<b>{name}</b>: {total:,} parameters — ", name=name, total=total) + ", ".join(
            f"{p} {n / 1e6:.2f} M ({n / max(total, 1):.0%})" for p, n in totals.items())
        with self._quietly():
            self.tree.options = [(self._label(r), r["path"]) for r in rows]
            self.tree.value = rows[0]["path"]
        if draw:
            self.redraw()

    def _label(self, r: dict[str, Any]) -> str:
        out = r["output"]
        shape = tuple(out.shape) if out is not None else "-"
        stride = f"/{self.size // out.shape[-1]}" if out is not None and out.ndim == 4 else ""
        name = r["path"].split(".")[-1] if r["depth"] else r["part"].upper()
        return f"{'  ' * r['depth']}{name} [{r['type']}] {r['params']:,}p {shape} {stride}"

    def layer(self, path: str) -> dict[str, Any]:
        """The recorded row of one module (by its dotted path, e.g. ``"backbone.stages.C5"``)."""
        for r in self.rows:
            if r["path"] == path:
                return r
        raise KeyError(path)

    def layer_picture(self, r: dict[str, Any]):
        """A layer's output: mean |activation| over the photo and its first maps, or its largest entries."""
        out = r["output"]
        if out is None:
            return render.bars([tr("(no output recorded)")], [0.0])
        if out.ndim == 4:
            heat = out[0].float().abs().mean(0)
            pic = render.overlay(self.x[0], heat, alpha=0.55)
            grid = render.feature_grid(out[0].float(), list(range(min(4, out.shape[1]))), ncols=4, cell=72)
            return render.hstack([pic.resize((216, 216)), grid])
        flat = out[0].float().flatten()
        k = min(8, flat.numel())
        top = flat.abs().topk(k)
        vals = (top.values / top.values.max().clamp_min(1e-8)).tolist()
        return render.bars([f"#{i}" for i in top.indices.tolist()], vals)

    def redraw(self) -> None:
        """Draw the selected layer's output from the recording (no forward pass)."""
        if not self.tree.value:
            return
        r = self.layer(self.tree.value)
        out = r["output"]
        if out is None:
            what = tr("<code>{path}</code> ({type}) produced no tensor", path=r["path"], type=r["type"])
        else:
            what = tr("<code>{path}</code> — {type}, {params:,} parameters, output <b>{shape}</b>", path=r["path"],
                      type=r["type"], params=r["params"], shape=tuple(out.shape))
        self.info.value = f"{self.summary}<br>{what}"
        self.image_widget.value = render.png_bytes(self.layer_picture(r))
        self.n_redraw += 1

    def static_figure(self, model: str | None = None, weights: str = ""):
        """The input and what each part makes of it, for ``model`` (default: the one shown).

        * **backbone**: mean |activation| of its deepest map (the one the neck reads last), with a colour bar;
        * **neck**: its finest output map (own colour bar), or, for a pooled vector, its largest entries;
        * **head**: the answer in its own terms -- the top class probabilities of a classifier, the best class
          score per cell of the finest grid of a dense detector (``(B, 4 + classes, points)``), or the best
          queries' scores of a query detector.

        ``weights`` goes into the title (e.g. ``"random weights"``): maps of an untrained model show structure
        the image gives them, not what a trained part would stress.  Drawn from the recording: no forward pass.
        """
        import matplotlib.pyplot as plt

        if model is not None:
            self.model_dropdown.value = model
        name = self.model_dropdown.value
        rows = self.rows
        parts = {r["part"]: r for r in rows if r["depth"] == 0}
        fig, axes = plt.subplots(1, 1 + len(parts), figsize=(3.4 * (1 + len(parts)), 3.3))
        axes[0].imshow(to_uint8(self.x[0]))
        axes[0].set_title(tr("input"))
        axes[0].axis("off")
        for ax, (part, r) in zip(axes[1:], parts.items()):
            out, where = r["output"], part
            if part == "backbone":                      # the deepest map of the backbone
                maps = [x for x in rows if x["part"] == part and x["output"] is not None and x["output"].ndim == 4]
                deepest = min(maps, key=lambda x: (x["output"].shape[-1], -maps.index(x)), default=r)
                out, where = deepest["output"], deepest["path"]
            title = tr("{where}: {shape}\n{m:.2f} M params", where=where,
                       shape=tuple(out.shape) if out is not None else "-", m=r["params"] / 1e6)
            self._part_panel(ax, part, out, title)
        fig.suptitle(f"{name} ({weights})" if weights else name)
        fig.tight_layout()
        return fig

    def _part_panel(self, ax, part: str, out: torch.Tensor | None, title: str) -> None:
        """One panel of :meth:`static_figure`: a map with its colour bar, or bars of the largest entries."""
        if out is not None and out.ndim == 4:
            heat = out[0].float().abs().mean(0).cpu().numpy()
            im = ax.imshow(heat, cmap=render.SEQUENTIAL)
            render.add_colorbar(im, ax, tr("mean |activation|"))
            ax.set_title(title, fontsize=render.MIN_PT)
            ax.axis("off")
            return
        labels, values, what = self._head_answer(out) if part == "head" else self._largest(out)
        if out is not None and out.ndim == 3 and part == "head" and labels is None:   # a dense detector's grid
            im = ax.imshow(values, cmap=render.HEAT, vmin=0, vmax=1)
            render.add_colorbar(im, ax, tr("best class score"))
            ax.set_title(f"{title}\n{what}", fontsize=render.MIN_PT)
            ax.axis("off")
            return
        if labels is None:
            ax.text(0.5, 0.5, tr("(no output recorded)"), ha="center", va="center", fontsize=render.MIN_PT)
            ax.axis("off")
        else:
            ys = list(range(len(values)))[::-1]
            ax.barh(ys, values, color=render.mpl_colour(4))
            ax.set_yticks(ys, labels, fontsize=render.MIN_PT)
            ax.tick_params(axis="x", labelsize=render.MIN_PT)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
        ax.set_title(f"{title}\n{what}", fontsize=render.MIN_PT)

    @staticmethod
    def _largest(out: torch.Tensor | None, k: int = 6):
        if out is None:
            return None, [], ""
        flat = out[0].float().flatten()
        top = flat.topk(min(k, flat.numel()))
        return ([f"#{i}" for i in top.indices.tolist()], top.values.tolist(),
                tr("largest {k} of {n}", k=len(top.values), n=flat.numel()))

    def _head_answer(self, out: torch.Tensor | None, k: int = 5):
        """The head's answer as (labels, values, caption); labels ``None`` with a 2-D grid for a dense detector."""
        if out is None:
            return None, [], ""
        head = model_parts(self._models[self.model_dropdown.value])["head"]
        names = list(getattr(head, "class_names", None) or [])
        out = out.float()
        if out.ndim == 2:                               # a classifier: probabilities of the top classes
            p = out[0].softmax(0)
            top = p.topk(min(k, p.numel()))
            lab = [names[i] if i < len(names) else tr("class {i}", i=i) for i in top.indices.tolist()]
            return lab, top.values.tolist(), tr("top class probabilities")
        nc = getattr(head, "num_classes", None)
        strides = getattr(head, "strides", None)
        if out.ndim == 3 and nc and strides and out.shape[1] == 4 + nc:   # (B, 4 + classes, points), dense
            g = self.size // int(strides[0])
            score = out[0, 4:, : g * g].amax(0).reshape(g, g)
            score = score if float(score.min()) >= 0 and float(score.max()) <= 1 else score.sigmoid()
            return None, score.cpu().numpy(), tr("best class score per stride-{s} cell", s=strides[0])
        if out.ndim == 3:                               # (B, queries or points, classes): the best ones
            best = out[0].sigmoid().amax(-1)
            top = best.topk(min(k, best.numel()))
            return [f"#{i}" for i in top.indices.tolist()], top.values.tolist(), tr("best scores (sigmoid)")
        return self._largest(out)
