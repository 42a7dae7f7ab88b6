"""Lesson 03's data: a scene with objects of very different sizes, and a small attention experiment.

* :func:`shapes_scene` -- a synthetic image with objects from 10 to 240 pixels;
* :func:`attention_probe_data` and :func:`train_attention_probe` -- pictures
  with and without a red square, and a linear probe (optionally behind an
  attention neck) trained on frozen features.

The explorers of lesson 03 live in :mod:`.fusion_explorer` and :mod:`.dilation_explorer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn


@dataclass(frozen=True)
class SceneObject:
    """One shape in :func:`shapes_scene`: its kind and box ``(x0, y0, x1, y1)`` in pixels."""

    kind: str
    box: tuple[int, int, int, int]

    @property
    def size(self) -> int:
        """The longer side of the box, in pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def shapes_scene(height: int = 384, width: int = 512, seed: int = 0) -> tuple[np.ndarray, list[SceneObject]]:
    """A synthetic photo with objects from 10 to 240 pixels on a noisy background.

    Returns ``(image (H, W, 3) uint8, objects)``.  Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(150, 12, size=(height, width, 1)) + np.linspace(-20, 20, width)[None, :, None]
    img = Image.fromarray(np.clip(np.repeat(base, 3, axis=2), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    spec = [("square", 0.06, 0.08, 10, (200, 30, 30)), ("circle", 0.14, 0.72, 22, (30, 60, 200)),
            ("triangle", 0.30, 0.12, 56, (240, 190, 20)), ("circle", 0.46, 0.30, 240, (40, 150, 70)),
            ("square", 0.86, 0.84, 14, (150, 30, 160))]
    objects = []
    for kind, fx, fy, s, col in spec:
        s = min(s, height - 2, width - 2)
        x0 = int(fx * width)
        y0 = int(fy * height)
        x0, y0 = min(x0, width - s - 1), min(y0, height - s - 1)
        box = (x0, y0, x0 + s, y0 + s)
        if kind == "square":
            d.rectangle(box, fill=col)
        elif kind == "circle":
            d.ellipse(box, fill=col)
        else:
            d.polygon([(x0 + s / 2, y0), (x0 + s, y0 + s), (x0, y0 + s)], fill=col)
        objects.append(SceneObject(kind, box))
    return np.asarray(img), objects


# ----------------------------------------------------------------- a small attention experiment
def attention_probe_data(n: int = 240, size: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Pictures with three coloured distractor discs; every second one also holds a red square (label 1).

    Returns ``(images (n, 3, size, size) in [0, 1], labels (n,), boxes)``; a box is ``None`` without a square.
    """
    rng = np.random.default_rng(seed)
    xs, ys, boxes = [], [], []
    for i in range(n):
        base = rng.normal(140, 18, size=(size, size, 1)).repeat(3, axis=2)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        for _ in range(3):
            s = int(rng.integers(10, 22))
            x, y = (int(v) for v in rng.integers(0, size - s, 2))
            d.ellipse([x, y, x + s, y + s], fill=[(40, 70, 210), (40, 170, 60), (230, 200, 30)][int(rng.integers(3))])
        box = None
        if i % 2 == 0:
            s = int(rng.integers(10, 22))
            x, y = (int(v) for v in rng.integers(0, size - s, 2))
            box = (x, y, x + s, y + s)
            d.rectangle(box, fill=(220, 30, 30))
        xs.append(np.asarray(img))
        ys.append(float(box is not None))
        boxes.append(box)
    return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255, torch.tensor(ys), boxes


@dataclass
class ProbeResult:
    """A trained probe: ``neck`` (attention or identity), ``linear`` classifier, and its validation accuracy."""

    neck: nn.Module | None
    linear: nn.Linear
    val_accuracy: float
    losses: list[float]

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        """The probe's score for each example (positive = "red square present")."""
        if self.neck is not None:
            feats = next(iter(self.neck({"C": feats}).values()))
        return self.linear(feats.mean(dim=(2, 3)))[:, 0]

    @torch.no_grad()
    def accuracy(self, feats: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of examples classified right (e.g. again after switching a path of the neck off)."""
        return float(((self.logits(feats) > 0).float() == labels).float().mean())


def train_attention_probe(feats: torch.Tensor, labels: torch.Tensor, neck: nn.Module | None, steps: int = 120,
                          lr: float = 1e-2, n_train: int | None = None, seed: int = 0) -> ProbeResult:
    """Train ``neck`` (or nothing) + global average pooling + a linear layer on frozen features ``(N, C, H, W)``.

    The neck is called as ``neck({"C": feats})`` and must return one map.  The
    first ``n_train`` examples (default 3/4) train, the rest measure accuracy.
    """
    torch.manual_seed(seed)
    n_train = n_train or (3 * len(feats)) // 4
    linear = nn.Linear(feats.shape[1], 1)
    params = list(linear.parameters()) + (list(neck.parameters()) if neck is not None else [])
    opt = torch.optim.Adam(params, lr=lr)

    probe = ProbeResult(neck, linear, float("nan"), [])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small train faster on one thread, and fight no other process
    try:
        for _ in range(steps):
            loss = nn.functional.binary_cross_entropy_with_logits(probe.logits(feats[:n_train]), labels[:n_train])
            opt.zero_grad()
            loss.backward()
            opt.step()
            probe.losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    if neck is not None:
        neck.eval()
    probe.val_accuracy = probe.accuracy(feats[n_train:], labels[n_train:])
    return probe
