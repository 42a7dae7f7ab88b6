"""How good are the judgements?  mAP for boxes (with a size breakdown) and mIoU for masks.

**Average precision (平均精度, AP)** for one class at one IoU threshold: sort
every detection of that class (all images) by score; walk down the list; a
detection is a *true positive* when it overlaps a not-yet-matched ground-truth
box of its class by at least the threshold (each ground truth can be matched
once, greedily in score order within its image, as COCO does), otherwise a
*false positive*.  Precision and recall after each step trace a curve; AP is
the area under its upper envelope (precision made non-increasing), summed over
every recall step ("all-point" interpolation, as PASCAL VOC 2010+; COCO samples
the same envelope at 101 recall points, which differs by well under a point).

* ``map50``: AP at IoU 0.5, averaged over classes;
* ``map``: AP averaged over IoU 0.50, 0.55, ..., 0.95 and classes (COCO's mAP@[.5:.95]);
* ``map50_small`` / ``_medium`` / ``_large`` (and ``map_small`` ...): the same on objects of one size
  bucket (:func:`course_lib.data.size_ranges`).  As in COCO, ground truths of other sizes are
  ignored: a detection matching one is neither right nor wrong, and an unmatched detection whose
  own size is outside the bucket is ignored too.

Classes without a ground truth (in that bucket) are left out of the mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .boxes import box_iou
from .data import size_ranges

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2).tolist())


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _sizes(boxes: np.ndarray) -> np.ndarray:
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def average_precision(tp: Sequence[bool], scores: Sequence[float], num_gt: int) -> float:
    """Area under the precision envelope for detections marked ``tp`` (True/False) with ``scores``.

    >>> average_precision([True, False, True], [0.9, 0.8, 0.7], num_gt=2)   # 0.5 * 1 + 0.5 * 2/3
    0.8333...
    """
    if num_gt == 0:
        return float("nan")
    tp = np.asarray(tp, dtype=bool)
    if tp.size == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    tp = tp[order]
    ctp = np.cumsum(tp)
    recall = ctp / num_gt
    precision = ctp / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    recall_steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(recall_steps * envelope))


def _match(iou: np.ndarray, thr: float, gt_ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of score-sorted detections to ground truths; returns (tp, matched_ignored)."""
    d, g = iou.shape
    tp = np.zeros(d, bool)
    ign = np.zeros(d, bool)
    taken = np.zeros(g, bool)
    for i in range(d):
        for want_ignored in (False, True):  # a real ground truth wins over an ignored one
            cand = np.where(~taken & (gt_ignore == want_ignored) & (iou[i] >= thr), iou[i], -1.0)
            if g and cand.max() >= 0:
                j = int(cand.argmax())
                taken[j] = True
                ign[i], tp[i] = want_ignored, not want_ignored
                break
    return tp, ign


def detection_map(
    preds: Sequence[Mapping[str, torch.Tensor]],
    targets: Sequence[Mapping[str, torch.Tensor]],
    num_classes: int,
    image_size: int = 128,
    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> dict[str, float]:
    """mAP@0.5, mAP@[.5:.95] and their small / medium / large versions.

    ``preds[i]`` has ``boxes (D, 4)``, ``scores (D,)``, ``labels (D,)``;
    ``targets[i]`` has ``boxes (G, 4)`` and ``labels (G,)``.  Returns a dict of
    floats (``nan`` where a bucket has no ground truth at all) and
    ``ap50_per_class`` as a list.
    """
    if len(preds) != len(targets):
        raise ValueError(f"got predictions for {len(preds)} images but targets for {len(targets)}")
    buckets = {"": (0.0, float("inf")), **size_ranges(image_size)}
    thrs = list(iou_thresholds)
    # records[bucket][class][t] -> list of (score, tp) ; npos[bucket][class]
    scores_all = {b: [[[] for _ in thrs] for _ in range(num_classes)] for b in buckets}
    tp_all = {b: [[[] for _ in thrs] for _ in range(num_classes)] for b in buckets}
    npos = {b: np.zeros(num_classes, int) for b in buckets}
    for p, t in zip(preds, targets):
        pb, ps, pl = _np(p["boxes"]).reshape(-1, 4), _np(p["scores"]).reshape(-1), _np(p["labels"]).reshape(-1)
        gb, gl = _np(t["boxes"]).reshape(-1, 4), _np(t["labels"]).reshape(-1)
        for c in range(num_classes):
            dm, gm = pl == c, gl == c
            db, ds, gbc = pb[dm], ps[dm], gb[gm]
            order = np.argsort(-ds, kind="stable")
            db, ds = db[order], ds[order]
            iou = box_iou(torch.as_tensor(db, dtype=torch.float32),
                          torch.as_tensor(gbc, dtype=torch.float32)).numpy() if len(db) and len(gbc) else \
                np.zeros((len(db), len(gbc)))
            dsz, gsz = _sizes(db), _sizes(gbc)
            for b, (lo, hi) in buckets.items():
                gt_ignore = (gsz < lo) | (gsz >= hi)
                npos[b][c] += int((~gt_ignore).sum())
                d_out = (dsz < lo) | (dsz >= hi)
                for k, thr in enumerate(thrs):
                    tp, ign = _match(iou, thr, gt_ignore)
                    keep = ~ign & ~(d_out & ~tp)
                    scores_all[b][c][k].extend(ds[keep].tolist())
                    tp_all[b][c][k].extend(tp[keep].tolist())
    out: dict[str, float] = {}
    i50 = thrs.index(0.5) if 0.5 in thrs else 0
    for b in buckets:
        ap = np.array([[average_precision(tp_all[b][c][k], scores_all[b][c][k], npos[b][c])
                        for k in range(len(thrs))] for c in range(num_classes)])
        valid = npos[b] > 0
        suffix = f"_{b}" if b else ""
        out[f"map50{suffix}"] = float(ap[valid, i50].mean()) if valid.any() else float("nan")
        out[f"map{suffix}"] = float(ap[valid].mean()) if valid.any() else float("nan")
        out[f"num_gt{suffix}"] = int(npos[b].sum())
        if not b:
            out["ap50_per_class"] = [float(v) for v in ap[:, i50]]
    return out


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` counts: row = true class, column = predicted class, over all pixels."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.numel()} pixels but the target has {target.numel()}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, object]:
    """Per-class IoU = TP / (TP + FP + FN) over all pixels, and their mean (mIoU) over classes present.

    ``pred`` and ``target`` are integer class maps of the same shape (background is class 0).
    """
    cm = confusion_matrix(pred, target, num_classes).double()
    tp = cm.diag()
    denom = cm.sum(0) + cm.sum(1) - tp
    iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))
    present = ~torch.isnan(iou)
    return {"miou": float(iou[present].mean()) if present.any() else float("nan"),
            "iou_per_class": [float(v) for v in iou],
            "pixel_accuracy": float(tp.sum() / cm.sum().clamp(min=1))}
