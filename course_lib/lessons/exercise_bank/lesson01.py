"""Lesson 01 exercises: the backbone, the eye."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="01.rf_stack",
    question="A stack of three 3x3 convolutions: the first two have stride 2 (padding 1), the third stride 1. "
             "How many input pixels wide is the receptive field of one output cell?",
    answer=15,
    hints=["size grows by (k - 1) x jump at each layer; jump multiplies by each stride",
           "start r=1, j=1. Layer 1: r = 1 + 2*1 = 3, j = 2. Layer 2: r = 3 + 2*2 = 7, j = 4. Layer 3: ?"],
    explanation="1 -> 3 -> 7 -> 7 + 2*4 = 15: strides early in the stack make every later layer see further.",
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
