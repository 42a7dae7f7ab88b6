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

**Checked against the official code.**  :func:`coco_map` runs pycocotools' ``COCOeval`` (a dev
dependency: ``pip install pycocotools``) on the same predictions.  With COCO's own bucket edges
(``size_edges=COCO_SIZE_EDGES``: ``sqrt(area)`` 32 and 96 px; the course's default buckets are
its own, 1/8 and 1/4 of the image side) the two agree to well under one AP point.  What still
differs, and why it stays small:

* COCOeval samples the precision envelope at 101 recall points (0, 0.01, ..., 1); here the
  envelope is integrated exactly.  Both integrate the same non-increasing step function, so the
  gap is bounded by 1/101 of an AP (under 1 point) and is usually a few hundredths of a point;
* COCOeval keeps at most 100 detections per image and class (``maxDets=100``); here all are kept
  (the course's decoders return far fewer);
* IoU here is float32, COCO's float64, and COCO's bucket edges are closed on both sides: both
  only matter for a box sitting exactly on a threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .boxes import box_iou
from .data import size_ranges

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2).tolist())
#: COCO's small / medium / large edges in pixels of ``sqrt(area)`` (areas 32² and 96²), for any image size.
COCO_SIZE_EDGES = (32.0, 96.0)


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
    size_edges: tuple[float, float] | None = None,
) -> dict[str, float]:
    """mAP@0.5, mAP@[.5:.95] and their small / medium / large versions.

    ``preds[i]`` has ``boxes (D, 4)``, ``scores (D,)``, ``labels (D,)``;
    ``targets[i]`` has ``boxes (G, 4)`` and ``labels (G,)``.  Returns a dict of
    floats (``nan`` where a bucket has no ground truth at all) and
    ``ap50_per_class`` as a list.  The size buckets are the course's
    (``size_ranges(image_size)``) unless ``size_edges = (small|medium, medium|large)``
    gives others in pixels of ``sqrt(w·h)``, e.g. :data:`COCO_SIZE_EDGES`.
    """
    if len(preds) != len(targets):
        raise ValueError(f"got predictions for {len(preds)} images but targets for {len(targets)}")
    if size_edges is None:
        ranges = size_ranges(image_size)
    else:
        a, b = (float(e) for e in size_edges)
        if not 0 < a < b:
            raise ValueError(f"size_edges must be two increasing positive sizes in pixels, got {size_edges}")
        ranges = {"small": (0.0, a), "medium": (a, b), "large": (b, float("inf"))}
    buckets = {"": (0.0, float("inf")), **ranges}
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


def coco_map(
    preds: Sequence[Mapping[str, torch.Tensor]],
    targets: Sequence[Mapping[str, torch.Tensor]],
    num_classes: int,
) -> dict[str, float]:
    """The same numbers as :func:`detection_map` (``map``, ``map50`` and per bucket), computed by pycocotools.

    Builds COCO's ground-truth and result dicts in memory (boxes as ``[x, y, w, h]``,
    ``area = w·h``, no crowd boxes) and runs ``COCOeval(iouType="bbox")`` with its
    defaults: COCO's absolute buckets (compare with ``detection_map(...,
    size_edges=COCO_SIZE_EDGES)``), 101 recall points, ``maxDets=100``.
    Needs ``pip install pycocotools``.
    """
    import contextlib
    import io

    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError("coco_map needs pycocotools: pip install pycocotools") from err
    if len(preds) != len(targets):
        raise ValueError(f"got predictions for {len(preds)} images but targets for {len(targets)}")

    def xywh(b: np.ndarray) -> list[list[float]]:
        b = b.reshape(-1, 4).astype(np.float64)
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()

    images, anns, dets = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets), start=1):
        images.append({"id": i})
        for box, c in zip(xywh(_np(t["boxes"])), _np(t["labels"]).reshape(-1).tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
        for box, s, c in zip(xywh(_np(p["boxes"])), _np(p["scores"]).reshape(-1).tolist(),
                             _np(p["labels"]).reshape(-1).tolist()):
            dets.append({"image_id": i, "category_id": int(c) + 1, "bbox": box, "score": float(s)})
    if not dets:
        raise ValueError("pycocotools cannot evaluate an empty list of detections")
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # (IoU thresholds, recall points, classes, area ranges, maxDets)
    m = list(ev.params.maxDets).index(100)
    out: dict[str, float] = {}
    for a, name in enumerate(ev.params.areaRngLbl):  # all, small, medium, large
        suffix = "" if name == "all" else f"_{name}"
        for key, pr in ((f"map{suffix}", precision[:, :, :, a, m]), (f"map50{suffix}", precision[:1, :, :, a, m])):
            valid = pr > -1
            out[key] = float(pr[valid].mean()) if valid.any() else float("nan")
    return out


def random_detections(
    num_images: int = 20,
    num_classes: int = 3,
    image_size: int = 320,
    seed: int = 0,
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """A random detection set to test a mAP implementation on: ``(preds, targets)``.

    Each image has 2 to 8 true boxes of sizes from 6 px to 0.69 of the image side (log-uniform, so
    COCO's small, medium and large buckets all fill), of ``num_classes`` classes.
    A detector is simulated: most objects get a box with a random amount of error
    (IoUs from about 0.3 to 1) and a score that rises with its accuracy, some get
    the wrong class, some a second (duplicate) box, some none at all (misses),
    and a few boxes sit on nothing (false positives).
    """
    rng = np.random.default_rng(seed)

    def box(cx: float, cy: float, size: float, aspect: float) -> list[float]:
        w, h = size * np.sqrt(aspect), size / np.sqrt(aspect)
        x1, y1 = np.clip([cx - w / 2, cy - h / 2], 0, image_size - 2)
        x2, y2 = np.clip([cx + w / 2, cy + h / 2], [x1 + 2, y1 + 2], image_size)
        return [float(x1), float(y1), float(x2), float(y2)]

    def random_box() -> list[float]:
        size = float(np.exp(rng.uniform(np.log(6), np.log(0.69 * image_size))))
        return box(*rng.uniform(size / 2, image_size - size / 2, 2), size, float(np.exp(rng.uniform(-0.7, 0.7))))

    preds, targets = [], []
    for _ in range(num_images):
        gb = [random_box() for _ in range(int(rng.integers(2, 9)))]
        gl = rng.integers(0, num_classes, len(gb)).tolist()
        db, ds, dl = [], [], []
        for (x1, y1, x2, y2), c in zip(gb, gl):
            for copy in range(2 if rng.random() < 0.2 else 1):
                if copy == 0 and rng.random() < 0.15:
                    break  # a miss
                err = rng.uniform(0.0, 0.3)  # relative error of the box: 0 = perfect
                w, h = x2 - x1, y2 - y1
                jitter = rng.normal(0, err, 4) * [w, h, w, h]
                db.append(box((x1 + x2) / 2 + jitter[0], (y1 + y2) / 2 + jitter[1],
                              np.sqrt(max(w + jitter[2], 1) * max(h + jitter[3], 1)), max(w, 1) / max(h, 1)))
                logit = 4 * (1 - err / 0.3) - 2 + rng.normal(0, 0.8)  # better boxes score higher
                ds.append(float((0.6 if copy else 1) / (1 + np.exp(-logit))))
                dl.append(c if rng.random() < 0.9 else int(rng.integers(0, num_classes)))
        for _ in range(int(rng.poisson(2))):  # boxes on nothing
            db.append(random_box())
            ds.append(float(rng.uniform(0.01, 0.8)))
            dl.append(int(rng.integers(0, num_classes)))
        targets.append({"boxes": torch.tensor(gb, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.tensor(gl, dtype=torch.int64)})
        preds.append({"boxes": torch.tensor(db, dtype=torch.float32).reshape(-1, 4),
                      "scores": torch.tensor(ds, dtype=torch.float32), "labels": torch.tensor(dl, dtype=torch.int64)})
    return preds, targets


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
