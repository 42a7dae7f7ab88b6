"""Find the backbone, neck and head inside other people's models (torchvision's), and run them as a course Model.

torchvision does not use the three-part names the way this course does:
RetinaNet and FCOS keep the FPN *inside* the object called ``.backbone``
(``backbone.body`` is the ResNet, ``backbone.fpn`` the neck), and DeepLabV3's
``.classifier`` holds both the ASPP neck and the final 1x1 head.
:func:`split_torchvision` says where the three parts live;
:func:`as_course_model` (also ``cl.from_torchvision``) turns any torchvision
classifier, detector or segmenter into a course :class:`~course_lib.model.Model`
whose output is the original's, so every explorer works on it::

    net = torchvision.models.swin_t()
    model = cl.from_torchvision(net)      # backbone C2..C5 (found), neck: pooling, head: the classifier
    model.backbone.out_specs              # C2 96ch /4, C3 192ch /8, C4 384ch /16, C5 768ch /32

* **classifiers**: the backbone is the feature extractor, staged by
  :func:`course_lib.backbones.from_module` (stages found by one probe); the
  neck is the pooling (global average, VGG's 7x7 average, ViT's class token);
  the head is the classifier layers.
* **detectors** (Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite):
  the backbone is torchvision's own resizing and normalisation
  (``model.transform``) then the body's maps, so strides are those of the
  resized batch; the neck is the FPN (SSD: its extra layers); the head is
  everything after (RPN + RoI heads, or the dense head, anchors and box
  decoding), and returns the original's detections.
* **segmenters** (DeepLabV3, FCN, LR-ASPP): the backbone's maps (a dilated last
  stage keeps the name C5; its spec says stride 8 or 16), the neck is ASPP
  (DeepLabV3) or nothing, the head is the classifier and the upsampling.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.custom import ModuleBackbone, _stride, from_module
from ..contract import Backbone, FeatureSpec, Head, Neck, check_image_batch
from ..language import tr
from ..measure import _device, count_params, evaluating
from ..model import Model


def split_torchvision(model: nn.Module) -> OrderedDict[str, tuple[str, nn.Module]]:
    """``{"backbone": (path, module), "neck": ..., "head": ...}``: where the parts of a torchvision detector or
    segmenter live (the one table :func:`as_course_model` builds on)."""
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3

    if isinstance(model, (RetinaNet, FCOS)):
        return OrderedDict(
            backbone=("model.backbone.body", model.backbone.body),
            neck=("model.backbone.fpn", model.backbone.fpn),
            head=("model.head", model.head),
        )
    if isinstance(model, GeneralizedRCNN):  # Faster, Mask and Keypoint R-CNN
        return OrderedDict(
            backbone=("model.backbone.body", model.backbone.body),
            neck=("model.backbone.fpn", model.backbone.fpn),
            head=("model.rpn + model.roi_heads", nn.ModuleDict({"rpn": model.rpn, "roi_heads": model.roi_heads})),
        )
    if isinstance(model, SSD):  # SSD300, SSDlite: the extra layers build the coarser levels (MMDetection's SSDNeck)
        return OrderedDict(
            backbone=("model.backbone.features", model.backbone.features),
            neck=("model.backbone.extra", model.backbone.extra),
            head=("model.head", model.head),
        )
    if isinstance(model, DeepLabV3):
        return OrderedDict(
            backbone=("model.backbone", model.backbone),
            neck=("model.classifier[0]  (ASPP)", model.classifier[0]),
            head=("model.classifier[1:]", nn.Sequential(*list(model.classifier.children())[1:])),
        )
    if isinstance(model, (FCN, LRASPP)):
        return OrderedDict(
            backbone=("model.backbone", model.backbone),
            neck=("(none)", nn.Identity()),
            head=("model.classifier", model.classifier),
        )
    raise TypeError(f"don't know how to split a {type(model).__name__}; supported: torchvision's R-CNNs, RetinaNet, "
                    "FCOS, SSD, DeepLabV3, FCN, LR-ASPP (classifiers too, as a course Model: as_course_model)")


def trace_torchvision(model: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
    """Run the three parts of a torchvision detector/segmenter by hand on ``x`` and describe each output.

    Returns rows ``{"part", "where", "params", "outputs"}`` where ``outputs``
    maps output names to shapes.  The pre/post-processing torchvision wraps
    around detectors (resizing to 800 px, box decoding) is skipped: this is
    the bare network.
    """
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.segmentation import DeepLabV3

    if not isinstance(model, (RetinaNet, FCOS, DeepLabV3)):
        raise TypeError(f"trace_torchvision runs RetinaNet, FCOS and DeepLabV3 bare; for a {type(model).__name__} "
                        "use as_course_model(model).trace(x)")
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
    """Draw backbone -> neck -> head as three boxes with their outputs (a static diagram).

    Each box says what the part is, where it lives in the model, its parameters and the shape of each output
    (at most five, then "... and N more"); every text is at least :data:`~course_lib.render.MIN_PT`.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from ..render import MIN_PT, TEXT_PT, monospace

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3))
    colors = {"backbone": "#cfe2f3", "neck": "#d9ead3", "head": "#fce5cd"}
    names = {"backbone": tr("backbone (the eye)"), "neck": tr("neck (the brain)"), "head": tr("head (the judgement)")}
    for i, row in enumerate(rows):
        x0 = i * 3.6
        ax.add_patch(FancyBboxPatch((x0, 0), 3.0, 2.2, boxstyle="round,pad=0.05",
                                    fc=colors.get(row["part"], "#eee"), ec="#555"))
        ax.text(x0 + 1.5, 2.1, names.get(row["part"], row["part"]), ha="center", va="top", fontsize=TEXT_PT,
                weight="bold")
        ax.text(x0 + 1.5, 1.78, row["where"] + "\n" + tr("{m:.2f} M params", m=row["params"] / 1e6), ha="center",
                va="top", fontsize=MIN_PT)
        outs = list(row["outputs"].items())
        text = "\n".join(f"{k}: {tuple(v)}" for k, v in outs[:5]) + (
            "\n" + tr("... and {n} more", n=len(outs) - 5) if len(outs) > 5 else "")
        ax.text(x0 + 1.5, 1.12, text, ha="center", va="top", fontsize=MIN_PT, family=monospace())
        if i:
            ax.add_patch(FancyArrowPatch((x0 - 0.6, 1.1), (x0 - 0.05, 1.1), arrowstyle="->", mutation_scale=14))
    ax.set_xlim(-0.2, 3.6 * len(rows))
    ax.set_ylim(-0.2, 2.4)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=TEXT_PT)
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


# ----------------------------------------------------------------------------- any torchvision model as a course Model
class _Batch:
    """What a torchvision head needs besides the maps: the resized batch and each image's size before and after.

    The backbone part writes it on every forward pass and the head part reads it (the two share one instance).
    """

    def __init__(self) -> None:
        self.images: Any = None
        self.original_sizes: list[tuple[int, int]] = []
        self.input_size: tuple[int, int] | None = None


def _by_stride(strides: Sequence[int], keys: Sequence[str], prefix: str) -> list[str]:
    """Level names by stride (``C3`` for /8); two maps at one stride: the earlier is ``C5_<torchvision key>``."""
    names = [f"{prefix}{int(round(math.log2(s)))}" for s in strides]
    return [f"{n}_{k}" if n in names[i + 1:] else n for i, (n, k) in enumerate(zip(names, keys))]


class TorchvisionBackbone(Backbone):
    """A torchvision model's body as the eye: its own ``transform`` (detectors) first, then the body's maps.

    ``out_specs`` are those of :class:`~course_lib.backbones.custom.ModuleBackbone` on the body; after a
    resizing ``transform`` the strides count pixels of the resized batch.
    """

    def __init__(self, body: ModuleBackbone, batch: _Batch, transform: nn.Module | None = None, name: str = ""):
        super().__init__()
        self.name = name
        self.body = body
        self.transform = transform
        self.__dict__["batch"] = batch  # shared with the head, not a submodule
        self.out_specs = body.out_specs

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        check_image_batch(x, f"backbone {self.name!r}")
        self.batch.input_size = tuple(x.shape[-2:])
        if self.transform is None:
            return self.body(x)
        self.batch.original_sizes = [tuple(img.shape[-2:]) for img in x]
        self.batch.images, _ = self.transform(list(x))
        return self.body(self.batch.images.tensors)


class TorchvisionNeck(Neck):
    """A torchvision neck (an FPN, SSD's extra layers, ASPP) between course names.

    It reads the backbone's maps in order, gives them to ``module`` under the names torchvision uses
    (``in_names``), and names each output by its stride (``P3``, ``P4``, ...), measured by one probe.
    ``kind``: ``"fpn"`` (dict in, dict out), ``"ssd"`` (the maps pass through, extra layers add coarser
    ones; ``l2_scale`` is SSD300's rescaled first map) or ``"one"`` (one map in, one out).
    """

    def __init__(self, module: nn.Module, in_specs: Mapping[str, FeatureSpec], kind: str, in_names: Sequence[str] = (),
                 name: str = "", l2_scale: nn.Parameter | None = None, probe_size: int = 256):
        super().__init__()
        self.name = name or kind
        self.module = module
        self.kind = kind
        self.in_specs = OrderedDict(in_specs)
        self.in_keys = tuple(k for k, s in in_specs.items() if s.stride is not None)
        self.in_names = list(in_names)
        self.l2_scale = l2_scale
        self._names: list[str] = []
        self.out_specs: OrderedDict[str, FeatureSpec] = OrderedDict()
        zeros = OrderedDict((k, torch.zeros(1, s.channels, max(1, probe_size // s.stride),
                                            max(1, probe_size // s.stride), device=_device(module)))
                            for k, s in self.in_specs.items() if s.stride is not None)
        with evaluating(module):
            outs = self._run(zeros)
        strides = [_stride((probe_size, probe_size), tuple(t.shape[-2:]), strict=False) for t in outs]
        keys = list(self._names) if self._names else [str(i) for i in range(len(outs))]
        for level, t, stride in zip(_by_stride(strides, keys, "P"), outs, strides):
            self.out_specs[level] = FeatureSpec(int(t.shape[1]), stride)

    def _run(self, feats: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        maps = [feats[k] for k in self.in_keys]
        if self.kind == "fpn":
            out = self.module(OrderedDict(zip(self.in_names, maps)))
            self._names = list(out)
            return list(out.values())
        if self.kind == "one":
            return [self.module(maps[-1])]
        if self.l2_scale is not None:  # SSD300: conv4_3 rescaled by a learned per-channel weight
            maps = [self.l2_scale.view(1, -1, 1, 1) * F.normalize(maps[0])] + maps[1:]
        outs, x = list(maps), feats[self.in_keys[-1]]
        for block in self.module:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict(zip(self.out_specs, self._run(feats)))


class TorchvisionDetectionHead(Head):
    """Everything after the neck of a torchvision detector, run as the original's ``forward`` runs it in eval mode.

    R-CNNs: RPN proposals -> RoI heads (boxes, masks, keypoints); RetinaNet / FCOS / SSD: the dense head, the
    anchors and the box decoding.  Then boxes are scaled back to each input image
    (``transform.postprocess``).  Returns torchvision's list of dicts, one per image.
    """

    def __init__(self, net: nn.Module, in_specs: Mapping[str, FeatureSpec], names: Sequence[str], batch: _Batch):
        super().__init__()
        from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

        self.name = f"{type(net).__name__.lower()}_head"
        self.in_specs = OrderedDict(in_specs)
        self.in_keys = tuple(in_specs)
        self.names = list(names)
        self.rcnn = isinstance(net, GeneralizedRCNN)
        if self.rcnn:
            self.rpn, self.roi_heads = net.rpn, net.roi_heads
        else:
            self.head, self.anchor_generator = net.head, net.anchor_generator
        self.__dict__["net"] = net  # for its box decoding (no parameters), not a submodule
        self.__dict__["batch"] = batch

    @torch.no_grad()
    def decode(self, outputs, **kw):
        """The detections are already decoded: one dict per image (``boxes``, ``scores``, ``labels``, ...)."""
        return outputs

    def loss(self, outputs, targets):
        raise NotImplementedError("train the torchvision model itself (model(images, targets) in train mode)")

    def forward(self, feats: Mapping[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        images, net = self.batch.images, self.net
        if self.rcnn:
            features = OrderedDict(zip(self.names, (feats[k] for k in self.in_keys)))
            proposals, _ = self.rpn(images, features)
            detections, _ = self.roi_heads(features, proposals, images.image_sizes)
        else:
            from torchvision.models.detection import FCOS, RetinaNet

            features = [feats[k] for k in self.in_keys]
            head_outputs = self.head(features)
            anchors = self.anchor_generator(images, features)
            if isinstance(net, (RetinaNet, FCOS)):
                per_level = [x.size(2) * x.size(3) for x in features]
                if isinstance(net, RetinaNet):
                    per_anchor = head_outputs["cls_logits"].size(1) // sum(per_level)
                    per_level = [hw * per_anchor for hw in per_level]
                split = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
                split_anchors = [list(a.split(per_level)) for a in anchors]
                detections = net.postprocess_detections(split, split_anchors, images.image_sizes)
            else:  # SSD, SSDlite
                detections = net.postprocess_detections(head_outputs, anchors, images.image_sizes)
        return net.transform.postprocess(detections, images.image_sizes, self.batch.original_sizes)


class TorchvisionSegmentationHead(Head):
    """A torchvision segmenter's classifier, then the upsampling to the input size (its forward's last step)."""

    def __init__(self, classifier: nn.Module, in_specs: Mapping[str, FeatureSpec], key: str, batch: _Batch,
                 aux: nn.Module | None = None, aux_key: str | None = None, low_key: str | None = None):
        super().__init__()
        self.name = "segmentation"
        self.in_specs = OrderedDict(in_specs)
        self.classifier = classifier
        self.aux_classifier = aux
        self.key, self.aux_key, self.low_key = key, aux_key, low_key
        self.in_keys = tuple(k for k in (low_key, key, aux_key) if k)
        self.__dict__["batch"] = batch

    def decode(self, outputs, **kw):
        """One class index per pixel."""
        return outputs["out"].argmax(1)

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs["out"], targets)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        size = self.batch.input_size
        if self.low_key is not None:  # LR-ASPP reads a fine and a coarse map
            x = self.classifier({"low": feats[self.low_key], "high": feats[self.key]})
        else:
            x = self.classifier(feats[self.key])
        out = OrderedDict(out=F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        if self.aux_classifier is not None:
            a = self.aux_classifier(feats[self.aux_key])
            out["aux"] = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        return out


class Pooling(Neck):
    """A classifier's pooling as the neck: ``layers`` turn the last map (or ViT's class token) into one vector."""

    def __init__(self, in_specs: Mapping[str, FeatureSpec], key: str, layers: Sequence[nn.Module], name: str):
        super().__init__()
        self.name = name
        self.in_specs = OrderedDict(in_specs)
        self.in_keys = (key,)
        self.layers = nn.Sequential(*layers)
        self.out_specs = OrderedDict()  # measured by as_course_model

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict(pooled=self.layers(feats[self.in_keys[0]]))


class ClassifierLayers(Head):
    """A classifier's last layers as the head: pooled vector in, logits out."""

    def __init__(self, in_specs: Mapping[str, FeatureSpec], layers: Sequence[nn.Module],
                 class_names: Sequence[str] | None = None, key: str = "pooled"):
        super().__init__()
        from ..heads.classification import ClassificationHead

        self.name = "classifier"
        self.in_specs = OrderedDict(in_specs)
        self.in_keys = (key,)
        self.layers = nn.Sequential(*layers)
        self.class_names = list(class_names) if class_names is not None else None
        self._decode = ClassificationHead.decode

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.layers(feats[self.in_keys[0]])

    def decode(self, logits: torch.Tensor, k: int = 5):
        """Softmax, then the top ``k`` classes per image (names: ``class i`` unless given)."""
        if self.class_names is None:
            self.class_names = [f"class {i}" for i in range(logits.shape[-1])]
        return self._decode(self, logits, k)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


class _ViTTrunk(nn.Module):
    """ViT up to its encoder: patches -> tokens, the class token in front, the encoder (what ``forward`` does)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.conv_proj, self.encoder = vit.conv_proj, vit.encoder
        self.class_token = vit.class_token
        self.image_size, self.hidden_dim = vit.image_size, vit.hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        return self.encoder(torch.cat([self.class_token.expand(n, -1, -1), x], dim=1))


class _Mean(nn.Module):
    """``x.mean([2, 3])``: the global average pooling ShuffleNet and MNASNet write inline."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean([2, 3])


class _ClassToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _seq(*named: tuple[str, nn.Module]) -> nn.Sequential:
    """A feature extractor as a Sequential that keeps the original names (``layer1``, ``features``, ...)."""
    return nn.Sequential(OrderedDict(named))


_REFUSED = {
    "GoogLeNet": "its forward() runs auxiliary classifiers and functional input scaling between its layers",
    "Inception3": "its forward() runs auxiliary classifiers and functional input scaling between its layers",
}


def _classifier_parts(net: nn.Module) -> tuple[nn.Module, str, list[nn.Module], list[nn.Module], dict] | None:
    """(feature extractor, pooling name, pooling layers, head layers, from_module options) for a classifier."""
    from torchvision import models as M

    flat = nn.Flatten(1)
    if isinstance(net, M.ResNet):
        trunk = _seq(*[(n, getattr(net, n)) for n in
                       ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")])
        return trunk, "gap", [net.avgpool, flat], [net.fc], {}
    if isinstance(net, M.RegNet):
        return _seq(("stem", net.stem), ("trunk_output", net.trunk_output)), "gap", [net.avgpool, flat], [net.fc], {}
    if isinstance(net, M.VGG):
        return net.features, "avgpool 7x7", [net.avgpool, flat], [net.classifier], {}
    if isinstance(net, M.DenseNet):
        return net.features, "relu + gap", [nn.ReLU(), nn.AdaptiveAvgPool2d(1), flat], [net.classifier], {}
    if isinstance(net, M.MobileNetV2):
        return net.features, "gap", [nn.AdaptiveAvgPool2d(1), flat], [net.classifier], {}
    if isinstance(net, (M.MobileNetV3, M.EfficientNet)):
        return net.features, "gap", [net.avgpool, flat], [net.classifier], {}
    if isinstance(net, M.ConvNeXt):  # the classifier's LayerNorm2d and Flatten act on the pooled map
        norm, flatten, *rest = net.classifier
        return net.features, "gap + layernorm", [net.avgpool, norm, flatten], rest, {}
    if isinstance(net, M.ShuffleNetV2):
        trunk = _seq(*[(n, getattr(net, n)) for n in ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")])
        return trunk, "gap", [_Mean()], [net.fc], {}
    if isinstance(net, M.MNASNet):
        return net.layers, "gap", [_Mean()], [net.classifier], {}
    if isinstance(net, M.SqueezeNet):  # its classifier convolves the map, then pools: no neck between
        return net.features, "none (the head pools)", [], [net.classifier, flat], {}
    if isinstance(net, M.SwinTransformer):
        return (_seq(("features", net.features), ("norm", net.norm)), "gap", [nn.AdaptiveAvgPool2d(1), flat],
                [net.head], {"layout": "nhwc"})
    if isinstance(net, M.MaxVit):
        pool, flatten, *rest = net.classifier
        trunk = _seq(("stem", net.stem), ("blocks", nn.Sequential(*net.blocks)))
        return trunk, "gap", [pool, flatten], rest, {"input_size": 32 * net.partition_size}
    if isinstance(net, M.VisionTransformer):
        return _ViTTrunk(net), "class token", [_ClassToken()], [net.heads], {"layout": "tokens", "class_token": True}
    return None


def _classifier_model(net: nn.Module, probe_size: int, class_names: Sequence[str] | None) -> Model:
    trunk, pool_name, pool, head, opts = _classifier_parts(net)
    trunk.train(net.training)  # a new wrapper starts in training mode; looking at it must not change net's mode
    backbone = from_module(trunk, name=type(net).__name__.lower(), probe_size=probe_size, **opts)
    key = "class_token" if opts.get("class_token") else [k for k, s in backbone.out_specs.items() if s.stride][-1]
    if not pool:  # SqueezeNet: the head convolves the map and pools it itself
        from ..necks import build as build_neck

        neck = build_neck("identity", backbone.out_specs)
        return Model(backbone, neck, ClassifierLayers(neck.out_specs, head, class_names, key=key))
    neck = Pooling(backbone.out_specs, key, pool, pool_name)
    spec = backbone.out_specs[key]
    size = backbone.input_size or probe_size
    with evaluating(neck), torch.no_grad():
        shape = (1, spec.channels) if spec.stride is None else (1, spec.channels, max(1, size // spec.stride),
                                                                 max(1, size // spec.stride))
        probe = torch.zeros(shape, device=_device(net))
        neck.out_specs["pooled"] = FeatureSpec(int(neck(OrderedDict([(key, probe)]))["pooled"].shape[1]), None)
    return Model(backbone, neck, ClassifierLayers(neck.out_specs, head, class_names))


def _body_backbone(body: nn.Module, return_layers: Mapping[str, str], probe_size: int, names: Mapping[str, str],
                   batch: _Batch, transform: nn.Module | None, name: str) -> tuple[TorchvisionBackbone, list[str]]:
    """The body's returned layers as stages: named by stride (or by ``names``: torchvision key -> level)."""
    bb = from_module(body, taps=list(return_layers), probe_size=probe_size, name=name)
    paths = list(return_layers)
    by_stride = _by_stride([bb.out_specs[p].stride for p in paths], [return_layers[p] for p in paths], "C")
    bb.rename({p: names.get(return_layers[p]) or level for p, level in zip(paths, by_stride)})
    order = list(return_layers.values())  # the order torchvision hands the maps on
    return TorchvisionBackbone(bb, batch, transform, name), order


def _detector_model(net: nn.Module, probe_size: int) -> Model:
    from torchvision.models.detection.ssd import SSD

    batch = _Batch()
    name = type(net).__name__.lower()
    parts = split_torchvision(net)
    if isinstance(net, SSD):
        feats = parts["backbone"][1]
        vgg = hasattr(net.backbone, "scale_weight")
        layers = OrderedDict([(str(len(feats) - 1), "0")] if vgg else
                             [(str(i), str(i)) for i in range(len(feats))])
        probe_size = 320  # SSD's valid convs need a large enough map at every level
        backbone, _ = _body_backbone(feats, layers, probe_size, {}, batch, net.transform, name)
        neck = TorchvisionNeck(parts["neck"][1], backbone.out_specs, "ssd", name="ssd extra layers",
                               l2_scale=net.backbone.scale_weight if vgg else None, probe_size=probe_size)
        names = [str(i) for i in range(len(neck.out_specs))]
    else:
        body, fpn = parts["backbone"][1], parts["neck"][1]
        backbone, order = _body_backbone(body, body.return_layers, probe_size, {}, batch, net.transform, name)
        neck = TorchvisionNeck(fpn, backbone.out_specs, "fpn", order, name="fpn", probe_size=probe_size)
        with evaluating(fpn), torch.no_grad():
            zeros = OrderedDict((k, torch.zeros(1, s.channels, 8, 8, device=_device(net)))
                                for k, s in zip(order, backbone.out_specs.values()))
            names = list(fpn(zeros))
    return Model(backbone, neck, TorchvisionDetectionHead(net, neck.out_specs, names, batch))


def _segmenter_model(net: nn.Module, probe_size: int) -> Model:
    from torchvision.models.segmentation import LRASPP, DeepLabV3

    batch = _Batch()
    name = type(net).__name__.lower()
    parts = split_torchvision(net)
    body = parts["backbone"][1]
    backbone, _ = _body_backbone(body, body.return_layers, probe_size, {"out": "C5", "high": "C5", "aux": "C4"},
                                 batch, None, name)
    low = next((k for k in backbone.out_specs if k not in ("C5", "C4")), None)
    aux = getattr(net, "aux_classifier", None)
    if isinstance(net, DeepLabV3):
        neck = TorchvisionNeck(parts["neck"][1], OrderedDict(C5=backbone.out_specs["C5"]), "one", name="aspp")
        head_in, key = neck.out_specs, next(iter(neck.out_specs))
        if aux is not None:
            raise TypeError("DeepLabV3 with aux_loss=True cannot be split cleanly: its auxiliary classifier reads "
                            "C4, which the ASPP neck does not pass on. Split the model built with aux_loss=False "
                            "(the auxiliary head only helps training)")
        head = TorchvisionSegmentationHead(parts["head"][1], head_in, key, batch)
        return Model(backbone, neck, head)
    from ..necks import build as build_neck

    neck = build_neck("identity", backbone.out_specs)
    if isinstance(net, LRASPP):
        head = TorchvisionSegmentationHead(parts["head"][1], neck.out_specs, "C5", batch, low_key=low)
    else:  # FCN
        head = TorchvisionSegmentationHead(parts["head"][1], neck.out_specs, "C5", batch, aux=aux,
                                           aux_key="C4" if aux is not None else None)
    return Model(backbone, neck, head)


def as_course_model(net: nn.Module, probe_size: int = 224, class_names: Sequence[str] | None = None) -> Model:
    """A torchvision classifier, detector or segmenter as a course :class:`~course_lib.model.Model`.

    ``model(x)`` gives what ``net`` gives (a detector: ``net(list(x))``, its detections), now made of a
    backbone with ``out_specs``, a neck and a head, so ``model.trace(x)`` and every explorer work on it.
    The parts are ``net``'s own modules (no copy: training one trains the other).  A model whose parts
    cannot be cut apart cleanly raises :class:`TypeError` saying why and what to do instead.
    """
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3

    if not isinstance(net, nn.Module):
        raise TypeError(f"as_course_model takes a torchvision model (an nn.Module), got {type(net).__name__}")
    kind = type(net).__name__
    if kind in _REFUSED:
        raise TypeError(f"{kind} cannot be split cleanly: {_REFUSED[kind]}. Look at its stages with "
                        "cl.backbones.from_module(net) (found automatically) and pick a neck and head yourself")
    if isinstance(net, (GeneralizedRCNN, RetinaNet, FCOS, SSD)):
        model = _detector_model(net, probe_size)
    elif isinstance(net, (DeepLabV3, FCN, LRASPP)):
        model = _segmenter_model(net, probe_size)
    elif _classifier_parts(net) is not None:
        model = _classifier_model(net, probe_size, class_names)
    else:
        raise TypeError(f"as_course_model knows torchvision's classifiers, detectors (R-CNN, RetinaNet, FCOS, SSD) "
                    f"and segmenters (DeepLabV3, FCN, LR-ASPP), not a {kind}. For a backbone alone: "
                    "cl.backbones.from_module(net) finds its stages")
    return model.train(net.training)
