"""Any torchvision model as a course Model: a matrix of architectures, random weights, nothing downloaded.

Each architecture is either split into backbone / neck / head with specs that match the real tensors and an
output equal to the original's, or refused with a message that says why.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.models as M
from torchvision.models import detection as D
from torchvision.models import segmentation as S

import course_lib as cl
from course_lib.measure import count_params
from course_lib.widgets import FeatureExplorer, StageExplorer

slow = pytest.mark.slow
# name -> (builder, input side, probe side, expected backbone specs {level: (channels, stride)})
CLASSIFIERS = {
    "resnet18": (M.resnet18, 64, {"C1": (64, 2), "C2": (64, 4), "C3": (128, 8), "C4": (256, 16), "C5": (512, 32)}),
    "resnet50": (M.resnet50, 64, {"C1": (64, 2), "C2": (256, 4), "C3": (512, 8), "C4": (1024, 16),
                                  "C5": (2048, 32)}),
    "resnext50_32x4d": (M.resnext50_32x4d, 64, {"C2": (256, 4), "C5": (2048, 32)}),
    "wide_resnet50_2": (M.wide_resnet50_2, 64, {"C2": (256, 4), "C3": (512, 8), "C5": (2048, 32)}),
    "vgg11": (M.vgg11, 64, {"C1": (128, 2), "C2": (256, 4), "C3": (512, 8), "C4": (512, 16), "C5": (512, 32)}),
    "densenet121": (M.densenet121, 64, {"C1": (64, 2), "C2": (256, 4), "C3": (512, 8), "C4": (1024, 16),
                                        "C5": (1024, 32)}),
    "mobilenet_v2": (M.mobilenet_v2, 64, {"C1": (16, 2), "C2": (24, 4), "C3": (32, 8), "C4": (96, 16),
                                          "C5": (1280, 32)}),
    "mobilenet_v3_small": (M.mobilenet_v3_small, 64, {"C1": (16, 2), "C2": (16, 4), "C3": (24, 8), "C4": (48, 16),
                                                      "C5": (576, 32)}),
    "efficientnet_b0": (M.efficientnet_b0, 64, {"C1": (16, 2), "C2": (24, 4), "C3": (40, 8), "C4": (112, 16),
                                                "C5": (1280, 32)}),
    "efficientnet_v2_s": (M.efficientnet_v2_s, 64, {"C1": (24, 2), "C2": (48, 4), "C3": (64, 8), "C4": (160, 16),
                                                    "C5": (1280, 32)}),
    "regnet_y_400mf": (M.regnet_y_400mf, 64, {"C1": (32, 2), "C2": (48, 4), "C3": (104, 8), "C4": (208, 16),
                                              "C5": (440, 32)}),
    "convnext_tiny": (M.convnext_tiny, 64, {"C2": (96, 4), "C3": (192, 8), "C4": (384, 16), "C5": (768, 32)}),
    "shufflenet_v2_x0_5": (M.shufflenet_v2_x0_5, 64, {"C1": (24, 2), "C2": (24, 4), "C3": (48, 8), "C4": (96, 16),
                                                      "C5": (1024, 32)}),
    "mnasnet0_5": (M.mnasnet0_5, 64, {"C1": (8, 2), "C2": (16, 4), "C3": (24, 8), "C4": (48, 16),
                                      "C5": (1280, 32)}),
    # no padding in SqueezeNet: a 128 input gives 61, 30, 15, 7 (nominal strides 2..16)
    "squeezenet1_0": (M.squeezenet1_0, 128, {"C1": (96, 2), "C2": (256, 4), "C3": (512, 8), "C4": (512, 16)}),
    "swin_t": (M.swin_t, 64, {"C2": (96, 4), "C3": (192, 8), "C4": (384, 16), "C5": (768, 32)}),
    "vit_b_16": (M.vit_b_16, 224, {"C4": (768, 16), "class_token": (768, None)}),
    "maxvit_t": (M.maxvit_t, 224, {"C1": (64, 2), "C2": (64, 4), "C3": (128, 8), "C4": (256, 16), "C5": (512, 32)}),
}
HEAVY = {"resnet50", "resnext50_32x4d", "wide_resnet50_2", "densenet121", "efficientnet_v2_s", "convnext_tiny", "swin_t", "vit_b_16",
         "maxvit_t", "vgg11", "regnet_y_400mf"}

DETECTORS = {
    "fasterrcnn_mobilenet_v3_large_fpn": (D.fasterrcnn_mobilenet_v3_large_fpn, {"C5_0": (160, 32), "C5": (960, 32)},
                                          ["P5_0", "P5", "P6"]),
    "retinanet_resnet50_fpn": (D.retinanet_resnet50_fpn, {"C3": (512, 8), "C4": (1024, 16), "C5": (2048, 32)},
                               ["P3", "P4", "P5", "P6", "P7"]),
    "fcos_resnet50_fpn": (D.fcos_resnet50_fpn, {"C3": (512, 8), "C4": (1024, 16), "C5": (2048, 32)},
                          ["P3", "P4", "P5", "P6", "P7"]),
    "ssd300_vgg16": (D.ssd300_vgg16, {"C3": (512, 8)}, ["P3", "P4", "P5", "P6", "P7", "P9"]),
    "ssdlite320_mobilenet_v3_large": (D.ssdlite320_mobilenet_v3_large, {"C4": (672, 16), "C5": (480, 32)},
                                      ["P4", "P5", "P6", "P7", "P8", "P9"]),
    "maskrcnn_resnet50_fpn": (D.maskrcnn_resnet50_fpn, {"C2": (256, 4), "C3": (512, 8), "C4": (1024, 16),
                                                        "C5": (2048, 32)}, ["P2", "P3", "P4", "P5", "P6"]),
    "keypointrcnn_resnet50_fpn": (D.keypointrcnn_resnet50_fpn, {"C2": (256, 4), "C3": (512, 8), "C4": (1024, 16),
                                                                "C5": (2048, 32)}, ["P2", "P3", "P4", "P5", "P6"]),
}
SEGMENTERS = {
    "deeplabv3_mobilenet_v3_large": (S.deeplabv3_mobilenet_v3_large, {"C5": (960, 16)}, "aspp"),
    "fcn_resnet50": (S.fcn_resnet50, {"C5": (2048, 8)}, "identity"),  # layer4 dilated: C5 at stride 8
    "lraspp_mobilenet_v3_large": (S.lraspp_mobilenet_v3_large, {"C3": (40, 8), "C5": (960, 16)}, "identity"),
}
REFUSED = {"googlenet": (lambda: M.googlenet(weights=None, init_weights=False), "auxiliary classifiers"),
           "deeplabv3 with aux_loss": (lambda: S.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                              aux_loss=True), "aux_loss=False"),
           "inception_v3": (lambda: M.inception_v3(weights=None, init_weights=False), "auxiliary classifiers")}


def fits(h: int, size: int, stride: int) -> bool:
    """A map of side ``h`` is what stride ``stride`` gives on ``size`` pixels (floor, ceil, or a valid conv's few
    pixels less)."""
    return h in (size // stride, math.ceil(size / stride)) or abs(h - size / stride) <= max(1.0, 0.1 * size / stride)


def check_specs(specs, feats, size, want) -> None:
    assert {k: (s.channels, s.stride) for k, s in specs.items() if k in want} == want
    for level, spec in specs.items():
        t = feats[level]
        assert t.shape[1] == spec.channels, level
        if spec.stride is None:
            assert t.ndim == 2
        else:
            assert t.ndim == 4 and fits(t.shape[2], size[0], spec.stride) and fits(t.shape[3], size[1], spec.stride)


def every_parameter_once(model, net) -> None:
    parts = [count_params(p) for p in model.parts().values()]
    assert sum(parts) == count_params(model) == count_params(net)


@pytest.mark.parametrize("name", [pytest.param(n, marks=slow) if n in HEAVY else n for n in CLASSIFIERS])
def test_classifier_split_matches_the_original(name):
    build, side, want = CLASSIFIERS[name]
    torch.manual_seed(0)
    net = build(weights=None).eval()
    model = cl.from_torchvision(net, probe_size=side)
    x = torch.rand(1, 3, side, side)
    trace = model.trace(x)
    check_specs(model.backbone.out_specs, trace.backbone, (side, side), want)
    if name == "squeezenet1_0":  # its classifier convolves the map, then pools: no neck
        assert model.neck.name == "identity"
    else:
        assert model.neck.out_specs["pooled"].stride is None and trace.neck["pooled"].ndim == 2
    with torch.no_grad():
        ref = net(x)
    torch.testing.assert_close(trace.head, ref, atol=1e-5, rtol=1e-5)
    every_parameter_once(model, net)
    assert not net.training and model.backbone.hooks_left() == 0


@pytest.mark.parametrize("name", [pytest.param(n, marks=slow) if "resnet50" in n or "vgg" in n else n
                                  for n in DETECTORS])
def test_detector_split_gives_the_original_detections(name):
    build, want, levels = DETECTORS[name]
    torch.manual_seed(0)
    small = {} if "ssd" in name else {"min_size": 128, "max_size": 128}
    net = build(weights=None, weights_backbone=None, **small).eval()
    model = cl.from_torchvision(net, probe_size=128)
    x = torch.rand(1, 3, 100, 128)
    with torch.no_grad():
        feats = model.backbone(x)
        fused = model.neck(feats)
        dets = model.head(fused)
        ref = net(list(x))
        batch = model.backbone.batch.images.tensors
        ref_maps = list(net.backbone(batch).values())
    check_specs(model.backbone.out_specs, feats, tuple(batch.shape[-2:]), want)
    assert list(model.neck.out_specs) == levels
    for spec, t, r in zip(model.neck.out_specs.values(), fused.values(), ref_maps):
        assert t.shape[1] == spec.channels and fits(t.shape[-1], batch.shape[-1], spec.stride)
        torch.testing.assert_close(t, r, atol=1e-5, rtol=1e-5)
    assert len(dets) == len(ref) == 1 and set(dets[0]) == set(ref[0])
    for k in ref[0]:
        torch.testing.assert_close(dets[0][k], ref[0][k], atol=1e-5, rtol=1e-5)
    every_parameter_once(model, net)


@pytest.mark.parametrize("name", [pytest.param(n, marks=slow) if "resnet" in n else n for n in SEGMENTERS])
def test_segmenter_split_gives_the_original_masks(name):
    build, want, neck = SEGMENTERS[name]
    torch.manual_seed(0)
    net = build(weights=None, weights_backbone=None).eval()
    model = cl.from_torchvision(net, probe_size=64)
    x = torch.rand(1, 3, 72, 96)
    trace = model.trace(x)
    check_specs(model.backbone.out_specs, trace.backbone, (72, 96), want)
    assert model.neck.name == neck
    with torch.no_grad():
        ref = net(x)
    assert trace.head["out"].shape == (1, 21, 72, 96)
    torch.testing.assert_close(trace.head["out"], ref["out"], atol=1e-5, rtol=1e-5)
    every_parameter_once(model, net)


@pytest.mark.parametrize("name", list(REFUSED))
def test_models_without_a_clean_split_are_refused_with_the_reason(name):
    build, reason = REFUSED[name]
    with pytest.raises(TypeError, match=reason) as err:
        cl.from_torchvision(build())
    assert "from_module" in str(err.value) or "Split the model" in str(err.value)  # ... and what to do instead


def test_what_is_not_a_torchvision_model_is_refused():
    with pytest.raises(TypeError, match="classifiers, detectors"):
        cl.from_torchvision(torch.nn.Linear(3, 3))
    with pytest.raises(TypeError, match="nn.Module"):
        cl.from_torchvision("resnet18")


def test_the_split_shares_the_original_modules_and_its_training_mode():
    net = M.resnet18(weights=None)  # training mode
    model = cl.from_torchvision(net, probe_size=64)
    assert model.training and net.training and all(m.training for m in net.modules())
    assert model.head.layers[0] is net.fc and model.backbone.module.layer4 is net.layer4
    top = model.head.decode(model.eval()(torch.rand(2, 3, 64, 64)), k=3)
    assert len(top) == 2 and [c.name.startswith("class ") for c in top[0]] == [True] * 3


@slow
def test_explorers_run_once_on_a_split_swin_and_vit():
    photo = cl.sample_images()["chelsea"]
    for build in (M.swin_t, M.vit_b_16):
        model = cl.from_torchvision(build(weights=None).eval())
        fe = FeatureExplorer(model, photo, max_side=224)
        first = fe.image_widget.value
        fe.stage.value = list(fe.stage.options)[-1]
        fe.channel.value = 7
        fe.mode.value = "top-k"
        assert fe.n_forward == 1 and fe.image_widget.value != first
        assert "class_token" not in fe.stage.options  # a vector is not a map to look at
        se = StageExplorer(model, photo)
        before = se.image_widget.value
        se.stage.value = [s for s in se.stage.options if s.startswith("backbone")][-1]
        se.top_k.value = 3
        assert se.n_forward == 1 and se.image_widget.value != before
        assert model.backbone.hooks_left() == 0
    vit_stages = [s for s in se.stage.options if s.startswith(("backbone", "neck"))]
    assert vit_stages == ["backbone · C4", "backbone · class_token", "neck · pooled"]
    assert se.trace.backbone["C4"].shape == (1, 768, 14, 14)  # the photo resized to ViT's 224
