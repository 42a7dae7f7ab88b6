"""Path switches: turn one path of a neck off to see what it contributed.

Every fusion neck in :mod:`course_lib.necks` is a few *paths* added or
concatenated together (lateral, top-down, bottom-up; ASPP's branches; CBAM's
channel and spatial attention).  Switching a path off makes it carry zeros, so
the weights and the output shapes stay the same and the difference in the
output is exactly what that path brought.

The state is never hidden: ``neck.paths`` is a plain dict, ``repr(neck)`` says
which paths are off, and ``neck.out_specs`` is a :class:`PathSpecs` -- an
ordinary ordered dict of :class:`~course_lib.contract.FeatureSpec` that also
carries the switches, so ``Model.trace(x).specs["neck"]`` records them too.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import torch

from ..contract import ContractError, FeatureSpec, describe_specs, select_inputs


class PathSpecs(OrderedDict):
    """``out_specs`` that also remember which paths were on when they were made.

    It compares and iterates like the plain ordered dict of specs; ``.paths``
    holds the switches and ``repr`` names the paths that are off.
    """

    def __init__(self, items: Iterable = (), paths: Mapping[str, bool] | None = None):
        super().__init__(items)
        self.paths = dict(paths or {})

    def __repr__(self) -> str:
        off = [k for k, on in self.paths.items() if not on]
        tail = f" [paths off: {', '.join(off)}]" if off else ""
        return f"PathSpecs({describe_specs(self)}){tail}"


class Switchable:
    """Mixin for necks whose paths can be switched off one by one (see the module docstring)."""

    paths: dict[str, bool]
    out_specs: PathSpecs

    def _init_paths(self, names: Iterable[str], specs: Mapping[str, FeatureSpec], **flags: bool) -> None:
        names = tuple(names)
        unknown = sorted(set(flags) - set(names))
        if unknown:
            raise ValueError(f"neck {self.name!r} has no path(s) {unknown}; its paths are {list(names)}")
        self.paths = {n: bool(flags.get(n, True)) for n in names}
        self.out_specs = PathSpecs(specs, self.paths)
        self.last_intermediates: OrderedDict[str, torch.Tensor] = OrderedDict()

    def set_paths(self, **flags: bool):
        """Switch paths on (True) or off (False) by name; returns the neck.

        ``out_specs`` is replaced by a new :class:`PathSpecs` (shapes unchanged),
        so a trace made earlier keeps the switches it was made with.
        """
        unknown = sorted(set(flags) - set(self.paths))
        if unknown:
            raise ValueError(f"neck {self.name!r} has no path(s) {unknown}; its paths are {list(self.paths)}")
        for k, v in flags.items():
            if not isinstance(v, bool):
                raise TypeError(f"path switch {k!r} must be True or False, got {v!r}")
            self.paths[k] = v
        self.out_specs = PathSpecs(self.out_specs, self.paths)
        return self

    def describe_paths(self) -> str:
        """``"lateral on, top_down OFF"`` -- what :meth:`extra_repr` and the widgets show."""
        return ", ".join(f"{k} {'on' if v else 'OFF'}" for k, v in self.paths.items())

    def _take_pyramid(self, who: str, in_specs: Mapping[str, FeatureSpec],
                      in_keys: Iterable[str] | None) -> OrderedDict[str, FeatureSpec]:
        """Pick a pyramid neck's input maps (two or more, fine to coarse: strides strictly increasing).

        Sets ``in_specs``, ``in_keys`` and ``out_keys`` (``C4`` -> ``P4``) and returns the picked specs.
        """
        picked = select_inputs(who, in_specs, in_keys, min_count=2)
        strides = [s.stride for s in picked.values()]
        if any(b <= a for a, b in zip(strides, strides[1:])):
            raise ContractError(who, f"{', '.join(picked)} ordered from fine to coarse (increasing stride)",
                                in_specs)
        self.in_specs = OrderedDict(in_specs)
        self.in_keys = tuple(picked)
        self.out_keys = tuple(level_name(k, sp) for k, sp in picked.items())
        return picked

    def _top_down_step(self, name: str, x: torch.Tensor, lateral: torch.nn.Module, upper: torch.Tensor):
        """One level of a top-down path: ``(lateral(x) or None, upsampled upper or None, zeros)``.

        A switched-off path gives None; ``zeros`` has the level's output shape,
        for a fusion that needs a tensor where a path is off.  Both steps are
        recorded under ``"<name> lateral"`` and ``"<name> top-down"``.
        """
        lat = self._record(f"{name} lateral", lateral(x)) if self.paths["lateral"] else None
        down = self._record(f"{name} top-down", upsample_to(upper, x)) if self.paths["top_down"] else None
        zeros = x.new_zeros((x.shape[0], self.out_channels, *x.shape[-2:]))
        return lat, down, zeros

    def _record(self, name: str, t: torch.Tensor) -> torch.Tensor:
        self.last_intermediates[name] = t.detach()
        return t

    def extra_repr(self) -> str:
        return super().extra_repr() + f"\npaths: {self.describe_paths()}"


def level_name(key: str, spec: FeatureSpec) -> str:
    """The output name for an input map: ``"C4"`` -> ``"P4"``; otherwise ``P<log2 stride>``."""
    m = re.fullmatch(r"[A-Za-z]+(\d+)", key)
    if m:
        return f"P{m.group(1)}"
    if spec.stride and 2 ** round(math.log2(spec.stride)) == spec.stride:
        return f"P{round(math.log2(spec.stride))}"
    return f"P_{key}"


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour upsampling to ``like``'s height and width (2x when the sizes divide)."""
    return torch.nn.functional.interpolate(x, size=like.shape[-2:], mode="nearest")


def zeros_like(t: torch.Tensor) -> torch.Tensor:
    """What a switched-off path carries."""
    return torch.zeros_like(t)
