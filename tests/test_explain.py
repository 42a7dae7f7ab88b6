"""CAM and Grad-CAM: exact where they should be, and looking at the right half of a two-photo picture."""

from __future__ import annotations

import pytest
import torch
import torchvision

import course_lib as cl
from course_lib import explain
from course_lib.hooks import hooks_left
from course_lib.widgets import CAMExplorer


@pytest.fixture(scope="module")
def pair():
    """The cat (left) and the coffee cup (right), each in ImageNet's 224x224 view: one (3, 224, 448) picture."""
    photos = cl.sample_images()
    return explain.side_by_side([cl.load_image(photos["chelsea"]), cl.load_image(photos["coffee"])])


def halves(m: torch.Tensor) -> tuple[float, float]:
    w = m.shape[-1] // 2
    return float(m[:, :w].mean()), float(m[:, w:].mean())


def test_cam_mean_plus_bias_is_the_logit(classifier, cat):
    x = cl.images.imagenet_view(cat)
    logits = classifier(x[None])[0]
    for target in ["Egyptian cat", 0, 500]:
        raw = explain.cam(classifier, x, target, raw=True)
        k = target if isinstance(target, int) else classifier.head.class_names.index(target)
        assert raw.shape == (7, 7)
        assert torch.allclose(raw.mean() + classifier.head.fc.bias[k], logits[k], atol=1e-4)


def test_cam_and_grad_cam_shape_range_and_batch_of_one(classifier, cat):
    x = cat[:, :200, :300]
    for f in (explain.cam, explain.grad_cam):
        m = f(classifier, x, "Egyptian cat")
        assert m.shape == (200, 300) and float(m.min()) >= 0 and float(m.max()) == pytest.approx(1.0)
        assert torch.allclose(f(classifier, x[None], "Egyptian cat"), m, atol=1e-5)


def test_grad_cam_on_the_pooled_map_is_cam(classifier, cat):
    """For GAP + linear, d logit / d A_c = w_kc / (h w) everywhere: Grad-CAM = ReLU(CAM) / (h w)."""
    x = cl.images.imagenet_view(cat)
    key = classifier.neck.in_keys[0]
    assert explain.find_last_spatial_layer(classifier, x) == f"backbone.stages.{key}"
    raw_cam = explain.cam(classifier, x, "tabby", raw=True)
    for layer in (None, f"backbone.stages.{key}"):
        raw_grad = explain.grad_cam(classifier, x, "tabby", layer=layer, raw=True)
        assert torch.allclose(raw_grad * raw_cam.numel(), raw_cam.clamp_min(0), atol=1e-4)
    # and the pictures agree: Grad-CAM's map is CAM's positive part, scaled to [0, 1]
    g = explain.grad_cam(classifier, x, "tabby")
    c = raw_cam.clamp_min(0)
    up = torch.nn.functional.interpolate(c[None, None], size=g.shape, mode="bilinear", align_corners=False)[0, 0]
    assert torch.allclose(g, up / up.max(), atol=1e-4)


def test_cat_lights_the_left_half_and_espresso_the_right(classifier, pair):
    # measured: cat CAM 0.71 left vs 0.24 right, Grad-CAM 0.60 vs 0.02;
    #           espresso CAM 0.07 left vs 0.35 right, Grad-CAM 0.05 vs 0.33
    for f in (explain.cam, explain.grad_cam):
        cat_left, cat_right = halves(f(classifier, pair, "Egyptian cat"))
        cup_left, cup_right = halves(f(classifier, pair, "espresso"))
        assert cat_left > 2 * cat_right, (f.__name__, cat_left, cat_right)
        assert cup_right > 2 * cup_left, (f.__name__, cup_left, cup_right)


@pytest.mark.parametrize("build", [torchvision.models.resnet18, torchvision.models.mobilenet_v2])
def test_grad_cam_on_torchvision_classifiers(build, pair):
    torch.manual_seed(0)
    net = build(weights=None).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m = explain.grad_cam(net, pair, 3)
    assert m.shape == (224, 448) and 0 <= float(m.min()) and float(m.max()) <= 1
    assert net.training and hooks_left(net) == 0
    assert all(p.grad is None for p in net.parameters())
    # eval mode inside: BatchNorm's running statistics are untouched
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert explain.find_last_spatial_layer(net, pair) == ("layer4" if build is torchvision.models.resnet18
                                                          else "features")
    with torch.no_grad():  # works even where a lesson has switched gradients off
        assert torch.equal(explain.grad_cam(net, pair, 3), m)
    assert explain.grad_cam(net, pair, "Egyptian cat").shape == (224, 448)  # 1000 outputs: ImageNet's names


def test_errors_say_what_to_do(classifier, cat):
    with pytest.raises(TypeError, match="grad_cam"):
        explain.cam(torchvision.models.resnet18(weights=None), cat, 0)
    with pytest.raises(ValueError, match="Egyptian cat"):
        explain.cam(classifier, cat, "egyptian kat")
    with pytest.raises(ValueError, match="out of range"):
        explain.grad_cam(classifier, cat, 1000)
    with pytest.raises(ValueError, match="no layer"):
        explain.grad_cam(classifier, cat, 0, layer="backbone.nope")
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        explain.cam(classifier, torch.zeros(2, 3, 32, 32), 0)
    assert hooks_left(classifier) == 0


def test_hooks_removed_when_the_model_raises():
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom")

    net = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        explain.grad_cam(net, torch.zeros(3, 16, 16), 0)
    assert hooks_left(net) == 0


def test_cam_explorer_runs_the_network_once_per_image(classifier, pair, cat):
    ex = CAMExplorer(classifier, pair, top_k=5)
    assert ex.n_forward == 1 and list(ex.method.options) == ["CAM", "Grad-CAM"]
    assert ex.maps.names[0] == "espresso" and len(ex.cls.options) == 5
    first = ex.image_widget.value
    for v in (0.1, 0.9):
        ex.opacity.value = v
    ex.method.value = "Grad-CAM"
    for rank in range(5):
        ex.cls.value = rank
    assert ex.n_forward == 1 and ex.n_redraw >= 8 and ex.image_widget.value != first
    assert "Grad-CAM" in ex.info.value and ex.maps.names[4] in ex.info.value
    # the cached maps are the library's maps
    assert torch.allclose(ex.heat(0, "CAM"), explain.cam(classifier, pair, "espresso"), atol=1e-5)
    fig = ex.static_figure()
    titles = [ax.get_title() for ax in fig.axes]
    assert any("espresso" in t and "%" in t for t in titles) and len(fig.axes) == 3
    ex.set_image(cat)
    assert ex.n_forward == 2 and ex.maps.names[0] == "Egyptian cat"


def test_cam_explorer_on_a_torchvision_model_offers_grad_cam_only(pair):
    ex = CAMExplorer(torchvision.models.resnet18(weights=None), pair, top_k=3)
    assert list(ex.method.options) == ["Grad-CAM"] and ex.n_forward == 1 and ex.maps.layer == "layer4"
