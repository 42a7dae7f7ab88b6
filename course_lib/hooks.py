"""Look inside any module with forward hooks that never outlive the look.

A forward hook is a function PyTorch calls with ``(module, inputs, output)`` each
time the module runs: the way to see a layer's output without changing the
model.  A hook left behind keeps firing (and keeps tensors alive), so the course
places hooks only for the length of a ``with`` block:

>>> seen = []
>>> with forward_hooks([(model.neck, lambda m, i, o: seen.append(o))]):   # doctest: +SKIP
...     model(x)
>>> hooks_left(model)                                                      # doctest: +SKIP
0
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from torch import nn
from torch.utils.hooks import RemovableHandle

Hook = Callable[[nn.Module, tuple, object], object]


@contextlib.contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, Hook]]) -> Iterator[list[RemovableHandle]]:
    """Register each ``(module, hook)`` for the block; every one is removed when it ends, even on an error."""
    handles: list[RemovableHandle] = []
    try:
        for module, hook in hooks:
            handles.append(module.register_forward_hook(hook))
        yield handles
    finally:
        for h in handles:
            h.remove()


def hooks_left(module: nn.Module) -> int:
    """How many forward hooks sit on ``module`` and its submodules (0 after every look the course takes)."""
    return sum(len(m._forward_hooks) for m in module.modules())


__all__ = ["forward_hooks", "hooks_left"]
