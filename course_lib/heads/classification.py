"""The classification head: pool, then one linear layer ("this is a cat")."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import weights as W
from ..contract import FeatureSpec, Head, one_input
from . import HEADS

# Where each backbone's official ImageNet classifier lives in torchvision's state dict.
_CLASSIFIER_KEYS = {
    "mobilenet_v2": "classifier.1",
    "resnet18": "fc",
    "resnet50": "fc",
}


class ClassScore(NamedTuple):
    """One line of a verdict: class index, class name, probability."""

    index: int
    name: str
    prob: float


@HEADS.register("classification")
class ClassificationHead(Head):
    """Global average pool (if the input is still a map) -> dropout -> linear -> logits.

    Reads one input map (``key``, default: the last).  With
    ``pretrained="mobilenet_v2"`` (what ``build_model`` passes for
    ``pretrained=True``) it loads the ImageNet classifier that was trained
    together with that backbone, and names the 1000 ImageNet classes.
    """

    name = "classification"

    def __init__(
        self,
        in_specs: Mapping[str, FeatureSpec],
        num_classes: int = 1000,
        in_keys: str | Sequence[str] | None = None,
        dropout: float = 0.2,
        pretrained: str | bool = False,
        class_names: Sequence[str] | None = None,
        download: bool | None = None,
    ):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        key, spec = one_input("head 'classification'", in_specs, in_keys, spatial=False)
        self.in_keys = (key,)
        self.num_classes = num_classes
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(spec.channels, num_classes)
        if pretrained is True:
            raise ValueError(
                "heads.build('classification', pretrained=...) needs the backbone's name, e.g. "
                "pretrained='mobilenet_v2' (build_model fills it in for pretrained=True)"
            )
        if pretrained:
            self._load_imagenet(str(pretrained), spec, num_classes, download)
            class_names = class_names or W.class_names(str(pretrained))
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.class_names = list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]

    def _load_imagenet(self, backbone: str, spec: FeatureSpec, num_classes: int, download: bool | None) -> None:
        if backbone not in _CLASSIFIER_KEYS:
            raise ValueError(
                f"no pretrained linear classifier is available for backbone {backbone!r} "
                f"(available: {', '.join(sorted(_CLASSIFIER_KEYS))}); VGG's classifier is a 3-layer MLP on a "
                "7x7 map, not a linear layer on pooled features. Train a new head instead (pretrained=False)."
            )
        state = W.load_state_dict(backbone, download=download)
        prefix = _CLASSIFIER_KEYS[backbone]
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        if tuple(weight.shape) != (num_classes, spec.channels):
            raise ValueError(
                f"the pretrained {backbone} classifier maps {weight.shape[1]} channels to {weight.shape[0]} classes, "
                f"but this head reads {spec.channels} channels into {num_classes} classes"
            )
        self.fc.load_state_dict({"weight": weight, "bias": bias})

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = feats[self.in_keys[0]]
        if x.ndim == 4:  # still a map: pool it here
            x = x.mean(dim=(2, 3))
        return self.fc(self.dropout(x))

    @torch.no_grad()
    def decode(self, logits: torch.Tensor, k: int = 5) -> list[list[ClassScore]]:
        """Softmax, then the top ``k`` classes per image with names and probabilities."""
        probs = F.softmax(logits.float(), dim=-1)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [
            [ClassScore(int(i), self.class_names[int(i)], float(p)) for p, i in zip(ps, idx)]
            for ps, idx in zip(top.values, top.indices)
        ]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the logits and integer class labels."""
        return F.cross_entropy(logits, targets)
