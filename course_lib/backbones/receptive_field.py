"""Receptive field (感受野): which input pixels can change one cell of a feature map.

**Analytic.**  Walk the layers of a sequential stack and keep three numbers
(Araujo et al., "Computing receptive fields of convolutional neural networks",
Distill 2019).  For a layer with kernel ``k``, stride ``s``, padding ``p`` and
dilation ``d`` (effective kernel ``k' = d (k - 1) + 1``):

* ``size``  r  <- r + (k' - 1) * j      how many input pixels one cell sees
* ``jump``  j  <- j * s                 how far apart neighbouring cells are, in input pixels (= the stride)
* ``start`` c  <- c + ((k' - 1) / 2 - p) * j   the input-pixel centre of cell 0 (pixel ``i`` has centre ``i``)

starting from ``r = 1, j = 1, c = 0`` for the input.  Cell ``(y, x)`` of a map
then sees the box centred at ``(c + j*y, c + j*x)``, ``r`` pixels wide (cut at
the image border).

**Effective.**  The gradient of one output cell with respect to the input
(:func:`effective_receptive_field`) shows which pixels actually matter: it
lives inside the analytic box, but falls off like a Gaussian, so the
*effective* receptive field is much smaller than the theoretical one
(Luo et al., NeurIPS 2016).

The walker understands ``Conv2d``, ``MaxPool2d`` and ``AvgPool2d``; it treats any
other leaf module as element-wise (BatchNorm, activations, dropout), follows
the main path of residual blocks (a child called ``downsample`` or
``shortcut`` is a side branch and skipped), knows that SPPF applies its pool
three times and that SPP's widest pool dominates, and stops at global pooling.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import blocks
from ..measure import evaluating

SIDE_BRANCHES = ("downsample", "shortcut")


@dataclass(frozen=True)
class Layer:
    """The geometry of one spatial layer: kernel, stride, padding, dilation (square)."""

    name: str
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    kind: str = "conv"

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


@dataclass(frozen=True)
class RF:
    """Receptive field after one layer: ``size`` (pixels), ``jump`` (= stride), ``start`` (centre of cell 0)."""

    name: str
    size: int
    jump: int
    start: float
    is_global: bool = False

    def centre(self, y: int, x: int) -> tuple[float, float]:
        """Input-pixel centre ``(cy, cx)`` of cell ``(y, x)``."""
        return self.start + self.jump * y, self.start + self.jump * x

    def box(self, y: int, x: int, image_hw: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """The input pixels cell ``(y, x)`` sees, as ``(x0, y0, x1, y1)`` inclusive; clipped to ``image_hw``."""
        cy, cx = self.centre(y, x)
        h = (self.size - 1) / 2
        x0, y0, x1, y1 = int(round(cx - h)), int(round(cy - h)), int(round(cx + h)), int(round(cy + h))
        if image_hw is not None:
            H, W = image_hw
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W - 1, x1), min(H - 1, y1)
        return x0, y0, x1, y1


def _square(v, what: str, name: str) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise ValueError(f"layer {name!r} has a non-square {what} {tuple(v)}; the calculator handles square "
                             "kernels, strides and paddings only")
        v = v[0]
    return int(v)


def _leaf_layer(name: str, m: nn.Module) -> Layer | None:
    if isinstance(m, nn.Conv2d):
        k = _square(m.kernel_size, "kernel", name)
        d = _square(m.dilation, "dilation", name)
        if m.padding == "same":
            p = d * (k - 1) // 2
        elif m.padding == "valid":
            p = 0
        else:
            p = _square(m.padding, "padding", name)
        return Layer(name, k, _square(m.stride, "stride", name), p, d, "conv")
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _square(m.kernel_size, "kernel", name)
        s = _square(m.stride if m.stride is not None else k, "stride", name)
        d = _square(getattr(m, "dilation", 1), "dilation", name)
        kind = "maxpool" if isinstance(m, nn.MaxPool2d) else "avgpool"
        return Layer(name, k, s, _square(m.padding, "padding", name), d, kind)
    return None


class _Global(Exception):
    pass


def layers(module: nn.Module, prefix: str = "") -> Iterator[Layer]:
    """The spatial layers along the main path of ``module``, in order (see the module docstring)."""
    name = prefix or type(module).__name__
    leaf = _leaf_layer(name, module)
    if leaf is not None:
        yield leaf
        return
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear)):
        raise _Global(name)
    if isinstance(module, (nn.Upsample, nn.ConvTranspose2d)):
        raise ValueError(f"layer {name!r} ({type(module).__name__}) enlarges the map; the receptive-field "
                         "calculator handles downsampling stacks (conv, pool) only")
    if isinstance(module, blocks.SPPF):
        yield from layers(module.cv1, f"{prefix}.cv1")
        for i in range(3):
            yield from layers(module.m, f"{prefix}.m(x{i + 1})")
        yield from layers(module.cv2, f"{prefix}.cv2")
        return
    if isinstance(module, blocks.SPP):
        yield from layers(module.cv1, f"{prefix}.cv1")
        widest = max(module.m, key=lambda p: _square(p.kernel_size, "kernel", prefix))
        yield from layers(widest, f"{prefix}.m(widest)")
        yield from layers(module.cv2, f"{prefix}.cv2")
        return
    if isinstance(module, blocks.C2f):  # cv1 -> every bottleneck in a chain -> cv2
        yield from layers(module.cv1, f"{prefix}.cv1")
        for i, b in enumerate(module.m):
            yield from layers(b, f"{prefix}.m.{i}")
        yield from layers(module.cv2, f"{prefix}.cv2")
        return
    for child_name, child in module.named_children():
        if child_name in SIDE_BRANCHES:
            continue
        yield from layers(child, f"{prefix}.{child_name}" if prefix else child_name)


def compose(rf: RF, layer: Layer) -> RF:
    """One step of the recurrence: the receptive field after ``layer``."""
    k = layer.effective_kernel
    return RF(
        name=layer.name,
        size=rf.size + (k - 1) * rf.jump,
        jump=rf.jump * layer.stride,
        start=rf.start + ((k - 1) / 2 - layer.padding) * rf.jump,
    )


INPUT = RF("input", 1, 1, 0.0)


def receptive_field(stack: nn.Module | Sequence[Layer], start: RF = INPUT) -> list[RF]:
    """The receptive field after every spatial layer of ``stack`` (a module or a list of :class:`Layer`).

    The last entry is the stack's output.  Global pooling ends the walk with
    an entry marked ``is_global`` (it sees the whole image).
    """
    out: list[RF] = []
    rf = start
    try:
        seq = None if isinstance(stack, nn.Module) else list(stack)
        it = iter(seq) if seq is not None else layers(stack)
        for layer in it:
            rf = compose(rf, layer)
            out.append(rf)
    except _Global as g:
        out.append(RF(str(g), rf.size, rf.jump, rf.start, is_global=True))
    return out


def stage_receptive_fields(backbone: nn.Module) -> OrderedDict[str, RF]:
    """The receptive field of every output map of a backbone, by name.

    Works for the course's backbones (a ``stages`` dict run in order) and for
    a learner's module wrapped with :func:`course_lib.backbones.from_module`
    (the walk follows the module's children in order and reads the field at
    the end of each tapped submodule).
    """
    out: OrderedDict[str, RF] = OrderedDict()
    stages = getattr(backbone, "stages", None)
    if isinstance(stages, (nn.ModuleDict, Mapping)):
        rf = INPUT
        for name, stage in stages.items():
            steps = receptive_field(stage, rf)
            rf = RF(name, steps[-1].size, steps[-1].jump, steps[-1].start, steps[-1].is_global) if steps else \
                RF(name, rf.size, rf.jump, rf.start)
            out[name] = rf
        wanted = getattr(backbone, "out_specs", None) or out
        return OrderedDict((k, v) for k, v in out.items() if k in wanted)
    taps = getattr(backbone, "taps", None)
    inner = getattr(backbone, "module", None)
    if isinstance(taps, Mapping) and isinstance(inner, nn.Module):
        steps = receptive_field(inner)
        for level, path in taps.items():
            hits = [r for r in steps if r.name == path or r.name.startswith(path + ".")]
            if not hits:
                before = [r for r in steps if _order(inner, r.name) < _order(inner, path)]
                hits = before[-1:] if before else [INPUT]
            last = hits[-1]
            out[level] = RF(level, last.size, last.jump, last.start, last.is_global)
        return out
    raise TypeError(
        f"cannot find the stages of a {type(backbone).__name__}: use a course backbone or wrap your module "
        "with course_lib.backbones.from_module(module, taps={...})"
    )


def _order(root: nn.Module, path: str) -> int:
    names = [n for n, _ in root.named_modules()]
    base = path.split("(")[0]
    while base and base not in names:
        base = base.rsplit(".", 1)[0] if "." in base else ""
    return names.index(base) if base in names else -1


# ----------------------------------------------------------------- the effective receptive field
def _features(backbone: nn.Module, x: torch.Tensor) -> Mapping[str, torch.Tensor]:
    out = backbone(x)
    if isinstance(out, torch.Tensor):
        return {"out": out}
    if not isinstance(out, Mapping):
        raise TypeError(f"the backbone returned a {type(out).__name__}; expected a dict of feature maps")
    return out


class ERF:
    """Effective receptive fields of one image, one forward pass for every query.

    The forward pass runs once (``n_forward``); each :meth:`map` call is one
    backward pass through the kept graph, remembered per ``(stage, y, x)``.
    Gradients come from :func:`torch.autograd.grad` on the input tensor: no
    module backward hooks, so in-place ReLUs are fine.
    """

    def __init__(self, backbone: nn.Module, image: torch.Tensor, cache_size: int = 256):
        if image.ndim == 3:
            image = image[None]
        try:
            device = next(backbone.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        self.backbone = backbone
        self.image = image.detach().to(device).requires_grad_(True)
        with evaluating(backbone, no_grad=False), torch.enable_grad():  # the graph is kept for map()
            self.features = _features(backbone, self.image)
        self.n_forward = 1
        self.n_backward = 0
        self._cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    def map(self, stage: str, y: int, x: int, channel: int | None = None) -> torch.Tensor:
        """``|d out[stage][channel or all, y, x] / d input|`` summed over colours: an ``(H, W)`` map."""
        if stage not in self.features:
            raise KeyError(f"no stage {stage!r}; the backbone gives {', '.join(self.features)}")
        f = self.features[stage]
        if f.ndim != 4:
            raise ValueError(f"stage {stage!r} is not a spatial map (shape {tuple(f.shape)})")
        H, W = f.shape[-2:]
        if not (0 <= y < H and 0 <= x < W):
            raise ValueError(f"cell ({y}, {x}) is outside stage {stage!r}, which is {H}x{W}")
        key = (stage, y, x, channel)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        with torch.enable_grad():      # also where the caller has turned gradients off (torch.no_grad)
            target = f[0, :, y, x].sum() if channel is None else f[0, channel, y, x]
            (g,) = torch.autograd.grad(target, self.image, retain_graph=True)
        self.n_backward += 1
        m = g[0].abs().sum(0).detach().cpu()
        self._cache[key] = m
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return m


def effective_receptive_field(backbone: nn.Module, image: torch.Tensor, stage: str, y: int | None = None,
                              x: int | None = None) -> torch.Tensor:
    """The gradient-based receptive field of cell ``(y, x)`` (default: the centre cell) of ``stage``."""
    erf = ERF(backbone, image)
    H, W = erf.features[stage].shape[-2:] if stage in erf.features else (0, 0)
    return erf.map(stage, H // 2 if y is None else y, W // 2 if x is None else x)


def support_box(heat: torch.Tensor, threshold: float = 0.0) -> tuple[int, int, int, int] | None:
    """The smallest box ``(x0, y0, x1, y1)`` holding every pixel whose value is above ``threshold``."""
    ys, xs = torch.nonzero(heat > threshold, as_tuple=True)
    if len(ys) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def mass_radius(heat: torch.Tensor, fraction: float = 0.9) -> float:
    """Radius (pixels, around the heat's centre of mass) of the smallest square holding ``fraction`` of the mass.

    A single number for "how big is the effective receptive field".
    """
    h = heat.double()
    total = float(h.sum())
    if total <= 0:
        return 0.0
    H, W = h.shape
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                            indexing="ij")
    cy, cx = float((h * yy).sum() / total), float((h * xx).sum() / total)
    dist = torch.maximum((yy - cy).abs(), (xx - cx).abs()).flatten()
    order = torch.argsort(dist)
    cum = torch.cumsum(h.flatten()[order], 0)
    idx = int(torch.searchsorted(cum, torch.tensor(fraction * total, dtype=torch.float64)))
    return float(dist[order[min(idx, len(order) - 1)]])
