"""Transformer eyes: tiny_vit / tiny_swin / torchvision's ViT and Swin as backbones, and the simple pyramid neck."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

import course_lib as cl
from course_lib import hooks
from course_lib.backbones import vit
from course_lib.contract import ContractError, FeatureSpec
from course_lib.measure import count_flops, count_params
from course_lib.necks.simple_pyramid import LayerNorm2d, SimplePyramid


# ------------------------------------------------------------------ the two eyes the course compares
def test_tiny_vit_and_tiny_cnn_are_the_same_size():
    cnn, eye = cl.backbones.build("tiny_cnn"), cl.backbones.build("tiny_vit")
    assert count_params(cnn) == 458_160 and count_params(eye) == 453_600  # quoted in backbones/vit.py
    assert abs(count_flops(eye, 128) / count_flops(cnn, 128) - 1) < 0.1  # and about the same compute
    assert eye.out_specs == OrderedDict(C4=FeatureSpec(96, 16))
    assert count_params(cl.backbones.build("tiny_swin")) == 410_311


def test_vit_map_is_the_patch_tokens_on_their_grid_without_the_class_token():
    torch.manual_seed(0)
    eye = cl.backbones.build("tiny_vit").eval()
    x = torch.rand(2, 3, 128, 96)
    seen = []
    with hooks.forward_hooks([(eye.norm, lambda m, i, o: seen.append(o))]), torch.no_grad():
        fmap = eye(x)["C4"]
    tokens = seen[0]
    assert tokens.shape == (2, 1 + 8 * 6, 96) and fmap.shape == (2, 96, 8, 6)
    # patch (y, x) is token 1 + y * 6 + x: row by row after the class token
    torch.testing.assert_close(fmap[:, :, 3, 4], tokens[:, 1 + 3 * 6 + 4])
    torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), tokens[:, 1:])
    assert hooks.hooks_left(eye) == 0
    # sides that are not multiples of 16 are padded: ceil, like a CNN's stride-16 map
    with torch.no_grad():
        assert eye(torch.rand(1, 3, 75, 113))["C4"].shape[-2:] == (5, 8)


def test_positions_are_stretched_to_other_grids_and_kept_on_their_own():
    pos = torch.randn(1, 1 + 8 * 8, 4)
    assert vit.resize_positions(pos, (8, 8), (8, 8)) is pos
    big = vit.resize_positions(pos, (8, 8), (14, 10))
    assert big.shape == (1, 1 + 14 * 10, 4)
    torch.testing.assert_close(big[:, 0], pos[:, 0])  # the class token has no place: unchanged


def test_vit_levels_patch_sizes_and_errors():
    assert cl.backbones.build("tiny_vit", patch_size=8).out_specs == OrderedDict(C3=FeatureSpec(96, 8))
    with pytest.raises(ValueError, match="one map, C4"):
        cl.backbones.build("tiny_vit", levels=("C3", "C4", "C5"))
    with pytest.raises(ValueError, match="power of two"):
        cl.backbones.build("tiny_vit", patch_size=12)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        cl.backbones.build("tiny_vit", pretrained=True)


def test_tiny_swin_is_a_hierarchy_like_a_cnn():
    eye = cl.backbones.build("tiny_swin", levels=("C2", "C3", "C4", "C5")).eval()
    with torch.no_grad():
        out = eye(torch.rand(1, 3, 128, 96))
    assert [s.stride for s in eye.out_specs.values()] == [4, 8, 16, 32]
    for k, t in out.items():  # channels first, as the contract says (torchvision keeps Swin channels-last)
        assert t.shape[1] == eye.out_specs[k].channels == 16 * 2 ** (int(k[1]) - 2)
        assert t.shape[-2:] == (128 // eye.out_specs[k].stride, 96 // eye.out_specs[k].stride)


def small_torchvision_vit() -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64).eval()


def test_torchvision_vit_wrapper_gives_torchvisions_own_tokens():
    net = small_torchvision_vit()
    eye = vit.TorchvisionViT(net, "small_vit", normalize=False).eval()
    x = torch.rand(1, 3, 64, 64)
    seen = []
    with hooks.forward_hooks([(net.encoder.ln, lambda m, i, o: seen.append(o))]), torch.no_grad():
        net(x)  # torchvision's own forward
        ours = eye(x)["C4"]
    torch.testing.assert_close(ours.flatten(2).transpose(1, 2), seen[0][:, 1:])
    with torch.no_grad():  # any size, which torchvision's own forward refuses
        assert eye(torch.rand(1, 3, 96, 128))["C4"].shape == (1, 32, 6, 8)


def test_official_transformer_weights_go_through_the_resolver():
    assert cl.weights.file_name(cl.weights.OFFICIAL["vit_b_16"]) == "vit_b_16-c867db91.pth"
    assert cl.weights.file_name(cl.weights.OFFICIAL["swin_t"]) == "swin_t-704ceda3.pth"
    if not cl.weights.is_available("vit_b_16"):
        with pytest.raises(cl.weights.WeightsNotFoundError, match=r"cl.weights.download\('vit_b_16'\)"):
            vit.torchvision_vit("vit_b_16", pretrained=True)
    with pytest.raises(ValueError, match="not a torchvision ViT"):
        vit.torchvision_vit("resnet18")


# ------------------------------------------------------------------ ViTDet's simple feature pyramid
def test_simple_pyramid_builds_strides_8_to_32_from_one_stride_16_map():
    specs = OrderedDict(C4=FeatureSpec(96, 16))
    neck = cl.necks.build("simple_pyramid", specs, out_channels=32).eval()
    assert neck.in_keys == ("C4",)
    assert neck.out_specs == OrderedDict(P3=FeatureSpec(32, 8), P4=FeatureSpec(32, 16), P5=FeatureSpec(32, 32))
    with torch.no_grad():
        out = neck({"C4": torch.randn(2, 96, 8, 6)})
    assert {k: tuple(t.shape) for k, t in out.items()} == {"P3": (2, 32, 16, 12), "P4": (2, 32, 8, 6),
                                                           "P5": (2, 32, 4, 3)}
    # the paper's pieces: a 2x2 stride-2 deconv halving the width up, identity, a 2x2 max-pool down
    up = neck.scale["P3"]
    assert [type(m) for m in up] == [nn.ConvTranspose2d] and up[0].stride == (2, 2) and up[0].out_channels == 48
    assert isinstance(neck.scale["P4"], nn.Identity)
    for conv1, conv3 in (c for c in neck.convs.values()):  # 1x1 then 3x3, each with a LayerNorm, no bias
        assert conv1[0].kernel_size == (1, 1) and conv3[0].kernel_size == (3, 3) and conv1[0].bias is None
        assert isinstance(conv1[1], LayerNorm2d) and isinstance(conv3[1], LayerNorm2d)


def test_simple_pyramid_full_set_p2_to_p6():
    neck = SimplePyramid(OrderedDict(C4=FeatureSpec(64, 16)), out_channels=16, levels=("P2", "P3", "P4", "P5", "P6"))
    up4 = neck.scale["P2"]  # deconv, LN, GELU, deconv: 64 -> 32 -> 16
    assert [type(m).__name__ for m in up4] == ["ConvTranspose2d", "LayerNorm2d", "GELU", "ConvTranspose2d"]
    assert up4[-1].out_channels == 16
    with torch.no_grad():
        out = neck({"C4": torch.randn(1, 64, 8, 8)})
    assert [t.shape[-1] for t in out.values()] == [32, 16, 8, 4, 2]
    torch.testing.assert_close(out["P6"], out["P5"][..., ::2, ::2])  # P6: P5 subsampled (max-pool, kernel 1)
    with pytest.raises(ValueError, match="consecutive"):
        SimplePyramid(OrderedDict(C4=FeatureSpec(64, 16)), levels=("P3", "P5"))


def test_layer_norm_2d_is_layer_norm_over_the_channels():
    x = torch.randn(2, 8, 5, 7)
    ln, ref = LayerNorm2d(8), nn.LayerNorm(8, eps=1e-6)
    torch.testing.assert_close(ln(x), ref(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_simple_pyramid_picks_the_stride_16_map_or_says_what_it_needs():
    specs = cl.backbones.build("resnet18").out_specs
    assert SimplePyramid(specs).in_keys == ("C4",)
    assert SimplePyramid(specs, in_keys=["C5"]).scale["P3"][-1].out_channels == 128  # 512 -> 256 -> 128
    no16 = OrderedDict(C3=FeatureSpec(32, 8), C5=FeatureSpec(64, 32))
    with pytest.raises(ContractError, match="neck 'simple_pyramid' expects one map at stride 16.*C3 \\(32ch /8\\)"):
        SimplePyramid(no16)


def test_a_vit_detector_with_the_simple_pyramid_builds_traces_and_learns():
    torch.manual_seed(0)
    model = cl.build_model({"backbone": "tiny_vit", "neck": {"name": "simple_pyramid", "out_channels": 32},
                            "head": {"name": "detection", "num_classes": 3}})
    x = torch.rand(2, 3, 128, 128)
    tr = model.trace(x[:1])
    assert [k for k in tr.neck] == ["P3", "P4", "P5"] and tr.neck["P3"].shape[-1] == 16
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 30.0, 100.0, 90.0]]), "labels": torch.tensor([2])}]
    loss = model.loss(model(x), targets)
    total = loss["total"] if isinstance(loss, dict) else loss
    total.backward()
    assert torch.isfinite(total)
    g = model.backbone.patch_embed.weight.grad
    assert g is not None and g.abs().sum() > 0  # the loss reaches the patch embedding through the pyramid
    assert math.isfinite(float(model.backbone.pos_embed.grad.abs().sum()))


def test_vit_detector_recipes_build():
    from course_lib.training import CONFIGS

    for name, neck in (("det_vit_pyramid", "simple_pyramid"), ("det_vit_none", "identity")):
        cfg = CONFIGS[name]
        assert cfg["model"]["backbone"]["name"] == "tiny_vit" and cfg["model"]["neck"]["name"] == neck
        model = cl.build_model(cfg["model"])
        assert model.head.strides == ([8, 16, 32] if neck == "simple_pyramid" else [16])
