"""Heads: the judgement (头部).  Fused maps in, the task's answer out.

Every head has ``forward`` (raw numbers), ``decode`` (human terms, one item per image: labels,
boxes, masks) and ``loss`` (what training minimises).

>>> import course_lib as cl
>>> head = cl.heads.build("classification", {"pooled": cl.FeatureSpec(512, None)}, num_classes=10)
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ..contract import FeatureSpec, Registry, import_modules

HEADS = Registry("head")


def build(name: str, in_specs: Mapping[str, FeatureSpec], **kw) -> nn.Module:
    """Build a registered head from the specs of the maps it will read."""
    return HEADS.get(name)(in_specs, **kw)


def names() -> list[str]:
    """The registered head names."""
    return HEADS.names()


# Every module in this folder is imported, and registers its heads with @HEADS.register: a new head is one
# new file here.
import_modules(__name__, __path__)
from .classification import ClassificationHead, ClassScore  # noqa: E402

# isort: split
# The zoo's published architectures register their necks and heads (yolov8_pan, yolov8_detect,
# hybrid_encoder, detr_decoder) once the course's own heads exist.
from .. import zoo  # noqa: E402,F401

__all__ = ["HEADS", "build", "names", "ClassificationHead", "ClassScore"]
