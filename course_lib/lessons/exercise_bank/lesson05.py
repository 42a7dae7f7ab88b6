"""Lesson 05 exercises: the neck's context (SPP, SPPF, ASPP) and attention (SE, CBAM) modules."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="05.sppf_chain",
    question="SPPF chains a 5x5, stride-1 max-pool. Chained 3 times it equals one 13x13 pool. Chained 4 times, "
             "it equals one max-pool of what size? Answer with the side length.",
    answer=17,
    hints=["each extra 5x5 pool widens the window by 4 (2 cells on each side)", "5, 9, 13, ..."],
    explanation="5 + 4 * 3 = 17: a k x k pool after a w x w pool sees w + k - 1 pixels.",
))
register(Exercise(
    id="05.aspp_gap",
    question="DeepLab v3's ASPP works on a stride-16 map. For the 3x3 branch with dilation rate 12, how many "
             "input-image pixels apart are two neighbouring sampling points?",
    answer=192,
    hints=["neighbouring taps are `rate` cells apart", "each cell is 16 pixels: 12 * 16 = ?"],
    explanation="12 cells x 16 pixels = 192 pixels. The 3x3 kernel spans 2 * 192 = 384 pixels: on a 513-pixel "
                "crop many taps already fall outside, which is why the image-pooling branch exists.",
))


def _collapse_rate(map_hw: tuple[int, int] = (14, 14), cell: tuple[int, int] = (7, 7), stride: int = 16) -> int:
    """The smallest dilation rate at which only the centre tap of a 3x3 conv at ``cell`` lies inside the map."""
    from ...widgets.dilation_explorer import sampling_grid

    rate = 1
    while sum(t.inside for t in sampling_grid(cell, rate, stride, map_hw)) > 1:
        rate += 1
    return rate


register(Exercise(
    id="05.rate_collapse",
    question="A 224x224 image gives MobileNetV2 a 14x14 C4 map (stride 16; rows and columns 0..13). A dilated 3x3 "
             "conv runs on it. At the centre cell (7, 7), from which dilation rate on does only 1 of its 9 taps "
             "fall inside the map (the other 8 read zero padding)? Answer with the smallest such rate. It is "
             "checked with the library's sampling_grid, the function the dilation explorer draws with.",
    answer=8,
    compare=lambda value, ref: (isinstance(value, (int, float)) and not isinstance(value, bool) and value == ref
                                and ref == _collapse_rate()),
    hints=["on each axis the taps sit at 7 - rate, 7 and 7 + rate; a tap is inside when 0 <= index <= 13",
           "both outer taps must be outside: 7 - rate < 0 and 7 + rate > 13. Try rate 7 first: where is 7 - 7?"],
    explanation="At rate 7 the taps at row or column 0 are still inside (2 x 2 = 4 of 9); from rate 8 on only the "
                "centre tap reads the map, and the branch is a 1x1 conv with eight wasted weights. DeepLab v3 "
                "used rates 6/12/18 on the 33x33 stride-16 map of its 513-pixel crops and added the image-pooling "
                "branch because large rates degenerate this way; on a smaller map it happens sooner.",
))


def _reference_se(x, fc):
    """The reference answer: squeeze (mean over H and W), excite (the MLP), sigmoid, one weight per channel."""
    import torch

    return torch.sigmoid(fc(x.mean(dim=(2, 3), keepdim=True))).flatten(1)


def _check_se_fn(fn) -> bool:
    """The learner's ``fn(x, fc)`` must give the channel weights the library's SE neck computes."""
    from collections import OrderedDict

    import torch

    from ...contract import FeatureSpec
    from ...necks import build

    for seed in (0, 1):
        torch.manual_seed(seed)
        se = build("se", OrderedDict(C4=FeatureSpec(32, 16)), reduction=4).eval()
        x = torch.randn(2, 32, 7, 9, generator=torch.Generator().manual_seed(seed)) + 0.5
        with torch.no_grad():
            se({"C4": x})
            want = se.last_attention["P4"]["channel"]
            got = fn(x.clone(), se.se[0].fc)
        if not isinstance(got, torch.Tensor) or got.numel() != want.numel() or got.shape[0] != want.shape[0]:
            return False
        if got.shape not in (want.shape, (*want.shape, 1, 1)):
            return False
        if not torch.allclose(got.reshape(want.shape), want, atol=1e-5):
            return False
    return True


register(Exercise(
    id="05.write_se",
    question="Write se_weights(x, fc): x is a (B, C, H, W) map, fc is an SE block's excitation MLP (1x1 conv "
             "C -> C/r, ReLU, 1x1 conv C/r -> C; it reads a (B, C, 1, 1) tensor). Return SE's channel weights, "
             "shape (B, C) (or (B, C, 1, 1)), each in (0, 1). It is checked against the library's SE neck on "
             "random maps and weights.",
    answer=_reference_se,
    compare=lambda fn, ref: callable(fn) and _check_se_fn(fn),
    hints=["squeeze first: one number per channel, the mean over H and W -- x.mean(dim=(2, 3), keepdim=True) keeps "
           "the (B, C, 1, 1) shape the 1x1 convs read",
           "then excite: pass that through fc, and squash with torch.sigmoid; .flatten(1) gives (B, C)",
           "SE averages (CBAM's channel attention adds a max-pooled vector too): mean, not amax"],
    explanation="torch.sigmoid(fc(x.mean(dim=(2, 3), keepdim=True))).flatten(1): squeeze to one number per channel, "
                "a small MLP, a sigmoid -- one weight per channel, *which* channels matter. The neck then "
                "multiplies x by them; course_lib.necks.attention.SEBlock is these three lines.",
))
