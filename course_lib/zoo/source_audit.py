"""The source text's claims about YOLOv8, each with its original Chinese words and its correction (lesson 09).

The source text is a popular blog post (CSDN, "backbone、head、neck等深度学习中的术语解释").
:data:`CLAIMS` quotes it exactly, including its slips (its copy dropped every
``中``: "在Yolo8head" stands for "在Yolo8中head"), and gives the verdict and the
truth; lesson 09 checks each verdict on the rebuilt YOLOv8n, one assert per claim.
:func:`concat_shapes` records the neck's concatenations, the evidence against
"PAN stitches several small maps into one big map".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from ..hooks import forward_hooks
from ..language import tr
from ..measure import evaluating
from ..model import Model
from .yolov8 import Concat


@dataclass(frozen=True)
class Claim:
    """One sentence of the source text: its exact words, what it claims, the verdict and the truth."""

    quote: str
    claim: str
    verdict: str  # "wrong", "half right" or "right"
    truth: str


CLAIMS: tuple[Claim, ...] = (
    Claim("YOLOv8使用了Darknet53网络作为backbone,这是一种经典的卷积神经网络,具有较强的特征提取能力。",
          "the backbone is Darknet-53", "wrong",
          "Darknet-53 is YOLOv3's (LeakyReLU, 23 residual blocks, 40.6 M parameters without its classifier); "
          "v8 uses Conv + C2f stages + SPPF with SiLU, 1.27 M at scale n"),
    Claim("包括SPP、PAN和SAM三种模块", "SPP is in the head", "wrong",
          "SPPF is the last layer of the backbone (layer 9)"),
    Claim("包括SPP、PAN和SAM三种模块", "PAN is in the head", "wrong",
          "the PAN-FPN path is the neck (layers 10-21); the YAML only files it under `head:`"),
    Claim("SAM模块则使用了注意力机制,通过学习不同区域的重要性,进一步提高了模型的性能。",
          "SAM (attention) is in the head", "wrong", "there is no attention module anywhere in yolov8.yaml"),
    Claim("YOLOv8的head部分使用了YOLOv5的设计", "the head uses YOLOv5's design", "wrong",
          "v5's original head is coupled and anchor-based with objectness (3 anchors x (5 + nc) = 255 channels "
          "per cell at 80 classes); v8's is decoupled, anchor-free, no objectness, with DFL"),
    Claim("在Yolo8head采用了单个卷积层来实现目标的识别和定位。这个卷积层同时输出了目标的类别概率及其位置的坐标",
          "the head is a single conv giving class probabilities and coordinates", "wrong",
          "per level two branches (box, class), three convs each"),
    Claim("YOLOv8的neck部分使用了多尺度特征融合技术,主要包括PANet和FPN两种方法。",
          "the neck uses FPN and PANet", "half right",
          "it is a PAN-FPN path (top-down then bottom-up), but it fuses by concatenation + C2f, not by FPN's and "
          "PANet's addition"),
    Claim("PANet通过对特征图进行不同尺度的池化和上采样来获得多尺度特征图,然后使用特征金字塔结构将它们融合在一起。",
          "PANet pools and upsamples a map to get multi-scale maps, then fuses them with a pyramid", "wrong",
          "PANet (Liu et al. 2018) takes FPN's maps and adds a bottom-up path augmentation (a stride-2 3x3 conv of "
          "the finer level, added to the next level, then a 3x3 conv), plus adaptive feature pooling in its RoI "
          "head (each proposal pooled from every level, then fused); its maps come from the backbone, not from "
          "pooling. YOLOv8's neck has no pooling at all: it goes down with stride-2 convs"),
    Claim("PAN模块则通过将多个小尺寸的特征图拼接成一个大尺寸的特征图", "PAN stitches several small maps into one big map",
          "wrong",
          "each of the neck's four concatenations joins two maps of the same height and width (an upsampled or "
          "downsampled map and a same-size one) along channels: the output keeps their size and adds their "
          "channels"),
)


def verdicts() -> Counter:
    """How many claims got each verdict."""
    return Counter(c.verdict for c in CLAIMS)


def audit_table() -> str:
    """The audit as a Markdown table: number, original words, claim, verdict, truth (in the learner's language)."""
    lines = [tr("| # | the source text (原文) | what it claims | verdict | the truth |"), "|---|---|---|---|---|"]
    lines += [f"| {i} | {c.quote} | {tr(c.claim)} | **{tr(c.verdict)}** | {tr(c.truth)} |"
              for i, c in enumerate(CLAIMS, 1)]
    return "\n".join(lines)


def concat_shapes(model: Model, size: int = 640) -> list[tuple[list[tuple[int, ...]], tuple[int, ...]]]:
    """Every call of the neck's Concat on a ``size`` image: ``(input shapes, output shape)``, in order."""
    calls: list[tuple[list[tuple[int, ...]], tuple[int, ...]]] = []

    def hook(module, inputs, output):
        calls.append(([tuple(t.shape) for t in inputs[0]], tuple(output.shape)))

    with forward_hooks((m, hook) for m in model.neck.modules() if isinstance(m, Concat)), evaluating(model):
        model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    return calls


__all__ = ["CLAIMS", "Claim", "audit_table", "concat_shapes", "verdicts"]
