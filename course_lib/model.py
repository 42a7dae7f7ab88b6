"""Compose a model from three parts with a plain config dict, and trace it.

>>> model = build_model({"backbone": {"name": "resnet18"},
...                      "neck": {"name": "identity"},
...                      "head": {"name": "classification", "num_classes": 10}})

or one backbone and neck with several heads (``"heads": {task: {...}}``).

``build_model`` is the whole "framework": look each name up in its registry,
build the backbone, build the neck from the backbone's ``out_specs``, build the
head from the neck's ``out_specs``.  :meth:`Model.trace` runs one forward pass
and keeps every stage's output so widgets can redraw without re-running it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .contract import ContractError, FeatureSpec, check_image_batch, describe_specs
from .data import dominant_label
from .measure import count_params, evaluating


@dataclass
class Trace:
    """Everything one forward pass produced, stage by stage (tensors are detached).

    ``head`` is the head's output, or ``{task: output}`` for a model with several heads.
    """

    image: torch.Tensor
    backbone: OrderedDict[str, torch.Tensor]
    neck: OrderedDict[str, torch.Tensor]
    head: Any
    specs: dict[str, OrderedDict[str, FeatureSpec]] = field(default_factory=dict)
    #: steps inside a part that the part chose to record (e.g. an FPN's "P3 lateral", "P3 top-down")
    intermediates: dict[str, OrderedDict[str, torch.Tensor]] = field(default_factory=dict)

    def stages(self) -> list[tuple[str, str, torch.Tensor]]:
        """A flat list ``(part, name, tensor)`` in the order the data flows."""
        rows: list[tuple[str, str, torch.Tensor]] = [("input", "image", self.image)]
        rows += [("backbone", k, v) for k, v in self.backbone.items()]
        rows += [("neck", k, v) for k, v in self.neck.items()]
        if isinstance(self.head, torch.Tensor):
            rows.append(("head", "output", self.head))
        elif isinstance(self.head, Mapping):
            for k, v in self.head.items():  # one head's named outputs, or {task: output}
                named = v.items() if isinstance(v, Mapping) else [("", v)]
                rows += [("head", f"{k}.{n}" if n else k, t) for n, t in named if isinstance(t, torch.Tensor)]
        return rows

    def shapes(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """``(part, name, shape)`` for every stage: the table lesson 00 prints."""
        return [(part, name, tuple(t.shape)) for part, name, t in self.stages()]


class Model(nn.Module):
    """backbone -> neck -> head, with :meth:`trace` for looking inside.

    ``head`` may also be a dict ``{task: head}``: several heads read the same
    neck output (multi-task learning, 多任务学习).  They live in ``model.heads``;
    :meth:`forward` then returns ``{task: output}`` and :meth:`loss` adds the
    heads' losses with ``loss_weights``.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module | Mapping[str, nn.Module],
                 config: dict | None = None, loss_weights: Mapping[str, float] | None = None):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.multi_head = isinstance(head, Mapping)
        if self.multi_head:
            self.heads = nn.ModuleDict(head)
            self.loss_weights = {t: float((loss_weights or {}).get(t, 1.0)) for t in self.heads}
        else:
            self.head = head
        self.config = copy.deepcopy(config) if config is not None else None

    def parts(self) -> OrderedDict[str, nn.Module]:
        """``{name: module}`` in the order the data flows; a head of task ``t`` is ``"heads.t"``."""
        parts = OrderedDict(backbone=self.backbone, neck=self.neck)
        if self.multi_head:
            parts.update((f"heads.{t}", h) for t, h in self.heads.items())
        else:
            parts["head"] = self.head
        return parts

    def extract(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Backbone then neck: the features a head reads (MMDetection's ``extract_feat``)."""
        check_image_batch(x, "Model")
        return self.neck(self.backbone(x))

    def judge(self, feats: Mapping[str, torch.Tensor], tasks: Sequence[str] | None = None):
        """The head's output for the neck's features (with several heads: ``{task: output}``)."""
        if not self.multi_head:
            return self.head(feats)
        return {t: self.heads[t](feats) for t in (tasks or list(self.heads))}

    def forward(self, x: torch.Tensor, tasks: Sequence[str] | None = None):
        return self.judge(self.extract(x), tasks)

    def loss(self, outputs: Any, targets: Any) -> Any:
        """The head's own loss; with several heads, their weighted sum ``{"loss": total, task: part, ...}``.

        Every head reads the same targets (ShapesWorld's per-image dicts); a
        classification head is given each image's :func:`~course_lib.data.dominant_label`.
        """
        if not self.multi_head:
            return self.head.loss(outputs, targets)
        parts = {t: self.heads[t].loss(out, _targets_for(self.heads[t], targets, out)) for t, out in outputs.items()}
        total = sum(self.loss_weights[t] * v for t, v in parts.items())
        return {"loss": total, **{t: v.detach() for t, v in parts.items()}}

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        """One forward pass in eval mode that keeps every stage's output.

        ``x`` may be one image ``(3, H, W)`` or a batch.  The model's training
        mode is restored afterwards.  With several heads, ``trace.head`` is
        ``{task: output}``: the backbone and neck ran once for all of them.
        """
        if isinstance(x, torch.Tensor) and x.ndim == 3:
            x = x[None]
        check_image_batch(x, "Model.trace")
        with evaluating(self):
            x = x.to(next(self.parameters()).device)
            feats = self.backbone(x)
            fused = self.neck(feats)
            out = self.judge(fused)

        def detach(v):
            if isinstance(v, torch.Tensor):
                return v.detach()
            if isinstance(v, Mapping):
                return type(v)((k, detach(t)) for k, t in v.items())
            if isinstance(v, (list, tuple)):
                return type(v)(detach(t) for t in v)
            return v

        recorded = {name: getattr(part, "last_intermediates", None) for name, part in self.parts().items()}
        return Trace(
            image=x.detach(),
            backbone=detach(feats),
            neck=detach(fused),
            head=detach(out),
            specs={"backbone": self.backbone.out_specs, "neck": self.neck.out_specs},
            intermediates={name: OrderedDict(detach(steps)) for name, steps in recorded.items() if steps},
        )

    def summary(self) -> list[dict[str, Any]]:
        """One row per part (each head its own row): its name, parameter count and output specs."""
        rows = []
        for part, mod in self.parts().items():
            specs = getattr(mod, "out_specs", None)
            rows.append(
                {
                    "part": part,
                    "name": getattr(mod, "name", type(mod).__name__),
                    "params": count_params(mod),
                    "out": describe_specs(specs) if specs is not None else "task output",
                }
            )
        return rows


def _targets_for(head: nn.Module, targets: Any, out: torch.Tensor) -> Any:
    """What one head of a multi-head model learns from: a classifier needs one label per image."""
    from .heads.classification import ClassificationHead

    if isinstance(head, ClassificationHead) and not isinstance(targets, torch.Tensor):
        return torch.tensor([dominant_label(t, head.fc.out_features) for t in targets], device=out.device)
    return targets


def _split(cfg: Mapping[str, Any] | str, part: str, default: str | None = None) -> tuple[str, dict[str, Any]]:
    if isinstance(cfg, str):
        return cfg, {}
    if not isinstance(cfg, Mapping) or ("name" not in cfg and default is None):
        raise ValueError(f"config[{part!r}] must be a name or a dict with a 'name' key, got {cfg!r}")
    kw = dict(cfg)
    return kw.pop("name", default), kw


def build_model(config: Mapping[str, Any]) -> Model:
    """Build ``backbone -> neck -> head`` from ``{"backbone": {...}, "neck": {...}, "head": {...}}``.

    Each part is ``{"name": <registered name>, **keyword arguments}`` (or just
    the name).  The neck is built from the backbone's ``out_specs`` and the head
    from the neck's, so a part that does not fit fails here with both names.
    ``"neck"`` may be left out: it means ``"identity"``.
    ``{"head": {"name": "classification", "pretrained": True}}`` loads the
    ImageNet classifier that was trained together with the backbone's weights.

    Several heads on one backbone and neck: ``"heads": {task: {...}}`` instead
    of ``"head"`` (a head may leave out ``"name"`` when its task is a head's
    name, e.g. ``"detection"``), and optionally ``"loss_weights": {task: w}``.
    """
    from . import backbones, heads, necks

    several = "heads" in config
    allowed = {"backbone", "neck", "heads", "loss_weights"} if several else {"backbone", "neck", "head"}
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; use {', '.join(sorted(allowed))}")
    if "backbone" not in config or not ("head" in config or several):
        raise ValueError("a model config needs 'backbone' and 'head' (or 'heads': {task: head, ...}) entries")
    b_name, b_kw = _split(config["backbone"], "backbone")
    n_name, n_kw = _split(config.get("neck", "identity"), "neck")
    backbone = backbones.build(b_name, **b_kw)
    try:
        neck = necks.build(n_name, backbone.out_specs, **n_kw)
    except ContractError as err:
        raise err.with_provider(f"backbone {b_name!r}") from None

    built, full = {}, {}
    for task, cfg in (config["heads"] if several else {"head": config["head"]}).items():
        h_name, h_kw = _split(cfg, f"heads.{task}" if several else "head", default=task if several else None)
        if h_kw.get("pretrained") is True:
            h_kw["pretrained"] = b_name  # the classifier that belongs to this backbone's weights
        try:
            built[task] = heads.build(h_name, neck.out_specs, **h_kw)
        except ContractError as err:
            raise err.with_provider(f"neck {n_name!r} (on backbone {b_name!r})") from None
        full[task] = {"name": h_name, **h_kw}

    parts = {"backbone": {"name": b_name, **b_kw}, "neck": {"name": n_name, **n_kw}}
    if not several:
        return Model(backbone, neck, built["head"], config={**parts, "head": full["head"]})
    weights = dict(config.get("loss_weights", {}))
    return Model(backbone, neck, built, config={**parts, "heads": full, "loss_weights": weights}, loss_weights=weights)
