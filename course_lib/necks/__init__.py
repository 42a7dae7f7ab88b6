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

from ..contract import FeatureSpec, Registry

NECKS = Registry("neck")


def build(name: str, in_specs: Mapping[str, FeatureSpec], **kw) -> nn.Module:
    """Build a registered neck from the specs of the maps it will receive."""
    return NECKS.get(name)(in_specs, **kw)


def names() -> list[str]:
    """The registered neck names."""
    return NECKS.names()


from . import attention, basic, fpn, pan, pooling  # noqa: E402,F401  (register identity, gap, fpn, pan, spp, sppf, aspp, se, cbam)
from .basic import GlobalAvgPool, IdentityNeck  # noqa: E402

# The zoo's necks (yolov8_pan, hybrid_encoder) register when course_lib.heads imports course_lib.zoo.

__all__ = ["NECKS", "build", "names", "IdentityNeck", "GlobalAvgPool", "attention", "fpn", "pan", "pooling"]
