import pytest
import torch
from torch import nn

from course_lib.hooks import forward_hooks, hooks_left


def test_hooks_see_outputs_and_are_gone_after_the_block():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    seen = []
    with forward_hooks([(net[0], lambda m, i, o: seen.append(tuple(o.shape)))]) as handles:
        assert len(handles) == 1 and hooks_left(net) == 1
        net(torch.zeros(1, 3, 5, 5))
    assert seen == [(1, 4, 5, 5)] and hooks_left(net) == 0
    net(torch.zeros(1, 3, 5, 5))
    assert len(seen) == 1  # the hook no longer fires


def test_hooks_are_removed_when_the_forward_pass_raises():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1))

    def boom(m, i, o):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), forward_hooks([(net[0], boom), (net[1], boom)]):
        net(torch.zeros(1, 3, 2, 2))
    assert hooks_left(net) == 0
