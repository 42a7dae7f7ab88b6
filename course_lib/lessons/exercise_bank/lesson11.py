"""Lesson 11 exercises: transformer eyes (tokens, one stride, Swin's hierarchy, the simple pyramid)."""

from __future__ import annotations

from ..exercises import Exercise, LazyExercise, register


def _tokens_at(size: int) -> int:
    """How many tokens the course ViT (patch 16) feeds its first block for a ``size`` x ``size`` image."""
    import torch

    from ...backbones import build

    eye = build("tiny_vit", image_size=size)
    with torch.no_grad():
        tokens, _ = eye.tokens(torch.zeros(1, 3, size, size))
    return int(tokens.shape[1])


def _deconvs_for_p3(patch: int) -> int:
    """How many stride-2 deconvolutions the simple pyramid stacks to make P3 from a ViT's one map."""
    from torch import nn

    from ...backbones import build
    from ...necks import build as build_neck

    eye = build("tiny_vit", patch_size=patch)
    neck = build_neck("simple_pyramid", eye.out_specs, out_channels=32, levels=("P3", "P4", "P5", "P6"))
    return sum(isinstance(m, nn.ConvTranspose2d) for m in neck.scale["P3"].modules())


register(LazyExercise(
    id="11.tokens_224",
    question="A 224 x 224 image goes into a ViT with 16 x 16 patches. How many tokens enter its first block, "
             "the class token included?",
    compute=lambda: _tokens_at(224),
    hints=["count the patches along one side first: 224 / 16", "a grid of 14 x 14 patches, plus one more token"],
    explanation="14 x 14 = 196 patch tokens + 1 class token = 197 (torchvision's vit_b_16 says the same: "
                "its encoder gives (B, 197, 768)).",
))
register(LazyExercise(
    id="11.p3_from_patch32",
    question="A ViT with 32 x 32 patches gives one map at stride 32 (C5). ViTDet's simple pyramid builds "
             "P3..P5 (and P6) from it. How many stride-2 deconvolutions does the P3 branch stack?",
    compute=lambda: _deconvs_for_p3(32),
    hints=["each stride-2 deconvolution halves the stride", "from stride 32 to stride 8"],
    explanation="32 -> 16 -> 8: two deconvolutions (with a norm and a GELU between them, as in the paper's P2 "
                "branch on a stride-16 map).",
))
register(Exercise(
    id="11.swin_c5",
    question="A Swin (patch 4, then three patch-merging steps) looks at a 224 x 224 image. How many cells "
             "(height, width) does its last map, C5, have?",
    answer=(7, 7),
    hints=["patch 4 gives stride 4; each patch merging doubles the stride", "stride 32: 224 / 32"],
    explanation="Strides 4, 8, 16, 32: C5 is 224 / 32 = 7 cells a side, like a ResNet's C5.",
))
register(Exercise(
    id="11.quadratic",
    question="At 128 px and patch 16 the course ViT has 65 tokens, so one attention matrix has 65 x 65 entries. "
             "The same ViT on a 256 x 256 image: how many times more entries has each attention matrix? "
             "(a number, e.g. 4.0)",
    answer=(16 * 16 + 1) ** 2 / 65 ** 2,
    rel_tol=0.01,
    hints=["count the tokens at 256 px first (class token included)", "(257 / 65) squared"],
    explanation="257^2 / 65^2 = 15.6: four times the pixels, about sixteen times the attention. Swin's windows "
                "keep each matrix at window x window tokens, so its cost grows only with the number of windows.",
))


# ---------------------------------------------------------------- an answer that is code
def _reshape_like_the_backbone(fn, _ref) -> bool:
    """Run the learner's ``fn(tokens, h, w)`` on a real ViT's last tokens (a 3 x 5 grid) and compare it with
    the map the course backbone gives for the same image."""
    import torch

    from ...backbones import build

    torch.manual_seed(0)
    eye = build("tiny_vit").eval()
    x = torch.rand(1, 3, 48, 80)                      # 3 x 5 patches: rows and columns cannot be swapped unseen
    with torch.no_grad():
        tokens, (h, w) = eye.tokens(x)
        tokens = eye.run_blocks(tokens)               # (1, 1 + 15, 96): class token first, then row by row
        want = eye(x)["C4"]                           # (1, 96, 3, 5)
        got = fn(tokens.clone(), h, w)
    return isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want)


def _reference_to_grid(tokens, h, w):
    patches = tokens[:, 1:]                           # drop the class token
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], h, w)


register(Exercise(
    id="11.to_grid",
    question="Write to_grid(tokens, h, w): tokens is (B, 1 + h*w, C), the class token first and then the "
             "patches row by row. Return the (B, C, h, w) map a detection neck can read. Pass the function.",
    answer=_reference_to_grid,
    hints=["drop token 0 (the class token) first: tokens[:, 1:]",
           "the channels must come before the grid: .transpose(1, 2) gives (B, C, h*w)",
           "then .reshape(B, C, h, w): row by row, as the tokens were laid out"],
    explanation="Checked against the course ViT's own map on a 3 x 5 grid: drop the class token, put the channels "
                "first, and fold the sequence back into rows.",
    compare=_reshape_like_the_backbone,
))
