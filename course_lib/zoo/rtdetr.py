"""A small RT-DETR: the same three-part wiring at a size that runs on a laptop.

RT-DETR (Zhao et al., "DETRs Beat YOLOs on Real-time Object Detection") splits as

* **backbone**: a CNN giving maps at strides 8, 16, 32 (HGNetv2 or ResNet in
  the paper; ResNet-18 here);
* **neck** = the *hybrid encoder*: 1x1 projections to one width, **AIFI** -- one
  transformer encoder layer with 2-D sin-cos positions, applied to the /32 map
  only (attention on the smallest map is cheap and that is where semantics
  live) -- then **CCFF**, top-down and bottom-up CNN fusion, giving three maps of
  the same width at /8, /16, /32;
* **head** = a transformer **decoder**: learned object queries attend to all
  fused cells and each query predicts one box and its class scores.  Training
  matches queries to objects one-to-one (Hungarian matching), so the output
  needs **no NMS**.

Simplifications, said plainly: the decoder uses standard multi-head attention
(the paper uses deformable attention), its queries are DETR-style learned
embeddings, the same for every image (the paper's *IoU-aware query selection*
scores every encoder cell with a class head and takes the top K = 300 by score,
features and boxes, as the decoder's initial queries; their score is trained
towards the box's IoU), the fusion blocks are CSP blocks of 3x3 convs (the
paper's RepC3 re-parameterises them for speed), and sizes are scaled down.

The neck and head are registered (``hybrid_encoder``, ``detr_decoder``), so
:func:`build_rtdetr_small` is a config and :func:`course_lib.build_model`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert

from ..blocks import Conv
from ..contract import FeatureSpec, Head, Neck, select_inputs
from ..heads import HEADS
from ..model import Model, build_model
from ..necks import NECKS

#: Published facts about the full-size RT-DETR-l (for the lesson's table; not computed here).
PUBLISHED_RTDETR_L = {
    "params": 32.97e6,
    "backbone_share": 0.41,
    "encoder_share": 0.36,
    "decoder_share": 0.23,
    "backbone": "HGNetv2-style, strides 4/8/16/32; S3 512 ch, S4 1024 ch, S5 2048 ch",
    "encoder": "1x1 projections to 256 ch, AIFI on S5 only, CCFF top-down + bottom-up with RepC3 blocks",
    "decoder": "300 queries, 6 layers of deformable attention, no NMS",
}


def sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions ``(h*w, dim)``: a quarter of the channels each for sin/cos of x and y."""
    if dim % 4:
        raise ValueError(f"the embedding width must be a multiple of 4, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    ox = xs.flatten()[:, None] * omega[None]
    oy = ys.flatten()[:, None] * omega[None]
    return torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1)


class CSPFuse(nn.Module):
    """Fusion block: two 1x1 branches, one through ``n`` 3x3 Convs, added, as in RT-DETR's RepC3 (un-fused)."""

    def __init__(self, c_in: int, c_out: int, n: int = 2):
        super().__init__()
        self.cv1 = Conv(c_in, c_out, 1)
        self.cv2 = Conv(c_in, c_out, 1)
        self.m = nn.Sequential(*(Conv(c_out, c_out, 3) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(self.cv1(x)) + self.cv2(x)


@NECKS.register("hybrid_encoder")
class HybridEncoder(Neck):
    """RT-DETR's neck: projections, AIFI on the deepest map, then CCFF fusion to three equal-width maps."""

    name = "hybrid_encoder"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], dim: int = 128, heads: int = 4,
                 in_keys: Sequence[str] = ("C3", "C4", "C5")):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        in_keys = tuple(in_keys)
        picked = select_inputs("neck 'hybrid_encoder'", in_specs, in_keys, count=3)
        self.in_keys = in_keys
        self.dim = dim
        self.proj = nn.ModuleList(nn.Sequential(nn.Conv2d(s.channels, dim, 1, bias=False), nn.BatchNorm2d(dim))
                                  for s in picked.values())
        self.aifi = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0,
                                               activation="gelu", batch_first=True)
        # CCFF top-down: lateral 1x1, upsample, concat, fuse
        self.lateral = nn.ModuleList([Conv(dim, dim, 1), Conv(dim, dim, 1)])
        self.fuse_td = nn.ModuleList([CSPFuse(2 * dim, dim), CSPFuse(2 * dim, dim)])
        # CCFF bottom-up: 3x3 stride-2, concat, fuse
        self.down = nn.ModuleList([Conv(dim, dim, 3, 2), Conv(dim, dim, 3, 2)])
        self.fuse_bu = nn.ModuleList([CSPFuse(2 * dim, dim), CSPFuse(2 * dim, dim)])
        strides = [s.stride for s in picked.values()]
        self.out_specs = OrderedDict((f"P{int(math.log2(s))}", FeatureSpec(dim, s)) for s in strides)
        self.last_attention_input: tuple[int, int] | None = None

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        s3, s4, s5 = (p(feats[k]) for p, k in zip(self.proj, self.in_keys))
        b, c, h, w = s5.shape
        tokens = s5.flatten(2).transpose(1, 2)                      # (B, h*w, C): one token per /32 cell
        pos = sincos_2d(h, w, c).to(tokens)
        # AIFI: attention among /32 cells only; positions enter as an added embedding
        s5 = self.aifi(tokens + pos[None]).transpose(1, 2).reshape(b, c, h, w)
        self.last_attention_input = (h, w)
        # CCFF top-down
        t5 = self.lateral[0](s5)
        t4 = self.fuse_td[0](torch.cat([F.interpolate(t5, size=s4.shape[-2:], mode="nearest"), s4], 1))
        t4l = self.lateral[1](t4)
        p3 = self.fuse_td[1](torch.cat([F.interpolate(t4l, size=s3.shape[-2:], mode="nearest"), s3], 1))
        # CCFF bottom-up
        p4 = self.fuse_bu[0](torch.cat([self.down[0](p3), t4l], 1))
        p5 = self.fuse_bu[1](torch.cat([self.down[1](p4), t5], 1))
        return OrderedDict(zip(self.out_specs, (p3, p4, p5)))


@HEADS.register("detr_decoder")
class DETRDecoderHead(Head):
    """Object queries + transformer decoder: each query gives one box and its class scores; no NMS.

    ``forward`` returns ``{"logits": (B, Q, num_classes), "boxes": (B, Q, 4)}`` with
    boxes as normalised ``cx, cy, w, h`` in [0, 1].
    """

    name = "detr_decoder"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], num_classes: int = 80, num_queries: int = 100,
                 layers: int = 3, heads: int = 4):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        picked = select_inputs("head 'detr_decoder'", in_specs, None)
        dims = {s.channels for s in picked.values()}
        if len(dims) != 1:
            raise ValueError(f"the decoder reads maps of one width; got {sorted(dims)} channels")
        dim = dims.pop()
        self.num_classes, self.num_queries = num_classes, num_queries
        self.level_embed = nn.Parameter(torch.zeros(len(picked), dim))
        self.queries = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        layer = nn.TransformerDecoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.class_embed = nn.Linear(dim, num_classes)
        self.box_embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                                       nn.Linear(dim, 4))
        nn.init.constant_(self.class_embed.bias, -math.log((1 - 0.01) / 0.01))  # start with low scores

    def forward(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        memory = []
        for i, x in enumerate(feats.values()):
            b, c, h, w = x.shape
            pos = sincos_2d(h, w, c).to(x)
            memory.append(x.flatten(2).transpose(1, 2) + pos[None] + self.level_embed[i])
        memory = torch.cat(memory, 1)                                  # (B, all cells, C)
        q = (self.queries.weight + self.query_pos.weight)[None].expand(memory.shape[0], -1, -1)
        hs = self.decoder(q, memory)
        return {"logits": self.class_embed(hs), "boxes": self.box_embed(hs).sigmoid()}

    @torch.no_grad()
    def decode(self, outputs: Mapping[str, torch.Tensor], image_size: tuple[int, int],
               score_threshold: float = 0.5) -> list[dict[str, torch.Tensor]]:
        """Keep the queries whose best class scores above ``score_threshold``; boxes to pixels. No NMS."""
        h, w = image_size
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        results = []
        for logits, boxes in zip(outputs["logits"], outputs["boxes"]):
            scores, labels = logits.sigmoid().max(-1)
            keep = scores > score_threshold
            xyxy = box_convert(boxes[keep] * scale.to(boxes), "cxcywh", "xyxy")
            results.append({"boxes": xyxy, "scores": scores[keep], "labels": labels[keep]})
        return results

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Set loss: Hungarian-match queries to objects, then focal-style BCE on classes + L1 + GIoU on boxes.

        ``targets[i]`` has ``"boxes"`` (normalised cx, cy, w, h) and ``"labels"``.
        Unmatched queries learn "no object" (all class scores low) -- which is
        why the trained model needs no NMS.
        """
        from scipy.optimize import linear_sum_assignment
        from torchvision.ops import generalized_box_iou

        def xyxy(b: torch.Tensor) -> torch.Tensor:
            return box_convert(b, "cxcywh", "xyxy")

        logits, boxes = outputs["logits"], outputs["boxes"]
        cls_target = torch.zeros_like(logits)
        l1, giou, n_obj = logits.new_zeros(()), logits.new_zeros(()), 0
        for i, t in enumerate(targets):
            if len(t["labels"]) == 0:
                continue
            with torch.no_grad():
                prob = logits[i].sigmoid()[:, t["labels"]]             # (Q, T)
                cost = -prob + torch.cdist(boxes[i], t["boxes"], p=1) \
                    - generalized_box_iou(xyxy(boxes[i]), xyxy(t["boxes"]))
                rows, cols = linear_sum_assignment(cost.cpu().numpy())
            rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
            cls_target[i, rows, t["labels"][cols]] = 1.0
            l1 = l1 + F.l1_loss(boxes[i, rows], t["boxes"][cols], reduction="sum")
            giou = giou + (1 - torch.diag(generalized_box_iou(xyxy(boxes[i, rows]), xyxy(t["boxes"][cols])))).sum()
            n_obj += len(cols)
        cls = F.binary_cross_entropy_with_logits(logits, cls_target, reduction="sum") / max(n_obj, 1)
        return cls + (5 * l1 + 2 * giou) / max(n_obj, 1)


def rtdetr_small_config(num_classes: int = 80, dim: int = 128, num_queries: int = 100,
                        layers: int = 3) -> dict[str, Any]:
    """The :func:`course_lib.build_model` config of the small RT-DETR: three registered names."""
    return {"backbone": {"name": "resnet18", "levels": ("C3", "C4", "C5")},
            "neck": {"name": "hybrid_encoder", "dim": dim},
            "head": {"name": "detr_decoder", "num_classes": num_classes, "num_queries": num_queries,
                     "layers": layers}}


def build_rtdetr_small(num_classes: int = 80, dim: int = 128, num_queries: int = 100, layers: int = 3) -> Model:
    """A runnable, scaled-down RT-DETR: ResNet-18 backbone, hybrid encoder neck, query decoder head."""
    return build_model(rtdetr_small_config(num_classes, dim, num_queries, layers))


__all__ = ["PUBLISHED_RTDETR_L", "sincos_2d", "CSPFuse", "HybridEncoder", "DETRDecoderHead", "rtdetr_small_config",
           "build_rtdetr_small"]
