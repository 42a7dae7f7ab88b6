"""Bring your own backbone: wrap any ``nn.Module`` so it honours the contract.

Say which submodules' outputs are the feature maps (``taps``), and
:func:`from_module` returns a :class:`~course_lib.contract.Backbone` whose
``forward`` gives an ordered dict of those maps and whose ``out_specs`` were
measured with one dummy forward pass::

    net = torchvision.models.resnet18()
    bb = cl.backbones.from_module(net, taps={"C3": "layer2", "C4": "layer3", "C5": "layer4"})
    bb.out_specs   # C3 (128ch /8), C4 (256ch /16), C5 (512ch /32)

The maps are read with *forward hooks* registered for the length of one
forward call and removed in a ``finally`` block, so the learner's module is left
exactly as it was, even when a forward pass fails.  :func:`capture` is the same
tool as a context manager, for looking inside any module.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..contract import Backbone, ContractError, FeatureSpec, check_image_batch
from ..hooks import forward_hooks, hooks_left
from ..measure import evaluating
from .torchvision_backbones import Normalize


class _Enough(Exception):
    """Raised by the deepest tap's hook: the rest of the network is not needed."""


def _submodule(module: nn.Module, path: str) -> nn.Module:
    names = dict(module.named_modules())
    if path not in names or path == "":
        close = difflib.get_close_matches(path, [n for n in names if n], n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        top = ", ".join(repr(n) for n, _ in module.named_children())
        raise ValueError(f"{type(module).__name__} has no submodule {path!r}.{hint} Its top-level children are: {top}")
    return names[path]


@contextmanager
def capture(module: nn.Module, paths: Sequence[str], stop_after: str | None = None) -> Iterator[dict]:
    """``with capture(net, ["layer2", "layer3"]) as out: net(x)`` fills ``out[path]`` with each output.

    Hooks are removed when the block ends.  With ``stop_after`` the forward pass
    is cut short right after that submodule (the exception is swallowed here).
    """
    out: dict[str, torch.Tensor] = {}

    def make(path: str):
        def hook(_mod, _inp, output):
            out[path] = output
            if path == stop_after:
                raise _Enough

        return hook

    try:
        with forward_hooks((_submodule(module, p), make(p)) for p in paths):
            yield out
    except _Enough:
        pass


class ModuleBackbone(Backbone):
    """A learner's module seen through the contract (made by :func:`from_module`)."""

    def __init__(self, module: nn.Module, taps: Mapping[str, str], name: str = "custom", normalize: bool = False,
                 probe_size: int = 224, stop_early: bool = True):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"from_module wraps a torch.nn.Module, got {type(module).__name__}")
        if not taps:
            raise ValueError("give at least one tap: taps={'C3': 'layer2', ...} (stage name -> submodule path)")
        for path in taps.values():
            _submodule(module, path)
        self.name = name
        self.module = module
        self.taps = OrderedDict(taps)
        self.normalize = Normalize() if normalize else nn.Identity()
        self.stop_early = stop_early
        self._last: str | None = None
        self.out_specs = self._probe(probe_size)

    def _probe(self, size: int) -> OrderedDict[str, FeatureSpec]:
        order: list[str] = []
        try:
            device = next(self.module.parameters()).device
        except StopIteration:  # a module without parameters (e.g. only pooling)
            device = torch.device("cpu")
        in_order = [(_submodule(self.module, path), lambda _m, _i, _o, p=path: order.append(p) if p not in order
                     else None) for path in self.taps.values()]
        with forward_hooks(in_order), evaluating(self.module):
            feats = self._run(torch.zeros(1, 3, size, size, device=device), stop=False)
        self._last = order[-1] if order else None
        specs: OrderedDict[str, FeatureSpec] = OrderedDict()
        for level, path in self.taps.items():
            t = feats[level]
            h, w = t.shape[-2:]
            stride = size / h
            if abs(stride - round(stride)) > 1e-6 or abs(size / w - stride) > 1e-6:
                stride_txt = f"{size}/{h} = {stride:.3g}"
                raise ContractError(f"tap {level!r} ({path})", f"a map whose size divides the {size}-pixel "
                                    f"probe evenly, got {h}x{w} (stride {stride_txt}); try probe_size=256")
            specs[level] = FeatureSpec(int(t.shape[1]), int(round(stride)))
        # The contract lists maps from fine to coarse.
        return OrderedDict(sorted(specs.items(), key=lambda kv: kv[1].stride))

    def _run(self, x: torch.Tensor, stop: bool) -> OrderedDict[str, torch.Tensor]:
        paths = list(dict.fromkeys(self.taps.values()))
        with capture(self.module, paths, stop_after=self._last if stop else None) as got:
            self.module(self.normalize(x))
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for level, path in self.taps.items():
            if path not in got:
                raise RuntimeError(f"tap {level!r} ({path!r}) never ran during the forward pass; "
                                   "is that submodule used by the module's forward()?")
            t = got[path]
            if not isinstance(t, torch.Tensor) or t.ndim != 4:
                what = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
                raise ContractError(f"tap {level!r} ({path!r})", f"a 4-D feature map (B, C, H, W), got {what}; "
                                    "tap a convolutional submodule instead")
            out[level] = t
        return out

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        check_image_batch(x, f"backbone {self.name!r}")
        feats = self._run(x, stop=self.stop_early)
        return OrderedDict((k, feats[k]) for k in self.out_specs)

    def hooks_left(self) -> int:
        """How many forward hooks remain on the wrapped module (0 after every call)."""
        return hooks_left(self.module)


def from_module(module: nn.Module, taps: Mapping[str, str] | Sequence[str], name: str = "custom",
                normalize: bool = False, probe_size: int = 224, stop_early: bool = True) -> ModuleBackbone:
    """Wrap ``module`` as a contract backbone that outputs the maps of the submodules in ``taps``.

    ``taps`` maps a stage name to a submodule path as in ``module.named_modules()``
    (``{"C4": "layer3", "C5": "features.18"}``); a list of paths uses the paths
    as names.  ``out_specs`` (channels, stride) are measured by one forward pass
    on a ``probe_size`` square of zeros.  ``normalize=True`` applies ImageNet's
    mean/std first (for torchvision models).  With ``stop_early`` the forward
    pass stops after the deepest tap (the classifier is never run).
    """
    if isinstance(taps, (list, tuple)):
        taps = OrderedDict((p, p) for p in taps)
    if not isinstance(taps, Mapping):
        raise TypeError("taps must be a dict {stage name: submodule path} or a list of submodule paths")
    return ModuleBackbone(module, taps, name, normalize, probe_size, stop_early)
