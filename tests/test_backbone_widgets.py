"""Lesson 01's explorers (and lesson 02's on your own module): state after value changes, one forward pass per
image, any contract backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import course_lib as cl
from course_lib import render
from course_lib.widgets import FeatureExplorer, ReceptiveFieldExplorer


@pytest.fixture(scope="module")
def mnv2():
    return cl.backbones.build("mobilenet_v2", pretrained=True).eval()


@pytest.fixture(scope="module")
def photo():
    return cl.sample_images()["chelsea"]


def learner_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(inplace=True),   # 0, 1  /2
        nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(inplace=True),  # 2, 3  /4
        nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(inplace=True),  # 4, 5  /8
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def test_feature_explorer_state_follows_the_controls(mnv2, photo):
    ex = FeatureExplorer(mnv2, photo)
    assert ex.n_forward == 1 and ex.stage.value == "C3"
    assert ex.channel.max == 31  # C3 of MobileNetV2 has 32 channels
    first = ex.image_widget.value
    ex.channel.value = 5
    assert ex.image_widget.value != first and "channel 5 of 32" in ex.info.value
    ex.stage.value = "C5"
    assert ex.channel.max == 1279 and "1280×" in ex.info.value
    ex.mode.value = "top-k"
    ex.top_k.value = 3
    top = ex.top_channels()
    means = ex.features["C5"].mean(dim=(1, 2))
    assert top == means.topk(3).indices.tolist()
    assert str(top) in ex.info.value
    with_overlay = ex.image_widget.value
    ex.overlay.value = False
    assert ex.image_widget.value != with_overlay
    assert ex.n_forward == 1  # no slider move re-ran the network
    assert ex.n_redraw >= 6
    fig = ex.static_figure(k=3)
    assert len(fig.axes) == 4 * 3 + 1  # C2..C5, three channels each, and the colour bar
    assert fig.axes[-1].get_ylabel() == "each panel on its own scale"
    c5 = fig.axes[3 * 3:4 * 3]
    assert [a.get_title() for a in c5] == [f"C5 #{c}" for c in top]  # the same top channels the explorer ranks
    # each panel is the explorer's own overlay of that channel on the photo
    want = np.asarray(render.overlay(render.photo(ex.image, 160), ex.features["C5"][top[0]], alpha=0.55))
    np.testing.assert_array_equal(np.asarray(c5[0].images[0].get_array()), want)


def test_feature_explorer_clamps_channel_when_the_stage_is_narrower(mnv2, photo):
    ex = FeatureExplorer(mnv2, photo)
    ex.stage.value = "C5"
    ex.channel.value = 1000
    ex.stage.value = "C2"  # 24 channels
    assert ex.channel.max == 23 and ex.channel.value == 23


def test_rf_explorer_box_moves_with_the_cell_and_gradients_are_cached(mnv2, photo):
    ex = ReceptiveFieldExplorer(mnv2, photo, max_side=160)
    assert ex.n_forward == 1 and ex.stage.value == "C3"
    H, W = ex.erf.features["C3"].shape[-2:]
    assert (ex.y.value, ex.x.value) == (H // 2, W // 2) and ex.x.max == W - 1
    b0 = ex.theoretical_box()
    ex.x.value = 5
    ex.x.value = 6
    b1 = ex.theoretical_box()
    assert b1[0] - ex.rf["C3"].box(ex.y.value, 5)[0] == 8  # one cell = stride 8 px
    assert b1 != b0 and "59×59" in ex.info.value
    n = ex.n_backward
    ex.x.value = 5  # visited before: cached
    assert ex.n_backward == n
    ex.show_erf.value = False
    ex.x.value = 2
    assert ex.n_backward == n  # the box alone needs no gradient
    img = ex.image_widget.value
    ex.stage.value = "C4"
    assert ex.image_widget.value != img and ex.x.max == ex.erf.features["C4"].shape[-1] - 1
    assert "267×267" in ex.info.value
    assert ex.n_forward == 1
    keep = (ex.stage.value, ex.y.value, ex.x.value)
    fig = ex.static_figure()
    assert [a.get_title() for a in fig.axes] == [f"{s} centre cell RF {ex.rf[s].size}px" for s in ex.stage.options]
    assert ex.stage.value == "C4" and ex.show_erf.value is False  # the figure leaves the controls alone
    assert (ex.stage.value, ex.y.value, ex.x.value) == keep
    # the C4 panel is what the explorer draws for C4's centre cell with the gradient on
    ex.show_erf.value = True
    H, W = ex.erf.features["C4"].shape[-2:]
    ex.y.value, ex.x.value = H // 2, W // 2
    panel = np.asarray(fig.axes[list(ex.stage.options).index("C4")].images[0].get_array())
    np.testing.assert_array_equal(panel, np.asarray(ex.render()))


def test_explorers_accept_a_learners_own_module_and_a_picker():
    net = learner_net()
    bb = cl.backbones.from_module(net, taps={"C2": "3", "C3": "5"})
    picker = cl.widgets.ImagePicker()
    fe = FeatureExplorer(bb, picker=picker)
    rf = ReceptiveFieldExplorer(bb, picker=picker)
    assert fe.stage.value == "C3" and fe.channel.max == 31 and rf.rf["C3"].size == 15  # 3 -> 7 -> 15
    rf.show_erf.value = True
    rf.y.value, rf.x.value = 0, 0
    assert "15×15" in rf.info.value
    picker.select("astronaut")
    assert fe.n_forward == 2 and rf.n_forward == 2
    assert bb.hooks_left() == 0


def test_explorers_explain_bad_input(photo):
    with pytest.raises(TypeError, match="from_module"):
        FeatureExplorer(learner_net(), photo)
    with pytest.raises(ValueError, match="image"):
        FeatureExplorer(cl.backbones.build("yolo_csp"))
    with pytest.raises(cl.ImageError):
        ReceptiveFieldExplorer(cl.backbones.build("yolo_csp"), "no/such/file.png")
