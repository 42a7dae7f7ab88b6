import pytest
import torch
from torch import nn

from course_lib.measure import count_flops, count_params, count_trainable, evaluating


def test_counts_by_hand():
    conv = nn.Conv2d(3, 8, 3, bias=True)   # 3*8*9 weights + 8 biases
    net = nn.Sequential(conv, nn.BatchNorm2d(8))
    assert count_params(net) == 3 * 8 * 9 + 8 + 2 * 8
    conv.weight.requires_grad_(False)
    assert count_trainable(net) == 8 + 2 * 8


def test_flops_are_two_per_multiply_add_and_mode_is_restored():
    conv = nn.Conv2d(3, 4, 1, bias=False)
    net = nn.Sequential(conv, nn.Dropout()).train()
    # a 1x1 conv on 10x10: 3*4 multiply-adds per pixel
    assert count_flops(net, 10) == 2 * 3 * 4 * 10 * 10
    assert net.training
    assert count_flops(net.eval(), (10, 20)) == 2 * 3 * 4 * 10 * 20
    assert not net.training
    # a block that reads a 64-channel feature map
    assert count_flops(nn.Conv2d(64, 32, 1), 5, channels=64) == 2 * 64 * 32 * 5 * 5


def test_evaluating_restores_mode_even_on_error():
    net = nn.BatchNorm1d(2).train()
    with pytest.raises(RuntimeError), evaluating(net):
        assert not net.training and not torch.is_grad_enabled()
        raise RuntimeError("boom")
    assert net.training and torch.is_grad_enabled()


def test_evaluating_gives_every_submodule_its_own_mode_back():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout()).train()
    net[1].eval()  # a frozen BatchNorm inside a model that trains
    with evaluating(net):
        assert not any(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == [True, True, False, True]


def test_median_time_ms_calls_fn_repeats_times_and_takes_the_median(monkeypatch):
    import course_lib.measure as measure

    # a fake clock: each call of fn lasts the next of these durations (seconds); one call is very slow
    durations = iter([0.003, 0.001, 0.500, 0.002, 0.004])
    now = [0.0]
    calls = []

    def fn():
        calls.append(1)
        now[0] += next(durations)

    monkeypatch.setattr(measure.time, "perf_counter", lambda: now[0])
    ms = measure.median_time_ms(fn, repeats=5)
    assert len(calls) == 5
    assert ms == pytest.approx(3.0)          # median of 1, 2, 3, 4, 500 ms: the slow call does not move it
    with pytest.raises(ValueError, match="repeats"):
        measure.median_time_ms(fn, repeats=0)
