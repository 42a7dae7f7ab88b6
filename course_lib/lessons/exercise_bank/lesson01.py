"""Lesson 01 exercises: the backbone, the eye."""

from __future__ import annotations

from ..exercises import Exercise, register


def _library_rf(layers) -> tuple[int, int]:
    """The library's answer for ``(kernel, stride, dilation)`` triples: (size, jump) after the last layer."""
    from ...backbones.receptive_field import INPUT, Layer, receptive_field

    steps = receptive_field([Layer(f"layer{i}", k, s, 0, d) for i, (k, s, d) in enumerate(layers)])
    last = steps[-1] if steps else INPUT
    return last.size, last.jump


# Stacks the learner's function is tried on: the lesson's worked example, ResNet's stem, dilated convs, nothing.
RF_STACKS = (
    [(3, 2, 1), (3, 2, 1), (3, 1, 1)],
    [(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)],
    [(3, 1, 2), (3, 1, 4), (3, 2, 1), (1, 1, 1)],
    [(5, 2, 1), (3, 2, 1), (3, 2, 1)],
    [],
)


def _check_rf_fn(fn) -> bool:
    """The learner's ``fn(layers)`` must give the library's (size, jump) on every stack in ``RF_STACKS``."""
    return all(tuple(int(v) for v in fn([tuple(t) for t in stack])) == _library_rf(stack) for stack in RF_STACKS)


def _reference_rf(layers):
    """The reference answer: the two-number recurrence, with the effective kernel of a dilated conv."""
    r, j = 1, 1
    for k, s, d in layers:
        r += d * (k - 1) * j
        j *= s
    return r, j


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
    id="01.rf_resnet_stem",
    question="ResNet's stem is a 7x7 conv with stride 2 and a 3x3 max-pool with stride 2; the first basic block "
             "then adds two 3x3 convs with stride 1. After those four layers, how many input pixels wide is one "
             "cell's receptive field, and what is its jump? Answer as a tuple (size, jump).",
    answer=_library_rf([(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)]),
    hints=["start r=1, j=1; at every layer r grows by (k - 1) * j, then j is multiplied by the stride",
           "after the 7x7: r=7, j=2; after the pool: r = 7 + 2*2 = 11, j = 4; the two 3x3s each add 2*4"],
    explanation="1 -> 7 -> 11 -> 19 -> 27, jump 4: a pooling layer counts like a conv, and the 3x3s after the "
                "stride-4 stem each add 8 pixels, not 2.",
))
register(Exercise(
    id="01.rf_recurrence",
    question="Write rf(layers): layers is a list of (kernel, stride, dilation) triples, first layer first. "
             "Return (size, jump) of one output cell's receptive field (an empty list is the input: (1, 1)). "
             "It is checked against course_lib.backbones.receptive_field on five stacks, dilated ones included.",
    answer=_reference_rf,
    compare=lambda fn, ref: callable(fn) and _check_rf_fn(fn),
    hints=["keep two numbers, r = 1 and j = 1; for each layer: r += (k_eff - 1) * j, then j *= s",
           "a dilated kernel covers k_eff = d * (k - 1) + 1 pixels: a 3x3 with dilation 2 spans 5"],
    explanation="r += d(k-1)j; j *= s. The jump is the product of the strides so far, so a layer's reach is "
                "multiplied by every stride before it: that is why deep stages see so far.",
))
register(Exercise(
    id="01.my_eye",
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
    id="01.bottleneck",
    question="ResNet-50's layer4 uses bottlenecks 2048 -> 512 -> 512 -> 2048 (1x1 reduce, 3x3, 1x1 expand). "
             "How many convolution weights does one such block have (no biases, no BatchNorm)?",
    answer=2048 * 512 + 512 * 512 * 9 + 512 * 2048,
    hints=["a k x k conv from c_in to c_out has c_in * c_out * k * k weights",
           "2048*512 (reduce) + 512*512*9 (3x3) + 512*2048 (expand)"],
    explanation="1,048,576 + 2,359,296 + 1,048,576 = 4,456,448, versus 75,497,472 for two plain 3x3 convs at 2048 "
                "channels: the 3x3 runs on the narrow 'neck of the bottle'.",
))
register(Exercise(
    id="01.stage_shape",
    question="A 320x480 (height x width) photo goes into ResNet-50. What is the shape of its C4 map "
             "(1024 channels, stride 16) for a batch of one? Answer as a tuple (B, C, H, W).",
    answer=(1, 1024, 20, 30),
    hints=["divide height and width by the stride", "320 / 16 = 20"],
    explanation="(1, 1024, 20, 30): the channels come from the stage, the grid from the image size divided by 16.",
))
register(Exercise(
    id="01.depthwise",
    question="MobileNetV2's inverted residual expands 96 channels to 576 and then applies a 3x3 *depthwise* "
             "convolution (groups = 576). How many weights does that depthwise conv have?",
    answer=576 * 9,
    hints=["depthwise: every channel has its own single 3x3 filter", "c_in / groups * c_out * k * k with groups = c_in"],
    explanation="576 * 9 = 5,184: a full 3x3 conv 576 -> 576 would need 2,985,984.",
))
