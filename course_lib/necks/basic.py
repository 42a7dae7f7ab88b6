"""The simplest necks: pass everything through, or pool it to one vector."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch

from ..contract import FeatureSpec, Neck, one_input, select_inputs
from . import NECKS


@NECKS.register("identity")
class IdentityNeck(Neck):
    """No neck: the head reads the backbone's maps as they are (optionally only ``in_keys``)."""

    name = "identity"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: Sequence[str] | None = None):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        self.out_specs = select_inputs("neck 'identity'", in_specs, in_keys, spatial=False)
        self.in_keys = tuple(self.out_specs)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict((k, feats[k]) for k in self.out_specs)


@NECKS.register("gap")
class GlobalAvgPool(Neck):
    """Global average pooling: each channel of one map becomes one number.

    A ``(B, C, H, W)`` map becomes a ``(B, C)`` vector named ``"pooled"``: where
    something was seen no longer matters, only how strongly.  By default it
    pools the deepest (last) map.
    """

    name = "gap"

    def __init__(self, in_specs: Mapping[str, FeatureSpec], in_keys: str | Sequence[str] | None = None):
        super().__init__()
        self.in_specs = OrderedDict(in_specs)
        key, spec = one_input("neck 'gap'", in_specs, in_keys)
        self.in_keys = (key,)
        self.out_specs = OrderedDict(pooled=FeatureSpec(spec.channels, None))

    def forward(self, feats: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict(pooled=feats[self.in_keys[0]].mean(dim=(2, 3)))
