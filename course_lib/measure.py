"""How big a module is, how much it computes, and running it for a look without changing it.

The one home for three small jobs every part of the course needs:

* :func:`count_params` / :func:`count_trainable`: parameters (weights, biases, BatchNorm scales), all or
  only those the optimizer will change;
* :func:`count_flops`: FLOPs of one forward pass, with the convention of
  :class:`torch.utils.flop_counter.FlopCounterMode`: **one multiply-add counts as 2 FLOPs** (so
  ``MACs = FLOPs / 2``); only convolutions and matrix products are counted (BatchNorm, activations and
  pooling are left out, as papers do);
* :func:`evaluating`: a context manager that puts a module in eval mode with gradients off and puts its
  training mode back afterwards, even when the body raises.

And one for speed: :func:`median_time_ms`, the typical wall time of a call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    """Every parameter of ``module`` (weights, biases, BatchNorm scales)."""
    return sum(p.numel() for p in module.parameters())


def count_trainable(module: nn.Module) -> int:
    """How many parameters the optimizer will change (``requires_grad`` is set)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@contextlib.contextmanager
def evaluating(module: nn.Module, no_grad: bool = True) -> Iterator[nn.Module]:
    """Run ``module`` in eval mode (BatchNorm uses its running statistics, dropout is off), then restore.

    Every submodule gets back its own mode, so a model training with a frozen (eval-mode) part keeps it frozen.

    >>> with evaluating(model):          # doctest: +SKIP
    ...     out = model(x)
    """
    was = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield module
    finally:
        for m, mode in was:
            m.training = mode


def _device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def count_flops(module: nn.Module, image_size: int | tuple[int, int] = 224, channels: int = 3) -> int:
    """FLOPs of one forward pass on a ``(1, channels, H, W)`` input of zeros (multiply-add = 2 FLOPs).

    ``channels`` is 3 for an image; give a feature map's width to count a block that reads features.
    The module runs in eval mode and its training mode is restored afterwards.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    x = torch.zeros(1, channels, h, w, device=_device(module))
    with evaluating(module), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())


def median_time_ms(fn: Callable[[], object], repeats: int = 20) -> float:
    """Milliseconds one call of ``fn()`` takes: the median of ``repeats`` timed calls.

    The median, not the mean: one call slowed down by the machine (another process, a cache miss) moves a
    mean but not a median. Wall times depend on the CPU and its load, so compare two timings taken side by
    side on one machine; never assert a threshold on them.

    >>> median_time_ms(lambda: sum(range(1000)), repeats=5)   # doctest: +SKIP
    0.012
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


__all__ = ["count_flops", "count_params", "count_trainable", "evaluating", "median_time_ms"]
