"""How good is a trained model? One function per kind of head, and :func:`evaluate` that picks them.

* detection: mAP@0.5, mAP@[.5:.95] and the small / medium / large breakdown (:func:`evaluate_detector`);
* segmentation: mIoU with the background included, and pixel accuracy (:func:`evaluate_segmenter`);
* classification: accuracy; on ShapesWorld's detection images the label is the shape that covers
  the most pixels (:func:`~course_lib.data.dominant_label`) (:func:`evaluate_classifier`).

A model with several heads is evaluated head by head on the same split: :func:`evaluate` returns
``cls_accuracy``, ``det_map50``, ``det_map50_small`` and ``seg_miou``.  :func:`compare_detectors` puts
several detectors side by side (lesson 08's neck ablation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..data import CLASSES, ShapesWorld, dominant_label
from ..heads.classification import ClassificationHead
from ..heads.detection import DetectionHead
from ..heads.segmentation import SegmentationHead
from ..measure import count_params, evaluating
from ..metrics import detection_map, mean_iou
from ..model import Model
from .checkpoints import load_trained

#: The detection metrics a comparison table shows, in this order.
DETECTION_COLUMNS = ("map50", "map", "map50_small", "map50_medium", "map50_large")


def _head(model: Model, task: str | None) -> torch.nn.Module:
    return model.heads[task] if task is not None else model.head


def predict(model: Model, images: torch.Tensor, batch_size: int = 100, task: str | None = None,
            **decode_kw) -> list:
    """Run a model over images in batches (eval mode) and decode its head's outputs: one item per image.

    ``uint8`` images are scaled to [0, 1] first.  With several heads, ``task``
    names the head to run and decode.
    """
    head = _head(model, task)
    device = next(model.parameters()).device
    out = []
    with evaluating(model):
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            x = x.float().div(255) if x.dtype == torch.uint8 else x
            raw = model(x) if task is None else model(x, tasks=[task])[task]
            res = head.decode(raw, **decode_kw)
            out.extend(res)
    return out


def evaluate_detector(model: Model, world: ShapesWorld | None = None, score_threshold: float = 0.05,
                      task: str | None = None) -> dict[str, Any]:
    """mAP@0.5, mAP@[.5:.95] and the small / medium / large breakdown on a split (default: val)."""
    world = world or ShapesWorld("val")
    images, targets = world.materialize()
    preds = predict(model, images, task=task, score_threshold=score_threshold, iou_threshold=0.6)
    return detection_map(preds, targets, num_classes=_head(model, task).num_classes, image_size=world.image_size)


def compare_detectors(models: Sequence[str] | Mapping[str, Model], world: ShapesWorld | None = None,
                      columns: Sequence[str] = DETECTION_COLUMNS) -> list[dict[str, Any]]:
    """Several detectors on one split, one row each: ``{"model", *columns, "params"}``.

    ``models`` is a list of shipped checkpoint names (loaded with :func:`load_trained`) or a dict
    ``{label: model}``.  Every row is scored by :func:`evaluate_detector` on the same images.
    """
    named = dict(models) if isinstance(models, Mapping) else {n: load_trained(n) for n in models}
    world = world or ShapesWorld("val")
    rows = []
    for label, model in named.items():
        r = evaluate_detector(model, world)
        rows.append({"model": label, **{c: float(r[c]) for c in columns}, "params": count_params(model)})
    return rows


def evaluate_segmenter(model: Model, world: ShapesWorld | None = None, task: str | None = None) -> dict[str, Any]:
    """mIoU (background included) and pixel accuracy on a split (default: val)."""
    world = world or ShapesWorld("val")
    images, targets = world.materialize()
    pred = torch.stack(predict(model, images, task=task)).cpu()
    sem = torch.stack([t["semantic"] for t in targets])
    return mean_iou(pred, sem, _head(model, task).num_classes)


def evaluate_classifier(model: Model, world: ShapesWorld | None = None, task: str | None = None) -> dict[str, float]:
    """Top-1 accuracy on a split (default: val); a detection image's label is its dominant shape."""
    world = world or ShapesWorld("val")
    images, targets = world.materialize()
    pred = [top[0].index for top in predict(model, images, task=task, k=1)]
    truth = [t if isinstance(t, int) else dominant_label(t, len(CLASSES)) for t in targets]
    return {"accuracy": sum(p == t for p, t in zip(pred, truth)) / len(truth)}


def evaluate(model: Model, world: ShapesWorld | None = None) -> dict[str, Any]:
    """Every head of ``model`` on one split (default: val).

    One head: that head's full metrics (``map50``, ... or ``miou``, ... or ``accuracy``).
    Several heads: one summary number or two per head, ``cls_accuracy``,
    ``det_map50`` and ``det_map50_small``, ``seg_miou``.
    """
    world = world or ShapesWorld("val")
    if not model.multi_head:
        return _evaluate_head(model, model.head, world, None)
    metrics: dict[str, Any] = {}
    for task, head in model.heads.items():
        got = _evaluate_head(model, head, world, task)
        if isinstance(head, ClassificationHead):
            metrics["cls_accuracy"] = got["accuracy"]
        elif isinstance(head, DetectionHead):
            metrics["det_map50"], metrics["det_map50_small"] = float(got["map50"]), float(got["map50_small"])
        elif isinstance(head, SegmentationHead):
            metrics["seg_miou"] = float(got["miou"])
    return metrics


def _evaluate_head(model: Model, head: torch.nn.Module, world: ShapesWorld, task: str | None) -> dict[str, Any]:
    if isinstance(head, DetectionHead):
        return evaluate_detector(model, world, task=task)
    if isinstance(head, SegmentationHead):
        return evaluate_segmenter(model, world, task=task)
    if isinstance(head, ClassificationHead):
        return evaluate_classifier(model, world, task=task)
    raise TypeError(f"no evaluation for a {type(head).__name__}; evaluate it with your own metric")
