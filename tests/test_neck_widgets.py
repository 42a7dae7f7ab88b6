"""The neck lessons' explorers (fusion: lesson 04, dilation: lesson 05), driven without a browser: state after
control changes, and no needless forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_lib as cl
from course_lib import render
from course_lib.data import shapes_scene
from course_lib.widgets import DilationExplorer, FusionExplorer
from course_lib.widgets.dilation_explorer import sampling_grid


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return cl.backbones.build("mobilenet_v2", pretrained=True).eval()


@pytest.fixture(scope="module")
def scene():
    return shapes_scene(192, 256)


@pytest.fixture()
def fusion(backbone, cat, scene):
    return FusionExplorer(backbone, {"cat": cat, "shapes": scene[0]}, out_channels=16, max_side=192)


def test_fusion_explorer_starts_with_one_backbone_and_one_neck_pass(fusion):
    assert fusion.n_forward == 1 and fusion.n_neck_forward == 1
    assert fusion.state["before"] == "C3" and fusion.state["after"] == "P3"
    assert fusion.state["after_shape"][1] == 16 and fusion.state["before_shape"][1] == 32
    assert "C3" in fusion.info.value and "P3" in fusion.info.value
    assert fusion.image_widget.value[:4] == b"\x89PNG" and fusion.diagram_widget.value[:4] == b"\x89PNG"
    assert fusion.bottom_up.disabled  # FPN has no bottom-up path


def test_level_reduce_and_channel_redraw_from_cache(fusion):
    before = fusion.image_widget.value
    fusion.level.value = "P5"
    assert fusion.image_widget.value != before
    assert fusion.state["after"] == "P5" and fusion.state["before"] == "C5"
    assert str(fusion.state["after_shape"]) in fusion.info.value
    mean_map = fusion.state["after_map"].copy()
    fusion.reduce.value = "channel"
    fusion.channel.value = 3
    assert not np.allclose(fusion.state["after_map"], mean_map)
    assert "channel 3" in fusion.info.value
    assert fusion.n_forward == 1 and fusion.n_neck_forward == 1  # nothing re-ran


def test_top_down_switch_reruns_only_the_neck(fusion):
    fusion.level.value = "P5"
    p5_on = fusion.state["after_map"].copy()
    fusion.level.value = "P3"
    p3_on = fusion.state["after_map"].copy()
    panels_on = fusion.image_widget.value
    fusion.top_down.value = False
    assert fusion.n_forward == 1 and fusion.n_neck_forward == 2
    assert fusion.state["paths"] == {"lateral": True, "top_down": False}
    assert "top_down OFF" in fusion.info.value
    assert not any(s.startswith("P3 top-down") for s in fusion.state["steps"])
    assert not np.allclose(fusion.state["after_map"], p3_on)  # P3 lost what came down from C4 and C5
    assert fusion.state["carried"] > 0 and fusion.image_widget.value != panels_on
    fusion.level.value = "P5"
    np.testing.assert_allclose(fusion.state["after_map"], p5_on)  # the top level does not depend on top-down
    assert fusion.state["carried"] == 0
    fusion.top_down.value = True  # back on: cached
    assert fusion.n_neck_forward == 2
    assert fusion.necks["FPN"].paths["top_down"] is True


def test_pan_necks_and_image_cache(fusion):
    fusion.neck.value = "PAN (concat)"
    assert not fusion.bottom_up.disabled
    assert "P3 concat: (32," in fusion.info.value  # concat doubles the channels before C2f
    fusion.level.value = "P5"
    n = fusion.n_neck_forward
    fusion.bottom_up.value = False
    assert fusion.n_neck_forward == n + 1
    assert fusion.necks["PAN (concat)"].out_specs.paths["bottom_up"] is False
    fusion.neck.value = "PAN (add)"
    assert "fusion: add" in repr(fusion.necks["PAN (add)"])
    fusion.gallery.value = "shapes"
    assert fusion.n_forward == 2
    fusion.gallery.value = "cat"
    assert fusion.n_forward == 2  # the cat's maps were cached


def test_static_figure_and_add_image(fusion, scene):
    fig = fusion.static_figure("PAN (add)")
    assert len(fig.axes) == (1 + 3) * 4 + 2  # all on + each of 3 paths off; input + P3..P5; two colour bars
    rows = [fig.axes[i * 4:(i + 1) * 4] for i in range(4)]
    assert [r[0].get_title() for r in rows] == ["input", "lateral off", "top-down off", "bottom-up off"]
    assert [a.get_title().split()[0] for a in rows[0][1:]] == ["P3", "P4", "P5"]
    assert "(from C3 32ch)" in rows[0][1].get_title()
    carried = [a.images[0] for r in rows[1:] for a in r[1:]]
    assert len({im.get_clim() for im in carried}) == 1  # every "carried" panel on one shared scale
    assert float(np.abs(rows[3][1].images[0].get_array()).max()) == 0  # N3 = P3: bottom-up brings nothing to P3
    # the top-down-off row shows what that path carried to P3: |all on - top-down off|, mean over channels
    ref, _ = fusion.fused("cat", "PAN (add)", {"lateral": True, "top_down": True, "bottom_up": True})
    out, _ = fusion.fused("cat", "PAN (add)", {"lateral": True, "top_down": False, "bottom_up": True})
    np.testing.assert_allclose(rows[2][1].images[0].get_array(), (ref["P3"][0] - out["P3"][0]).abs().mean(0).numpy(),
                               rtol=1e-5, atol=1e-6)
    fusion.set_image(scene[0][::-1].copy(), "upload")
    assert fusion.gallery.value == "upload" and fusion.n_forward == 2


def test_fusion_explorer_rejects_bad_input(backbone):
    with pytest.raises(ValueError, match="at least one image"):
        FusionExplorer(backbone, {})
    with pytest.raises(ValueError, match="C3, C4, C5"):
        FusionExplorer(cl.backbones.build("resnet18", levels=("C5",)), {"x": np.zeros((64, 64, 3), np.uint8)})


def test_sampling_grid_counts_taps_in_the_padding():
    taps = sampling_grid((5, 5), rate=2, stride=16, map_hw=(11, 11))
    assert sum(t.inside for t in taps) == 9
    assert taps[0].pixel == (16 * 3, 16 * 3) and taps[8].cell == (7, 7)
    assert sum(t.inside for t in sampling_grid((0, 0), 1, 16, (11, 11))) == 4  # a corner cell
    assert sum(t.inside for t in sampling_grid((5, 5), 6, 16, (11, 11))) == 1  # rate beyond the map: a 1x1 conv


def test_dilation_explorer(backbone, cat):
    dx = DilationExplorer(backbone, cat, rates=(1, 6, 12, 18), max_side=256)
    assert dx.n_forward == 1 and dx.stride == 16
    assert dx.state["rate"] == 6 and dx.state["gap_px"] == 96
    assert dx.state["field_px"] == 2 * 6 * 16 + dx.rf.size
    first = dx.image_widget.value
    dx.rate.value = 1
    assert dx.state["inside"] == 9 and dx.image_widget.value != first
    dx.rate.value = 18
    assert dx.state["inside"] == 1 and "1/9" in dx.info.value  # 18 cells away leaves a 11x16 map
    dx.cell_y.value, dx.cell_x.value = 0, 0
    dx.rate.value = 1
    assert dx.state["inside"] == 4
    assert dx.n_forward == 1  # every move redrew from the cached receptive field
    heat = dx.heat(dx.taps(1, (5, 7)))
    assert heat.shape == tuple(dx.image.shape[-2:]) and heat.max() > 0
    fig = dx.static_figure()
    assert [a.get_title() for a in fig.axes] == [
        f"rate {r}: taps {r * 16}px apart, {sum(t.inside for t in dx.taps(r))}/9 inside" for r in (6, 12, 18)]
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), np.asarray(dx.render(rate=12)))
    assert dx.n_forward == 1
    with pytest.raises(ValueError, match="level"):
        DilationExplorer(backbone, cat, level="C9")


def test_dilation_explorer_follows_a_picker(backbone):
    picker = cl.widgets.ImagePicker(max_side=160)
    dx = DilationExplorer(backbone, picker=picker, rates=(1, 6))
    hw = dx.map_hw
    picker.select("astronaut")  # a square photo: another map
    assert dx.n_forward == 2 and dx.map_hw != hw
    assert (dx.cell_y.value, dx.cell_x.value) == (dx.map_hw[0] // 2, dx.map_hw[1] // 2)


def test_scene_and_drawings(scene):
    img, objects = scene
    img2, objects2 = shapes_scene(192, 256)
    assert np.array_equal(img, img2) and objects == objects2
    sizes = sorted(o.size for o in objects)
    assert sizes[0] <= 12 and sizes[-1] >= 150  # tiny and huge in one picture
    over = render.grid_overlay(img, 32, objects, rf_size=59, title="P5 grid")
    assert over.size == (256, 192)
    diag = render.neck_diagram(["P3", "P4", "P5"], {"lateral": True, "top_down": False, "bottom_up": True}, True, "P4")
    assert diag.width == 330


def test_attention_probe_trains_and_keeps_threads():
    from collections import OrderedDict

    from course_lib.data import attention_probe_data
    from course_lib.training import train_attention_probe

    X, y, boxes = attention_probe_data(n=16, size=64, seed=1)
    assert X.shape == (16, 3, 64, 64) and float(y.sum()) == 8
    assert all((b is None) == (lab == 0) for b, lab in zip(boxes, y.tolist()))
    feats = torch.randn(16, 8, 6, 6)
    threads = torch.get_num_threads()
    neck = cl.necks.build("cbam", OrderedDict(C=cl.FeatureSpec(8, 8)), reduction=4)
    probe = train_attention_probe(feats, y, neck, steps=15, n_train=12)
    assert torch.get_num_threads() == threads
    assert probe.losses[-1] < probe.losses[0] and 0.0 <= probe.val_accuracy <= 1.0
    assert probe.accuracy(feats[:12], y[:12]) >= 0.5


def test_fusion_explorer_follows_an_image_picker(backbone, cat):
    from course_lib.widgets.picker import ImagePicker

    picker = ImagePicker(max_side=160)
    fx = FusionExplorer(backbone, {"cat": cat}, picker=picker, out_channels=8, max_side=160)
    picker.dropdown.value = "coffee"
    assert fx.gallery.value == "picked" and fx.n_forward == 2
    coffee_shape = fx.state["before_shape"]
    assert coffee_shape[-2:] == tuple(fx.features("picked")["C3"].shape[-2:])
    picker.dropdown.value = "astronaut"  # a new picture under the same name: recomputed, not stale
    assert fx.n_forward == 3 and fx.state["before_shape"] != coffee_shape
