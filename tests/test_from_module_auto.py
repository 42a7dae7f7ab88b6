"""from_module without taps: stages found by one probe, channels-last maps and ViT tokens read as maps."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as M
from torch import nn

import course_lib as cl
from course_lib.backbones.custom import find_stages, read_map
from course_lib.hooks import hooks_left


def learner_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(),    # 0, 1  /2
        nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),   # 2, 3  /4
        nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),  # 4, 5  /8
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def test_stages_are_the_last_module_at_each_stride_named_by_stride():
    bb = cl.backbones.from_module(learner_net(), probe_size=64)
    assert dict(bb.taps) == {"C1": "1", "C2": "3", "C3": "5"}  # the ReLUs, not the pooled 1x1 map
    assert {k: (s.channels, s.stride) for k, s in bb.out_specs.items()} == {"C1": (8, 2), "C2": (16, 4),
                                                                           "C3": (32, 8)}
    feats = bb(torch.rand(2, 3, 96, 64))
    assert [tuple(t.shape) for t in feats.values()] == [(2, 8, 48, 32), (2, 16, 24, 16), (2, 32, 12, 8)]


def test_found_stages_equal_the_hand_named_ones_on_resnet():
    net = M.resnet18(weights=None)
    found = cl.backbones.from_module(net, probe_size=64)
    assert dict(found.taps) == {"C1": "relu", "C2": "layer1", "C3": "layer2", "C4": "layer3", "C5": "layer4"}
    named = cl.backbones.from_module(net, taps={"C3": "layer2", "C4": "layer3", "C5": "layer4"}, probe_size=64)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = found(x), named(x)
    for k in b:
        assert found.out_specs[k] == named.out_specs[k]
        torch.testing.assert_close(a[k], b[k])
    # a stage's first 1x1 conv still runs at the old stride: not a stage end
    assert "layer2.0.conv1" not in found.taps.values()
    assert net.training and found.hooks_left() == 0


def test_the_forward_stops_after_the_deepest_stage():
    net = learner_net()
    calls = []
    net[-1].register_forward_hook(lambda *_: calls.append(1))
    bb = cl.backbones.from_module(net, probe_size=64)
    bb(torch.rand(1, 3, 64, 64))
    assert calls == [1]  # the probe ran the whole net once; the forward stopped at C3
    net[-1]._forward_hooks.clear()


@pytest.mark.slow
def test_swin_channels_last_maps_are_read_and_permuted():
    net = M.swin_t(weights=None).eval()
    bb = cl.backbones.from_module(net, probe_size=64)
    assert dict(bb.taps) == {"C2": "features.1", "C3": "features.3", "C4": "features.5", "C5": "norm"}
    assert {r.layout for r in bb.readings.values()} == {"nhwc"}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        c3 = bb(x)["C3"]
        ref = net.features[:4](x)  # (B, H, W, C)
    assert ref.shape == (1, 8, 8, 192) and c3.shape == (1, 192, 8, 8)
    torch.testing.assert_close(c3, ref.permute(0, 3, 1, 2))
    # the hand-named tap that used to be refused ("try probe_size=256") now reads the same way
    named = cl.backbones.from_module(net, taps={"C3": "features.3"}, probe_size=64)
    assert named.out_specs["C3"] == bb.out_specs["C3"]


def test_a_forced_wrong_layout_gets_advice_that_fits():
    net = M.swin_t(weights=None)
    with pytest.raises(cl.ContractError, match="layout='nhwc'") as err:
        cl.backbones.from_module(net, taps={"C3": "features.3"}, layout="nchw", probe_size=64)
    assert "(1, 8, 8, 192)" in str(err.value) and "probe_size" not in str(err.value)


@pytest.mark.slow
def test_vit_tokens_lose_the_class_token_and_become_a_grid():
    net = M.vit_b_16(weights=None).eval()
    bb = cl.backbones.from_module(net)
    assert dict(bb.taps) == {"C4": "encoder"} and bb.readings["C4"].layout == "tokens"
    assert bb.readings["C4"].extra == 1 and bb.input_size == 224  # read from net.image_size
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        c4 = bb(x)["C4"]
        tokens = net.encoder(torch.cat([net.class_token, net._process_input(x)], dim=1))
    assert tokens.shape == (1, 197, 768) and c4.shape == (1, 768, 14, 14)
    torch.testing.assert_close(c4[0, :, 2, 3], tokens[0, 1 + 2 * 14 + 3])  # row 2, column 3 of the patches
    with torch.no_grad():
        assert bb(torch.rand(1, 3, 160, 300))["C4"].shape == (1, 768, 14, 14)  # resized to ViT's one size


class _TokenStage(nn.Module):
    """A token mixer (B, N, C) -> (B, N, C), or with ``down`` a 2x2 merge of the patch grid (N -> N / 4)."""

    def __init__(self, c: int, down: bool = False):
        super().__init__()
        self.down, self.fc = down, nn.Linear(c, c)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.down:
            b, n, c = t.shape
            h = int(n ** 0.5)
            t = nn.functional.avg_pool2d(t.transpose(1, 2).reshape(b, c, h, h), 2).flatten(2).transpose(1, 2)
        return self.fc(t)


class ConvThenTokens(nn.Module):
    """Like LeViT: a conv stem down to stride 16 (NCHW maps), then stages of tokens at 16 and 32."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 16, 3, 2, 1), nn.Conv2d(16, 24, 3, 2, 1),
                                  nn.Conv2d(24, 32, 3, 2, 1))
        self.stages = nn.Sequential(_TokenStage(32), _TokenStage(32, down=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x).flatten(2).transpose(1, 2))


def test_a_network_that_changes_layout_on_the_way_down_keeps_its_deeper_stages():
    bb = cl.backbones.from_module(ConvThenTokens(), probe_size=128)
    assert dict(bb.taps) == {"C1": "stem.0", "C2": "stem.1", "C3": "stem.2", "C4": "stages.0", "C5": "stages"}
    feats = bb(torch.rand(1, 3, 128, 128))
    assert [tuple(t.shape) for t in feats.values()] == [(1, 8, 64, 64), (1, 16, 32, 32), (1, 24, 16, 16),
                                                        (1, 32, 8, 8), (1, 32, 4, 4)]


def test_read_map_knows_the_three_layouts():
    size = (64, 64)
    assert read_map(torch.zeros(1, 32, 8, 8), size).layout == "nchw"
    assert read_map(torch.zeros(1, 8, 8, 96), size).layout == "nhwc"
    r = read_map(torch.zeros(1, 1 + 4 + 16, 384), size)  # class token + 4 registers + a 4x4 grid
    assert (r.layout, r.stride, r.extra, r.channels) == ("tokens", 16, 5, 384)
    assert read_map(torch.zeros(1, 1000), size) is None
    assert read_map(torch.zeros(1, 32, 8, 8), size, layout="tokens") is None


def test_a_module_without_maps_is_refused_with_what_was_seen():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(cl.ContractError, match="taps=") as err:
        cl.backbones.from_module(mlp, probe_size=32)
    assert "0: (1, 3072)" in str(err.value) and "1: (1, 10)" in str(err.value)
    assert all(len(m._forward_hooks) == 0 for m in mlp.modules())
    with pytest.raises(ValueError, match="layout must be"):
        cl.backbones.from_module(mlp, layout="channels_last")


def test_the_probe_removes_its_hooks_even_when_the_forward_fails():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, 2, 1)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom")

    net = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        find_stages(net, 32)
    assert hooks_left(net) == 0 and net.training


def test_timm_models_are_staged_like_their_feature_info():
    timm = pytest.importorskip("timm")
    net = timm.create_model("resnet18", pretrained=False)
    bb = cl.backbones.from_module(net, probe_size=64)
    info = {f"C{i + 1}": (f["num_chs"], f["reduction"]) for i, f in enumerate(net.feature_info)}
    assert {k: (s.channels, s.stride) for k, s in bb.out_specs.items()} == info
    levit = timm.create_model("levit_128s", pretrained=False)  # a conv stem, then token stages at /16, /32, /64
    bb = cl.backbones.from_module(levit)
    deep = {f["module"]: (f["num_chs"], f["reduction"]) for f in levit.feature_info if f["reduction"] <= 32}
    assert {bb.taps[k]: (s.channels, s.stride) for k, s in bb.out_specs.items() if s.stride >= 16} == deep
