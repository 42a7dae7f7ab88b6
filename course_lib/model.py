"""Compose a model from three parts with a plain config dict, and trace it.

>>> model = build_model({"backbone": {"name": "resnet18"},
...                      "neck": {"name": "identity"},
...                      "head": {"name": "classification", "num_classes": 10}})

``build_model`` is the whole "framework": look each name up in its registry,
build the backbone, build the neck from the backbone's ``out_specs``, build the
head from the neck's ``out_specs``.  :meth:`Model.trace` runs one forward pass
and keeps every stage's output so widgets can redraw without re-running it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .contract import ContractError, FeatureSpec, check_image_batch, describe_specs


@dataclass
class Trace:
    """Everything one forward pass produced, stage by stage (tensors are detached)."""

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
            rows += [("head", k, v) for k, v in self.head.items() if isinstance(v, torch.Tensor)]
        return rows

    def shapes(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """``(part, name, shape)`` for every stage: the table lesson 00 prints."""
        return [(part, name, tuple(t.shape)) for part, name, t in self.stages()]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Model(nn.Module):
    """backbone -> neck -> head, with :meth:`trace` for looking inside."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module, config: dict | None = None):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.config = copy.deepcopy(config) if config is not None else None

    def extract(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Backbone then neck: the features a head reads (MMDetection's ``extract_feat``)."""
        check_image_batch(x, "Model")
        return self.neck(self.backbone(x))

    def forward(self, x: torch.Tensor):
        return self.head(self.extract(x))

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> Trace:
        """One forward pass in eval mode that keeps every stage's output.

        ``x`` may be one image ``(3, H, W)`` or a batch.  The model's training
        mode is restored afterwards.
        """
        if isinstance(x, torch.Tensor) and x.ndim == 3:
            x = x[None]
        check_image_batch(x, "Model.trace")
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            x = x.to(device)
            feats = self.backbone(x)
            fused = self.neck(feats)
            out = self.head(fused)
        finally:
            self.train(was_training)

        def detach(v):
            if isinstance(v, torch.Tensor):
                return v.detach()
            if isinstance(v, Mapping):
                return type(v)((k, detach(t)) for k, t in v.items())
            if isinstance(v, (list, tuple)):
                return type(v)(detach(t) for t in v)
            return v

        return Trace(
            image=x.detach(),
            backbone=detach(feats),
            neck=detach(fused),
            head=detach(out),
            specs={"backbone": self.backbone.out_specs, "neck": self.neck.out_specs},
            intermediates={part: OrderedDict(detach(getattr(getattr(self, part), "last_intermediates", None) or {}))
                           for part in ("backbone", "neck", "head")
                           if getattr(getattr(self, part), "last_intermediates", None)},
        )

    def summary(self) -> list[dict[str, Any]]:
        """One row per part: its name, parameter count and output specs."""
        rows = []
        for part in ("backbone", "neck", "head"):
            mod = getattr(self, part)
            specs = getattr(mod, "out_specs", None)
            rows.append(
                {
                    "part": part,
                    "name": getattr(mod, "name", type(mod).__name__),
                    "params": _count(mod),
                    "out": describe_specs(specs) if specs is not None else "task output",
                }
            )
        return rows


def _split(cfg: Mapping[str, Any] | str, part: str) -> tuple[str, dict[str, Any]]:
    if isinstance(cfg, str):
        return cfg, {}
    if not isinstance(cfg, Mapping) or "name" not in cfg:
        raise ValueError(f"config[{part!r}] must be a name or a dict with a 'name' key, got {cfg!r}")
    kw = dict(cfg)
    return kw.pop("name"), kw


def build_model(config: Mapping[str, Any]) -> Model:
    """Build ``backbone -> neck -> head`` from ``{"backbone": {...}, "neck": {...}, "head": {...}}``.

    Each part is ``{"name": <registered name>, **keyword arguments}`` (or just
    the name).  The neck is built from the backbone's ``out_specs`` and the head
    from the neck's, so a part that does not fit fails here with both names.
    ``"neck"`` may be left out: it means ``"identity"``.
    ``{"head": {"name": "classification", "pretrained": True}}`` loads the
    ImageNet classifier that was trained together with the backbone's weights.
    """
    from . import backbones, heads, necks

    unknown = set(config) - {"backbone", "neck", "head"}
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; use 'backbone', 'neck' and 'head'")
    if "backbone" not in config or "head" not in config:
        raise ValueError("a model config needs at least 'backbone' and 'head' entries")
    b_name, b_kw = _split(config["backbone"], "backbone")
    n_name, n_kw = _split(config.get("neck", "identity"), "neck")
    h_name, h_kw = _split(config["head"], "head")
    if h_kw.get("pretrained") is True:
        h_kw["pretrained"] = b_name  # the classifier that belongs to this backbone's weights

    backbone = backbones.build(b_name, **b_kw)
    try:
        neck = necks.build(n_name, backbone.out_specs, **n_kw)
    except ContractError as err:
        raise err.with_provider(f"backbone {b_name!r}") from None
    try:
        head = heads.build(h_name, neck.out_specs, **h_kw)
    except ContractError as err:
        raise err.with_provider(f"neck {n_name!r} (on backbone {b_name!r})") from None
    full = {"backbone": {"name": b_name, **b_kw}, "neck": {"name": n_name, **n_kw}, "head": {"name": h_name, **h_kw}}
    return Model(backbone, neck, head, config=full)
