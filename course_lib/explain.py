"""Why did it say "cat"? Class activation maps (CAM) and Grad-CAM.

**CAM** (Zhou et al. 2016, "Learning Deep Features for Discriminative
Localization"). With global average pooling and one linear layer, the score of
class ``k`` is

    logit_k = sum_c w_kc * mean_ij A_c[i, j] + b_k = mean_ij (sum_c w_kc * A_c[i, j]) + b_k

so the weighted sum of the maps *before* pooling, ``M_k = sum_c w_kc * A_c``, is
a map whose mean (plus the bias) *is* the logit: it shows where the evidence
for class ``k`` lies.  :func:`cam` computes it exactly for a course model whose
neck is ``"gap"`` and whose head is the linear classification head.

**Grad-CAM** (Selvaraju et al. 2017) works for any classifier: take a layer's
maps ``A``, weight each channel by the spatial mean of the gradient of the class
score with respect to it, ``alpha_c = mean_ij d logit_k / d A_c[i, j]``, and
keep the positive part ``ReLU(sum_c alpha_c * A_c)``.  For GAP + linear the
gradient is ``w_kc / (h w)`` everywhere, so Grad-CAM on the pooled map is CAM
(positive part, scaled).

>>> m = cam(model, x, "Egyptian cat")                 # doctest: +SKIP
>>> g = grad_cam(torchvision_resnet, x, 285)          # doctest: +SKIP

**Attention maps** (a transformer's own "where did it look"): each self-attention layer of a ViT mixes
the tokens with weights ``softmax(Q K^T / sqrt(d))``, one ``(tokens, tokens)`` matrix per head, every
row summing to 1.  Row ``i`` says how much token ``i`` (a *query*: a patch, or the class token) takes from
every other token (the *keys*).  :func:`attention_maps` catches every layer's weights in one forward
pass; :func:`row_to_grid` puts one query's row back on the patch grid, an ``(h, w)`` map to show over the
photo like a feature map.

>>> maps = attention_maps(tiny_vit, x)                # doctest: +SKIP
>>> maps.map(layer=-1, head=0, query=(3, 4))          # doctest: +SKIP

CAM and Grad-CAM return an ``(H, W)`` tensor in [0, 1] at ``x``'s size (``raw=True``: the
map at the layer's own resolution, not normalised).  The layer's maps are caught
with a forward hook that is always removed (``finally``); the gradient is taken
with :func:`torch.autograd.grad` on that tensor (a tensor-level gradient, as
``tensor.register_hook`` would give: module backward hooks break on in-place
ReLU), so the model's parameters' ``.grad`` are never touched.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .hooks import forward_hooks
from .measure import evaluating

__all__ = ["AttentionMaps", "ClassMaps", "attention", "attention_layers", "attention_maps", "cam", "class_maps",
           "find_last_spatial_layer", "grad_cam", "query_index", "row_to_grid", "side_by_side", "supports_cam"]


# -- inputs and targets -------------------------------------------------------------
def _batch(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[0] != 1):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"explain one image: x must be (3, H, W) or (1, 3, H, W), got {shape}")
    x = x[None] if x.ndim == 3 else x
    p = next(model.parameters(), None)
    return x.to(p.device) if p is not None else x


def class_names_of(model: nn.Module, num_classes: int) -> list[str] | None:
    """The class names a model answers in: its head's ``class_names``; ImageNet's for any 1000-class output."""
    for owner in (getattr(model, "head", None), model):
        names = getattr(owner, "class_names", None)
        if names is not None and len(names) == num_classes:
            return list(names)
    if num_classes == 1000:
        from .weights import class_names

        return list(class_names("mobilenet_v2"))
    return None


def class_index(target: int | str, names: Sequence[str] | None, num_classes: int) -> int:
    """A class index from an index or a name (an unknown name: ValueError listing the close ones)."""
    if isinstance(target, str):
        if names is None:
            raise ValueError(f"this model has no class names; give the class as an index 0..{num_classes - 1}")
        if target in names:
            return list(names).index(target)
        lower = {n.lower(): i for i, n in enumerate(names)}
        if target.lower() in lower:
            return lower[target.lower()]
        close = difflib.get_close_matches(target.lower(), list(lower), n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(repr(names[lower[c]]) for c in close)}." if close else ""
        raise ValueError(f"unknown class {target!r}.{hint} The model knows {len(names)} classes "
                         "(e.g. model.head.class_names).")
    k = int(target)
    if not 0 <= k < num_classes:
        raise ValueError(f"class index {k} is out of range: the model has {num_classes} classes")
    return k


# -- CAM: exact for GAP + linear ------------------------------------------------------
def supports_cam(model: nn.Module) -> bool:
    """True for a course Model whose neck is global average pooling and whose head is one linear layer."""
    from .heads.classification import ClassificationHead
    from .model import Model
    from .necks.basic import GlobalAvgPool

    return (isinstance(model, Model) and not model.multi_head and isinstance(model.neck, GlobalAvgPool)
            and isinstance(model.head, ClassificationHead) and model.head.in_keys[0] == "pooled")


def _cam_parts(model: nn.Module) -> tuple[str, nn.Linear]:
    if not supports_cam(model):
        raise TypeError(
            f"cam() is exact only for a course Model with neck 'gap' and the linear 'classification' head; "
            f"this is a {type(model).__name__}"
            + (f" with neck {type(model.neck).__name__}" if hasattr(model, "neck") else "")
            + ". Use cl.explain.grad_cam(model, x, target, layer=None), which works for any classifier."
        )
    return model.neck.in_keys[0], model.head.fc


def _raw_cams(maps: torch.Tensor, fc: nn.Linear, classes: Sequence[int]) -> torch.Tensor:
    """``(K, h, w)``: for each class, the class-weighted sum of the ``(1, C, h, w)`` maps (no bias)."""
    return torch.einsum("kc,chw->khw", fc.weight[list(classes)], maps[0])


def cam(model: nn.Module, x: torch.Tensor, target: int | str, *, raw: bool = False) -> torch.Tensor:
    """The class activation map of ``target``: where the evidence for that class is, ``(H, W)`` in [0, 1].

    ``raw=True`` returns the map the GAP reads, weighted by the class's row of
    the linear layer, at its own resolution and unscaled: its spatial mean plus
    the bias *is* the logit.
    """
    key, fc = _cam_parts(model)
    x = _batch(model, x)
    with evaluating(model):
        maps = model.backbone(x)[key]
        logits = fc(maps.mean(dim=(2, 3)))
    k = class_index(target, class_names_of(model, logits.shape[-1]), logits.shape[-1])
    m = _raw_cams(maps, fc, [k])
    return m[0] if raw else _to_image(m, x.shape[-2:], relu=False)[0]


# -- Grad-CAM: any classifier ------------------------------------------------------------
def _spatial(out: object) -> bool:
    return isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1


def _resolve_layer(model: nn.Module, layer: nn.Module | str) -> tuple[str, nn.Module]:
    if isinstance(layer, str):
        named = dict(model.named_modules())
        if layer not in named:
            close = difflib.get_close_matches(layer, list(named), n=5, cutoff=0.5)
            raise ValueError(f"the model has no layer {layer!r}; close names: {close}")
        return layer, named[layer]
    for name, m in model.named_modules():
        if m is layer:
            return name, m
    raise ValueError(f"layer {type(layer).__name__} is not a module of this model")


def _forward_catching(model: nn.Module, x: torch.Tensor, layer: nn.Module | str | None):
    """One forward pass (grad on) that also catches the layer's output: ``(logits, maps, layer_name)``.

    ``layer=None``: every module is hooked and the last one to return a 4-D
    spatial map wins.  A named layer's output is passed on as a copy, so a
    later in-place op (``out += identity``, ``ReLU(inplace=True)``) cannot change the
    maps we keep.
    """
    caught: dict[str, object] = {}
    names = {m: n for n, m in model.named_modules()}

    def keep(module, inputs, out):
        if _spatial(out):
            caught["name"], caught["maps"] = names[module], out

    def keep_copy(module, inputs, out):
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            raise ValueError(f"layer {names[module]!r} gives {type(out).__name__} "
                             f"{tuple(getattr(out, 'shape', ()))}, not a (1, C, H, W) map")
        caught["name"], caught["maps"] = names[module], out
        return out.clone()

    if layer is None:
        targets, hook = [m for m in model.modules() if m is not model], keep
    else:
        targets, hook = [_resolve_layer(model, layer)[1]], keep_copy
    with forward_hooks((m, hook) for m in targets):
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise TypeError(f"grad_cam needs a classifier that returns (1, num_classes) logits, got "
                        f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}")
    if "maps" not in caught:
        raise ValueError("no module of this model returns a spatial (1, C, H, W) map; give layer=...")
    return logits, caught["maps"], caught["name"]


def find_last_spatial_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The name of the last module whose output is a 4-D spatial map (what ``grad_cam(layer=None)`` uses)."""
    x = _batch(model, x)
    with evaluating(model):
        return _forward_catching(model, x, None)[2]


def _raw_grad_cams(logits: torch.Tensor, maps: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """``(K, h, w)``: ``sum_c alpha_c A_c`` per class, ``alpha`` the spatial mean of d logit / d A (no ReLU yet)."""
    out = []
    for i, k in enumerate(classes):
        (grad,) = torch.autograd.grad(logits[0, k], maps, retain_graph=i < len(classes) - 1)
        alpha = grad[0].mean(dim=(1, 2))                      # (C,)
        out.append(torch.einsum("c,chw->hw", alpha, maps[0].detach()))
    return torch.stack(out)


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | str, layer: nn.Module | str | None = None, *,
             raw: bool = False) -> torch.Tensor:
    """Grad-CAM of ``target`` on ``layer`` (default: the last spatial layer): ``(H, W)`` in [0, 1].

    Works for any classifier ``nn.Module`` that maps ``(1, 3, H, W)`` to
    ``(1, num_classes)`` (course models, ``torchvision.models.resnet18()``, ...).
    ``raw=True``: ``ReLU(sum_c alpha_c A_c)`` at the layer's resolution, unscaled.
    The model runs in eval mode with gradients on; its mode is restored after.
    """
    x = _batch(model, x)
    with evaluating(model, no_grad=False), torch.enable_grad():
        logits, maps, _ = _forward_catching(model, x, layer)
        k = class_index(target, class_names_of(model, logits.shape[-1]), logits.shape[-1])
        m = _raw_grad_cams(logits, maps, [k])
    return m[0].clamp_min(0) if raw else _to_image(m, x.shape[-2:], relu=True)[0]


def _to_image(m: torch.Tensor, size: torch.Size, relu: bool) -> torch.Tensor:
    """``(K, h, w)`` -> ``(K, H, W)`` in [0, 1]: (ReLU,) bilinear upsample, min-max scale per map."""
    m = m.detach().float()
    if relu:
        m = m.clamp_min(0)
    up = F.interpolate(m[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    lo = up.amin(dim=(1, 2), keepdim=True) if not relu else torch.zeros_like(up[:, :1, :1])
    hi = up.amax(dim=(1, 2), keepdim=True)
    return ((up - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)


# -- several classes from one forward pass (what the explorer caches) -------------------
@dataclass
class ClassMaps:
    """One forward pass, explained: the top classes and their maps, by method (``"CAM"``, ``"Grad-CAM"``)."""

    image: torch.Tensor              # (3, H, W): what the model saw
    probs: torch.Tensor              # (num_classes,)
    classes: list[int]               # the explained classes, best first
    names: list[str]
    maps: dict[str, torch.Tensor] = field(default_factory=dict)   # method -> (K, H, W) in [0, 1]
    layer: str = ""                  # the layer Grad-CAM read


def class_maps(model: nn.Module, x: torch.Tensor, k: int = 5, *, classes: Sequence[int | str] | None = None,
               layer: nn.Module | str | None = None) -> ClassMaps:
    """CAM (when the model allows it) and Grad-CAM of the top-``k`` classes (or ``classes``), one forward pass.

    Grad-CAM needs one backward pass per class but no second forward pass:
    the graph of the one forward pass is kept until the last class.
    """
    x = _batch(model, x)
    seen: dict[str, torch.Tensor] = {}
    catch_cam = []
    if supports_cam(model):  # CAM reads the map the GAP pools, caught on its way into the neck
        key = model.neck.in_keys[0]
        catch_cam.append((model.neck, lambda m, inputs, out: seen.update(CAM=inputs[0][key])))
    with forward_hooks(catch_cam):
        with evaluating(model, no_grad=False), torch.enable_grad():
            logits, maps, name = _forward_catching(model, x, layer)
            n = logits.shape[-1]
            names = class_names_of(model, n)
            if classes is None:
                chosen = logits[0].detach().topk(min(k, n)).indices.tolist()
            else:
                chosen = [class_index(c, names, n) for c in classes]
            out = {}
            if "CAM" in seen:
                out["CAM"] = _to_image(_raw_cams(seen["CAM"], model.head.fc, chosen), x.shape[-2:], relu=False)
            out["Grad-CAM"] = _to_image(_raw_grad_cams(logits, maps, chosen), x.shape[-2:], relu=True)
    return ClassMaps(image=x[0].detach(), probs=F.softmax(logits[0].detach().float(), -1), classes=chosen,
                     names=[names[c] if names else f"class {c}" for c in chosen], maps=out, layer=name)


def side_by_side(images: Sequence[torch.Tensor], size: int = 224) -> torch.Tensor:
    """Photos side by side, each in ImageNet's view (shorter side to ``size``, centre ``size`` x ``size`` crop).

    Two photos give one ``(3, size, 2 size)`` picture: left half the first, right half the second.
    """
    from .images import imagenet_view

    return torch.cat([imagenet_view(im, resize=size, crop=size) for im in images], dim=-1)


# -- attention: where a transformer looks ---------------------------------------------
def attention_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The self-attention modules of ``model``, first to last: the course ViT's
    :class:`~course_lib.backbones.vit.Attention` and torch's ``nn.MultiheadAttention`` (torchvision's ViT)."""
    from .backbones.vit import Attention

    found = [(n, m) for n, m in model.named_modules() if isinstance(m, (Attention, nn.MultiheadAttention))]
    if not found and any(type(m).__name__.startswith("ShiftedWindowAttention") for m in model.modules()):
        raise TypeError("this is a Swin: its attention runs inside small shifted windows, not over the whole image, "
                        "so a query has no full-image row to show. Attention maps here are for plain ViTs "
                        "(cl.backbones.build('tiny_vit'), torchvision's vit_b_16); look at a Swin's C2..C5 maps "
                        "with cl.widgets.FeatureExplorer instead")
    if not found:
        raise TypeError(f"{type(model).__name__} has no self-attention layer (the course's vit.Attention or "
                        "nn.MultiheadAttention): attention maps need a transformer, e.g. cl.backbones.build('tiny_vit')")
    return found


def patch_size_of(model: nn.Module) -> int:
    """The patch size of a ViT: its first conv whose kernel equals its stride (the patch embedding)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == m.stride and m.kernel_size[0] > 1:
            return int(m.kernel_size[0])
    raise TypeError(f"{type(model).__name__} has no patch embedding (a conv with kernel = stride)")


def _mha_weights(m: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The ``(B, heads, N, N)`` weights ``nn.MultiheadAttention`` computes for these inputs (it can skip
    returning them, as torchvision's ViT asks): ``softmax(Q K^T / sqrt(d))`` from its own projections.
    ``query`` and ``key`` are batch first, ``(B, N, E)``."""
    e, h = m.embed_dim, m.num_heads
    if m._qkv_same_embed_dim:
        wq, wk = m.in_proj_weight[:e], m.in_proj_weight[e:2 * e]
    else:
        wq, wk = m.q_proj_weight, m.k_proj_weight
    bq, bk = (m.in_proj_bias[:e], m.in_proj_bias[e:2 * e]) if m.in_proj_bias is not None else (None, None)
    b, n, _ = query.shape
    q = F.linear(query, wq, bq).view(b, n, h, e // h).transpose(1, 2)
    k = F.linear(key, wk, bk).view(b, key.shape[1], h, e // h).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(e // h), dim=-1)


def _later(m: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _mha_weights(m, query, key)[0].float().cpu()


def model_view(model: nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(shown, model_input)`` for one ``(3, H, W)`` picture.

    torchvision's own ``VisionTransformer`` takes exactly ``image_size`` pixels, normalised with ImageNet's
    statistics: the picture is resized and centre-cropped (:func:`~course_lib.images.imagenet_view`) and
    normalised.  Course backbones take the picture as it is (they normalise inside when they need to).
    """
    from torchvision.models import VisionTransformer

    if isinstance(model, VisionTransformer):
        from .backbones.torchvision_backbones import Normalize
        from .images import imagenet_view

        s = int(model.image_size)
        shown = imagenet_view(image, resize=s * 256 // 224, crop=s)
        return shown, Normalize().to(shown.device)(shown[None])[0]
    return image, image


@dataclass
class AttentionMaps:
    """Every attention layer of one forward pass on one image.

    ``weights(i)`` is layer ``i``'s ``(heads, tokens, tokens)`` matrix (rows: queries, columns: keys; each row
    sums to 1).  For ``nn.MultiheadAttention`` layers the pass keeps each layer's input and the matrix is
    computed from it the first time it is asked for (then kept), so looking at one layer of a big ViT costs
    one layer's ``Q K^T``, not twelve.  The tokens are ``prefix`` extra ones (the class token) followed by the ``grid`` of patches,
    row by row; ``patch`` is the patch size in pixels of ``image`` (what the model saw).
    """

    image: torch.Tensor
    layers: list[str]
    sources: list[torch.Tensor | Callable[[], torch.Tensor]]
    grid: tuple[int, int]
    prefix: int
    patch: int
    num_heads: int

    def weights(self, layer: int | str) -> torch.Tensor:
        """Layer ``layer``'s ``(heads, tokens, tokens)`` attention weights (an index or a layer name)."""
        i = self._layer(layer)
        if callable(self.sources[i]):
            self.sources[i] = self.sources[i]()
        return self.sources[i]

    def _layer(self, layer: int | str) -> int:
        return self.layers.index(layer) if isinstance(layer, str) else range(len(self.layers))[layer]

    def row(self, layer: int | str, head: int | str, query: tuple[int, int] | str) -> torch.Tensor:
        """How query ``query`` (a patch ``(y, x)`` or ``"cls"``) spreads its attention over all tokens:
        ``(tokens,)``, summing to 1.  ``head="mean"`` averages the heads."""
        w = self.weights(layer)
        w = w.mean(0) if head == "mean" else w[int(head)]
        return w[query_index(query, self.grid, self.prefix)]

    def mean_distance(self, layer: int | str, head: int | str) -> float:
        """How far, in pixels, a patch looks on average: ``sum_j a_ij * |pos_i - pos_j|`` averaged over every
        patch query ``i`` (keys ``j`` on the grid; the class token left out).  The ViT paper's measure: some
        heads of early layers look near (like a conv), deep layers look far."""
        w = self.weights(layer)
        w = w.mean(0, keepdim=True) if head == "mean" else w[int(head)][None]
        p = self.prefix
        a = w[:, p:, p:]                                             # patch queries -> patch keys
        ys, xs = torch.meshgrid(torch.arange(self.grid[0]), torch.arange(self.grid[1]), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], -1).float() * self.patch
        dist = torch.cdist(pos, pos)                                 # (patches, patches) in pixels
        return float((a * dist).sum(-1).mean())

    def map(self, layer: int | str, head: int | str, query: tuple[int, int] | str) -> torch.Tensor:
        """The same row on the patch grid, ``(h, w)``: where the query looks (the class token's share is left out)."""
        return row_to_grid(self.row(layer, head, query), self.grid, self.prefix)


def query_index(query: tuple[int, int] | str, grid: tuple[int, int], prefix: int = 1) -> int:
    """The token index of a query: ``"cls"`` is token 0, patch ``(y, x)`` is ``prefix + y * w + x``."""
    if isinstance(query, str):
        if query != "cls" or prefix < 1:
            raise ValueError(f"query must be a patch (y, x) or 'cls' (when there is a class token), got {query!r}")
        return 0
    y, x = (int(v) for v in query)
    if not (0 <= y < grid[0] and 0 <= x < grid[1]):
        raise ValueError(f"query cell {(y, x)} is outside the {grid[0]}x{grid[1]} patch grid")
    return prefix + y * grid[1] + x


def row_to_grid(row: torch.Tensor, grid: tuple[int, int], prefix: int = 1) -> torch.Tensor:
    """One query's attention row ``(prefix + h*w,)`` as an ``(h, w)`` map over the patches.

    The first ``prefix`` keys (the class token) have no place on the grid and are dropped, so the map sums to
    1 minus what the query gave the class token.
    """
    h, w = grid
    if row.shape[-1] != prefix + h * w:
        raise ValueError(f"a row of {row.shape[-1]} keys does not fit {prefix} prefix token(s) + a {h}x{w} grid")
    return row[..., prefix:].reshape(*row.shape[:-1], h, w)


def attention_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[int | str] | None = None) -> AttentionMaps:
    """One forward pass of ``model`` on one picture, catching the attention weights of every layer (or ``layers``).

    ``model`` is a course ViT backbone, a course Model with one, or torchvision's ``VisionTransformer``
    (:func:`model_view` resizes and normalises for it).  The weights are caught with forward hooks that are
    removed when the pass ends: the course ViT's softmax output is the matrix it used; for
    ``nn.MultiheadAttention`` it is recomputed from the layer's own input and projections.
    """
    found = attention_layers(model)
    names = [n for n, _ in found]
    if layers is not None:
        pick = [names.index(ly) if isinstance(ly, str) else range(len(names))[ly] for ly in layers]
        found = [found[i] for i in pick]
    if not isinstance(x, torch.Tensor):
        from .images import load_image

        x = load_image(x)
    image = x[0] if x.ndim == 4 else x
    shown, model_in = model_view(model, image)
    batch = _batch(model, model_in)
    caught: dict[str, tuple] = {}

    def catcher(name: str, mha: bool):
        def hook(module, inputs, out):
            if mha:
                if len(inputs) < 2:
                    raise ValueError(f"{name} was called with keyword inputs; its hook sees only positional ones")
                q, k = inputs[0], inputs[1]
                if not module.batch_first:
                    q, k = q.transpose(0, 1), k.transpose(0, 1)
                q, k = q[:1].detach(), k[:1].detach()
                caught[name] = (q.shape[1], module.num_heads, lambda: _later(module, q, k))
            else:
                caught[name] = (out.shape[-1], out.shape[1], out[0].detach().float().cpu())
        return hook

    from .backbones.vit import Attention

    hooks = [(m.softmax, catcher(n, False)) if isinstance(m, Attention) else (m, catcher(n, True)) for n, m in found]
    with forward_hooks(hooks), evaluating(model):
        model(batch)
    p = patch_size_of(model)
    grid = (-(-batch.shape[-2] // p), -(-batch.shape[-1] // p))
    tokens, heads, _ = caught[found[0][0]]
    prefix = tokens - grid[0] * grid[1]
    if prefix < 0:
        raise ValueError(f"{tokens} tokens cannot hold a {grid[0]}x{grid[1]} grid of {p}-px patches")
    return AttentionMaps(image=shown.detach().cpu(), layers=[n for n, _ in found],
                         sources=[caught[n][2] for n, _ in found], grid=grid, prefix=int(prefix), patch=p,
                         num_heads=int(heads))


def attention(model: nn.Module, x: torch.Tensor, layer: int | str = -1, head: int | None = None) -> torch.Tensor:
    """The attention weights of one layer: ``(heads, queries, keys)``, or ``(queries, keys)`` for one ``head``.

    ``layer`` is an index into :func:`attention_layers` (``-1``: the last) or a module name.
    """
    w = attention_maps(model, x, [layer]).weights(0)
    return w if head is None else w[head]
