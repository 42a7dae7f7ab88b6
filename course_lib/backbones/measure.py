"""Measure a backbone: stage table, backbones side by side (alone, or swapped into one model), bottleneck
arithmetic, first-layer filters, and the plain-text table every lesson prints (:func:`format_table`).

"Bottleneck" (瓶颈) means two different things in the papers and code a learner meets, and both live here:

* the ResNet **bottleneck block** (He et al. 2016): 1x1 reduce -> 3x3 -> 1x1 expand, back to the input width so
  the shortcut can be added (:func:`resnet_bottleneck`, :func:`bottleneck_weights`);
* the transfer-learning **bottleneck layer**: one linear (or 1x1) projection of the backbone's pooled features
  down to a narrow width, e.g. 1024 or 2048 -> 256, with no expansion back (:func:`bottleneck_layer`);

and MobileNetV2's **linear bottleneck** (Sandler et al. 2018) is the narrow end of its inverted residual, left
without an activation (:func:`inverted_residual`, :func:`activation_after_convs`).

Everything here is computed from the modules themselves, so a table in a
notebook is evidence, not a claim.  Parameters and FLOPs are counted by
:mod:`course_lib.measure` (one multiply-add = 2 FLOPs, so ``MACs = FLOPs / 2``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..contract import describe_specs
from ..measure import count_flops, count_params, evaluating, median_time_ms


# ----------------------------------------------------------------- counting
def count_conv_weights(module: nn.Module) -> int:
    """Only the convolution kernels' weights (no biases, no BatchNorm): what the bottleneck arithmetic counts."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def conv_weights(c_in: int, c_out: int, k: int, groups: int = 1) -> int:
    """Weights of one conv: ``c_in / groups * c_out * k * k`` (a depthwise conv has ``groups = c_in``)."""
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    return c_in // groups * c_out * k * k


def bottleneck_weights(c: int = 1024, mid: int = 256) -> OrderedDict[str, int]:
    """ResNet's bottleneck (瓶颈) ``c -> mid -> mid -> c``: 1x1 reduce, 3x3, 1x1 expand, and the total."""
    parts = OrderedDict(
        reduce_1x1=conv_weights(c, mid, 1),
        conv_3x3=conv_weights(mid, mid, 3),
        expand_1x1=conv_weights(mid, c, 1),
    )
    parts["total"] = sum(parts.values())
    return parts


def plain_weights(c: int = 1024, n: int = 2, k: int = 3) -> int:
    """``n`` plain ``k x k`` convs that keep ``c`` channels (what the bottleneck replaces)."""
    return n * conv_weights(c, c, k)


def resnet_bottleneck(c: int = 1024, mid: int = 256) -> nn.Module:
    """torchvision's own ResNet ``Bottleneck`` block ``c -> mid -> mid -> 4*mid`` (needs ``c == 4 * mid``)."""
    from torchvision.models.resnet import Bottleneck

    if c != 4 * mid:
        raise ValueError(f"torchvision's bottleneck expands by 4: c must be 4 * mid, got c={c}, mid={mid}")
    return Bottleneck(inplanes=c, planes=mid)


def basic_block(c: int = 64) -> nn.Module:
    """torchvision's ResNet ``BasicBlock``: two 3x3 convs at ``c`` channels (ResNet-18/34's block)."""
    from torchvision.models.resnet import BasicBlock

    return BasicBlock(inplanes=c, planes=c)


def block_cost(block: nn.Module, channels: int, size: int = 56) -> dict[str, int]:
    """Conv weights and FLOPs of one block reading a ``(1, channels, size, size)`` map (56: ResNet's conv2_x)."""
    return {"weights": count_conv_weights(block), "FLOPs": count_flops(block, size, channels=channels)}


def bottleneck_layer(c_in: int = 1024, c_out: int = 256, bn_relu: bool = False) -> nn.Module:
    """The transfer-learning *bottleneck layer*: pooled features ``(B, c_in)`` -> ``(B, c_out)``, no expansion.

    A single linear projection (a 1x1 conv on the pooled map) that narrows what the new head sees, as in
    domain-adaptation code (``bottleneck_dim=256``).  ``bn_relu`` adds the BatchNorm1d + ReLU many of those
    codes put after it.  It sits between the backbone and the head: a neck in all but name.
    """
    layers: list[nn.Module] = [nn.Linear(c_in, c_out)]
    if bn_relu:
        layers += [nn.BatchNorm1d(c_out), nn.ReLU()]
    return nn.Sequential(*layers)


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.LeakyReLU, nn.Sigmoid, nn.Tanh)


def activation_after_convs(block: nn.Module) -> OrderedDict[str, str | None]:
    """For every conv of ``block``, in the order ``forward`` runs them: the activation that follows, or None.

    Read from the traced graph (``torch.fx``), not from the module list, so a ReLU module reused after several
    convs (torchvision's ResNet blocks) or applied after the shortcut's addition is found where it really acts.
    The walk from a conv stops at the next conv or at the block's output.
    """
    import torch.fx as fx

    gm = fx.symbolic_trace(block)
    mods = dict(gm.named_modules())
    funcs = {F.relu: "relu", F.relu6: "relu6", F.silu: "silu", F.gelu: "gelu", torch.relu: "relu",
             torch.sigmoid: "sigmoid"}

    def kind(node: fx.Node) -> str:
        if node.op == "call_module":
            m = mods[node.target]
            if isinstance(m, nn.Conv2d):
                return "conv"
            if isinstance(m, _ACTIVATIONS):
                return type(m).__name__
        if node.op == "call_function" and node.target in funcs:
            return funcs[node.target]
        if node.op == "output":
            return "output"
        return "pass"  # BatchNorm, the shortcut's addition (operator.add), ...

    out: OrderedDict[str, str | None] = OrderedDict()
    for node in gm.graph.nodes:
        if kind(node) != "conv":
            continue
        act, cur = None, node
        while act is None:
            users = list(cur.users)
            if len(users) != 1:
                break
            cur = users[0]
            k = kind(cur)
            if k in ("conv", "output"):
                break
            if k != "pass":
                act = k
        out[str(node.target)] = act
    return out


def inverted_residual(c: int = 96, expand: int = 6) -> nn.Module:
    """torchvision's MobileNetV2 ``InvertedResidual``: 1x1 expand ``c -> expand*c``, 3x3 depthwise, 1x1 project."""
    from torchvision.models.mobilenetv2 import InvertedResidual

    return InvertedResidual(c, c, stride=1, expand_ratio=expand)


# ----------------------------------------------------------------- tables
def _meta_build(name: str) -> nn.Module:
    """Backbone ``name`` on the meta device with every map it has: C1..C5 for a CNN, fewer for a transformer
    (its builder's ``levels_available``: a plain ViT has one stride)."""
    from . import BACKBONES, build

    levels = getattr(BACKBONES.get(name), "levels_available", ("C1", "C2", "C3", "C4", "C5"))
    with torch.device("meta"):
        return build(name, levels=levels)


def stage_table(backbone: nn.Module | str, image_size: int = 224) -> list[dict[str, Any]]:
    """One row per output map: stage, stride, channels and the measured map size at ``image_size``.

    The row's ``stride`` and ``channels`` come from ``out_specs``; ``map`` is the
    shape a forward pass really produced, and the function checks they agree.
    """
    if isinstance(backbone, str):
        backbone = _meta_build(backbone)
    device = next(backbone.parameters()).device
    with evaluating(backbone):
        feats = backbone(torch.zeros(1, 3, image_size, image_size, device=device))
    rows = []
    for name, spec in backbone.out_specs.items():
        t = feats[name]
        h, w = t.shape[-2:]
        if t.shape[1] != spec.channels:
            raise AssertionError(f"{name}: out_specs says {spec.channels} channels, the map has {t.shape[1]}")
        rows.append({"stage": name, "stride": spec.stride, "channels": spec.channels, "map": f"{h}x{w}",
                     "values": spec.channels * h * w})
    return rows


def stage_overview(names: Sequence[str] | None = None, image_size: int = 224) -> list[dict[str, Any]]:
    """One row per backbone, one column per stage: the channels of its map (``"-"``: no such map).

    Columns are named ``"C1 /2"`` ... ``"C5 /32"`` (stage and stride; at 224x224 a stride-``s`` map is
    ``224 / s`` cells wide), so every backbone's trade of *where* (stride) for *what* (channels) reads in one
    table.  Each row comes from :func:`stage_table`, which checks ``out_specs`` against a real forward pass.
    """
    from . import names as registered

    tables = {name: {r["stage"]: r for r in stage_table(name, image_size)} for name in names or registered()}
    columns: dict[str, int] = {}
    for rows in tables.values():
        for stage, r in rows.items():
            columns.setdefault(stage, r["stride"])
    order = sorted(columns, key=lambda st: columns[st])
    return [{"backbone": name, **{f"{st} /{columns[st]}": rows[st]["channels"] if st in rows else "-" for st in order}}
            for name, rows in tables.items()]


def roughness(maps: torch.Tensor) -> torch.Tensor:
    """How speckled each map of ``(N, H, W)`` is: the mean squared step between neighbouring cells (down and
    across, summed) over four times the map's variance (one number per map).

    0 for a map that varies smoothly, about 1 for pure pixel noise, whatever the map's overall scale -- so the
    responses of differently scaled filters can be compared.
    """
    dy = (maps[:, 1:, :] - maps[:, :-1, :]).pow(2).mean((1, 2))
    dx = (maps[:, :, 1:] - maps[:, :, :-1]).pow(2).mean((1, 2))
    return (dy + dx) / (4 * maps.var((1, 2)) + 1e-12)   # pure noise: each squared step is 2 variances


def compare_backbones(names: Sequence[str] | None = None, image_size: int = 224) -> list[dict[str, Any]]:
    """Parameters, FLOPs, strides and channels of registered backbones (every stage: C1..C5 for a CNN), side by side.

    Built on the ``meta`` device: no weights are allocated and nothing is
    computed, so even ResNet-50 and VGG-11 take milliseconds.
    """
    from . import names as registered

    rows = []
    for name in names or registered():
        bb = _meta_build(name)
        flops = count_flops(bb, image_size)
        rows.append({
            "backbone": name,
            "params (M)": round(count_params(bb) / 1e6, 3),
            "GFLOPs": round(flops / 1e9, 3),
            "GMACs": round(flops / 2e9, 3),
            "strides": tuple(s.stride for s in bb.out_specs.values()),
            "channels": tuple(s.channels for s in bb.out_specs.values()),
            "C5 map": _map_of(bb, "C5", image_size),
        })
    return rows


def _map_of(bb: nn.Module, level: str, image_size: int) -> str:
    """``"7x7"``: the size of map ``level`` at ``image_size`` (``"-"`` for a backbone without it, e.g. a ViT)."""
    spec = bb.out_specs.get(level)
    return f"{image_size // spec.stride}x{image_size // spec.stride}" if spec is not None else "-"


def swap_backbones(config: Mapping[str, Any], swaps: Mapping[str, Mapping[str, Any]], batch: int = 16,
                   image_size: int = 128) -> list[dict[str, Any]]:
    """The same neck and head on each backbone of ``swaps`` (``{label: backbone config}``): one row each.

    A row gives the parameters of each part (:meth:`~course_lib.model.Model.summary`), the wall time per
    image of a forward pass on a random ``(batch, 3, image_size, image_size)`` batch (the median of 3,
    after a warm-up; it depends on the machine, so never assert on it), the maps the backbone gives
    (``in``: what the neck was built from) and the shape of the model's first output (``first output``).
    """
    from ..model import build_model

    x = torch.rand(batch, 3, image_size, image_size)
    rows = []
    for label, backbone in swaps.items():
        model = build_model({**config, "backbone": dict(backbone)})
        params = {r["part"]: r["params"] for r in model.summary()}
        with evaluating(model):
            out = model(x)
            ms = median_time_ms(lambda m=model: m(x), repeats=3) / batch
        first = out if isinstance(out, torch.Tensor) else next(iter(out.values()))
        rows.append({"backbone": label, **{f"{part} params": n for part, n in params.items()},
                     "ms/image": round(ms, 1), "in": describe_specs(model.backbone.out_specs),
                     "first output": tuple(first.shape)})
    return rows


def format_table(rows: Sequence[dict[str, Any]], digits: int | None = None, commas: bool = False) -> str:
    """Rows of dicts as an aligned plain-text table.

    ``digits``: write every float with that many decimals (``0.8206`` -> ``0.821`` for 3); ``commas``:
    write integers with thousands separators (``852201`` -> ``852,201``).  The rows keep their exact values.
    """
    if not rows:
        return "(empty)"
    keys = list(rows[0])

    def cell(v: Any) -> str:
        if digits is not None and isinstance(v, float):
            return f"{v:.{digits}f}"
        if commas and isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,d}"
        return str(v)

    cells = [[cell(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# ----------------------------------------------------------------- filters: hand-made and learned
def edge_filters() -> OrderedDict[str, torch.Tensor]:
    """Hand-made 3x3 pattern detectors: Sobel (vertical / horizontal edges), a diagonal edge, a Laplacian (spots)."""
    sobel_x = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    return OrderedDict([
        ("vertical edge (Sobel x)", sobel_x),
        ("horizontal edge (Sobel y)", sobel_x.T.clone()),
        ("diagonal edge", torch.tensor([[0.0, 1, 2], [-1, 0, 1], [-2, -1, 0]])),
        ("spot (Laplacian)", torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])),
    ])


def channel_agreement(weights: torch.Tensor) -> torch.Tensor:
    """Per filter, the cosine similarity (mean removed) of its colour kernels: columns R/G, G/B, R/B.

    ``weights`` is ``(N, 3, k, k)``; the result is ``(N, 3)``.  Near 1 in every column: the same pattern in every
    colour (a brightness detector).  Strongly negative somewhere: colour-opponent (green vs magenta, ...).
    """
    if weights.ndim != 4 or weights.shape[1] != 3:
        raise ValueError(f"weights must be (N, 3, k, k), got {tuple(weights.shape)}")
    f = weights.detach().float().flatten(2)
    f = f - f.mean(2, keepdim=True)
    return torch.stack([F.cosine_similarity(f[:, a], f[:, b], dim=1) for a, b in ((0, 1), (1, 2), (0, 2))], 1)


def rgb_agreement(weights: torch.Tensor) -> float:
    """Median R/G agreement of first-layer filters ``(N, 3, k, k)`` (see :func:`channel_agreement`).

    1 means the filters use the same pattern in every colour (they look at brightness changes); about 0 means
    the colours are unrelated, as in a random initialisation.
    """
    return float(channel_agreement(weights)[:, 0].median())


def first_conv(module: nn.Module) -> nn.Conv2d:
    """The first ``Conv2d`` a module contains (a backbone's first layer of pattern detectors)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError(f"{type(module).__name__} contains no Conv2d")


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` in [0, 1] -> ``(H, W)`` luminance (ITU-R 601 weights)."""
    w = torch.tensor([0.299, 0.587, 0.114], device=image.device).view(3, 1, 1)
    return (image * w).sum(0)


def responses(image: torch.Tensor, kernels: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Slide each kernel over the image: ``(N, H', W')`` response maps.

    ``kernels`` is ``(N, k, k)`` (applied to the grey image) or ``(N, 3, k, k)``
    (applied to the colour image, like a backbone's first layer).
    """
    if kernels.ndim == 3:
        x, w = grayscale(image)[None, None], kernels[:, None]
    elif kernels.ndim == 4 and kernels.shape[1] == 3:
        x, w = image[None], kernels
    else:
        raise ValueError(f"kernels must be (N, k, k) or (N, 3, k, k), got {tuple(kernels.shape)}")
    k = w.shape[-1]
    return F.conv2d(x, w.to(x.dtype), stride=stride, padding=k // 2)[0]


def filter_grid(weights: torch.Tensor, cell: int = 40, ncols: int = 8, pad: int = 2) -> Image.Image:
    """Draw conv kernels ``(N, 3, k, k)`` as little colour pictures (each scaled to its own min/max)."""
    w = weights.detach().float().cpu()
    if w.ndim == 3:
        w = w[:, None].repeat(1, 3, 1, 1)
    n = w.shape[0]
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    canvas = Image.new("RGB", (ncols * (cell + pad) + pad, nrows * (cell + pad) + pad), (255, 255, 255))
    for i in range(n):
        f = w[i]
        f = (f - f.min()) / (f.max() - f.min()).clamp_min(1e-8)
        tile = Image.fromarray((f.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).resize((cell, cell), Image.NEAREST)
        canvas.paste(tile, (pad + (i % ncols) * (cell + pad), pad + (i // ncols) * (cell + pad)))
    return canvas
