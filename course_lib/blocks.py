"""Small building blocks shared by backbones and necks (YOLO-style naming).

* :class:`Conv`  -- Conv2d (no bias) + BatchNorm + SiLU, the unit everything is made of.
* :class:`Bottleneck` -- two 3x3 Convs with an optional shortcut.
* :class:`C2f` -- 1x1 Conv to 2c, split in two, ``n`` bottlenecks chained on the
  newest chunk, concatenate all ``2 + n`` chunks, 1x1 Conv.
* :class:`SPP` -- parallel stride-1 max-pools (5, 9, 13) concatenated.
* :class:`SPPF` -- one 5x5 max-pool applied three times in a chain; the same
  output as SPP(5, 9, 13), because max-pooling twice with 5x5 equals one 9x9
  pool, three times one 13x13.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Conv(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU.  ``padding`` defaults to "same" for odd ``k``."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, p: int | None = None,
                 g: int = 1, d: int = 1, act: bool = True):
        p = d * (k - 1) // 2 if p is None else p
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, p, dilation=d, groups=g, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03),
            nn.SiLU(inplace=True) if act else nn.Identity(),
        )


class Bottleneck(nn.Module):
    """3x3 Conv -> 3x3 Conv, plus the input when ``shortcut`` and the widths match."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, k: tuple[int, int] = (3, 3),
                 e: float = 1.0):
        super().__init__()
        c_hidden = int(c_out * e)
        self.cv1 = Conv(c_in, c_hidden, k[0])
        self.cv2 = Conv(c_hidden, c_out, k[1])
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions, as in YOLOv8.

    ``cv1`` (1x1) makes ``2c`` channels, which are split into two chunks of ``c``.
    Each of the ``n`` bottlenecks reads the newest chunk and appends its output;
    ``cv2`` (1x1) mixes all ``2 + n`` chunks into ``c_out`` channels.
    """

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False, e: float = 0.5):
        super().__init__()
        self.c = int(c_out * e)
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, e=1.0) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = list(self.cv1(x).chunk(2, dim=1))
        for block in self.m:
            chunks.append(block(chunks[-1]))
        return self.cv2(torch.cat(chunks, dim=1))


class SPP(nn.Module):
    """Spatial pyramid pooling, YOLO style: 1x1 -> parallel max-pools (k = 5, 9, 13, stride 1) -> concat -> 1x1.

    The map size is kept; this is not SPP-net's fixed-length pooling.
    """

    def __init__(self, c_in: int, c_out: int, ks: Sequence[int] = (5, 9, 13)):
        super().__init__()
        c_hidden = c_in // 2
        self.cv1 = Conv(c_in, c_hidden, 1)
        self.cv2 = Conv(c_hidden * (len(ks) + 1), c_out, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in ks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], dim=1))


class SPPF(nn.Module):
    """SPP-Fast: 1x1 (c -> c/2) -> 5x5 max-pool three times in a chain -> concat 4 -> 1x1.

    Gives exactly the output of ``SPP(ks=(5, 9, 13))`` with the same convs, faster.
    """

    def __init__(self, c_in: int, c_out: int, k: int = 5):
        super().__init__()
        c_hidden = c_in // 2
        self.cv1 = Conv(c_in, c_hidden, 1)
        self.cv2 = Conv(c_hidden * 4, c_out, 1)
        self.m = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, dim=1))
