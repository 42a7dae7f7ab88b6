"""Find the backbone, neck and head inside other people's models (torchvision's detectors and segmenters).

torchvision does not use the three-part names the way this course does:
RetinaNet and FCOS keep the FPN *inside* the object called ``.backbone``
(``backbone.body`` is the ResNet, ``backbone.fpn`` the neck), and DeepLabV3's
``.classifier`` holds both the ASPP neck and the final 1x1 head.
:func:`split_torchvision` maps them onto the course's three parts.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ..measure import count_params, evaluating


def split_torchvision(model: nn.Module) -> OrderedDict[str, tuple[str, nn.Module]]:
    """``{"backbone": (path, module), "neck": ..., "head": ...}`` for a torchvision detector or segmenter."""
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.segmentation import DeepLabV3

    if isinstance(model, (RetinaNet, FCOS)):
        return OrderedDict(
            backbone=("model.backbone.body", model.backbone.body),
            neck=("model.backbone.fpn", model.backbone.fpn),
            head=("model.head", model.head),
        )
    if isinstance(model, DeepLabV3):
        return OrderedDict(
            backbone=("model.backbone", model.backbone),
            neck=("model.classifier[0]  (ASPP)", model.classifier[0]),
            head=("model.classifier[1:]", nn.Sequential(*list(model.classifier.children())[1:])),
        )
    raise TypeError(f"don't know how to split a {type(model).__name__}; supported: RetinaNet, FCOS, DeepLabV3")


def trace_torchvision(model: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
    """Run the three parts of a torchvision detector/segmenter by hand on ``x`` and describe each output.

    Returns rows ``{"part", "where", "params", "outputs"}`` where ``outputs``
    maps output names to shapes.  The pre/post-processing torchvision wraps
    around detectors (resizing to 800 px, box decoding) is skipped: this is
    the bare network.
    """
    parts = split_torchvision(model)
    (b_path, backbone), (n_path, neck), (h_path, head) = parts.values()
    with evaluating(model):
        feats = backbone(x)
        if isinstance(feats, OrderedDict) and "out" in feats:  # DeepLabV3: one map in, one mask map out
            fused = OrderedDict(out=neck(feats["out"]))
            out = OrderedDict(masks=head(fused["out"]))
        else:  # RetinaNet / FCOS: the FPN's dict in, the head reads its maps as a list
            fused = neck(feats)
            out = head(list(fused.values()))

    def shapes(maps: dict[str, torch.Tensor]) -> OrderedDict[str, tuple[int, ...]]:
        return OrderedDict((k, tuple(v.shape)) for k, v in maps.items())

    return [{"part": "backbone", "where": b_path, "params": count_params(backbone), "outputs": shapes(feats)},
            {"part": "neck", "where": n_path, "params": count_params(neck), "outputs": shapes(fused)},
            {"part": "head", "where": h_path, "params": count_params(head), "outputs": shapes(out)}]


def draw_pipeline(rows: list[dict[str, Any]], title: str = "", ax=None):
    """Draw backbone -> neck -> head as three boxes with their outputs (a static diagram)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 2.6))
    colors = {"backbone": "#cfe2f3", "neck": "#d9ead3", "head": "#fce5cd"}
    names = {"backbone": "backbone\n(the eye)", "neck": "neck\n(the brain)", "head": "head\n(the judgement)"}
    for i, row in enumerate(rows):
        x0 = i * 3.6
        ax.add_patch(FancyBboxPatch((x0, 0), 3.0, 2.2, boxstyle="round,pad=0.05",
                                    fc=colors.get(row["part"], "#eee"), ec="#555"))
        ax.text(x0 + 1.5, 1.85, names.get(row["part"], row["part"]), ha="center", va="center", fontsize=9,
                weight="bold")
        ax.text(x0 + 1.5, 1.3, f"{row['where']}\n{row['params'] / 1e6:.2f} M params", ha="center", va="center",
                fontsize=7)
        outs = list(row["outputs"].items())
        text = "\n".join(f"{k}: {tuple(v)}" for k, v in outs[:5]) + ("\n…" if len(outs) > 5 else "")
        ax.text(x0 + 1.5, 0.45, text, ha="center", va="center", fontsize=6.5, family="monospace")
        if i:
            ax.add_patch(FancyArrowPatch((x0 - 0.6, 1.1), (x0 - 0.05, 1.1), arrowstyle="->", mutation_scale=14))
    ax.set_xlim(-0.2, 3.6 * len(rows))
    ax.set_ylim(-0.2, 2.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def course_rows(model: nn.Module, trace) -> list[dict[str, Any]]:
    """The same rows as :func:`trace_torchvision`, for a course model and its :class:`~course_lib.model.Trace`."""
    head = trace.head
    head_out = (OrderedDict(output=tuple(head.shape)) if isinstance(head, torch.Tensor)
                else OrderedDict((k, tuple(v.shape)) for k, v in head.items() if isinstance(v, torch.Tensor)))
    return [
        {"part": "backbone", "where": "model.backbone", "params": count_params(model.backbone),
         "outputs": OrderedDict((k, tuple(v.shape)) for k, v in trace.backbone.items())},
        {"part": "neck", "where": "model.neck", "params": count_params(model.neck),
         "outputs": OrderedDict((k, tuple(v.shape)) for k, v in trace.neck.items())},
        {"part": "head", "where": "model.head", "params": count_params(model.head), "outputs": head_out},
    ]
