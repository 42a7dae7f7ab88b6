"""The zoo builds every model from a config of registered names, and cl.build_model(model.config) rebuilds it."""

from __future__ import annotations

import pytest
import torch

import course_lib as cl
from course_lib.heads.detection import DFL, anchor_grid, dfl_expectation
from course_lib.measure import count_params
from course_lib.zoo import build_rtdetr_small, build_yolov8, yolov8


def _registered(config: dict) -> bool:
    registries = {"backbone": cl.backbones.names(), "neck": cl.necks.names(), "head": cl.heads.names()}
    return set(config) == set(registries) and all(config[p]["name"] in registries[p] for p in registries)


def _shapes(out) -> list[tuple[int, ...]]:
    if isinstance(out, torch.Tensor):
        return [tuple(out.shape)]
    values = out.values() if isinstance(out, dict) else out
    return [tuple(t.shape) for t in values]


@pytest.mark.parametrize("scale", ["n", "s", "m", "l", "x"])
def test_every_yolov8_scale_rebuilds_from_its_config(scale):
    with torch.device("meta"):  # shapes and counts without allocating or initialising weights
        model = build_yolov8(scale)
        again = cl.build_model(model.config)
        x = torch.zeros(1, 3, 640, 640)
        outs = [m.eval()(x) for m in (model, again)]
    assert _registered(model.config) and again.config == model.config
    assert count_params(model) == count_params(again) == yolov8.PUBLISHED_PARAMS[scale]
    assert [count_params(getattr(again, p)) for p in ("backbone", "neck", "head")] == \
        [count_params(getattr(model, p)) for p in ("backbone", "neck", "head")]
    assert _shapes(outs[0]) == _shapes(outs[1]) == [(1, 84, 8400)]


def test_yolov8_config_names_the_classes():
    model = build_yolov8("n", num_classes=20).eval()
    assert model.config["head"] == {"name": "yolov8_detect", "num_classes": 20}
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 24, 8 * 8 + 4 * 4 + 2 * 2)
    with pytest.raises(ValueError, match="unknown YOLOv8 scale 'q'"):
        build_yolov8("q")


def test_small_rtdetr_rebuilds_from_its_config():
    model = build_rtdetr_small(num_classes=5, dim=64, num_queries=20, layers=2).eval()
    again = cl.build_model(model.config).eval()
    assert _registered(model.config) and again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert count_params(again) == count_params(model)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert _shapes(model(x)) == _shapes(again(x)) == [(1, 20, 5), (1, 20, 4)]


def test_zoo_parts_fail_like_any_part():
    with pytest.raises(cl.ContractError, match="neck 'yolov8_pan' expects C3, C4, C5 .* but backbone 'tiny_cnn'"):
        cl.build_model({"backbone": {"name": "tiny_cnn", "levels": ("C2", "C3")}, "neck": "yolov8_pan",
                        "head": "yolov8_detect"})
    with pytest.raises(KeyError, match="Did you mean 'yolov8_pan'"):
        cl.necks.build("yolov8_pann", {})


def test_one_dfl_for_both_detection_heads():
    """The course's detection head and YOLOv8's Detect decode DFL bins with the same function."""
    logits = torch.randn(3, 4, 16)
    expected = (logits.softmax(-1) * torch.arange(16.0)).sum(-1)
    assert torch.allclose(dfl_expectation(logits), expected, atol=1e-6)
    head = cl.heads.build("detection", {"P3": cl.FeatureSpec(8, 8)}, reg_bins=16)
    assert torch.allclose(head.distances(logits.flatten(-2)), expected, atol=1e-6)
    yolo = DFL(16)(logits.permute(1, 2, 0).reshape(1, 64, 3))  # YOLOv8's layout: (B, 4 * bins, anchors)
    assert torch.allclose(yolo[0].T, expected, atol=1e-5)


def test_one_anchor_grid_for_both_detection_heads():
    points, strides, level = anchor_grid([(2, 2), (1, 1)], [8, 16])
    assert points.tolist() == [[4, 4], [12, 4], [4, 12], [12, 12], [8, 8]]
    assert strides.tolist() == [8, 8, 8, 8, 16] and level.tolist() == [0, 0, 0, 0, 1]
    # YOLOv8: zero distances on every side put each box's centre on its anchor point, with zero size
    detect = yolov8.YOLOv8Detect({"P3": cl.FeatureSpec(16, 8), "P4": cl.FeatureSpec(16, 16)}, num_classes=2)
    box = torch.full((1, 64, 2, 2), -30.0)
    box[:, ::16] = 30.0                                    # all the mass on bin 0 of each side
    maps = [torch.cat([box, torch.zeros(1, 2, 2, 2)], 1), torch.cat([box[..., :1, :1], torch.zeros(1, 2, 1, 1)], 1)]
    out = detect.decode_raw(maps)[0]
    assert torch.allclose(out[:2].T, points) and torch.allclose(out[2:4], torch.zeros(2, 5), atol=1e-4)


# ----------------------------------------------------------------- Darknet-53 (YOLOv3's backbone)
def test_darknet53_is_the_papers_table_and_counts_40_6_million():
    from course_lib.zoo import darknet

    bb = cl.backbones.build("darknet53", levels=("C1", "C2", "C3", "C4", "C5"))
    convs = [m for m in bb.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 52                                   # + the 1000-way classifier = 53 layers
    assert sum(isinstance(m, darknet.DarkResidual) for m in bb.modules()) == sum(darknet.BLOCKS) == 23
    assert count_params(bb) == darknet.BACKBONE_PARAMS == 40_584_928
    # with the classifier (1024 -> 1000 FC): the ~41.6 M quoted for the Darknet-53 classifier network
    assert round((count_params(bb) + darknet.CLASSIFIER_PARAMS) / 1e6, 1) == 41.6
    assert not any(isinstance(m, torch.nn.SiLU) for m in bb.modules())
    assert all(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.1
               for m in bb.modules() if isinstance(m, torch.nn.LeakyReLU))
    with torch.no_grad():
        out = bb.eval()(torch.rand(1, 3, 64, 64))
    assert [tuple(t.shape[1:]) for t in out.values()] == [(c, 64 // s, 64 // s) for c, s in
                                                          zip(darknet.WIDTHS, (2, 4, 8, 16, 32))]
    assert {k: (v.channels, v.stride) for k, v in bb.out_specs.items()} == {
        "C1": (64, 2), "C2": (128, 4), "C3": (256, 8), "C4": (512, 16), "C5": (1024, 32)}


def test_darknet53_residual_block_adds_its_input_and_refuses_weights():
    from course_lib.zoo import darknet

    block = darknet.DarkResidual(8).eval()
    torch.nn.init.zeros_(block.expand[0].weight)              # the branch then gives LeakyReLU(BN(0)) = 0
    torch.nn.init.zeros_(block.expand[1].bias)
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(block(x), x)
    assert block.reduce[0].out_channels == 4 and block.expand[0].kernel_size == (3, 3)
    with pytest.raises(ValueError, match="no pretrained weights"):
        cl.backbones.build("darknet53", pretrained=True)


# ----------------------------------------------------------------- lesson 09's code exercises
def test_compose_yolov8s_exercise_builds_and_counts():
    ex = cl.exercises.get("09.compose_yolov8s")
    config = yolov8.yolov8_config("s", num_classes=3)
    assert ex.is_correct(config)
    assert count_params(cl.build_model(config)) == 11_166_560 - 3 * 129 * 77 == 11_136_761
    for wrong in (yolov8.yolov8_config("n", 3), yolov8.yolov8_config("s", 4), yolov8.yolov8_config("m", 3),
                  {"backbone": "yolo_csp"}):
        assert not ex.is_correct(wrong)


def test_yolov5_channels_exercise_checks_the_function():
    ex = cl.exercises.get("09.yolov5_channels")
    assert ex.is_correct(lambda nc: 3 * (5 + nc)) and ex.solution()(80) == 255
    assert not ex.is_correct(lambda nc: 4 + nc) and not ex.is_correct(255)


# ----------------------------------------------------------------- lesson 09's audit of the source text
def test_source_audit_quotes_chinese_and_counts_its_verdicts():
    from course_lib.zoo import source_audit as A

    assert len(A.CLAIMS) == 9 and A.verdicts() == {"wrong": 8, "half right": 1}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in c.quote) for c in A.CLAIMS)
    table = A.audit_table().splitlines()
    assert len(table) == 2 + 9 and "PAN模块则通过将多个小尺寸的特征图拼接成一个大尺寸的特征图" in table[-1]


def test_every_yolov8_concat_joins_same_size_maps_and_keeps_their_size():
    from course_lib.zoo import source_audit as A

    calls = A.concat_shapes(build_yolov8("n"), size=320)
    assert len(calls) == 4
    for inputs, out in calls:
        assert len(inputs) == 2 and {s[2:] for s in inputs} == {out[2:]}
        assert out[1] == sum(s[1] for s in inputs)
    assert [out[2:] for _, out in calls] == [(20, 20), (40, 40), (20, 20), (10, 10)]
