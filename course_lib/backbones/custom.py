"""Bring your own backbone: wrap any ``nn.Module`` so it honours the contract.

Let :func:`from_module` find the stages itself, or say which submodules'
outputs are the feature maps (``taps``).  Either way it returns a
:class:`~course_lib.contract.Backbone` whose ``forward`` gives an ordered dict
of those maps and whose ``out_specs`` were measured with one dummy forward pass::

    net = torchvision.models.resnet18()
    bb = cl.backbones.from_module(net)              # stages found: C1 relu, C2 layer1, ..., C5 layer4
    bb = cl.backbones.from_module(net, taps={"C3": "layer2", "C4": "layer3", "C5": "layer4"})
    bb.out_specs   # C3 (128ch /8), C4 (256ch /16), C5 (512ch /32)

**Finding the stages** (no ``taps``): the probe records every submodule's
output; the stages are *the last module at each stride* (how timm's
``feature_info`` marks them), named by stride: /2 -> C1, /4 -> C2, /8 -> C3,
/16 -> C4, /32 -> C5.  Coarser maps (a /64 extra level, a 1x1 pooled map) are
left out unless the network has nothing finer.  Modules inside a block that
changes the stride (the first 1x1 conv of a ResNet stage, still at the old
stride) are not stage ends and are skipped.  Strides found this way are
nominal powers of two: a network without padding (SqueezeNet) gives maps a
pixel or two smaller than ``probe_size / stride``.

**Layouts**: ``"nchw"`` is PyTorch's (B, C, H, W); ``"nhwc"`` is channels-last
(B, H, W, C), what Swin's stages give, permuted to NCHW; ``"tokens"`` is a
transformer's (B, N, C) sequence (ViT): the extra tokens in front (the class
token, register tokens: N - h*w of them) are dropped and the patches laid out
on their h x w grid.  ``layout="auto"`` reads each output's shape against the
probe's size and, when finding stages, keeps the layout that explains the most
strides; a layout that reaches deeper strides than that one takes over from
where it starts (LeViT: a conv stem, then token stages).

The maps are read with *forward hooks* registered for the length of one
forward call and removed in a ``finally`` block, so the learner's module is left
exactly as it was, even when a forward pass fails.  :func:`capture` is the same
tool as a context manager, for looking inside any module.
"""

from __future__ import annotations

import difflib
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..contract import Backbone, ContractError, FeatureSpec, check_image_batch, level_of
from ..hooks import forward_hooks, hooks_left
from ..measure import _device, evaluating
from .torchvision_backbones import Normalize

LAYOUTS = ("auto", "nchw", "nhwc", "tokens")
#: at most this many extra tokens (class, distillation, registers) in front of a ViT's patches
MAX_EXTRA_TOKENS = 8


_FIXED_SIZE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


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


def first_tensor(out: object) -> torch.Tensor | None:
    """The first tensor in a module's output (a tensor, or one inside a dict, list or tuple)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        for o in out:
            t = first_tensor(o)
            if t is not None:
                return t
    return None


@dataclass(frozen=True)
class Reading:
    """How one tensor reads as a feature map: its layout, channels, stride and extra tokens in front."""

    layout: str
    channels: int
    stride: int
    extra: int = 0


def _stride(size: tuple[int, int], hw: tuple[int, int], strict: bool) -> int | None:
    """The stride that turns an ``size`` input into an ``hw`` map, or None.

    Strict: ``size / hw`` is the same whole number on both sides.  Nominal: a power of two whose ceil (or
    else floor) of ``size / stride`` is the map's size (convs that pad), else the nearest power of two with the
    map within 10% (at least a pixel) of ``size / stride`` on both sides (convs that do not pad).
    """
    (H, W), (h, w) = size, hw
    if h < 1 or w < 1:
        return None
    if strict:
        s = H / h
        ok = abs(s - round(s)) < 1e-6 and abs(W / w - s) < 1e-6 and round(s) >= 1
        return int(round(s)) if ok else None
    for rounding in (lambda n, s: -(-n // s), lambda n, s: n // s):  # ceil (padded convs) first, then floor
        for s in (2 ** k for k in range(11)):
            if h == rounding(H, s) and w == rounding(W, s):
                return s
    s = 2 ** max(0, round(math.log2(H / h)))
    for n, m in ((H, h), (W, w)):
        if abs(m - n / s) > max(1.0, 0.1 * n / s):
            return None
    return s


def _token_grid(size: tuple[int, int], stride: int, n: int) -> tuple[int, int] | None:
    """The (h, w) patch grid behind ``n`` tokens at ``stride`` (floor, as a patch conv, or ceil, after padding)."""
    H, W = size
    for h, w in ((H // stride, W // stride), (math.ceil(H / stride), math.ceil(W / stride))):
        if h >= 1 and w >= 1 and 0 <= n - h * w <= MAX_EXTRA_TOKENS:
            return h, w
    return None


def read_map(t: object, size: tuple[int, int], layout: str = "auto", strict: bool = True) -> Reading | None:
    """Read ``t`` (the output of some layer for an input of ``size``) as a feature map in ``layout``, or None.

    ``"auto"`` tries NCHW, then NHWC, then tokens.
    """
    if not isinstance(t, torch.Tensor):
        return None
    for lay in (("nchw", "nhwc", "tokens") if layout == "auto" else (layout,)):
        if lay == "nchw" and t.ndim == 4:
            s = _stride(size, tuple(t.shape[2:]), strict)
            if s is not None:
                return Reading("nchw", int(t.shape[1]), s)
        elif lay == "nhwc" and t.ndim == 4:
            s = _stride(size, tuple(t.shape[1:3]), strict)
            if s is not None:
                return Reading("nhwc", int(t.shape[3]), s)
        elif lay == "tokens" and t.ndim == 3:
            for s in (2, 4, 8, 16, 32, 64):
                grid = _token_grid(size, s, int(t.shape[1]))
                if grid is not None:
                    return Reading("tokens", int(t.shape[2]), s, int(t.shape[1]) - grid[0] * grid[1])
    return None


def to_nchw(t: torch.Tensor, reading: Reading, size: tuple[int, int]) -> torch.Tensor:
    """A tapped output as a (B, C, H, W) map: channels-last permuted, extra tokens dropped, patches on a grid."""
    if reading.layout == "nhwc":
        return t.permute(0, 3, 1, 2)
    if reading.layout == "tokens":
        grid = _token_grid(size, reading.stride, int(t.shape[1]))
        if grid is None:
            raise ContractError("a tokens tap", f"a patch grid for a {size[0]}x{size[1]} input at stride "
                                f"{reading.stride}, got {int(t.shape[1])} tokens")
        return tokens_to_grid(t, *grid)
    return t


def tokens_to_grid(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Tokens ``(B, N, C)`` as a map ``(B, C, h, w)``: the ``N - h*w`` extra tokens in front (a ViT's class and
    register tokens) are dropped and the patch tokens, stored row by row, go back on their grid."""
    patches = t[:, t.shape[1] - h * w:]
    return patches.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)


def _describe(t: object, size: tuple[int, int]) -> str:
    """What a tapped output looks like and which ``layout=`` would read it (for error messages)."""
    if not isinstance(t, torch.Tensor):
        return f"a {type(t).__name__}, not a tensor"
    found = f"shape {tuple(t.shape)} for a {size[0]}x{size[1]} probe"
    for lay in ("nhwc", "tokens", "nchw"):
        r = read_map(t, size, lay, strict=False)
        if r is not None:
            name = {"nchw": "(B, C, H, W)", "nhwc": "channels-last (B, H, W, C)",
                    "tokens": f"tokens (B, N, C) with {r.extra} extra token(s)"}[lay]
            return f"{found}, which reads as {name} at stride {r.stride}: pass layout={lay!r}"
    return (f"{found}, which is neither a 4-D map (B, C, H, W) or channels-last (B, H, W, C) nor tokens "
            "(B, N, C) at any stride; tap another submodule")


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


@dataclass
class _Seen:
    """One submodule during the probe: its input and output readings, and when it (last) finished."""

    path: str
    leaf: bool
    inp: Reading | None = None
    out: Reading | None = None
    tensor: torch.Tensor | None = None
    order: int = -1
    shape: tuple[int, ...] | None = None


def find_stages(module: nn.Module, probe_size: int = 224, layout: str = "auto",
                input_size: int | None = None) -> tuple[OrderedDict[str, str], dict[str, Reading], str]:
    """Find the stages of ``module`` by one probe: ``({"C2": path, ...}, {"C2": Reading, ...}, last path)``.

    The last module at each stride, among the modules that keep the stride they
    were given (a block that changes it is looked inside, from its new stride
    on); a stage is named after its outermost module that returns the very same
    tensor (``layer2`` rather than ``layer2.1``).  Raises
    :class:`~course_lib.contract.ContractError` listing what the probe saw when
    no output reads as a feature map.
    """
    size = input_size or probe_size
    hw = (size, size)
    mods = dict(module.named_modules())
    seen = {p: _Seen(p, not any(True for _ in m.children())) for p, m in mods.items()}
    counter = [0]

    def make(path: str):
        def hook(_m, inp, out):
            s = seen[path]
            t_in, t_out = first_tensor(inp), first_tensor(out)
            if s.order < 0:
                s.inp = (Reading("nchw", 3, 1) if path == "" else read_map(t_in, hw, layout, strict=False))
            s.out = read_map(t_out, hw, layout, strict=False)
            s.tensor = t_out
            s.shape = tuple(t_out.shape) if t_out is not None else None
            s.order = counter[0]
            counter[0] += 1

        return hook

    device = _device(module)
    with forward_hooks((m, make(p)) for p, m in mods.items()), evaluating(module):
        try:
            module(torch.zeros(1, 3, size, size, device=device))
        except RuntimeError as err:
            raise RuntimeError(f"from_module probes {type(module).__name__} with a 1x3x{size}x{size} batch of "
                               f"zeros, which failed ({err}); pass the input_size= it was built for, or a "
                               "probe_size= it accepts") from err

    children: dict[str, list[str]] = {p: [] for p in mods}
    for p in mods:
        if p:
            children[p.rsplit(".", 1)[0] if "." in p else ""].append(p)

    units: list[_Seen] = []

    def walk(path: str, floor: int) -> None:
        s = seen[path]
        if s.order < 0:  # a container that is never called itself (nn.ModuleList): look inside
            for c in children[path]:
                walk(c, floor)
            return
        uniform = s.inp is not None and s.out is not None and s.inp.stride == s.out.stride
        if isinstance(mods[path], _FIXED_SIZE):  # its output size is fixed, not a stride
            return
        if path and (uniform or (s.leaf and s.out is not None)):
            if s.out is not None and s.out.stride > floor:
                units.append(s)
            return
        # Inside a block that changes the stride, what runs at its input stride is part of that change (the
        # first 1x1 conv of a ResNet bottleneck), so it is no stage -- unless the block is a plain nn.Sequential:
        # there each child's output is the next one's input, and a child that keeps the input stride is a stage
        # of its own (EfficientNet's first block of depthwise convs, inside `blocks`, at stride 2).
        sequential = type(mods[path]) is nn.Sequential
        inner = floor if sequential or s.inp is None else max(floor, s.inp.stride)
        for c in children[path]:
            walk(c, inner)

    walk("", 0)
    by_layout: dict[str, dict[int, _Seen]] = {}
    for u in sorted(units, key=lambda u: u.order):
        by_layout.setdefault(u.out.layout, {})[u.out.stride] = u  # the last one at each stride wins
    if not by_layout:
        shapes = [f"{s.path}: {s.shape}" for s in sorted(seen.values(), key=lambda s: s.order)
                  if s.path and s.shape is not None][:8]
        raise ContractError(f"from_module({type(module).__name__})",
                            f"some submodule output that reads as a feature map in layout {layout!r} for a "
                            f"{size}x{size} probe; saw {'; '.join(shapes) or 'no tensor outputs'}. Pass taps="
                            "{'C4': 'path', ...} naming the layers, a layout= ('nchw', 'nhwc', 'tokens'), or an "
                            "input_size= the network accepts")
    # the layout that explains the most strides; on a tie the one reaching deeper into the network
    best = dict(max(by_layout.values(), key=lambda d: (len(d), max(u.order for u in d.values()))))
    for other in by_layout.values():
        # A network may change layout on the way down (LeViT: a conv stem to stride 16, then token stages to
        # 64): a layout that goes deeper than the best one takes over each stride from where it runs later.
        if max(other) > max(best):
            for s, u in other.items():
                if s not in best or u.order > best[s].order:
                    best[s] = u
    strides = sorted(best)
    fine = [s for s in strides if s <= 32]
    keep = fine or strides
    taps: OrderedDict[str, str] = OrderedDict()
    readings: dict[str, Reading] = {}
    for s in keep:
        u = best[s]
        path = probe = u.path
        while "." in probe:  # climb to the outermost module returning the same tensor
            probe = probe.rsplit(".", 1)[0]
            if seen[probe].order < 0:
                continue  # a ModuleList in between
            if seen[probe].tensor is not u.tensor:
                break
            path = probe
        level = level_of(s)
        taps[level], readings[level] = path, u.out
    last = max(taps.values(), key=lambda p: seen[p].order)
    for s in seen.values():
        s.tensor = None
    return taps, readings, last


class ModuleBackbone(Backbone):
    """A learner's module seen through the contract (made by :func:`from_module`)."""

    def __init__(self, module: nn.Module, taps: Mapping[str, str] | None, name: str = "custom",
                 normalize: bool = False, probe_size: int = 224, stop_early: bool = True, layout: str = "auto",
                 input_size: int | None = None, class_token: bool = False):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"from_module wraps a torch.nn.Module, got {type(module).__name__}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if taps is not None and not taps:
            raise ValueError("give at least one tap: taps={'C3': 'layer2', ...} (stage name -> submodule path), "
                             "or leave taps out to find the stages")
        if input_size is None and isinstance(getattr(module, "image_size", None), int):
            input_size = module.image_size  # torchvision's ViT accepts one size only
        self.name = name
        self.module = module
        self.normalize = Normalize() if normalize else nn.Identity()
        self.stop_early = stop_early
        self.input_size = input_size
        self.found = taps is None
        self._last: str | None = None
        if taps is None:
            taps, readings, self._last = find_stages(module, probe_size, layout, input_size)
            self.taps = OrderedDict(taps)
            self.readings = readings
            self.out_specs = OrderedDict((lv, FeatureSpec(r.channels, r.stride)) for lv, r in readings.items())
        else:
            for path in taps.values():
                _submodule(module, path)
            self.taps = OrderedDict(taps)
            self.out_specs = self._probe(input_size or probe_size, layout)
        self.class_token = None
        if class_token:
            tok = [k for k, r in self.readings.items() if r.layout == "tokens" and r.extra >= 1]
            if not tok:
                raise ContractError(f"backbone {name!r}", "a tokens stage with a class token in front for "
                                    "class_token=True", self.out_specs)
            self.class_token = tok[-1]
            self.out_specs["class_token"] = FeatureSpec(self.out_specs[tok[-1]].channels, None)

    def _probe(self, size: int, layout: str) -> OrderedDict[str, FeatureSpec]:
        order: list[str] = []
        in_order = [(_submodule(self.module, path), lambda _m, _i, _o, p=path: order.append(p) if p not in order
                     else None) for path in self.taps.values()]
        with forward_hooks(in_order), evaluating(self.module):
            got = self._capture(torch.zeros(1, 3, size, size, device=_device(self.module)), stop=False)
        self._last = order[-1] if order else None
        readings: dict[str, Reading] = {}
        for level, path in self.taps.items():
            t = got[path]
            r = read_map(t, (size, size), layout, strict=True)
            if r is None:
                raise ContractError(f"tap {level!r} ({path!r})", f"a feature map in layout {layout!r}; got "
                                    + _describe(t, (size, size)))
            readings[level] = r
        self.readings = readings
        specs = OrderedDict((lv, FeatureSpec(r.channels, r.stride)) for lv, r in readings.items())
        # The contract lists maps from fine to coarse.
        return OrderedDict(sorted(specs.items(), key=lambda kv: kv[1].stride))

    def _capture(self, x: torch.Tensor, stop: bool) -> dict[str, object]:
        paths = list(dict.fromkeys(self.taps.values()))
        with capture(self.module, paths, stop_after=self._last if stop else None) as got:
            self.module(x)
        for level, path in self.taps.items():
            if path not in got:
                raise RuntimeError(f"tap {level!r} ({path!r}) never ran during the forward pass; "
                                   "is that submodule used by the module's forward()?")
        return {p: (first_tensor(v) if not isinstance(v, torch.Tensor) else v) for p, v in got.items()}

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        check_image_batch(x, f"backbone {self.name!r}")
        x = self.normalize(x)
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        got = self._capture(x, stop=self.stop_early)
        size = tuple(x.shape[-2:])
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        for level in self.out_specs:
            if level == "class_token":
                t = got[self.taps[self.class_token]]
                out[level] = t[:, 0]
                continue
            t, r = got[self.taps[level]], self.readings[level]
            if not isinstance(t, torch.Tensor) or t.ndim != (3 if r.layout == "tokens" else 4):
                raise ContractError(f"tap {level!r} ({self.taps[level]!r})", f"a {r.layout} feature map "
                                    f"({'3' if r.layout == 'tokens' else '4'}-D); got " + _describe(t, size))
            out[level] = to_nchw(t, r, size)
        return out

    def rename(self, names: Mapping[str, str]) -> None:
        """Give stages new names (``{"layer2": "C3"}``), keeping their order and specs."""
        new = {k: names.get(k, k) for k in self.taps}
        self.taps = OrderedDict((new[k], p) for k, p in self.taps.items())
        self.readings = {new[k]: r for k, r in self.readings.items()}
        self.out_specs = OrderedDict((new.get(k, k), s) for k, s in self.out_specs.items())

    def hooks_left(self) -> int:
        """How many forward hooks remain on the wrapped module (0 after every call)."""
        return hooks_left(self.module)


def from_module(module: nn.Module, taps: Mapping[str, str] | Sequence[str] | None = None, name: str = "custom",
                normalize: bool = False, probe_size: int = 224, stop_early: bool = True, layout: str = "auto",
                input_size: int | None = None, class_token: bool = False) -> ModuleBackbone:
    """Wrap ``module`` as a contract backbone that outputs its stage maps.

    Without ``taps`` the stages are found by one probe (the last module at each
    stride, named C1..C5 by stride; ``bb.taps`` says which).  ``taps`` maps a
    stage name to a submodule path as in ``module.named_modules()``
    (``{"C4": "layer3", "C5": "features.18"}``); a list of paths uses the paths
    as names.  ``layout`` is ``"nchw"``, ``"nhwc"`` (channels last, Swin),
    ``"tokens"`` (ViT) or ``"auto"`` (read from the probe).  ``out_specs``
    (channels, stride) are measured by one forward pass on a ``probe_size``
    square of zeros.  ``normalize=True`` applies ImageNet's mean/std first (for
    torchvision models).  ``input_size``: a network built for one size (ViT,
    MaxViT: 224) sees every batch resized to it (read from ``module.image_size``
    when there is one).  ``class_token=True`` adds the deepest tokens stage's
    first token as a global vector ``"class_token"``.  With ``stop_early`` the
    forward pass stops after the deepest tap (the classifier is never run).
    """
    if isinstance(taps, (list, tuple)):
        taps = OrderedDict((p, p) for p in taps)
    if taps is not None and not isinstance(taps, Mapping):
        raise TypeError("taps must be a dict {stage name: submodule path}, a list of submodule paths, or None")
    return ModuleBackbone(module, taps, name, normalize, probe_size, stop_early, layout, input_size, class_token)
