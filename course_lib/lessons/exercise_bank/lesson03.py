"""Lesson 03 exercises: the neck (颈部), the brain that fuses scales."""

from __future__ import annotations

from ..exercises import Exercise, register

register(Exercise(
    id="03.cells",
    question="A 16x16-pixel object sits on a stride-32 map (C5 / P5). What fraction of one cell's width does "
             "it cover? Answer as a number.",
    answer=0.5,
    rel_tol=1e-6,
    hints=["one cell of a stride-32 map steps over 32 input pixels", "16 / 32 = ?"],
    explanation="16 / 32 = 0.5: the object is half a cell wide, a quarter of its area -- on P5 it is "
                "blended with whatever else falls into that cell. On P3 (stride 8) it spans 2x2 cells.",
))
register(Exercise(
    id="03.fpn_params",
    question="An FPN fuses MobileNetV2's C3, C4, C5 (32, 96 and 1280 channels) into 64 channels with 1x1 "
             "laterals and 3x3 smoothing convs, all with bias, no extra level. How many parameters does it have?",
    answer=201_088,
    hints=["lateral i: in_channels * 64 weights + 64 biases; smoothing: 64 * 64 * 3 * 3 + 64, three times",
           "laterals: (32 + 96 + 1280) * 64 + 3 * 64 = 90,304; smoothing: 3 * 36,928 = 110,784"],
    explanation="90,304 (laterals, mostly C5's 1280 channels) + 110,784 (smoothing) = 201,088. "
                "Check it: cl.measure.count_params(cl.necks.build('fpn', specs, out_channels=64)).",
))
register(Exercise(
    id="03.sppf_chain",
    question="SPPF chains a 5x5, stride-1 max-pool. Chained 3 times it equals one 13x13 pool. Chained 4 times, "
             "it equals one max-pool of what size? Answer with the side length.",
    answer=17,
    hints=["each extra 5x5 pool widens the window by 4 (2 cells on each side)", "5, 9, 13, ..."],
    explanation="5 + 4 * 3 = 17: a k x k pool after a w x w pool sees w + k - 1 pixels.",
))
register(Exercise(
    id="03.aspp_gap",
    question="DeepLab v3's ASPP works on a stride-16 map. For the 3x3 branch with dilation rate 12, how many "
             "input-image pixels apart are two neighbouring sampling points?",
    answer=192,
    hints=["neighbouring taps are `rate` cells apart", "each cell is 16 pixels: 12 * 16 = ?"],
    explanation="12 cells x 16 pixels = 192 pixels. The 3x3 kernel spans 2 * 192 = 384 pixels: on a 513-pixel "
                "crop many taps already fall outside, which is why the image-pooling branch exists.",
))
register(Exercise(
    id="03.concat_width",
    question="In a YOLO-style neck, an upsampled 64-channel map is concatenated with a 64-channel lateral map. "
             "How many channels does the C2f block that fuses them read?",
    answer=128,
    hints=["concatenation stacks channels; addition would keep 64"],
    explanation="64 + 64 = 128: concatenation stacks the inputs, so the C2f's first 1x1 conv reads 128 channels "
                "-- twice the weights and FLOPs of a 1x1 after addition. That conv computes W_a*a + W_b*b, a "
                "learned mix; addition (PANet) learns its mix too, in the convs that produced a and b, and the "
                "sum keeps 64 channels.",
))
