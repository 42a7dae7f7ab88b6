"""Lesson 04 exercises: the neck (颈部), the brain that fuses scales (FPN, PAN, add vs concat)."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="04.cells",
    question="A 16x16-pixel object sits on a stride-32 map (C5 / P5). What fraction of one cell's width does "
             "it cover? Answer as a number.",
    answer=0.5,
    rel_tol=1e-6,
    hints=["one cell of a stride-32 map steps over 32 input pixels", "16 / 32 = ?"],
    explanation="16 / 32 = 0.5: the object is half a cell wide, a quarter of its area -- on P5 it is "
                "blended with whatever else falls into that cell. On P3 (stride 8) it spans 2x2 cells.",
))
register(Exercise(
    id="04.fpn_params",
    question="The lesson's table gives the FPN with 64 output channels. Now fuse MobileNetV2's C3, C4, C5 (32, 96 "
             "and 1280 channels) into 128 channels with 1x1 laterals and 3x3 smoothing convs, all with bias, no "
             "extra level. How many parameters does it have?",
    answer=623_360,
    hints=["lateral i: in_channels * 128 weights + 128 biases; smoothing: 128 * 128 * 3 * 3 + 128, three times",
           "laterals: (32 + 96 + 1280) * 128 + 3 * 128 = 180,608; smoothing: 3 * 147,584 = 442,752"],
    explanation="180,608 (laterals, mostly C5's 1280 channels) + 442,752 (smoothing) = 623,360, about 3.1x the "
                "64-channel FPN's 201,088: the laterals grow with the width, the 3x3 smoothing with its square. "
                "Check it: cl.measure.count_params(cl.necks.build('fpn', specs, out_channels=128)).",
))
register(Exercise(
    id="04.concat_width",
    question="In a YOLO-style neck, an upsampled 64-channel map is concatenated with a 64-channel lateral map. "
             "How many channels does the C2f block that fuses them read?",
    answer=128,
    hints=["concatenation stacks channels; addition would keep 64"],
    explanation="64 + 64 = 128: concatenation stacks the inputs, so the C2f's first 1x1 conv reads 128 channels "
                "-- twice the weights and FLOPs of a 1x1 after addition. That conv computes W_a*a + W_b*b, a "
                "learned mix; addition (PANet) learns its mix too, in the convs that produced a and b, and the "
                "sum keeps 64 channels.",
))


def _same_set(value, ref) -> bool:
    if isinstance(value, str):
        return False
    return {str(v).strip().upper() for v in value} == set(ref)


def _fpn_and_maps(seed: int = 0):
    """A small random FPN (C3, C4, C5 of a 300x451 photo: map sizes that do not halve evenly) and its inputs."""
    from collections import OrderedDict

    import torch

    from ...contract import FeatureSpec
    from ...necks.fpn import FPN

    g = torch.Generator().manual_seed(seed)
    specs = OrderedDict(C3=FeatureSpec(8, 8), C4=FeatureSpec(12, 16), C5=FeatureSpec(16, 32))
    sizes = {"C3": (38, 57), "C4": (19, 29), "C5": (10, 15)}
    feats = OrderedDict((k, torch.randn(2, s.channels, *sizes[k], generator=g)) for k, s in specs.items())
    torch.manual_seed(seed)
    return FPN(specs, out_channels=16, extra="maxpool").eval(), feats


def _levels_changed_by_top_down() -> set[str]:
    """Build the FPN, run it with the top-down path on and off, and list the output levels that differ."""
    import torch

    fpn, feats = _fpn_and_maps()
    with torch.no_grad():
        full = fpn(feats)
        fpn.set_paths(top_down=False)
        off = fpn(feats)
    return {k for k in full if not torch.equal(full[k], off[k])}


register(Exercise(
    id="04.top_down_off",
    question="An FPN turns C3, C4, C5 into P3, P4, P5, plus an extra P6 (a stride-2 subsample of P5, as "
             "torchvision's LastLevelMaxPool makes). Switch its top-down path off: which output levels change? "
             "Answer with a set of names, e.g. {'P3'}. It is checked by running the library's FPN both ways.",
    answer={"P3", "P4"},
    compare=lambda value, ref: _same_set(value, ref) and set(ref) == _levels_changed_by_top_down(),
    hints=["the top-down path carries meaning *down*: from P5 towards P3. What reaches P5 from above it?",
           "P6 is computed from P5 alone"],
    explanation="P3 and P4 lose what came down from the coarser levels; P5 is the start of the top-down path "
                "(nothing comes down to it), and P6 is made from P5, so both stay bit-identical.",
))


def _reference_top_down(laterals):
    """The reference answer: start at the coarsest, upsample (nearest) to the finer map's size, add."""
    import torch.nn.functional as F

    merged = [laterals[-1]]
    for lat in reversed(laterals[:-1]):
        merged.insert(0, lat + F.interpolate(merged[0], size=lat.shape[-2:], mode="nearest"))
    return merged


def _check_top_down_fn(fn) -> bool:
    """The learner's ``fn(laterals)`` must give the library FPN's merged maps, on uneven map sizes too."""
    import torch

    for seed in (0, 1):
        fpn, feats = _fpn_and_maps(seed)
        with torch.no_grad():
            fpn(feats)
            rec = fpn.last_intermediates
            laterals = [rec[f"{k} lateral"].clone() for k in ("P3", "P4", "P5")]
            got = fn([t.clone() for t in laterals])
        want = [rec["P3 merged"], rec["P4 merged"], rec["P5 lateral"]]
        if len(got) != 3 or not all(isinstance(t, torch.Tensor) and t.shape == w.shape and
                                    torch.allclose(t, w, atol=1e-5) for t, w in zip(got, want)):
            return False
    return True


register(Exercise(
    id="04.write_top_down",
    question="Write top_down(laterals): laterals is a list [L3, L4, L5] of (B, C, H, W) tensors, finest first "
             "(the FPN's 1x1 laterals). Return the FPN's merged maps [M3, M4, M5], before smoothing: M5 = L5 and "
             "M_i = L_i + nearest-neighbour upsampling of M_(i+1) to L_i's height and width. It is checked "
             "against the library's FPN on maps whose sizes do not halve evenly (38x57, 19x29, 10x15).",
    answer=_reference_top_down,
    compare=lambda fn, ref: callable(fn) and _check_top_down_fn(fn),
    hints=["start from the top: merged = [laterals[-1]], then walk down to the finer levels",
           "torch.nn.functional.interpolate(m, size=lat.shape[-2:], mode='nearest') -- 'size', not "
           "scale_factor=2: 10 rows upsampled 2x would be 20, but C4 has 19",
           "each step adds the upsampled coarser merged map (not the coarser lateral) to the finer lateral"],
    explanation="merged = [L5]; for L in (L4, L3): merged.insert(0, L + interpolate(merged[0], size=L.shape[-2:], "
                "mode='nearest')). Because each step adds the *merged* map above, C5's meaning reaches P3 "
                "through P4. This is torchvision's FeaturePyramidNetwork loop, and course_lib.necks.fpn's.",
))
