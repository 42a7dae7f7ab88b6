"""Transformer eyes: a plain ViT (one stride) and a Swin (strides 4-32, like a CNN).

**ViT** (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"): cut the image into ``p x p`` patches
(a conv with kernel = stride = ``p`` is exactly "flatten each patch and multiply by one matrix"), add a
learned *position embedding* so the tokens know where they came from, put one extra learned **class
token** in front, and run ``depth`` identical pre-norm transformer blocks::

    x = x + Attention(LayerNorm(x))      # every token looks at every token
    x = x + MLP(LayerNorm(x))            # each token on its own

The tokens never merge: after the last block there are still ``H/p x W/p`` patch tokens of ``width``
channels, so the map a ViT gives has **one stride**, ``p``.  As a course backbone the class token
(a summary the classifier of the original paper reads) is dropped and the patch tokens are put back
on their grid: one map ``(B, width, H/p, W/p)`` named by its stride (``C4`` for ``p = 16``).

**Swin** (Liu et al. 2021) keeps attention inside small windows and merges 2x2 neighbouring tokens
between stages (patch merging), so its maps halve like a CNN's: ``C2..C5`` at strides 4..32.
``tiny_swin`` is torchvision's own Swin architecture at a tiny size; :func:`torchvision_swin` and
:func:`torchvision_vit` wrap torchvision's ``swin_t`` / ``vit_b_16`` (random weights, or the
official ImageNet ones through :mod:`course_lib.weights`).

The two sizes the course compares, counted with :func:`course_lib.measure.count_params` and
:func:`~course_lib.measure.count_flops` at 128 px (``tests/test_vit.py`` checks the counts):

==============================================  ==========  ===========  =========================
eye (default arguments)                         parameters  MFLOPs/128²  map(s) at 128 px
==============================================  ==========  ===========  =========================
``tiny_cnn`` (widths 16, 32, 64, 96, 128)       458,160     67.2         C3..C5: 16x16, 8x8, 4x4
``tiny_vit`` (patch 16, width 96, depth 4,      453,600     63.8         C4: 8x8 (+ 1 class token)
3 heads, MLP ratio 3)
``tiny_swin`` (embed 16, depths 1, 1, 3, 1,     410,311     45.0         C3..C5 (C2 at 32x32 too)
heads 1, 2, 4, 8, window 4)
==============================================  ==========  ===========  =========================
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.ops.misc import Permute

from ..contract import Backbone, FeatureSpec, check_image_batch, level_of
from . import BACKBONES
from .custom import tokens_to_grid
from .torchvision_backbones import Normalize, StagedBackbone, _load

__all__ = ["Attention", "PlainViT", "TransformerBlock", "TinyViT", "TorchvisionViT", "tiny_swin", "tiny_vit",
           "torchvision_swin", "torchvision_vit"]


# ----------------------------------------------------------------- the parts of a ViT
class Attention(nn.Module):
    """Multi-head self-attention, written out: ``softmax(Q K^T / sqrt(d)) V`` per head.

    ``softmax`` is its own submodule, so a forward hook on it catches the attention weights
    ``(B, heads, tokens, tokens)`` the block really used (row ``i``: how token ``i`` spreads its attention
    over all tokens; every row sums to 1).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of ``x`` ``(B, N, C)``, each ``(B, heads, N, head_dim)``."""
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_heads(x)
        attn = self.softmax((q @ k.transpose(-2, -1)) * self.scale)  # (B, heads, N, N)
        out = (attn @ v).transpose(1, 2).flatten(2)                   # heads side by side again
        return self.proj(out)


class TransformerBlock(nn.Module):
    """A pre-norm transformer block: ``x + Attention(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def resize_positions(pos: torch.Tensor, grid0: tuple[int, int], grid: tuple[int, int], prefix: int = 1) -> torch.Tensor:
    """A position embedding ``(1, prefix + h0*w0, C)`` learned on one grid, stretched (bicubic) to another.

    The ``prefix`` tokens (the class token) have no place on the grid and are kept as they are.
    """
    if tuple(grid) == tuple(grid0):
        return pos
    head, cells = pos[:, :prefix], pos[:, prefix:]
    c = cells.shape[-1]
    cells = cells.reshape(1, grid0[0], grid0[1], c).permute(0, 3, 1, 2)
    cells = F.interpolate(cells, size=tuple(grid), mode="bicubic", align_corners=False)
    return torch.cat([head, cells.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], c)], dim=1)


class PlainViT(Backbone):
    """What every plain ViT backbone does: patches -> tokens (+ class token, + positions) -> blocks -> grid.

    Subclasses provide ``patch_embed`` (the strided conv), ``cls_token``, ``pos_embed``, ``blocks``,
    ``norm`` and ``grid0`` (the grid the positions were learned on).  An image whose sides are not
    multiples of the patch size is padded at the right and bottom (as ViTDet does), so the map has
    ``ceil(H / p) x ceil(W / p)`` cells, like a CNN's.
    """

    patch_size: int
    grid0: tuple[int, int]
    prefix: int = 1  # tokens in front of the patches: the class token

    def _setup(self, name: str, width: int, normalize: bool, levels: Sequence[str] | None) -> None:
        self.name = name
        self.width = width
        self.normalize = Normalize() if normalize else nn.Identity()
        level = level_of(self.patch_size)
        if levels is not None and list(levels) != [level]:
            raise ValueError(f"backbone {name!r} is a plain ViT: it has one map, {level} (stride {self.patch_size}); "
                             f"cannot output {list(levels)}. Use levels=({level!r},) or leave levels out.")
        self.out_specs = OrderedDict({level: FeatureSpec(width, self.patch_size)})

    def grid(self, h: int, w: int) -> tuple[int, int]:
        """The patch grid of an ``h x w`` image: ``(ceil(h / p), ceil(w / p))``."""
        p = self.patch_size
        return -(-h // p), -(-w // p)

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The input tokens ``(B, 1 + h*w, C)``: class token, then the patches row by row, positions added."""
        p = self.patch_size
        gh, gw = self.grid(*x.shape[-2:])
        x = F.pad(x, (0, gw * p - x.shape[-1], 0, gh * p - x.shape[-2]))
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)        # (B, h*w, C)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        t = torch.cat([cls, patches], dim=1)
        return t + resize_positions(self.pos_embed, self.grid0, (gh, gw), self.prefix), (gh, gw)

    def run_blocks(self, t: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        check_image_batch(x, f"backbone {self.name!r}")
        t, (gh, gw) = self.tokens(self.normalize(x))
        t = self.run_blocks(t)
        fmap = tokens_to_grid(t, gh, gw)                                # the class token is dropped
        return OrderedDict({next(iter(self.out_specs)): fmap})


class TinyViT(PlainViT):
    """The course's small ViT: ``patch_size``, ``width``, ``depth``, ``heads``, ``mlp_ratio``; positions
    learned for ``image_size`` (other sizes: stretched, see :func:`resize_positions`)."""

    def __init__(self, patch_size: int = 16, width: int = 96, depth: int = 4, heads: int = 3,
                 mlp_ratio: float = 3.0, image_size: int = 128, levels: Sequence[str] | None = None,
                 normalize: bool = False, name: str = "tiny_vit"):
        super().__init__()
        self.patch_size = int(patch_size)
        self.grid0 = (-(-image_size // self.patch_size),) * 2
        self._setup(name, width, normalize, levels)
        self.patch_embed = nn.Conv2d(3, width, kernel_size=self.patch_size, stride=self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid0[0] * self.grid0[1], width))
        self.blocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        if self.pos_embed.device.type != "meta":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)


@BACKBONES.register("tiny_vit")
def tiny_vit(pretrained: bool = False, levels: Sequence[str] | None = None, patch_size: int = 16, width: int = 96,
             depth: int = 4, heads: int = 3, mlp_ratio: float = 3.0, image_size: int = 128) -> TinyViT:
    """A small ViT for ShapesWorld (≈0.45 M parameters, like ``tiny_cnn``): one map at stride ``patch_size``."""
    if pretrained:
        raise ValueError("tiny_vit has no ImageNet weights: it is trained from scratch on ShapesWorld. "
                         "Use pretrained=False, or torchvision_vit('vit_b_16', pretrained=True) for ImageNet weights.")
    return TinyViT(patch_size, width, depth, heads, mlp_ratio, image_size, levels)


tiny_vit.levels_available = ("C4",)  # what backbones.measure asks for in its tables (the default patch 16)


class TorchvisionViT(PlainViT):
    """torchvision's ``VisionTransformer`` as a course backbone (its own modules, so its weights load key
    for key), at any image size: the positions are stretched to the grid, the class token is dropped."""

    def __init__(self, net: nn.Module, name: str, levels: Sequence[str] | None = None, normalize: bool = True,
                 pretrained: bool = False):
        super().__init__()
        self.patch_size = int(net.patch_size)
        self.grid0 = (net.image_size // self.patch_size,) * 2
        self.pretrained = pretrained
        self._setup(name, int(net.hidden_dim), normalize, levels)
        self.patch_embed = net.conv_proj
        self.cls_token = net.class_token
        self.pos_embed = net.encoder.pos_embedding
        self.blocks = net.encoder.layers
        self.norm = net.encoder.ln


def torchvision_vit(arch: str = "vit_b_16", pretrained: bool = False, levels: Sequence[str] | None = None,
                    normalize: bool = True, download: bool | None = None) -> TorchvisionViT:
    """torchvision's ``vit_b_16`` (or another ``vit_*``) as a one-map backbone (``C4`` for patch 16).

    ``pretrained=True`` loads the official ImageNet weights through :mod:`course_lib.weights`
    (offline first; a clear error when they are not on this machine).
    """
    ctor = getattr(tvm, arch, None)
    if not arch.startswith("vit_") or ctor is None:
        raise ValueError(f"{arch!r} is not a torchvision ViT; try 'vit_b_16', 'vit_b_32', 'vit_l_16'")
    net = ctor(weights=None)
    _load(net, arch, pretrained, download)
    return TorchvisionViT(net, arch, levels, normalize, pretrained)


# ----------------------------------------------------------------- Swin: a hierarchy again
def _swin(net: nn.Module, name: str, levels: Sequence[str], normalize: bool, pretrained: bool) -> StagedBackbone:
    """Cut a torchvision ``SwinTransformer`` into C2..C5, each map channels-first.

    torchvision keeps Swin's maps channels-last ``(B, H, W, C)``; each stage here takes and gives the
    course's ``(B, C, H, W)`` (a :class:`~torchvision.ops.misc.Permute` on each side).  C5 ends with the
    network's final LayerNorm, the map its classifier pools.
    """
    f = net.features
    to_last, to_first = Permute([0, 2, 3, 1]), Permute([0, 3, 1, 2])
    stages = OrderedDict(
        C2=nn.Sequential(f[0], f[1], to_first),
        C3=nn.Sequential(to_last, f[2], f[3], to_first),
        C4=nn.Sequential(to_last, f[4], f[5], to_first),
        C5=nn.Sequential(to_last, f[6], f[7], net.norm, to_first),
    )
    dims = [f[1][-1].norm1.normalized_shape[0], f[3][-1].norm1.normalized_shape[0],
            f[5][-1].norm1.normalized_shape[0], f[7][-1].norm1.normalized_shape[0]]
    specs = {lv: FeatureSpec(int(c), 2 ** (i + 2)) for i, (lv, c) in enumerate(zip(stages, dims))}
    return StagedBackbone(name, stages, specs, levels, normalize, pretrained)


@BACKBONES.register("tiny_swin")
def tiny_swin(pretrained: bool = False, levels: Sequence[str] = ("C3", "C4", "C5"), embed_dim: int = 16,
              depths: Sequence[int] = (1, 1, 3, 1), heads: Sequence[int] = (1, 2, 4, 8),
              window_size: int = 4) -> StagedBackbone:
    """A tiny Swin (torchvision's architecture): patch 4, windows of ``window_size``, widths ``embed_dim * 2**i``.

    Its maps are C2..C5 at strides 4, 8, 16, 32, like a CNN's (default output C3..C5).
    """
    if pretrained:
        raise ValueError("tiny_swin has no ImageNet weights; use torchvision_swin('swin_t', pretrained=True)")
    from torchvision.models.swin_transformer import SwinTransformer

    net = SwinTransformer(patch_size=[4, 4], embed_dim=embed_dim, depths=list(depths), num_heads=list(heads),
                          window_size=[window_size, window_size], stochastic_depth_prob=0.0)
    return _swin(net, "tiny_swin", levels, normalize=False, pretrained=False)


tiny_swin.levels_available = ("C2", "C3", "C4", "C5")


def torchvision_swin(arch: str = "swin_t", pretrained: bool = False, levels: Sequence[str] = ("C2", "C3", "C4", "C5"),
                     normalize: bool = True, download: bool | None = None) -> StagedBackbone:
    """torchvision's ``swin_t`` (or ``swin_s``, ``swin_b``, ``swin_v2_*``) cut into C2..C5."""
    ctor = getattr(tvm, arch, None)
    if not arch.startswith("swin_") or ctor is None:
        raise ValueError(f"{arch!r} is not a torchvision Swin; try 'swin_t', 'swin_s', 'swin_b'")
    net = ctor(weights=None)
    _load(net, arch, pretrained, download)
    return _swin(net, arch, levels, normalize, pretrained)
