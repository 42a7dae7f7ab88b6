"""The analytic receptive-field calculator, checked by hand and against gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

import course_lib as cl
from course_lib import blocks
from course_lib.backbones.receptive_field import (
    ERF,
    Layer,
    effective_receptive_field,
    mass_radius,
    receptive_field,
    stage_receptive_fields,
    support_box,
)


def last(stack):
    r = receptive_field(stack)[-1]
    return r.size, r.jump, r.start


@pytest.mark.parametrize("stack, expected", [
    # three 3x3 convs, stride 1, 'same' padding: 1 + 2 + 2 + 2
    (nn.Sequential(*[nn.Conv2d(1, 1, 3, 1, 1) for _ in range(3)]), (7, 1, 0.0)),
    # two 3x3 stride-2 convs: 3, then 3 + 2 * 2 = 7; cells 4 px apart
    (nn.Sequential(nn.Conv2d(1, 1, 3, 2, 1), nn.ReLU(), nn.Conv2d(1, 1, 3, 2, 1)), (7, 4, 0.0)),
    # ResNet's stem: 7x7 s2 p3, then 3x3 max-pool s2 p1: 7 + 2 * 2 = 11
    (nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3), nn.BatchNorm2d(8), nn.MaxPool2d(3, 2, 1)), (11, 4, 0.0)),
    # no padding: each 3x3 conv moves cell 0's centre one pixel inwards
    (nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)), (5, 1, 2.0)),
    # dilation 2 then 4: effective kernels 5 and 9 -> 1 + 4 + 8
    (nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2, padding=2), nn.Conv2d(1, 1, 3, dilation=4, padding=4)),
     (13, 1, 0.0)),
    # a VGG block: two 3x3 convs, then 2x2 pool: 5 + 1 = 6, centre of cell 0 between pixels 0 and 1
    (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2)), (6, 2, 0.5)),
])
def test_hand_derived_stacks(stack, expected):
    assert last(stack) == expected


def test_layer_lists_and_box_geometry():
    rfs = receptive_field([Layer("a", 3, 2, 1), Layer("b", 3, 2, 1), Layer("c", 3, 1, 1)])
    assert [(r.size, r.jump) for r in rfs] == [(3, 2), (7, 4), (15, 4)]
    r = rfs[-1]
    assert r.centre(2, 3) == (8.0, 12.0)
    assert r.box(2, 3) == (5, 1, 19, 15)  # centre 12 +- 7 horizontally, 8 +- 7 vertically
    assert r.box(0, 0, image_hw=(32, 32)) == (0, 0, 7, 7)  # clipped at the border


def test_residual_blocks_follow_the_main_path():
    down = nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False), nn.BatchNorm2d(128))
    block = BasicBlock(64, 128, stride=2, downsample=down)
    assert last(block) == (7, 2, 0.0)  # conv1 3x3 s2, conv2 3x3: the 1x1 shortcut is skipped


def test_sppf_equals_spp_and_c2f_chains_its_bottlenecks():
    assert last(blocks.SPPF(8, 8, 5)) == (13, 1, 0.0)  # 5x5 pool three times = one 13x13 pool
    assert last(blocks.SPPF(8, 8, 5)) == last(blocks.SPP(8, 8, (5, 9, 13)))
    assert last(blocks.C2f(8, 8, n=2)) == (9, 1, 0.0)  # two bottlenecks of two 3x3 convs: 1 + 4 * 2


def test_global_pooling_and_unsupported_layers():
    rfs = receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    assert rfs[-1].is_global and rfs[-1].size == 3
    with pytest.raises(ValueError, match="enlarges"):
        receptive_field(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2)))
    with pytest.raises(ValueError, match="non-square"):
        receptive_field(nn.Sequential(nn.Conv2d(3, 4, (1, 7))))


def test_published_values_of_real_backbones():
    # torchvision's ResNet-18/50 and MobileNetV2 (the values published in receptive-field tables)
    got = {n: stage_receptive_fields(cl.backbones.build(n))["C5"].size
           for n in ("resnet18", "resnet50", "mobilenet_v2")}
    assert got == {"resnet18": 435, "resnet50": 427, "mobilenet_v2": 491}
    specs = cl.backbones.build("vgg11").out_specs
    rfs = stage_receptive_fields(cl.backbones.build("vgg11"))
    assert [rfs[k].jump for k in specs] == [s.stride for s in specs.values()]  # jump == stride, always


def _ones_stack() -> nn.Module:
    """A purely linear conv stack with positive weights: every pixel inside the RF has a non-zero gradient."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 1, 1), nn.AvgPool2d(2),
                        nn.Conv2d(4, 4, 5, 2, 2, bias=False))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.1)
    return net


@pytest.mark.parametrize("cell", [(3, 4), (0, 0), (7, 7)])
def test_gradient_support_equals_the_analytic_box(cell):
    bb = cl.backbones.from_module(_ones_stack(), taps={"C3": "3"}, probe_size=64)
    rf = stage_receptive_fields(bb)["C3"]
    assert (rf.size, rf.jump) == (1 + 2 * 1 + 2 * 2 + 1 * 2 + 4 * 4, 8)  # 3, 7, 9, 25
    image = torch.rand(3, 64, 64) + 0.1
    heat = effective_receptive_field(bb, image, "C3", *cell)
    assert support_box(heat) == rf.box(*cell, image_hw=(64, 64))


def test_erf_lies_inside_the_box_and_is_smaller_on_a_real_network(cat):
    bb = cl.backbones.build("mobilenet_v2", pretrained=True)
    small = torch.nn.functional.interpolate(cat[None], size=(160, 224), mode="bilinear")[0]
    erf = ERF(bb, small)
    rfs = stage_receptive_fields(bb)
    for stage in ("C2", "C3"):
        H, W = erf.features[stage].shape[-2:]
        heat = erf.map(stage, H // 2, W // 2)
        x0, y0, x1, y1 = rfs[stage].box(H // 2, W // 2, (160, 224))
        inside = heat[y0:y1 + 1, x0:x1 + 1].sum()
        assert torch.isclose(inside, heat.sum())  # nothing outside the theoretical box
        assert mass_radius(heat, 0.9) < rfs[stage].size / 2  # 90 % of the mass in a smaller square
    # the same cell twice: one backward pass, remembered
    n = erf.n_backward
    erf.map("C3", 1, 1)
    erf.map("C3", 1, 1)
    assert erf.n_backward == n + 1 and erf.n_forward == 1
    with torch.no_grad():                     # a notebook that turned gradients off still gets its map
        assert torch.equal(ERF(bb, small).map("C3", 1, 1), erf.map("C3", 1, 1))
    with pytest.raises(ValueError, match="outside"):
        erf.map("C3", 99, 0)
    with pytest.raises(KeyError, match="C2"):
        erf.map("P3", 0, 0)


def test_yolo_backbone_gradient_matches_analytic_box():
    torch.manual_seed(0)
    bb = cl.backbones.build("yolo_csp").eval()
    rf = stage_receptive_fields(bb)["C3"]
    heat = effective_receptive_field(bb, torch.rand(3, 128, 128), "C3", 8, 8)
    assert support_box(heat) == rf.box(8, 8, (128, 128))


def test_the_code_exercises_are_checked_against_the_library():
    rf_ex, eye_ex = cl.exercises.get("01.rf_recurrence"), cl.exercises.get("02.my_eye")
    assert cl.exercises.get("01.rf_resnet_stem").answer == last(
        nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 8, 3, 1, 1),
                      nn.Conv2d(8, 8, 3, 1, 1)))[:2] == (27, 4)

    def forgets_dilation(layers):
        r, j = 1, 1
        for k, s, _ in layers:
            r, j = r + (k - 1) * j, j * s
        return r, j

    assert rf_ex.is_correct(rf_ex.solution()) and not rf_ex.is_correct(forgets_dilation)
    assert not rf_ex.is_correct(lambda layers: 1 / 0)  # a function that raises is wrong, not a crash
    from torchvision.models import resnet18

    wrap = cl.backbones.from_module
    assert eye_ex.is_correct(lambda: wrap(resnet18(), taps={"C3": "layer2", "C4": "layer3"}))
    assert not eye_ex.is_correct(lambda: wrap(resnet18(), taps={"C3": "layer1", "C4": "layer2"}))  # strides 4, 8
