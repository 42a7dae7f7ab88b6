"""IoU / NMS match torchvision; mAP and mIoU give the answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from course_lib.boxes import (
    anchor_points,
    batched_nms,
    box_iou,
    decode_distances,
    encode_distances,
    giou_paired,
    nms,
    nms_steps,
)
from course_lib.metrics import (
    COCO_SIZE_EDGES,
    average_precision,
    coco_map,
    detection_map,
    mean_iou,
    random_detections,
)


def random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], 1)


def test_box_iou_matches_torchvision():
    a, b = random_boxes(30, 0), random_boxes(20, 1)
    assert torch.allclose(box_iou(a, b), torchvision.ops.box_iou(a, b), atol=1e-6)
    assert box_iou(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 0, 15, 10]])).item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_and_batched_nms_match_torchvision(thr):
    for seed in range(5):
        boxes = random_boxes(80, seed, size=60)  # crowded: plenty of overlaps
        scores = torch.rand(80, generator=torch.Generator().manual_seed(100 + seed))
        idxs = torch.randint(0, 3, (80,), generator=torch.Generator().manual_seed(200 + seed))
        assert torch.equal(nms(boxes, scores, thr), torchvision.ops.nms(boxes, scores, thr))
        assert torch.equal(batched_nms(boxes, scores, idxs, thr), torchvision.ops.batched_nms(boxes, scores, idxs, thr))
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0


def test_nms_steps_tell_the_same_story():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 9, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    steps = nms_steps(boxes, scores, 0.5)
    assert steps == [{"keep": 0, "removed": [1, 3]}, {"keep": 2, "removed": []}]
    assert [s["keep"] for s in steps] == nms(boxes, scores, 0.5).tolist()


def test_giou_is_iou_minus_empty_part_of_enclosing_box():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[20.0, 0, 30, 10]])  # no overlap: IoU 0, enclosing box 30x10, union 200
    iou, giou = giou_paired(a, b)
    assert iou.item() == pytest.approx(0.0) and giou.item() == pytest.approx(-(300 - 200) / 300, abs=1e-6)
    iou, giou = giou_paired(a, a)
    assert iou.item() == pytest.approx(1.0) and giou.item() == pytest.approx(1.0)


def test_anchor_points_and_distance_round_trip():
    pts = anchor_points((2, 3), 8)
    assert pts.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    boxes = torch.tensor([[0.0, 0, 16, 24]]).expand(6, 4)
    d = encode_distances(pts, boxes, 8.0)
    assert d[0].tolist() == [0.5, 0.5, 1.5, 2.5]  # (4-0)/8, (4-0)/8, (16-4)/8, (24-4)/8
    assert torch.allclose(decode_distances(pts, d, 8.0), boxes)
    strides = torch.tensor([8.0, 8, 8, 16, 16, 16])
    assert torch.allclose(decode_distances(pts, encode_distances(pts, boxes, strides), strides), boxes)


# ------------------------------------------------------------------ mAP, worked out by hand
def det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels)}


def gt(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


A, B = [0, 0, 40, 40], [60, 60, 100, 100]  # two large objects (size 40)


def test_average_precision_by_hand():
    # TP, FP, TP with 2 ground truths: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # envelope: 1 up to recall 1/2, then 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert average_precision([True, False, True], [0.9, 0.8, 0.7], 2) == pytest.approx(5 / 6)
    assert average_precision([False, True], [0.9, 0.8], 1) == pytest.approx(0.5)
    assert average_precision([], [], 3) == 0.0
    assert math.isnan(average_precision([False], [0.5], 0))


def test_map_perfect_and_ranked_with_a_false_positive():
    t = [gt([A, B], [0, 0])]
    assert detection_map([det([A, B], [0.9, 0.8], [0, 0])], t, 1)["map"] == pytest.approx(1.0)
    # the same 5/6 case through matching: TP (0.9), FP far away (0.8), TP (0.7)
    r = detection_map([det([A, [200, 200, 220, 220], B], [0.9, 0.8, 0.7], [0, 0, 0])], t, 1, image_size=256)
    assert r["map50"] == pytest.approx(5 / 6)


def test_duplicate_is_a_false_positive_and_order_matters():
    t = [gt([A], [0])]
    dup = [34.0, 0, 40, 40]
    # duplicate below the true hit: recall 1 is reached at precision 1 -> AP 1
    assert detection_map([det([A, A], [0.9, 0.8], [0, 0])], t, 1)["map50"] == pytest.approx(1.0)
    # a poor box (IoU 0.15) scored above the good one: precision at recall 1 is 1/2 -> AP 1/2
    assert detection_map([det([dup, A], [0.9, 0.8], [0, 0])], t, 1)["map50"] == pytest.approx(0.5)


def test_map_over_iou_thresholds():
    # IoU 0.62: a hit at 0.50, 0.55, 0.60 and a miss at 0.65 ... 0.95 -> mAP@[.5:.95] = 3/10
    box = [0.0, 0, 40, 24.8]  # 40 x 24.8 inside 40 x 40: IoU = 992 / 1600 = 0.62
    r = detection_map([det([box], [0.9], [0])], [gt([A], [0])], 1)
    assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(0.3)


def test_classes_and_images_are_separate():
    # class 0 found, class 1 missed (detected as class 0 at the wrong place counts for class 0 only)
    preds = [det([A], [0.9], [0]), det([B], [0.8], [0])]
    targets = [gt([A], [0]), gt([B], [1])]
    r = detection_map(preds, targets, 2)
    # class 0: TP 0.9 then FP 0.8 -> AP 1; class 1: no detection -> AP 0; mean 1/2
    assert r["ap50_per_class"] == pytest.approx([1.0, 0.0]) and r["map50"] == pytest.approx(0.5)
    # a box in another image never matches: image 1's box B does not find image 0's object
    r = detection_map([det([], [], []), det([A], [0.9], [0])], [gt([A], [0]), gt([], [])], 1)
    assert r["map50"] == pytest.approx(0.0)


def test_small_medium_large_breakdown():
    small, large = [10.0, 10, 20, 20], A  # sizes 10 (small) and 40 (large) in a 128-pixel world
    targets = [gt([small, large], [0, 0])]
    only_large = detection_map([det([large], [0.9], [0])], targets, 1)
    assert only_large["map50"] == pytest.approx(0.5)  # recall 1/2 at precision 1
    assert only_large["map50_large"] == pytest.approx(1.0) and only_large["map50_small"] == pytest.approx(0.0)
    assert math.isnan(only_large["map50_medium"]) and only_large["num_gt_medium"] == 0
    # in the large bucket a hit on the small object is ignored (neither right nor wrong)
    both = detection_map([det([small, large], [0.95, 0.9], [0, 0])], targets, 1)
    assert both["map50_large"] == pytest.approx(1.0) and both["map50_small"] == pytest.approx(1.0)
    # an unmatched small false positive does not hurt the large bucket, but hurts the small one
    fp = detection_map([det([[100, 100, 110, 110], small, large], [0.99, 0.95, 0.9], [0, 0, 0])], targets, 1)
    assert fp["map50_large"] == pytest.approx(1.0) and fp["map50_small"] == pytest.approx(0.5)


def test_mean_iou_by_hand():
    target = torch.tensor([[0, 0], [1, 1]])
    pred = torch.tensor([[0, 1], [1, 1]])
    r = mean_iou(pred, target, 3)
    # class 0: TP 1, FN 1 -> 1/2; class 1: TP 2, FP 1 -> 2/3; class 2 absent -> left out
    assert r["iou_per_class"][:2] == pytest.approx([0.5, 2 / 3]) and math.isnan(r["iou_per_class"][2])
    assert r["miou"] == pytest.approx((0.5 + 2 / 3) / 2) and r["pixel_accuracy"] == pytest.approx(0.75)
    with pytest.raises(ValueError):
        mean_iou(pred, target[:1], 3)


# ---------------------------------------------------------------------------------------------
# Parity with the official COCO evaluation (pycocotools, a dev dependency).

MAP_KEYS = ["map", "map50"] + [f"{m}_{b}" for b in ("small", "medium", "large") for m in ("map", "map50")]


def _coco_101_point_ap(tp, scores, num_gt):
    """COCOeval's AP: the same precision envelope, read at recall 0, 0.01, ..., 1 and averaged."""
    if num_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    tp = np.asarray(tp, dtype=bool)[np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")]
    ctp = np.cumsum(tp)
    recall = ctp / num_gt
    envelope = np.maximum.accumulate((ctp / np.arange(1, len(tp) + 1))[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    sampled = np.zeros(101)
    sampled[idx < len(tp)] = envelope[idx[idx < len(tp)]]  # recall never reached: precision 0
    return float(sampled.mean())


def test_random_detection_sets_fill_every_bucket_with_hits_misses_and_false_positives():
    preds, targets = random_detections(num_images=20, seed=0)
    r = detection_map(preds, targets, 3, size_edges=COCO_SIZE_EDGES)
    assert min(r["num_gt_small"], r["num_gt_medium"], r["num_gt_large"]) >= 10
    assert 0.2 < r["map"] < r["map50"] < 0.9  # neither trivial nor hopeless
    num_det = sum(len(p["scores"]) for p in preds)
    assert num_det > r["num_gt"] * 0.9 and len({float(s) for p in preds for s in p["scores"]}) == num_det  # no ties


@pytest.mark.parametrize("seed", range(6))
def test_map_agrees_with_pycocotools_within_one_point(seed):
    pytest.importorskip("pycocotools")
    preds, targets = random_detections(num_images=20, num_classes=3, seed=seed)
    ours = detection_map(preds, targets, 3, size_edges=COCO_SIZE_EDGES)  # COCO's absolute buckets
    coco = coco_map(preds, targets, 3)
    for key in MAP_KEYS:
        assert abs(ours[key] - coco[key]) < 0.01, (key, ours[key], coco[key])
    # and the difference is not zero: the course integrates the envelope exactly, COCO samples it
    assert any(abs(ours[k] - coco[k]) > 1e-6 for k in MAP_KEYS)


@pytest.mark.parametrize("seed", range(3))
def test_the_only_remaining_difference_is_the_101_point_interpolation(seed, monkeypatch):
    """Give the course's matching COCO's 101-point AP and the two agree to rounding: same matching, same
    ignore rules, same buckets.  So the gap measured above is the interpolation, bounded by 1/101 of an AP."""
    pytest.importorskip("pycocotools")
    import course_lib.metrics as metrics

    preds, targets = random_detections(num_images=20, num_classes=3, seed=seed)
    coco = coco_map(preds, targets, 3)
    monkeypatch.setattr(metrics, "average_precision", _coco_101_point_ap)
    ours = metrics.detection_map(preds, targets, 3, size_edges=COCO_SIZE_EDGES)
    for key in MAP_KEYS:
        assert ours[key] == pytest.approx(coco[key], abs=1e-6), key


def test_course_buckets_stay_the_default():
    preds, targets = random_detections(num_images=5, seed=1, image_size=128)
    default = detection_map(preds, targets, 3)
    assert default == detection_map(preds, targets, 3, image_size=128, size_edges=(16, 32))
    with pytest.raises(ValueError, match="increasing"):
        detection_map(preds, targets, 3, size_edges=(96, 32))
