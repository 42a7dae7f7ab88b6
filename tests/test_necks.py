"""Necks: FPN parity with torchvision, SPP == SPPF, specs on every backbone, path switches, attention maps."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torchvision

import course_lib as cl
from course_lib.contract import ContractError, FeatureSpec
from course_lib.necks.fpn import FPN
from course_lib.necks.pan import PAFPN, ConcatPAN
from course_lib.necks.paths import PathSpecs
from course_lib.necks.pooling import ASPP, SPPFNeck, SPPNeck, default_rates, spp_net_pool

SPECS = OrderedDict(C2=FeatureSpec(24, 4), C3=FeatureSpec(32, 8), C4=FeatureSpec(96, 16), C5=FeatureSpec(160, 32))


def feats_for(specs, h=96, w=160, seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, torch.randn(batch, s.channels, math.ceil(h / s.stride), math.ceil(w / s.stride),
                                       generator=g)) for k, s in specs.items())


NECK_CONFIGS = [
    ("fpn", {"out_channels": 32}),
    ("fpn", {"out_channels": 32, "extra": "maxpool"}),
    ("fpn", {"out_channels": 32, "extra": "conv"}),
    ("pan", {"out_channels": 32}),
    ("pan", {"out_channels": 32, "fusion": "concat"}),
    ("spp", {"out_channels": 64}),
    ("sppf", {}),
    ("aspp", {"out_channels": 32}),
    ("se", {}),
    ("cbam", {}),
    ("cbam", {"spatial_kind": "pointwise", "in_keys": ["C5"]}),
    ("simple_pyramid", {"out_channels": 32}),
    ("simple_pyramid", {"out_channels": 32, "levels": ["P2", "P3", "P4", "P5", "P6"], "norm": "bn"}),
]


# ------------------------------------------------------------------ FPN parity
@pytest.mark.parametrize("extra", [None, "maxpool"])
@pytest.mark.parametrize("size", [(96, 160), (75, 113)])  # the second has odd sizes at every level
def test_fpn_matches_torchvision(extra, size):
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    torch.manual_seed(0)
    specs = OrderedDict((k, SPECS[k]) for k in ("C3", "C4", "C5"))
    tv = torchvision.ops.FeaturePyramidNetwork([s.channels for s in specs.values()], 64,
                                               extra_blocks=LastLevelMaxPool() if extra else None).eval()
    for p in tv.parameters():  # torchvision initialises biases to zero: make them count
        torch.nn.init.normal_(p, std=0.05)
    ours = FPN(specs, out_channels=64, extra=extra).eval().copy_from_torchvision(tv)
    x = feats_for(specs, *size)
    with torch.no_grad():
        want = list(tv(x).values())
        got = list(ours(x).values())
    assert len(got) == len(want) == (4 if extra else 3)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_fpn_copy_refuses_mismatched_widths():
    tv = torchvision.ops.FeaturePyramidNetwork([32, 96, 160], 16)
    with pytest.raises(ValueError, match="cannot copy"):
        FPN(SPECS, out_channels=64).copy_from_torchvision(tv)


# ------------------------------------------------------------------ SPP == SPPF
def test_chained_5x5_pools_equal_9_and_13():
    x = torch.randn(2, 8, 17, 23)
    p5 = torch.nn.MaxPool2d(5, 1, 2)
    torch.testing.assert_close(p5(p5(x)), F.max_pool2d(x, 9, 1, 4), rtol=0, atol=0)
    torch.testing.assert_close(p5(p5(p5(x))), F.max_pool2d(x, 13, 1, 6), rtol=0, atol=0)


def test_spp_and_sppf_necks_give_identical_outputs():
    torch.manual_seed(1)
    spp = SPPNeck(SPECS).eval()
    sppf = SPPFNeck(SPECS).eval()
    for m in spp.modules():  # non-trivial BN statistics, so the check means something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    sppf.load_state_dict(spp.state_dict())  # same parameter names: cv1, cv2
    x = feats_for(SPECS)
    with torch.no_grad():
        a, b = spp(x)["P5"], sppf(x)["P5"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert list(spp.paths) == list(sppf.paths) == ["identity", "max5", "max9", "max13"]
    for name in ("max5", "max9", "max13"):
        torch.testing.assert_close(spp.last_intermediates[f"P5 {name}"], sppf.last_intermediates[f"P5 {name}"])


def test_spp_net_pool_is_fixed_length_but_yolo_spp_keeps_size():
    small, big = torch.randn(1, 8, 5, 7), torch.randn(1, 8, 13, 20)
    assert spp_net_pool(small).shape == spp_net_pool(big).shape == (1, 8 * (1 + 4 + 16))
    neck = SPPNeck(OrderedDict(C5=FeatureSpec(8, 32))).eval()
    assert neck({"C5": big})["P5"].shape == big.shape


# ------------------------------------------------------- specs on every backbone
@pytest.fixture(scope="module")
def backbones():
    torch.manual_seed(0)
    built = {}
    for name in cl.backbones.names():
        try:
            built[name] = cl.backbones.build(name).eval()
        except TypeError:  # a backbone that needs arguments to exist (e.g. wraps the learner's module)
            continue
    return built


@pytest.mark.parametrize("neck_name,kw", NECK_CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(NECK_CONFIGS)])
def test_output_specs_on_every_backbone(backbones, neck_name, kw):
    x = torch.rand(1, 3, 96, 128)
    for bb_name, bb in backbones.items():
        try:
            neck = cl.necks.build(neck_name, bb.out_specs, **kw).eval()
        except ContractError as err:  # a backbone that does not fit must say so clearly
            assert neck_name in str(err) and "expects" in str(err)
            continue
        with torch.no_grad():
            out = neck(bb(x))
        assert list(out) == list(neck.out_specs), bb_name
        for name, t in out.items():
            spec = neck.out_specs[name]
            assert t.shape[1] == spec.channels, (bb_name, name)
            assert t.shape[-1] == math.ceil(128 / spec.stride), (bb_name, name, t.shape, spec)
            assert name.startswith("P")


def test_builtin_backbones_fit_every_neck(backbones):
    """No ContractError, and every neck's specs follow from the backbone's: Pk has stride 2**k, and its
    channels are ``out_channels`` when asked for, else those of the Ck it refines."""
    for bb_name in ("resnet18", "resnet50", "mobilenet_v2", "vgg11"):
        bb_specs = backbones[bb_name].out_specs
        for neck_name, kw in NECK_CONFIGS:
            neck = cl.necks.build(neck_name, bb_specs, **kw)
            assert neck.out_specs, (bb_name, neck_name)
            for name, spec in neck.out_specs.items():
                level = int(name.removeprefix("P"))
                assert spec.stride == 2 ** level, (bb_name, neck_name, name, spec)
                want = kw.get("out_channels", bb_specs[f"C{level}"].channels if f"C{level}" in bb_specs else None)
                assert spec.channels == want, (bb_name, neck_name, name, spec)


def test_misfit_backbone_names_both_sides():
    cfg = {"backbone": {"name": "resnet18", "levels": ("C4", "C5")}, "neck": {"name": "fpn"},
           "head": {"name": "classification", "num_classes": 3}}
    with pytest.raises(ContractError) as info:
        cl.build_model(cfg)
    msg = str(info.value)
    assert "neck 'fpn' expects C3, C4, C5" in msg and "backbone 'resnet18' gives C4 (256ch /16)" in msg


def test_pyramid_must_go_fine_to_coarse():
    with pytest.raises(ContractError, match="fine to coarse"):
        FPN(SPECS, in_keys=("C5", "C4", "C3"))
    with pytest.raises(ContractError, match="expects"):
        FPN(OrderedDict(pooled=FeatureSpec(512, None), C5=FeatureSpec(512, 32)), in_keys=("pooled", "C5"))


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="extra must be"):
        FPN(SPECS, extra="p6")
    with pytest.raises(ValueError, match="fusion must be"):
        cl.necks.build("pan", SPECS, fusion="mul")
    with pytest.raises(ValueError, match="rates must be positive"):
        ASPP(SPECS, rates=(0, 6))
    with pytest.raises(ValueError, match="no path"):
        FPN(SPECS).set_paths(bottom_up=False)
    with pytest.raises(TypeError, match="True or False"):
        FPN(SPECS).set_paths(lateral=0)


# ------------------------------------------------------------------ path switches
def test_fpn_top_down_off_leaves_p5_and_makes_p3_its_smoothed_lateral():
    torch.manual_seed(0)
    fpn = FPN(SPECS, out_channels=16).eval()
    x = feats_for(SPECS)
    with torch.no_grad():
        full = fpn(x)
        fpn.set_paths(top_down=False)
        cut = fpn(x)
        smoothed_lateral = fpn.smooth[0](fpn.lateral[0](x["C3"]))
    torch.testing.assert_close(cut["P5"], full["P5"])
    torch.testing.assert_close(cut["P3"], smoothed_lateral)
    assert not torch.allclose(cut["P3"], full["P3"])
    assert "P3 top-down" not in fpn.last_intermediates and "P3 lateral" in fpn.last_intermediates


def test_fpn_lateral_off_keeps_only_the_top_down_signal():
    torch.manual_seed(0)
    fpn = FPN(SPECS, out_channels=16, lateral=False).eval()
    x = feats_for(SPECS)
    with torch.no_grad():
        out = fpn(x)
        inner5 = fpn.lateral[2](x["C5"])
        inner4 = F.interpolate(inner5, size=x["C4"].shape[-2:], mode="nearest")
        inner3 = F.interpolate(inner4, size=x["C3"].shape[-2:], mode="nearest")
        torch.testing.assert_close(out["P5"], fpn.smooth[2](inner5))
        torch.testing.assert_close(out["P3"], fpn.smooth[0](inner3))
        # without the lateral, C3 no longer matters for P3
        y = OrderedDict(x, C3=torch.randn_like(x["C3"]))
        torch.testing.assert_close(fpn(y)["P3"], out["P3"])


def test_switches_show_in_specs_and_repr():
    bb = cl.backbones.build("mobilenet_v2").eval()
    neck = FPN(bb.out_specs, out_channels=16).eval()
    before = neck.out_specs
    neck.set_paths(top_down=False)
    assert isinstance(neck.out_specs, PathSpecs)
    assert neck.out_specs == before  # same shapes ...
    assert neck.out_specs.paths == {"lateral": True, "top_down": False} and before.paths["top_down"] is True
    assert "top_down OFF" in repr(neck) and "paths off: top_down" in repr(neck.out_specs)
    assert copy.deepcopy(neck.out_specs).paths == neck.out_specs.paths


def test_switch_is_recorded_by_model_trace(cat):
    from course_lib.model import Model

    bb = cl.backbones.build("mobilenet_v2")
    neck = PAFPN(bb.out_specs, out_channels=16)
    head = cl.necks.build("identity", neck.out_specs)  # any module works as the last stage of a trace
    m = Model(bb, neck, head)
    t1 = m.trace(cat[:, :96, :128])
    neck.set_paths(bottom_up=False)
    t2 = m.trace(cat[:, :96, :128])
    assert t1.specs["neck"].paths["bottom_up"] is True and t2.specs["neck"].paths["bottom_up"] is False
    torch.testing.assert_close(t1.neck["P3"], t2.neck["P3"])  # N3 = P3 with or without the bottom-up path
    assert not torch.allclose(t1.neck["P5"], t2.neck["P5"])


def test_pan_add_without_bottom_up_equals_its_fpn():
    torch.manual_seed(0)
    pan = PAFPN(SPECS, out_channels=16, bottom_up=False).eval()
    fpn = FPN(SPECS, out_channels=16).eval()
    fpn.load_state_dict({k: v for k, v in pan.state_dict().items() if k.split(".")[0] in ("lateral", "smooth")})
    x = feats_for(SPECS)
    with torch.no_grad():
        a, b = pan(x), fpn(x)
        for k in a:
            torch.testing.assert_close(a[k], b[k])
        pan.set_paths(bottom_up=True)
        c = pan(x)
        # the bottom-up path: N4 = post(down(N3) + P4), added, as in PANet
        n4 = pan.post[0](pan.down[0](b["P3"]) + b["P4"])
    torch.testing.assert_close(c["P3"], b["P3"])
    torch.testing.assert_close(c["P4"], n4)


def test_concat_pan_switches():
    torch.manual_seed(0)
    pan = ConcatPAN(SPECS, out_channels=16).eval()
    x = feats_for(SPECS)
    with torch.no_grad():
        full = pan(x)
        assert pan.last_intermediates["P4 concat"].shape[1] == 32  # concat doubles the width before C2f
        pan.set_paths(bottom_up=False)
        no_bu = pan(x)
        pan.set_paths(bottom_up=True, top_down=False)
        no_td = pan(x)
        lat3 = pan.lateral[0](x["C3"])
        want_p3 = pan.td_blocks[0](torch.cat([torch.zeros_like(lat3), lat3], dim=1))
    torch.testing.assert_close(no_bu["P3"], full["P3"])
    assert not torch.allclose(no_bu["P5"], full["P5"])
    torch.testing.assert_close(no_td["P3"], want_p3)
    assert all(no_td[k].shape == full[k].shape for k in full)


def test_aspp_rates_branches_and_switches():
    assert default_rates(16) == (6, 12, 18) and default_rates(8) == (12, 24, 36)
    torch.manual_seed(0)
    aspp = ASPP(SPECS, out_channels=8).eval()
    assert aspp.in_keys == ("C4",) and aspp.rates == (6, 12, 18)  # DeepLab v3 works at output stride 16
    assert list(aspp.paths) == ["conv1x1", "rate6", "rate12", "rate18", "image_pool"]
    dil = [m.dilation[0] for m in aspp.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert dil == [6, 12, 18]
    x = feats_for(SPECS)
    with torch.no_grad():
        full = aspp(x)["P4"]
        pool = aspp.last_intermediates["P4 image_pool"]
        assert torch.allclose(pool, pool[..., :1, :1].expand_as(pool))  # one value per channel, spread
        aspp.set_paths(rate6=False, rate12=False, rate18=False, image_pool=False)
        only_1x1 = aspp(x)["P4"]
        b0 = aspp.branches[0](x["C4"])
        want = aspp.project(torch.cat([b0] + [torch.zeros_like(b0)] * 4, dim=1))
    torch.testing.assert_close(only_1x1, want)
    assert not torch.allclose(full, only_1x1)
    assert ASPP(OrderedDict(C3=FeatureSpec(8, 8)), out_channels=8).rates == (12, 24, 36)


def test_keep_others_passes_maps_through():
    neck = SPPFNeck(SPECS, keep_others=True).eval()
    x = feats_for(SPECS)
    with torch.no_grad():
        out = neck(x)
    assert list(out) == ["P2", "P3", "P4", "P5"]
    torch.testing.assert_close(out["P3"], x["C3"])


# ------------------------------------------------------------------ attention
def test_se_attention_maps_and_switch():
    torch.manual_seed(0)
    se = cl.necks.build("se", SPECS).eval()
    x = feats_for(SPECS)
    with torch.no_grad():
        out = se(x)
    w = se.last_attention["P4"]["channel"]
    assert w.shape == (2, 96) and bool(((w > 0) & (w < 1)).all())
    torch.testing.assert_close(out["P4"], x["C4"] * w[:, :, None, None])
    se.set_paths(excite=False)
    with torch.no_grad():
        torch.testing.assert_close(se(x)["P4"], x["C4"])


def test_cbam_channel_then_spatial():
    torch.manual_seed(0)
    cbam = cl.necks.build("cbam", SPECS, in_keys=["C3", "C5"]).eval()
    assert list(cbam.out_specs) == ["P3", "P5"]
    x = feats_for(SPECS)
    with torch.no_grad():
        out = cbam(x)
        att = cbam.last_attention["P3"]
        assert att["channel"].shape == (2, 32) and att["spatial"].shape == (2, 1, 12, 20)
        after_channel = x["C3"] * att["channel"][:, :, None, None]
        desc = torch.cat([after_channel.amax(1, keepdim=True), after_channel.mean(1, keepdim=True)], dim=1)
        want_spatial = torch.sigmoid(cbam.spatial_att[0].conv(desc))
    assert cbam.spatial_att[0].conv.kernel_size == (7, 7)
    torch.testing.assert_close(att["spatial"], want_spatial)
    torch.testing.assert_close(out["P3"], after_channel * want_spatial)
    cbam.set_paths(channel=False, spatial=False)
    with torch.no_grad():
        torch.testing.assert_close(cbam(x)["P5"], x["C5"])


def test_pointwise_sam_has_one_weight_per_cell_and_channel():
    cbam = cl.necks.build("cbam", SPECS, in_keys=["C4"], spatial_kind="pointwise").eval()
    with torch.no_grad():
        cbam(feats_for(SPECS))
    assert cbam.last_attention["P4"]["spatial"].shape == (2, 96, 6, 10)


# ------------------------------------------------------------------ exercises
def test_lesson04_exercises_have_consistent_answers():
    ex = cl.exercises.get("04.fpn_params")
    fpn = FPN(OrderedDict(C3=FeatureSpec(32, 8), C4=FeatureSpec(96, 16), C5=FeatureSpec(1280, 32)), out_channels=128)
    assert ex.is_correct(sum(p.numel() for p in fpn.parameters()))
    assert cl.exercises.get("04.cells").is_correct(0.5)
    for e in cl.exercises.for_lesson("04"):
        assert not e.check(None)  # a placeholder answer never raises
    assert len(cl.exercises.for_lesson("04")) >= 3


def test_lesson05_exercises_have_consistent_answers():
    assert cl.exercises.get("05.sppf_chain").is_correct(17)
    x = torch.randn(1, 2, 40, 40)
    p5 = torch.nn.MaxPool2d(5, 1, 2)
    torch.testing.assert_close(p5(p5(p5(p5(x)))), F.max_pool2d(x, 17, 1, 8))
    assert cl.exercises.get("05.aspp_gap").is_correct(192)
    # 05.rate_collapse: the 14x14 map is what MobileNetV2 really gives a 224x224 image at C4
    bb = cl.backbones.build("mobilenet_v2", levels=("C4",)).eval()
    with torch.no_grad():
        assert bb(torch.zeros(1, 3, 224, 224))["C4"].shape[-2:] == (14, 14)
    rate = cl.exercises.get("05.rate_collapse")
    assert rate.is_correct(8) and not rate.is_correct(7) and not rate.is_correct(9)
    se = cl.exercises.get("05.write_se")
    assert se.is_correct(lambda x, fc: torch.sigmoid(fc(x.mean(dim=(2, 3), keepdim=True))).flatten(1))
    assert not se.is_correct(lambda x, fc: torch.sigmoid(fc(x.amax(dim=(2, 3), keepdim=True))).flatten(1))  # CBAM's max
    assert not se.is_correct(lambda x, fc: fc(x.mean(dim=(2, 3), keepdim=True)).flatten(1))  # no sigmoid
    for e in cl.exercises.for_lesson("05"):
        assert not e.check(None)  # a placeholder answer never raises
    assert len(cl.exercises.for_lesson("05")) >= 3


def test_every_neck_family_is_registered():
    assert {"fpn", "pan", "spp", "sppf", "aspp", "se", "cbam"} <= set(cl.necks.names())
