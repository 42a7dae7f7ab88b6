"""Lesson 02 exercises: the backbone's building blocks (bottlenecks, depthwise convs, your own eye)."""

from __future__ import annotations

from ..exercises import Exercise, register


def _check_eye_fn(fn) -> bool:
    """``fn()`` must return a ``from_module`` backbone whose C3 is at stride 8 and C4 at stride 16, for real."""
    import torch

    eye = fn()
    specs = eye.out_specs
    if {k: specs[k].stride for k in ("C3", "C4")} != {"C3": 8, "C4": 16} or not hasattr(eye, "hooks_left"):
        return False
    with torch.no_grad():
        maps = eye.eval()(torch.zeros(1, 3, 64, 64))
    ok = all(tuple(maps[k].shape[1:]) == (specs[k].channels, 64 // specs[k].stride, 64 // specs[k].stride)
             for k in ("C3", "C4"))
    return ok and eye.hooks_left() == 0


def _reference_eye():
    """The reference answer: four stride-2 convs of your own, the third and fourth tapped."""
    from torch import nn

    from ...backbones import from_module

    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU())
    return from_module(net, taps={"C3": "5", "C4": "7"})


register(Exercise(
    id="02.my_eye",
    question="Write make_eye(): build any nn.Module of your own (a few strided convs, or torchvision's "
             "resnet18()) and return cl.backbones.from_module(net, taps={...}) so that its out_specs give a "
             "C3 map at stride 8 and a C4 map at stride 16. The checker runs it on a 64x64 image.",
    answer=_reference_eye,
    compare=lambda fn, ref: callable(fn) and _check_eye_fn(fn),
    hints=["taps name submodules: for an nn.Sequential the names are '0', '1', ...; print(dict(net.named_modules()))",
           "stride 8 = after the third stride-2 layer, stride 16 = after the fourth (resnet18: 'layer2', 'layer3')"],
    explanation="from_module measures each tap's channels and stride with one dummy forward pass, so the "
                "out_specs are facts about your module, not numbers you typed.",
))
register(Exercise(
    id="02.bottleneck",
    question="ResNet-50's layer4 uses bottlenecks 2048 -> 512 -> 512 -> 2048 (1x1 reduce, 3x3, 1x1 expand). "
             "How many convolution weights does one such block have (no biases, no BatchNorm)?",
    answer=2048 * 512 + 512 * 512 * 9 + 512 * 2048,
    hints=["a k x k conv from c_in to c_out has c_in * c_out * k * k weights",
           "2048*512 (reduce) + 512*512*9 (3x3) + 512*2048 (expand)"],
    explanation="1,048,576 + 2,359,296 + 1,048,576 = 4,456,448, versus 75,497,472 for two plain 3x3 convs at 2048 "
                "channels: the 3x3 runs on the narrow 'neck of the bottle'.",
))
register(Exercise(
    id="02.depthwise",
    question="MobileNetV2's inverted residual expands 96 channels to 576 and then applies a 3x3 *depthwise* "
             "convolution (groups = 576). How many weights does that depthwise conv have?",
    answer=576 * 9,
    hints=["depthwise: every channel has its own single 3x3 filter", "c_in / groups * c_out * k * k with groups = c_in"],
    explanation="576 * 9 = 5,184: a full 3x3 conv 576 -> 576 would need 2,985,984.",
))
