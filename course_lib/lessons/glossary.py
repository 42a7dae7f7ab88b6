"""Every term the course teaches, with its Chinese name, a one-line definition and where it is taught."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..language import tr


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str
    definition: str
    lesson: str  # "00", "01", ...
    also: tuple[str, ...] = ()  # other Chinese names a learner meets for the same thing (骨干网络 for 主干网络)

    @property
    def chinese_names(self) -> tuple[str, ...]:
        """Every Chinese name: the parts of ``chinese`` split at "/" (锚点 / 锚框), then ``also``."""
        return tuple(n.strip() for n in self.chinese.split("/")) + self.also


TERMS: list[Term] = [
    Term("backbone", "主干网络", "the feature extractor (the eye): image in, multi-scale feature maps out", "00",
         also=("骨干网络",)),
    Term("neck", "颈部", "between backbone and head (the brain): fuses maps across scales", "00"),
    Term("head", "头部", "the task-specific part (the judgement): class scores, boxes or masks", "00"),
    Term("feature map", "特征图", "a (C, H, W) tensor: C pattern detectors evaluated on an H x W grid", "00"),
    Term("stride", "步幅", "how many input pixels one cell of a map steps over", "00", also=("步长",)),
    Term("downsampling", "下采样", "shrinking a map's grid (a stride-2 conv or pool halves H and W)", "00"),
    Term("feature fusion", "特征融合", "combining maps from several stages or positions into one (the neck's job)", "00"),
    Term("global average pooling", "全局平均池化", "GAP: the mean of each channel over the whole map; no parameters",
         "00"),
    Term("convolution", "卷积", "sliding a small filter over the image; each output is a weighted sum of a patch", "01"),
    Term("receptive field", "感受野", "the region of the input that one output cell can see", "01"),
    Term("effective receptive field", "有效感受野", "the part of the receptive field that really moves an output "
         "(measured with gradients): a bright centre fading outwards", "01"),
    Term("dilated convolution", "空洞卷积", "a conv whose taps are d cells apart: a wider view with the same weights "
         "(atrous)", "01"),
    Term("depthwise separable convolution", "深度可分离卷积", "a depthwise conv (one filter per channel, groups=C) "
         "followed by a 1x1 conv that mixes channels: far fewer weights than a full conv", "02"),
    Term("inverted residual", "倒残差", "MobileNetV2's block: 1x1 expand -> depthwise 3x3 -> 1x1 project to a narrow, "
         "linear output", "02"),
    Term("bottleneck", "瓶颈", "1x1 reduce -> 3x3 -> 1x1 expand (ResNet); also a 1x1/linear projection to fewer "
         "features before a new head (transfer learning), and MobileNetV2's narrow layer with no ReLU", "02"),
    Term("pretrained", "预训练", "weights learned on a large data set (ImageNet) before your task", "03"),
    Term("fine-tuning", "微调", "continuing to train pretrained weights on your task, usually with a small learning rate",
         "03"),
    Term("transfer learning", "迁移学习", "reusing what a model learned on one task for another", "03"),
    Term("feature pyramid", "特征金字塔", "maps at several strides, each with strong semantics after fusion", "04"),
    Term("FPN", "特征金字塔网络", "1x1 laterals + top-down upsample-and-add + 3x3 smoothing", "04"),
    Term("PAN", "路径聚合网络", "FPN plus a bottom-up path that brings fine detail back up", "04"),
    Term("SPPF", "快速空间金字塔池化", "one 5x5 max-pool chained three times; equals SPP(5, 9, 13); YOLOv8's last backbone layer",
         "05"),
    Term("ASPP", "空洞空间金字塔池化", "parallel dilated 3x3 convs at several rates plus image pooling", "05"),
    Term("attention", "注意力机制", "learned weights that re-scale channels (SE) or positions (CBAM)", "05"),
    Term("class activation map", "类激活图", "CAM: the class-weighted sum of the last maps before pooling; "
         "it shows where the evidence for a class is", "06"),
    Term("anchor", "锚点 / 锚框", "a reference a detector predicts relative to: a point (anchor-free) or a box", "06"),
    Term("anchor-free", "无锚框", "predict from cell centres (anchor points) instead of preset boxes", "06"),
    Term("IoU", "交并比", "intersection over union of two boxes: overlap / combined area", "06"),
    Term("anchor box", "锚框", "one of k preset box shapes per cell (YOLOv2/v3, RetinaNet, Faster R-CNN); the head "
         "predicts offsets from it", "06"),
    Term("label assignment", "标签分配", "the training rule that decides which cells are positives for which object "
         "(FCOS: centre radius + the level's size band; YOLOv8: task-aligned, top-k by score x IoU)", "06"),
    Term("upsampling", "上采样", "enlarging a map's grid (nearest neighbour or bilinear) to meet a finer one", "06"),
    Term("detection head", "检测头", "the head that answers with boxes: at every cell of every level, class scores "
         "and a box", "06"),
    Term("NMS", "非极大值抑制", "non-maximum suppression: drop boxes that overlap a better-scoring box", "07"),
    Term("decoupled head", "解耦头", "separate branches for classification and box regression", "07"),
    Term("DFL", "分布焦点损失", "distribution focal loss: a box side as a distribution over distance bins", "07"),
    Term("semantic segmentation", "语义分割", "one class label for every pixel", "07"),
    Term("mAP", "平均精度均值", "mean average precision: area under precision-recall, averaged over classes", "08"),
    Term("ablation", "消融实验", "remove one part, keep the rest, measure what changes", "08"),
    Term("concatenation", "拼接", "fusing maps by stacking their channels (the width adds up); a conv after it "
         "learns the mix", "09"),
    Term("addition", "相加", "fusing maps of the same width element-wise (FPN, PANet): the width stays", "09"),
    Term("object query", "目标查询", "a vector a DETR decoder turns into one box (learned in DETR; in RT-DETR the top-K "
         "encoder cells by class score); no NMS needed", "09"),
    Term("multi-task learning", "多任务学习", "one shared backbone and neck feeding several heads", "10"),
    Term("vision transformer", "视觉Transformer", "ViT: an image cut into patches, each patch a token, and a stack of "
         "transformer blocks over the tokens; one map at one stride", "11"),
    Term("patch embedding", "图像块嵌入", "cutting the image into p x p patches and mapping each to a vector with one "
         "matrix: a conv with kernel = stride = p", "11"),
    Term("token", "词元", "one vector of the sequence a transformer reads (here: one patch, or the class token)", "11"),
    Term("class token", "类别标记", "one extra learned token put in front of the patches; the ViT paper's classifier "
         "reads it at the end", "11"),
    Term("self-attention", "自注意力", "every token takes a weighted mean of all tokens' values, the weights "
         "softmax(Q K^T / sqrt(d)) of their queries and keys", "11"),
    Term("shifted window", "移位窗口", "Swin: attention inside small windows, the windows shifted by half a window in "
         "every other block so that neighbouring windows exchange information", "11"),
    Term("simple feature pyramid", "简单特征金字塔", "ViTDet's neck: strides 8-32 (or 4-64) made from one stride-16 map "
         "by deconvolutions and pooling, no top-down path", "11"),
]


def lesson_notebook(lesson: str, root: str | Path | None = None) -> Path | None:
    """The notebook file of a lesson number in ``root`` (default: the current folder, where a lesson runs), or None."""
    root = Path(root) if root is not None else Path.cwd()
    found = sorted(root.glob(f"{lesson}_*.ipynb"))
    return found[0] if found else None


def lesson_text(path: str | Path) -> str:
    """All the cells' sources of a notebook, joined (what a learner reads and runs)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells)


def missing_from_lessons(terms: list[Term] | None = None, root: str | Path | None = None) -> list[tuple[str, str, str]]:
    """``(lesson, term, name)`` for every English or Chinese name that its lesson's notebook does not contain.

    The English name is matched ignoring case, each Chinese name exactly; a lesson that is not in ``root`` is
    left out.
    """
    missing = []
    for term in terms or TERMS:
        path = lesson_notebook(term.lesson, root)
        if path is None:
            continue
        text = lesson_text(path)
        if term.english.lower() not in text.lower():
            missing.append((term.lesson, term.english, term.english))
        missing += [(term.lesson, term.english, n) for n in term.chinese_names if n not in text]
    return missing


def table_markdown(terms: list[Term] | None = None) -> str:
    """The glossary as a markdown table, its meanings in the learner's language (:func:`~course_lib.set_language`)."""
    rows = [tr("| English | 中文 | meaning | lesson |"), "|---|---|---|---|"]
    rows += [f"| {t.english} | {' / '.join(t.chinese_names)} | {tr(t.definition)} | {t.lesson} |"
             for t in (terms or TERMS)]
    return "\n".join(rows)
