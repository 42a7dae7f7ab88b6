"""The contract every stage honours: backbone -> neck -> head.

A *backbone* turns an image batch ``(B, 3, H, W)`` into an ordered dict of named
feature maps and says what each map is with a :class:`FeatureSpec`.  A *neck*
is built from those specs and maps one ordered dict to another.  A *head* is
built from the neck's specs and turns the dict into the task's answer.

Because every stage describes its outputs, the next stage can be built from
that description instead of from magic numbers, and a part that does not fit
fails at build time with a message naming both sides.
"""

from __future__ import annotations

import difflib
import importlib
import math
import pkgutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureSpec:
    """What one feature map looks like: its channel count and its stride.

    ``stride`` is how many input pixels one cell of the map steps over
    (4 means a 224-pixel image gives a 56-cell map).  ``stride=None`` marks a
    global vector with no spatial layout, such as the output of global
    average pooling.
    """

    channels: int
    stride: int | None

    def __str__(self) -> str:
        where = "global" if self.stride is None else f"/{self.stride}"
        return f"{self.channels}ch {where}"


def level_of(stride: int) -> str:
    """The course's name of a map at ``stride`` (a power of two): 16 -> ``"C4"``."""
    k = int(round(math.log2(stride)))
    if 2 ** k != stride:
        raise ValueError(f"the patch size must be a power of two (4, 8, 16, 32) to name its map C_k, got {stride}")
    return f"C{k}"


class ContractError(ValueError):
    """Two parts of a model do not fit together.

    ``consumer`` names the part that complained and ``expects`` says what it
    needed; :func:`course_lib.build_model` adds what the part before it gives.
    """

    def __init__(self, consumer: str, expects: str, gives: Mapping[str, FeatureSpec] | None = None):
        self.consumer = consumer
        self.expects = expects
        self.gives = dict(gives) if gives is not None else None
        super().__init__(self._message("its input"))

    def _message(self, provider: str) -> str:
        msg = f"{self.consumer} expects {self.expects}"
        if self.gives is not None:
            msg += f" but {provider} gives {describe_specs(self.gives)}"
        return msg

    def with_provider(self, provider: str) -> ContractError:
        """The same error, now naming the part that produced the input."""
        err = ContractError(self.consumer, self.expects, self.gives)
        err.args = (err._message(provider),)
        return err


def describe_specs(specs: Mapping[str, FeatureSpec]) -> str:
    """``{"C3": FeatureSpec(32, 8)}`` -> ``"C3 (32ch /8)"``: for error messages and tables."""
    if not specs:
        return "nothing"
    return ", ".join(f"{name} ({spec})" for name, spec in specs.items())


def select_inputs(
    consumer: str,
    in_specs: Mapping[str, FeatureSpec],
    in_keys: Iterable[str] | None,
    *,
    spatial: bool = True,
    min_count: int = 1,
    count: int | None = None,
) -> OrderedDict[str, FeatureSpec]:
    """Pick the input maps a neck or head will read, or raise :class:`ContractError`.

    ``in_keys=None`` takes every input.  With ``spatial=True`` every picked map
    must have a stride (a global vector cannot be upsampled or convolved).  ``count``:
    a part wired for exactly that many maps (YOLOv8's PAN, RT-DETR's encoder: three)
    refuses other ``in_keys`` with a ``ValueError``.
    """
    in_specs = OrderedDict(in_specs)
    wanted = list(in_specs) if in_keys is None else list(in_keys)
    what = ", ".join(wanted) if in_keys is not None else f"at least {min_count} map(s)"
    missing = [k for k in wanted if k not in in_specs]
    if missing or len(wanted) < min_count:
        if spatial:
            what += " (spatial maps)"
        raise ContractError(consumer, what, in_specs)
    picked = OrderedDict((k, in_specs[k]) for k in wanted)
    if count is not None and len(picked) != count:
        raise ValueError(f"{consumer} fuses exactly {count} maps, got in_keys={wanted}")
    if spatial and any(s.stride is None for s in picked.values()):
        raise ContractError(consumer, f"{what} with a spatial layout (a stride)", in_specs)
    return picked


def one_input(consumer: str, in_specs: Mapping[str, FeatureSpec], in_keys: str | Iterable[str] | None,
              default: str | None = None, *, spatial: bool = True) -> tuple[str, FeatureSpec]:
    """The one map a single-input part reads (a pooling neck, a classifier), or :class:`ContractError`.

    ``in_keys`` is a name, a list of one name, or ``None`` for ``default`` (else the last input).
    """
    if in_keys is None:
        key = default if default is not None else (next(reversed(in_specs)) if in_specs else "a feature map")
    else:
        keys = [in_keys] if isinstance(in_keys, str) else list(in_keys)
        if len(keys) != 1:
            raise ValueError(f"{consumer} reads one map; got in_keys={keys}: pass one name, e.g. in_keys=[{keys[-1]!r}]"
                             if keys else f"{consumer} reads one map; got in_keys=[]")
        key = keys[0]
    return key, select_inputs(consumer, in_specs, [key], spatial=spatial)[key]


def check_image_batch(x: object, who: str = "model") -> torch.Tensor:
    """Check that ``x`` is a float image batch ``(B, 3, H, W)``; say how to fix it if not."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{who} expects a torch.Tensor image batch of shape (B, 3, H, W), got {type(x).__name__}. "
            "Use course_lib.load_image(...) to turn a file or array into a tensor."
        )
    if x.ndim == 3 and x.shape[0] == 3:
        raise ValueError(
            f"{who} expects a batch (B, 3, H, W) but got one image {tuple(x.shape)}: "
            "add the batch dimension with x[None] or x.unsqueeze(0)."
        )
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"{who} expects shape (B, 3, H, W) with 3 colour channels, got {tuple(x.shape)}. "
            "Channels come first in PyTorch: use x.permute(0, 3, 1, 2) for (B, H, W, 3) arrays."
        )
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{who} expects a float tensor with values in [0, 1], got dtype {x.dtype}. "
            "Convert with x.float() / 255 (or use course_lib.load_image)."
        )
    if x.shape[-1] < 32 or x.shape[-2] < 32:
        raise ValueError(
            f"{who} expects images of at least 32x32 pixels (the deepest maps have stride 32), "
            f"got {x.shape[-2]}x{x.shape[-1]}. Resize the image first."
        )
    return x


class Registry:
    """A dict of names -> constructors, with a helpful error for unknown names.

    >>> NECKS = Registry("neck")
    >>> @NECKS.register("identity")
    ... def build_identity(in_specs): ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., nn.Module]] = {}

    def register(self, name: str) -> Callable:
        def deco(fn: Callable) -> Callable:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., nn.Module]:
        if name not in self._items:
            close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self._items))}."
            )
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


def import_modules(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of a package folder (``backbones/``, ``necks/``, ``heads/``), in name order.

    Each module registers its parts with ``@REGISTRY.register(name)`` when it is imported, so a new file in
    the folder is found by this walk: there is no list of modules to edit.
    """
    names = sorted(m.name for m in pkgutil.iter_modules(list(path)) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


class Backbone(nn.Module):
    """Base class: ``forward(x) -> OrderedDict`` of maps described by ``out_specs``."""

    name: str = "backbone"
    out_specs: OrderedDict[str, FeatureSpec]

    def extra_repr(self) -> str:
        return f"out_specs: {describe_specs(self.out_specs)}"


class Neck(nn.Module):
    """Base class: ``forward(features) -> OrderedDict`` described by ``out_specs``."""

    name: str = "neck"
    in_specs: OrderedDict[str, FeatureSpec]
    out_specs: OrderedDict[str, FeatureSpec]

    def extra_repr(self) -> str:
        return f"in: {describe_specs(self.in_specs)}\nout: {describe_specs(self.out_specs)}"


class Head(nn.Module):
    """Base class: ``forward(features)`` gives raw outputs; ``decode`` turns them into one item per image,
    ``loss`` scores them against targets."""

    name: str = "head"
    in_specs: OrderedDict[str, FeatureSpec]

    def decode(self, outputs, **kw):  # pragma: no cover - every head overrides
        raise NotImplementedError

    def loss(self, outputs, targets):  # pragma: no cover - every head overrides
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"in: {describe_specs(self.in_specs)}"
