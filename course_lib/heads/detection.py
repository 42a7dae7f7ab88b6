"""The dense detection head: every cell of every level votes for a class and a box.

Anchor-free (无锚框): each cell of a level with stride ``s`` has one *anchor point*,
its centre ``(s * col + s/2, s * row + s/2)``.  For every point the head predicts

* **class scores** (one sigmoid per class, no objectness), and
* **box distances** ``(l, t, r, b)`` from the point to the four sides of the box,
  in units of the stride (so a stride-32 cell predicting 1.5 means 48 pixels).

Per level a 1x1 stem (as in YOLOX; YOLOv8 and FCOS have none) feeds two
*decoupled* branches (解耦头), each ``depth`` 3x3 convs then a 1x1 (YOLOv8: two
3x3 then a 1x1; FCOS: four 3x3 with GroupNorm, one head shared by all levels);
``decoupled=False`` shares one branch for both (the older coupled design).
FCOS adds a centre-ness output and YOLOX an objectness output; this head, like
YOLOv8's, has neither.  With ``reg_bins > 0`` each distance is a
*distribution* over ``reg_bins`` bins (0, 1, ..., reg_bins - 1 strides) and the
distance is its expectation: Distribution Focal Loss (DFL) teaches the two bins
around the true distance.

**Target assignment** (标签分配, FCOS-style): a point is a positive for a ground
truth box when (1) it lies inside the box, (2) it lies within ``center_radius``
strides of the box centre (centre sampling), and (3) the object's size
``sqrt(w * h)`` falls in the level's scale range (small objects go to fine levels,
large ones to coarse levels).  The bands are imposed here, by the assignment: a
level learns its sizes because only objects of its band are its positives.  A
point claimed by several boxes takes the smallest.  A box that got no point this
way (a tiny or thin object) takes the in-box point nearest its centre.  A box with no cell centre inside it at all (a
6-pixel object between the points of a stride-8 grid) cannot be learned: the
smallest stride sets the smallest object a detector can see.
``positive_cells(outputs, target)`` lists one image's positives per level as
``(box, row, col)``, ``size_level(boxes)`` the level each box's size selects and
``locate(outputs, index)`` turns an index of :meth:`DetectionHead.flatten`'s list
into ``(level, row, col)``.  YOLOv8 assigns differently (task-aligned, TOOD):
top-10 in-box cells per object by ``score**0.5 * IoU**6``; not implemented here.

**Loss**: sigmoid focal loss on classes (normalised by the number of
positives) + GIoU loss on the decoded boxes of positives (+ DFL when
``reg_bins > 0``).  With ``cls_loss="quality"`` a positive's class target is
the IoU of its own predicted box instead of 1 (quality focal loss, from GFL),
so a score also says how well the box fits.  **Decode**: sigmoid scores,
threshold, boxes from distances, then per-class NMS.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import sigmoid_focal_loss

from ..blocks import Conv
from ..boxes import anchor_points, decode_distances, encode_distances, giou_paired
from ..contract import FeatureSpec, Head, select_inputs
from . import HEADS


def anchor_grid(shapes: Sequence[tuple[int, int]], strides: Sequence[int],
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every anchor point of every level, finest first: ``points (N, 2)`` in pixels (cell centres),
    ``strides (N,)`` and ``level (N,)`` (the index of each point's level).

    Level maps of 80x80, 40x40 and 20x20 at strides 8, 16, 32 give N = 8,400 points.
    """
    pts, st, lv = [], [], []
    for i, (shape, s) in enumerate(zip(shapes, strides)):
        p = anchor_points(tuple(shape), s, device)
        pts.append(p)
        st.append(torch.full((len(p),), float(s), device=device))
        lv.append(torch.full((len(p),), i, dtype=torch.long, device=device))
    return torch.cat(pts), torch.cat(st), torch.cat(lv)


def dfl_expectation(logits: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    """DFL decoding: logits over ``n`` bins ``(..., n)`` -> the expected distance ``(...)``.

    A softmax turns the bins into a distribution over the distances ``values``
    (by default 0, 1, ..., n - 1 strides); the distance is its expectation.
    """
    if values is None:
        values = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return logits.softmax(-1) @ values


def dfl_entropy(probs: torch.Tensor) -> torch.Tensor:
    """The spread of DFL distributions ``(..., n)`` -> their entropy in nats ``(...)``.

    0 for all the mass on one bin; ``ln 2 = 0.69`` for two equal bins (the most a
    perfect DFL prediction of a distance half-way between two bins can have);
    ``ln n`` for a flat distribution (no idea where the side is).
    """
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def hidden_sides(boxes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Which sides of each object are occluded: ``(N, 4)`` bool in ``l, t, r, b`` order.

    ``boxes (N, 4)`` are the tight boxes of the whole shapes, ``masks (N, H, W)`` their
    *visible* pixels (ShapesWorld's targets).  A side is hidden when the visible pixels
    stop short of the box edge on that side: another shape covers the object's extreme
    there, and a detector must guess where the edge is.
    """
    hidden = torch.zeros((len(boxes), 4), dtype=torch.bool)
    for g, (box, m) in enumerate(zip(boxes, masks)):
        ys, xs = torch.nonzero(m, as_tuple=True)
        if len(xs) == 0:
            hidden[g] = True
            continue
        seen = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).to(box)
        hidden[g] = (seen - box).abs() > 0.5
    return hidden


class DFL(nn.Module):
    """DFL decoding stored as YOLOv8 ships it: a frozen 1x1 conv whose ``reg_max`` weights are 0, 1, ..., reg_max-1.

    ``forward`` takes ``(B, 4 * reg_max, anchors)`` and returns the four distances ``(B, 4, anchors)``
    through :func:`dfl_expectation` with the conv's weights as the bin values.  The weights count
    as parameters (16 in YOLOv8's published total) but never train.
    """

    def __init__(self, reg_max: int = 16):
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape
        bins = x.view(b, 4, self.reg_max, a).transpose(2, 3)        # (B, 4, anchors, reg_max)
        return dfl_expectation(bins, self.conv.weight.view(-1))


def default_scale_ranges(strides: Sequence[int]) -> list[tuple[float, float]]:
    """Object-size band per level: level ``k`` takes sizes up to ``3 * stride_k`` (the last takes the rest)."""
    ranges, lo = [], 0.0
    for i, s in enumerate(strides):
        hi = float("inf") if i == len(strides) - 1 else 3.0 * s
        ranges.append((lo, hi))
        lo = hi
    return ranges


class LevelHead(nn.Module):
    """The head of one level: a 1x1 stem (as in YOLOX), then class and box branches (decoupled or shared)."""

    def __init__(self, c_in: int, width: int, depth: int, num_classes: int, box_ch: int, decoupled: bool):
        super().__init__()
        self.stem = Conv(c_in, width, 1)
        self.decoupled = decoupled
        if decoupled:
            self.cls_branch = nn.Sequential(*[Conv(width, width, 3) for _ in range(depth)])
            self.box_branch = nn.Sequential(*[Conv(width, width, 3) for _ in range(depth)])
        else:
            self.shared = nn.Sequential(*[Conv(width, width, 3) for _ in range(depth)])
        self.cls_out = nn.Conv2d(width, num_classes, 1)
        self.box_out = nn.Conv2d(width, box_ch, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        if self.decoupled:
            return self.cls_out(self.cls_branch(x)), self.box_out(self.box_branch(x))
        y = self.shared(x)
        return self.cls_out(y), self.box_out(y)

    def branch_table(self) -> list[dict[str, Any]]:
        """The level's branches as rows (branch, layers, output channels, params): the module repr in 3-4 lines.

        A decoupled head has ``stem``, ``class`` and ``box`` rows; a coupled one ``stem``, ``shared`` and the two
        1x1 output convs that read the shared features.
        """
        def convs(seq: nn.Sequential) -> str:
            k = seq[0][0].kernel_size[0] if len(seq) else 0
            return f"{len(seq)} x {k}x{k} conv" if len(seq) else "-"

        def row(branch: str, layers: str, out: int, *mods: nn.Module) -> dict[str, Any]:
            return {"branch": branch, "layers": layers, "out ch": out,
                    "params": sum(p.numel() for m in mods for p in m.parameters())}

        n_cls, n_box = self.cls_out.out_channels, self.box_out.out_channels
        rows = [row("stem", "1 x 1x1 conv", self.stem[0].out_channels, self.stem)]
        if self.decoupled:
            rows += [row("class", f"{convs(self.cls_branch)} + 1x1 out", n_cls, self.cls_branch, self.cls_out),
                     row("box", f"{convs(self.box_branch)} + 1x1 out", n_box, self.box_branch, self.box_out)]
        else:
            rows += [row("shared", convs(self.shared), self.shared[-1][0].out_channels, self.shared),
                     row("class out", "1x1 conv (shared input)", n_cls, self.cls_out),
                     row("box out", "1x1 conv (shared input)", n_box, self.box_out)]
        return rows


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Quality focal loss (GFL): binary cross-entropy towards a soft target in [0, 1], scaled by
    ``|sigmoid(logit) - target| ** beta`` so that scores already close to their target count little.

    With the IoU of each positive's box as its class target, a cell's score learns to say
    "a circle, *and my box fits it this well*": the best-fitting box ranks first, which is
    what NMS and average precision reward.  Summed over every element.
    """
    p = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (bce * (p - target).abs().pow(beta)).sum()


@HEADS.register("detection")
class DetectionHead(Head):
    """Dense, anchor-free detection head over one or more levels (see the module docstring).

    ``forward`` returns an ordered dict ``{"cls.P3": (B, K, H, W), "box.P3": (B, 4 or 4*bins, H, W), ...}``.
    """

    name = "detection"

    def __init__(
        self,
        in_specs: Mapping[str, FeatureSpec],
        num_classes: int = 3,
        in_keys: Sequence[str] | None = None,
        width: int = 64,
        depth: int = 2,
        decoupled: bool = True,
        reg_bins: int = 0,
        scale_ranges: Sequence[tuple[float, float]] | None = None,
        center_radius: float = 1.5,
        box_weight: float = 2.0,
        dfl_weight: float = 0.5,
        class_names: Sequence[str] | None = None,
        cls_loss: str = "focal",
    ):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        picked = select_inputs("head 'detection'", in_specs, in_keys)
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if reg_bins == 1 or reg_bins < 0:
            raise ValueError(f"reg_bins must be 0 (plain distances) or at least 2 (DFL bins), got {reg_bins}")
        self.levels = list(picked)
        self.strides = [int(s.stride) for s in picked.values()]
        self.num_classes = num_classes
        self.reg_bins = int(reg_bins)
        self.decoupled = decoupled
        ranges = default_scale_ranges(self.strides) if scale_ranges is None else [tuple(r) for r in scale_ranges]
        if len(ranges) != len(self.levels):
            raise ValueError(f"scale_ranges has {len(ranges)} bands but the head reads {len(self.levels)} levels")
        self.scale_ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        self.center_radius = center_radius
        self.box_weight, self.dfl_weight = box_weight, dfl_weight
        if cls_loss not in ("focal", "quality"):
            raise ValueError(f"cls_loss must be 'focal' or 'quality', got {cls_loss!r}")
        self.cls_loss = cls_loss
        self.class_names = list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names given for {num_classes} classes")
        box_ch = 4 * self.reg_bins if self.reg_bins else 4
        self.heads = nn.ModuleDict(
            (lv, LevelHead(spec.channels, width, depth, num_classes, box_ch, decoupled)) for lv, spec in picked.items()
        )
        prior = -math.log((1 - 0.01) / 0.01)  # start every class score at p = 0.01 (RetinaNet's prior)
        for h in self.heads.values():
            nn.init.constant_(h.cls_out.bias, prior)
        self._grid_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ forward
    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for lv, head in self.heads.items():
            cls, box = head(feats[lv])
            out[f"cls.{lv}"], out[f"box.{lv}"] = cls, box
        return out

    def branch_table(self, levels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Per level, its branches (:meth:`LevelHead.branch_table`): one tidy table instead of the module repr."""
        return [{"level": lv, **r} for lv in (levels or list(self.heads)) for r in self.heads[lv].branch_table()]

    def distances(self, box_raw: torch.Tensor) -> torch.Tensor:
        """Raw box outputs ``(..., 4 or 4*bins)`` -> distances ``(..., 4)`` in strides (DFL: the expectation)."""
        if self.reg_bins:
            return dfl_expectation(box_raw.unflatten(-1, (4, self.reg_bins)))
        return F.softplus(box_raw)

    def flatten(self, outputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """All levels as one list of points: ``cls (B, N, K)``, ``box_raw (B, N, C)``, ``points (N, 2)``,
        ``strides (N,)``, ``level (N,)`` (the level index of each point)."""
        cls, box, shapes = [], [], []
        for lv in self.levels:
            c, b = outputs[f"cls.{lv}"], outputs[f"box.{lv}"]
            cls.append(c.flatten(2).transpose(1, 2))
            box.append(b.flatten(2).transpose(1, 2))
            shapes.append(tuple(c.shape[-2:]))
        points, strides, level = self._grid(tuple(shapes), cls[0].device)
        return {"cls": torch.cat(cls, 1), "box_raw": torch.cat(box, 1), "points": points, "strides": strides,
                "level": level}

    def _grid(self, shapes: tuple, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (shapes, str(device))
        if key not in self._grid_cache:
            self._grid_cache[key] = anchor_grid(shapes, self.strides, device)
        return self._grid_cache[key]

    def locate(self, outputs: Mapping[str, torch.Tensor], index: int) -> tuple[str, int, int]:
        """A point's index in :meth:`flatten`'s list -> ``(level, row, col)``.

        The list runs level by level, finest first, each level row by row: on 128x128 inputs with
        P3, P4, P5 the indices 0..255 are P3's 16x16 cells, 256..319 P4's and 320..335 P5's.
        """
        start = 0
        for lv in self.levels:
            h, w = outputs[f"cls.{lv}"].shape[-2:]
            if 0 <= index - start < h * w:
                row, col = divmod(int(index) - start, w)
                return lv, row, col
            start += h * w
        raise IndexError(f"point {index} is outside the {start} points of levels {self.levels}")

    def size_level(self, boxes: torch.Tensor) -> torch.Tensor:
        """The level index each box's size ``sqrt(w * h)`` selects through :attr:`scale_ranges` ``(N,)``."""
        size = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()
        his = torch.tensor([hi for _, hi in self.scale_ranges[:-1]], dtype=size.dtype, device=size.device)
        return torch.bucketize(size, his, right=True)

    @torch.no_grad()
    def positive_cells(self, outputs: Mapping[str, torch.Tensor],
                       target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The label assignment of one image, as cells: per level a ``(P, 3)`` tensor of
        ``(box index, row, col)``, one row per cell that :meth:`assign` makes a positive (标签分配).

        ``outputs`` only gives the map sizes (the first image's; the scores play no part).
        """
        flat = self.flatten(outputs)
        a = self.assign(flat["points"], flat["strides"], flat["level"], [target])
        cells: dict[str, list[tuple[int, int, int]]] = {lv: [] for lv in self.levels}
        for i in torch.nonzero(a["pos"][0]).flatten().tolist():
            lv, row, col = self.locate(outputs, i)
            cells[lv].append((int(a["gt_index"][0, i]), row, col))
        return {lv: torch.tensor(c, dtype=torch.long).reshape(-1, 3) for lv, c in cells.items()}

    # ------------------------------------------------------------------ targets
    @torch.no_grad()
    def assign(self, points: torch.Tensor, strides: torch.Tensor, level: torch.Tensor,
               targets: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """FCOS-style assignment for a whole batch at once.

        Returns ``pos (B, N)`` bool, ``gt_index (B, N)``, ``labels (B, N)``, ``boxes (B, N, 4)``
        (the assigned ground truth of each point; meaningless where ``pos`` is False).
        """
        device = points.device
        b = len(targets)
        m = max([len(t["boxes"]) for t in targets] + [1])
        gt = torch.zeros((b, m, 4), device=device)
        gl = torch.zeros((b, m), dtype=torch.long, device=device)
        valid = torch.zeros((b, m), dtype=torch.bool, device=device)
        for i, t in enumerate(targets):
            k = len(t["boxes"])
            if k:
                gt[i, :k] = t["boxes"].to(device, torch.float32)
                gl[i, :k] = t["labels"].to(device)
                valid[i, :k] = True
        n = len(points)
        px, py = points[None, :, None, 0], points[None, :, None, 1]  # (1, N, 1)
        x1, y1, x2, y2 = (gt[:, None, :, j] for j in range(4))  # (B, 1, M)
        in_box = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)  # on the border counts
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        r = self.center_radius * strides[None, :, None]
        near = ((px - cx).abs() < r) & ((py - cy).abs() < r)
        size = ((x2 - x1) * (y2 - y1)).clamp(min=0).sqrt()
        lo = torch.tensor([a for a, _ in self.scale_ranges], device=device)[level][None, :, None]
        hi = torch.tensor([h for _, h in self.scale_ranges], device=device)[level][None, :, None]
        in_range = (size >= lo) & (size < hi)
        ok = valid[:, None, :]
        cand = in_box & near & in_range & ok
        area = (size * size).expand(b, n, m)
        cost = torch.where(cand, area, torch.full_like(area, float("inf")))
        best, gt_index = cost.min(dim=2)
        pos = torch.isfinite(best)
        # every object gets at least one point: the in-box point nearest its centre (its own level first)
        counts = torch.zeros((b, m), device=device).scatter_add_(1, gt_index, pos.float())
        needy = valid & (counts == 0)
        if needy.any():
            dist = torch.maximum((px - cx).abs(), (py - cy).abs()) / strides[None, :, None] + 1e3 * (~in_range)
            dist = torch.where(in_box & ok, dist, torch.full_like(dist, float("inf")))
            dmin, nearest = dist.min(dim=1)  # (B, M)
            bi, mi = torch.nonzero(needy & torch.isfinite(dmin), as_tuple=True)
            ni = nearest[bi, mi]
            pos[bi, ni] = True
            gt_index[bi, ni] = mi
        boxes = torch.gather(gt, 1, gt_index[..., None].expand(b, n, 4))
        labels = torch.gather(gl, 1, gt_index)
        return {"pos": pos, "gt_index": gt_index, "labels": labels, "boxes": boxes}

    # ------------------------------------------------------------------ loss
    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, torch.Tensor]],
             return_parts: bool = False):
        """Focal class loss + GIoU box loss (+ DFL): a scalar, or a dict of parts with ``return_parts``."""
        flat = self.flatten(outputs)
        if len(targets) != flat["cls"].shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {flat['cls'].shape[0]} images")
        a = self.assign(flat["points"], flat["strides"], flat["level"], targets)
        pos = a["pos"]
        num_pos = max(1.0, float(pos.sum()))
        raw = flat["box_raw"][pos]
        pts = flat["points"][None].expand(pos.shape[0], -1, -1)[pos]
        st = flat["strides"][None].expand(pos.shape[0], -1)[pos]
        pred_boxes = decode_distances(pts, self.distances(raw), st)
        iou, giou = giou_paired(pred_boxes, a["boxes"][pos])
        box_loss = (1 - giou).sum() / num_pos
        cls_t = torch.zeros_like(flat["cls"])
        if self.cls_loss == "quality":
            # the target of a positive's own class is how well its box fits (its IoU), not 1
            cls_t[pos] = F.one_hot(a["labels"][pos], self.num_classes).to(cls_t) * iou.detach().clamp(0)[:, None]
            cls_loss = quality_focal_loss(flat["cls"], cls_t) / num_pos
        else:
            cls_t[pos] = F.one_hot(a["labels"][pos], self.num_classes).to(cls_t)
            cls_loss = sigmoid_focal_loss(flat["cls"], cls_t, alpha=0.25, gamma=2.0, reduction="sum") / num_pos
        total = cls_loss + self.box_weight * box_loss
        parts = {"cls": cls_loss.detach(), "box": box_loss.detach()}
        if self.reg_bins:
            tgt = encode_distances(pts, a["boxes"][pos], st).clamp(0, self.reg_bins - 1.01)
            dfl = self._dfl(raw.unflatten(-1, (4, self.reg_bins)), tgt)
            total = total + self.dfl_weight * dfl
            parts["dfl"] = dfl.detach()
        if return_parts:
            return {"loss": total, **parts}
        return total

    @staticmethod
    def _dfl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Distribution focal loss: cross-entropy towards the two bins around each true distance."""
        if logits.numel() == 0:
            return logits.sum()
        left = target.floor().long()
        w_right = target - left
        logp = logits.log_softmax(-1)
        lp_left = logp.gather(-1, left[..., None])[..., 0]
        lp_right = logp.gather(-1, (left + 1)[..., None])[..., 0]
        return -((1 - w_right) * lp_left + w_right * lp_right).mean()

    @torch.no_grad()
    def side_distributions(self, outputs: Mapping[str, torch.Tensor],
                           targets: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The DFL distribution of every positive cell's four sides, for a batch.

        Returns ``probs (P, 4, bins)`` (each row sums to 1), ``image (P,)`` and ``gt_index (P,)``
        (which object of which image the cell is a positive for, as :meth:`assign` decides) and
        ``target (P, 4)`` (the true distances in strides).  Needs ``reg_bins > 0``.
        """
        if not self.reg_bins:
            raise ValueError("side_distributions needs a DFL head (reg_bins > 0)")
        flat = self.flatten(outputs)
        a = self.assign(flat["points"], flat["strides"], flat["level"], targets)
        pos = a["pos"]
        image = torch.nonzero(pos, as_tuple=True)[0]
        pts = flat["points"][None].expand(pos.shape[0], -1, -1)[pos]
        st = flat["strides"][None].expand(pos.shape[0], -1)[pos]
        probs = flat["box_raw"][pos].unflatten(-1, (4, self.reg_bins)).softmax(-1)
        return {"probs": probs, "image": image, "gt_index": a["gt_index"][pos],
                "target": encode_distances(pts, a["boxes"][pos], st)}

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, outputs: Mapping[str, torch.Tensor], score_threshold: float = 0.3, iou_threshold: float = 0.6,
               max_det: int = 100, levels: Sequence[str] | None = None, nms: bool = True,
               pre_nms_topk: int = 1000) -> list[dict[str, torch.Tensor]]:
        """Raw outputs -> per image ``{"boxes", "scores", "labels", "level"}`` (boxes in image pixels).

        ``levels`` keeps only points of some levels (for looking at one level);
        ``nms=False`` shows every box above the threshold, duplicates included.
        """
        flat = self.flatten(outputs)
        scores = flat["cls"].sigmoid()
        dist = self.distances(flat["box_raw"])
        boxes = decode_distances(flat["points"], dist, flat["strides"]).float()
        first = outputs[f"cls.{self.levels[0]}"]
        h_img, w_img = first.shape[-2] * self.strides[0], first.shape[-1] * self.strides[0]
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, w_img)
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, h_img)
        if levels is not None:
            unknown = [lv for lv in levels if lv not in self.levels]
            if unknown:
                raise ValueError(f"unknown levels {unknown}; this head reads {self.levels}")
            keep_lv = torch.tensor([self.levels[i] in levels for i in flat["level"].tolist()], device=boxes.device)
        else:
            keep_lv = torch.ones(len(flat["level"]), dtype=torch.bool, device=boxes.device)
        results = []
        for i in range(scores.shape[0]):
            s = scores[i] * keep_lv[:, None]
            idx, cls = torch.nonzero(s > score_threshold, as_tuple=True)
            sc = s[idx, cls]
            if len(sc) > pre_nms_topk:
                top = sc.topk(pre_nms_topk).indices
                idx, cls, sc = idx[top], cls[top], sc[top]
            bx = boxes[i, idx]
            if nms and len(sc):
                keep = tv_batched_nms(bx, sc, cls, iou_threshold)[:max_det]
            else:
                keep = sc.argsort(descending=True)[: max_det if nms else None]
            results.append({"boxes": bx[keep], "scores": sc[keep], "labels": cls[keep],
                            "level": flat["level"][idx[keep]], "point": idx[keep]})
        return results

    @torch.no_grad()
    def cell(self, outputs: Mapping[str, torch.Tensor], level: str, row: int, col: int,
             image: int = 0) -> dict[str, object]:
        """What one cell says: its anchor point, class probabilities, distances (pixels), box, DFL bins."""
        if level not in self.levels:
            raise ValueError(f"unknown level {level!r}; this head reads {self.levels}")
        cls, box = outputs[f"cls.{level}"][image], outputs[f"box.{level}"][image]
        h, w = cls.shape[-2:]
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"cell ({row}, {col}) is outside the {h}x{w} map of level {level}")
        s = self.strides[self.levels.index(level)]
        raw = box[:, row, col]
        dist = self.distances(raw)
        point = torch.tensor([(col + 0.5) * s, (row + 0.5) * s])
        out: dict[str, object] = {
            "point": point, "stride": s, "probs": cls[:, row, col].sigmoid(),
            "distances_px": dist * s, "box": decode_distances(point, dist, s),
        }
        if self.reg_bins:
            out["bins"] = raw.unflatten(-1, (4, self.reg_bins)).softmax(-1)
        return out
