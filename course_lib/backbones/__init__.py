"""Backbones: the eye (主干网络).  Image batch in, named multi-scale maps out.

Every backbone returns an ordered dict ``{"C2": ..., "C3": ..., "C4": ..., "C5": ...}``
where ``Ck`` has stride ``2**k`` and says so in ``out_specs``.

>>> import course_lib as cl
>>> bb = cl.backbones.build("resnet18")
>>> bb.out_specs["C5"]
FeatureSpec(channels=512, stride=32)
"""

from __future__ import annotations

from torch import nn

from ..contract import Registry, import_modules

BACKBONES = Registry("backbone")


def build(name: str, pretrained: bool = False, **kw) -> nn.Module:
    """Build a registered backbone by name (``names()`` lists them).

    ``pretrained=True`` loads the official ImageNet weights through
    :mod:`course_lib.weights` (offline first; raises a clear
    :class:`~course_lib.weights.WeightsNotFoundError` when they are missing).
    """
    return BACKBONES.get(name)(pretrained=pretrained, **kw)


def names() -> list[str]:
    """The registered backbone names."""
    return BACKBONES.names()


# Every module in this folder is imported, and registers its backbones (tiny_cnn, the torchvision ones,
# yolo_csp, ...) with @BACKBONES.register: a new backbone is one new file here.
import_modules(__name__, __path__)
from .custom import ModuleBackbone, capture, from_module  # noqa: E402
from .torchvision_backbones import StagedBackbone  # noqa: E402

__all__ = ["BACKBONES", "build", "names", "StagedBackbone", "ModuleBackbone", "capture", "from_module"]
