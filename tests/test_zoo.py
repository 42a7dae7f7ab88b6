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
