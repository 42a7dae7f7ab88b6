"""Boxes, written out for teaching: IoU, GIoU, NMS, and the anchor-point box code.

All boxes are ``(x1, y1, x2, y2)`` in pixels.  :func:`box_iou` and
:func:`batched_nms` give the same answers as ``torchvision.ops.box_iou`` and
``torchvision.ops.batched_nms`` (the tests check it); the detection pipeline
may call torchvision's versions, which are the same algorithm in C++.

>>> import torch
>>> a = torch.tensor([[0., 0., 10., 10.]]); b = torch.tensor([[5., 0., 15., 10.]])
>>> box_iou(a, b)          # overlap 50, union 150
tensor([[0.3333]])
"""

from __future__ import annotations

import torch


def _check(boxes: torch.Tensor, who: str) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of boxes (N, 4), got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{who} expects boxes of shape (N, 4) as x1, y1, x2, y2, got {tuple(boxes.shape)}")
    return boxes


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of each box (0 for empty boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union (交并比) of every box in ``a`` with every box in ``b``: ``(N, M)``."""
    _check(a, "box_iou"), _check(b, "box_iou")
    lt = torch.max(a[:, None, :2], b[None, :, :2])  # top-left corner of the overlap
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])  # bottom-right corner of the overlap
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union


def giou_paired(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and generalized IoU of box ``a[i]`` with ``b[i]`` (same shape ``(..., 4)``).

    GIoU = IoU - (enclosing area - union) / enclosing area.  Unlike IoU it still
    has a gradient when the boxes do not overlap: it pulls them together.
    """
    lt = torch.max(a[..., :2], b[..., :2])
    rb = torch.min(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a) + box_area(b) - inter
    iou = inter / (union + eps)
    lt_c = torch.min(a[..., :2], b[..., :2])
    rb_c = torch.max(a[..., 2:], b[..., 2:])
    wh_c = (rb_c - lt_c).clamp(min=0)
    enclose = wh_c[..., 0] * wh_c[..., 1] + eps
    return iou, iou - (enclose - union) / enclose


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Non-maximum suppression (非极大值抑制): keep the best box, drop boxes that overlap it, repeat.

    Returns the indices of the kept boxes, best score first (as torchvision).
    """
    _check(boxes, "nms")
    order = scores.argsort(descending=True)
    keep = []
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold  # everything that overlaps the winner too much
    return torch.tensor(keep, dtype=torch.long)


def nms_steps(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> list[dict]:
    """NMS one decision at a time, for showing it: ``[{"keep": i, "removed": [j, ...]}, ...]``."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes, boxes)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    steps = []
    for i in order.tolist():
        if not alive[i]:
            continue
        alive[i] = False
        removed = torch.nonzero(alive & (iou[i] > iou_threshold)).flatten()
        alive[removed] = False
        steps.append({"keep": i, "removed": removed.tolist()})
    return steps


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each class (``idxs``) separately: a circle never suppresses a square.

    The trick torchvision uses: shift each class's boxes by a large offset so
    boxes of different classes can never overlap, then run one plain NMS.
    """
    _check(boxes, "batched_nms")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    offset = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offset[:, None], scores, iou_threshold)


# ---------------------------------------------------------------- anchor points
def anchor_points(shape: tuple[int, int], stride: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The centre of every cell of an ``(H, W)`` map in image pixels: ``(H * W, 2)`` as ``x, y``.

    Cell ``(row, col)`` of a stride-8 map sits at ``(8 * col + 4, 8 * row + 4)``.
    """
    h, w = shape
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def encode_distances(points: torch.Tensor, boxes: torch.Tensor, strides: torch.Tensor | float) -> torch.Tensor:
    """Box -> distances ``(l, t, r, b)`` from each point to the four sides, in units of the stride."""
    s = strides if not isinstance(strides, torch.Tensor) else strides[..., None]
    lt = points - boxes[..., :2]
    rb = boxes[..., 2:] - points
    return torch.cat([lt, rb], dim=-1) / s


def decode_distances(points: torch.Tensor, dist: torch.Tensor, strides: torch.Tensor | float) -> torch.Tensor:
    """Distances ``(l, t, r, b)`` in strides -> box ``x1, y1, x2, y2``: the inverse of :func:`encode_distances`."""
    s = strides if not isinstance(strides, torch.Tensor) else strides[..., None]
    d = dist * s
    return torch.cat([points - d[..., :2], points + d[..., 2:]], dim=-1)
