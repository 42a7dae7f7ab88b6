"""yolo_csp, from_module, and the measurements lessons 01 and 02 print (specs, parameters, FLOPs, bottlenecks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models as tvm

import course_lib as cl
from course_lib import blocks
from course_lib.backbones import measure as M
from course_lib.backbones.receptive_field import stage_receptive_fields
from course_lib.measure import count_flops, count_params

ALL = ("C1", "C2", "C3", "C4", "C5")


# ----------------------------------------------------------------- every registered backbone
@pytest.mark.parametrize("name", cl.backbones.names())
def test_specs_of_every_registered_backbone_match_a_forward_pass(name):
    rows = M.stage_table(name, image_size=224)  # built on the meta device; checks channels itself
    want = {"tiny_vit": ("C4",), "tiny_swin": ALL[1:]}.get(name, ALL)  # transformers: one stride, or from /4
    assert [r["stage"] for r in rows] == list(want)
    for r in rows:
        side = 224 // r["stride"]
        assert r["map"] == f"{side}x{side}"
    assert [r["stride"] for r in rows] == [2 ** int(s[1:]) for s in want]


def test_stage_table_on_a_real_backbone_runs_the_real_forward():
    bb = cl.backbones.build("yolo_csp")
    rows = M.stage_table(bb, image_size=64)
    assert [(r["stage"], r["channels"], r["map"]) for r in rows] == [
        ("C2", 32, "16x16"), ("C3", 64, "8x8"), ("C4", 128, "4x4"), ("C5", 256, "2x2")]


def test_parameters_and_flops_match_published_numbers():
    rows = {r["backbone"]: r for r in M.compare_backbones(["resnet18", "resnet50", "mobilenet_v2", "vgg11"])}
    # torchvision's parameter counts minus the ImageNet classifier (the head)
    assert count_params(cl.backbones.build("resnet50", levels=ALL)) == 25_557_032 - (2048 * 1000 + 1000)
    assert count_params(cl.backbones.build("mobilenet_v2", levels=ALL)) == 3_504_872 - (1280 * 1000 + 1000)
    assert rows["resnet50"]["params (M)"] == pytest.approx(23.508, abs=1e-3)
    # torchvision lists ResNet-18 1.81, ResNet-50 4.09, MobileNetV2 0.30 "GFLOPS", which are multiply-adds
    assert rows["resnet18"]["GMACs"] == pytest.approx(1.81, rel=0.01)
    assert rows["resnet50"]["GMACs"] == pytest.approx(4.09, rel=0.01)
    assert rows["mobilenet_v2"]["GMACs"] == pytest.approx(0.30, rel=0.02)
    assert rows["vgg11"]["GFLOPs"] == pytest.approx(2 * rows["vgg11"]["GMACs"], rel=1e-3)
    # and the counter agrees with a real (non-meta) forward pass
    bb = cl.backbones.build("mobilenet_v2", levels=ALL)
    assert count_flops(bb, 224) == pytest.approx(rows["mobilenet_v2"]["GFLOPs"] * 1e9, rel=1e-3)


def test_bottleneck_arithmetic_counted_on_torchvisions_blocks():
    parts = M.bottleneck_weights(1024, 256)
    assert parts["total"] == 1_114_112
    assert M.count_conv_weights(M.resnet_bottleneck(1024, 256)) == 1_114_112
    plain = nn.Sequential(nn.Conv2d(1024, 1024, 3, padding=1, bias=False),
                          nn.Conv2d(1024, 1024, 3, padding=1, bias=False))
    assert M.count_conv_weights(plain) == M.plain_weights(1024) == 18_874_368
    assert round(18_874_368 / 1_114_112, 1) == 16.9
    ir = M.inverted_residual(96, 6)
    assert M.count_conv_weights(ir) == 96 * 576 + 576 * 9 + 576 * 96 == 115_776
    assert M.conv_weights(576, 576, 3, groups=576) == 5184  # depthwise: one 3x3 per channel
    with pytest.raises(ValueError, match="4"):
        M.resnet_bottleneck(1024, 128)


def test_edge_filters_and_first_layer():
    f = M.edge_filters()
    assert all(k.shape == (3, 3) and abs(float(k.sum())) < 1e-6 for k in f.values())  # zero on flat areas
    img = torch.zeros(3, 32, 32)
    img[:, :, 16:] = 1.0  # a vertical edge
    r = M.responses(img, torch.stack(list(f.values())))
    assert r.shape == (4, 32, 32)
    assert r[0].abs().max() > 3.9 and r[1, 4:-4, 4:-4].abs().max() < 1e-6  # Sobel x sees it, Sobel y does not
    conv = M.first_conv(cl.backbones.build("mobilenet_v2"))
    assert tuple(conv.weight.shape) == (32, 3, 3, 3)
    assert M.filter_grid(conv.weight).size[0] > 0


# ----------------------------------------------------------------- yolo_csp = YOLOv8n's backbone
def test_yolo_csp_matches_yolov8n_layer_list():
    net = cl.backbones.yolo.yolo_layers()
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "SPPF"]
    convs = [(m[0].in_channels, m[0].out_channels, m[0].stride[0]) for m in net if isinstance(m, blocks.Conv)]
    assert convs == [(3, 16, 2), (16, 32, 2), (32, 64, 2), (64, 128, 2), (128, 256, 2)]
    c2fs = [(m.cv2[0].out_channels, len(m.m), all(b.add for b in m.m)) for m in net if isinstance(m, blocks.C2f)]
    assert c2fs == [(32, 1, True), (64, 2, True), (128, 2, True), (256, 1, True)]
    assert net[9].m.kernel_size == 5 and isinstance(net[0][2], nn.SiLU) and net[0][0].bias is None
    assert count_params(net) == 1_272_656  # YOLOv8n's backbone (layers 0-9): about 1.27 M
    bb = cl.backbones.build("yolo_csp", levels=ALL)
    assert count_params(bb) == 1_272_656
    out = bb(torch.rand(1, 3, 640, 640))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "C1": (16, 320, 320), "C2": (32, 160, 160), "C3": (64, 80, 80), "C4": (128, 40, 40), "C5": (256, 20, 20)}


def test_yolo_csp_multipliers_and_errors():
    s = cl.backbones.build("yolo_csp", width=0.5, depth=0.33).out_specs  # YOLOv8s widths
    assert [v.channels for v in s.values()] == [64, 128, 256, 512]
    with pytest.raises(ValueError, match="no pretrained weights"):
        cl.backbones.build("yolo_csp", pretrained=True)
    with pytest.raises(ValueError, match="positive"):
        cl.backbones.build("yolo_csp", width=0)


# ----------------------------------------------------------------- from_module
def test_from_module_wraps_a_torchvision_network_and_matches_the_course_backbone():
    torch.manual_seed(0)
    net = tvm.resnet18(weights=None).eval()
    bb = cl.backbones.from_module(net, taps={"C3": "layer2", "C4": "layer3", "C5": "layer4"}, normalize=True)
    assert {k: (v.channels, v.stride) for k, v in bb.out_specs.items()} == {
        "C3": (128, 8), "C4": (256, 16), "C5": (512, 32)}
    course = cl.backbones.build("resnet18", levels=("C3", "C4", "C5")).eval()
    course.stages.C1[0].load_state_dict(net.conv1.state_dict())
    course.stages.C1[1].load_state_dict(net.bn1.state_dict())
    for stage, layer in (("C2", net.layer1), ("C3", net.layer2), ("C4", net.layer3), ("C5", net.layer4)):
        target = course.stages[stage][1] if stage == "C2" else course.stages[stage]
        target.load_state_dict(layer.state_dict())
    x = torch.rand(2, 3, 64, 64)
    out, ref = bb(x), course(x)
    assert list(out) == ["C3", "C4", "C5"] and out["C5"].shape == (2, 512, 2, 2)
    assert all(torch.allclose(out[k], ref[k], atol=1e-5) for k in out)
    assert bb.hooks_left() == 0  # hooks live only during a call
    # the analytic receptive fields agree with the course's own ResNet-18
    mine, theirs = stage_receptive_fields(bb), stage_receptive_fields(course)
    assert [(r.size, r.jump, r.start) for r in mine.values()] == [(r.size, r.jump, r.start) for r in theirs.values()]


def test_from_module_releases_hooks_even_when_forward_fails_and_stops_early():
    calls = []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, 2, 1)
            self.b = nn.Conv2d(8, 16, 3, 2, 1)
            self.tail = nn.Conv2d(16, 16, 1)

        def forward(self, x):
            x = self.b(torch.relu(self.a(x)))
            calls.append("tail")
            return self.tail(x)

    net = Net()
    bb = cl.backbones.from_module(net, ["a", "b"], probe_size=64)
    calls.clear()
    out = bb(torch.rand(1, 3, 64, 64))
    assert calls == [] and list(out) == ["a", "b"]  # stopped after the deepest tap
    assert bb.out_specs["b"] == cl.FeatureSpec(16, 4)
    with pytest.raises(ValueError, match="3 colour channels"):
        bb(torch.rand(1, 4, 64, 64))
    with pytest.raises(RuntimeError):
        bb.module(torch.rand(1, 5, 64, 64))  # a failing forward of the module itself
    assert bb.hooks_left() == 0
    # composes with the rest of the library
    neck = cl.necks.build("gap", bb.out_specs)
    head = cl.heads.build("classification", neck.out_specs, num_classes=3)
    model = cl.Model(bb, neck, head)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 3)


def test_from_module_explains_mistakes():
    net = tvm.resnet18(weights=None)
    with pytest.raises(ValueError, match="layer2"):
        cl.backbones.from_module(net, {"C3": "layr2"})
    with pytest.raises(cl.ContractError, match="4-D"):
        cl.backbones.from_module(net, {"logits": "fc"})
    with pytest.raises(ValueError, match="at least one tap"):
        cl.backbones.from_module(net, {})
    with pytest.raises(TypeError, match="nn.Module"):
        cl.backbones.from_module("resnet18", {"C3": "layer2"})


def test_the_resnet_papers_comparison_and_the_two_other_bottlenecks():
    # He et al. 2016: a bottleneck at 256-d costs about what a basic block at 64-d costs
    bottle = M.block_cost(M.resnet_bottleneck(256, 64), channels=256)
    basic = M.block_cost(M.basic_block(64), channels=64)
    assert (bottle["weights"], basic["weights"]) == (69_632, 73_728)
    assert (bottle["FLOPs"], basic["FLOPs"]) == (2 * 56 * 56 * 69_632, 2 * 56 * 56 * 73_728)
    # the transfer-learning bottleneck layer: a projection down, no expansion back
    layer = M.bottleneck_layer(2048, 256, bn_relu=True)
    assert layer.eval()(torch.randn(3, 2048)).shape == (3, 256)
    assert [type(m).__name__ for m in layer] == ["Linear", "BatchNorm1d", "ReLU"]
    assert count_params(M.bottleneck_layer(1024, 256)) == 262_400
    # MobileNetV2's linear bottleneck: no activation after the projection; ResNet's ReLU acts after the add
    assert list(M.activation_after_convs(M.inverted_residual(96, 6)).values()) == ["ReLU6", "ReLU6", None]
    assert list(M.activation_after_convs(M.resnet_bottleneck(1024, 256)).values()) == ["ReLU"] * 3
    assert list(M.activation_after_convs(blocks.Conv(8, 8, 3)).values()) == ["SiLU"]
    functional = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    assert M.activation_after_convs(functional) == {"0": None}


def test_rgb_agreement_separates_learned_from_random_filters():
    same = torch.randn(8, 1, 3, 3).repeat(1, 3, 1, 1)
    assert M.rgb_agreement(same) == pytest.approx(1.0)
    opponent = same * torch.tensor([1.0, -1, 1]).view(1, 3, 1, 1)  # G = -R = -B
    assert M.rgb_agreement(opponent) == pytest.approx(-1.0)
    assert torch.allclose(M.channel_agreement(opponent), torch.tensor([-1.0, -1, 1]).expand(8, 3), atol=1e-5)
    with pytest.raises(ValueError, match="N, 3, k, k"):
        M.rgb_agreement(torch.randn(8, 3, 3))
