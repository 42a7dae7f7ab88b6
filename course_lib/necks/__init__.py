"""Necks: the brain (颈部).  Named maps in, fused named maps out.

A neck is built from the backbone's ``out_specs`` and exposes its own, so the
head can be built from it.  "No neck" is a real choice: ``identity`` passes the
maps through and ``gap`` (global average pooling) is the whole neck of a
classifier.

>>> import course_lib as cl
>>> bb = cl.backbones.build("resnet18")
>>> neck = cl.necks.build("gap", bb.out_specs)
>>> neck.out_specs
OrderedDict({'pooled': FeatureSpec(channels=512, stride=None)})
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from ..contract import FeatureSpec, Registry, import_modules

NECKS = Registry("neck")


def build(name: str, in_specs: Mapping[str, FeatureSpec], **kw) -> nn.Module:
    """Build a registered neck from the specs of the maps it will receive."""
    return NECKS.get(name)(in_specs, **kw)


def names() -> list[str]:
    """The registered neck names."""
    return NECKS.names()


# Every module in this folder is imported, and registers its necks (identity, gap, fpn, pan, spp, sppf, aspp,
# se, cbam, ...) with @NECKS.register: a new neck is one new file here.
import_modules(__name__, __path__)
from . import attention, fpn, pan, pooling  # noqa: E402  (named in __all__)
from .basic import GlobalAvgPool, IdentityNeck  # noqa: E402

# The zoo's necks (yolov8_pan, hybrid_encoder) register when course_lib.heads imports course_lib.zoo.

__all__ = ["NECKS", "build", "names", "IdentityNeck", "GlobalAvgPool", "attention", "fpn", "pan", "pooling"]
