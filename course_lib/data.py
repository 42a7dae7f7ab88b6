"""The course's data: ShapesWorld (detection, segmentation, classification) and small generated sets.

Every image is drawn with NumPy masks in memory: a textured background (a
colour, a sine grating and smooth noise), then a few shapes (circle, square,
triangle) of widely varying size, each painted over the ones before it, so
later shapes partly hide earlier ones (occlusion, 遮挡).  The same seed always
gives the same image, so "image 17 of the val split" means the same picture on
every machine.

>>> import course_lib as cl
>>> world = cl.data.ShapesWorld("val")
>>> image, target = world[0]
>>> image.shape, sorted(target)
(torch.Size([3, 128, 128]), ['boxes', 'labels', 'masks', 'semantic', 'sizes'])

Targets of one image:

* ``boxes``    ``(N, 4)`` float ``x1, y1, x2, y2`` in pixels, the tight box of the
  whole shape (pixel ``i`` covers ``[i, i + 1)``), hidden parts included;
* ``labels``   ``(N,)`` class indices into :attr:`ShapesWorld.classes`;
* ``masks``    ``(N, H, W)`` bool, the *visible* pixels of each instance (always
  inside its box; every object keeps at least ``min_visible`` of its area);
* ``semantic`` ``(H, W)`` int64, ``0`` for background and ``label + 1`` for objects;
* ``sizes``    ``(N,)`` the object size ``sqrt(w * h)`` of each box in pixels.

**Object size definition** (the small / medium / large breakdown of
:mod:`course_lib.metrics`): the course's own choice, not COCO's.  COCO's buckets
are absolute areas (small ``< 32²``, medium ``< 96²`` pixels, at any image size);
on 128-pixel images no object (64 px at most) could be large.  Here the limits
follow the detector's grid: with a 128-pixel image an object is *small* when its
size ``sqrt(w·h)`` is under 16 px (under 2 cells of the stride-8 map), *medium*
from 16 to 32 px and *large* from 32 px (at least one cell of the stride-32 map;
half the image at most).  For other image sizes the limits are
``image_size / 8`` and ``image_size / 4`` (:func:`size_ranges`).

Small data sets the lessons draw (all deterministic by seed, all in memory):

* :func:`lfw_split` -- scikit-image's real faces vs non-faces, ready for an ImageNet backbone (lesson 03);
* :func:`toy_shapes` -- one shape per 32-pixel image, for a quick classifier (lesson 03);
* :func:`shapes_scene` -- one large photo-like picture with objects from 10 to 240 pixels (lesson 04);
* :func:`attention_probe_data` -- grey pictures with coloured distractors and, in every second, a red
  square: a task where attention helps (lesson 05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

CLASSES = ("circle", "square", "triangle")
SPLITS = {"train": (0, 4000), "val": (1, 500), "test": (2, 500)}  # split -> (stream, default size)
_NOISE_TILE = 256


def dominant_label(target: Mapping[str, Any], num_classes: int = len(CLASSES)) -> int:
    """The class whose shapes cover the most visible pixels of an image (from its semantic mask).

    This is the classification label of a ShapesWorld detection image: what a classification
    head reading the same picture as the detection and segmentation heads should answer.
    """
    counts = torch.bincount(torch.as_tensor(target["semantic"]).long().flatten(), minlength=num_classes + 1)[1:]
    return int(counts.argmax())


def size_ranges(image_size: int = 128) -> dict[str, tuple[float, float]]:
    """The size buckets ``{name: (lo, hi)}`` in pixels of ``sqrt(w * h)`` for an image size."""
    a, b = image_size / 8, image_size / 4
    return {"small": (0.0, a), "medium": (a, b), "large": (b, float("inf"))}


def size_bucket(sizes: torch.Tensor | np.ndarray, image_size: int = 128) -> list[str]:
    """Name the bucket (small / medium / large) of each object size."""
    out = []
    for s in np.asarray(sizes, dtype=np.float64).reshape(-1):
        out.append(next(k for k, (lo, hi) in size_ranges(image_size).items() if lo <= s < hi))
    return out


@dataclass
class Scene:
    """One generated picture as NumPy arrays (what :class:`ShapesWorld` turns into tensors)."""

    image: np.ndarray  # (H, W, 3) uint8
    boxes: np.ndarray  # (N, 4) float32
    labels: np.ndarray  # (N,) int64
    masks: np.ndarray | None  # (N, H, W) bool, visible pixels (None when drawn without them)
    semantic: np.ndarray  # (H, W) int64

    @property
    def sizes(self) -> np.ndarray:
        w = self.boxes[:, 2] - self.boxes[:, 0]
        h = self.boxes[:, 3] - self.boxes[:, 1]
        return np.sqrt(w * h).astype(np.float32)


def _shape_mask(kind: str, s: float, cx: float, cy: float, xs: np.ndarray, ys: np.ndarray,
                flip: bool) -> np.ndarray:
    """Pixels (by their centres ``xs``, ``ys``) inside one shape of size ``s`` centred at ``(cx, cy)``."""
    dx, dy = xs - cx, ys - cy
    r = s / 2
    if kind == "circle":
        return dx * dx + dy * dy <= r * r
    if kind == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    if kind == "triangle":  # isosceles, base s, height 0.87 s, pointing up (or down when flipped)
        h = 0.866 * s
        t = (dy + h / 2) / h if not flip else (h / 2 - dy) / h  # 0 at the apex, 1 at the base
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= r * t)
    raise ValueError(f"unknown shape {kind!r}; ShapesWorld draws {', '.join(CLASSES)}")


class ShapesWorld:
    """A deterministic, in-memory data set of shapes on textured backgrounds.

    ``split`` picks an independent random stream (``"train"``: 4000 images by
    default, ``"val"`` and ``"test"``: 500); image ``i`` of a split depends only
    on ``(seed, split, i)``.  ``mode="detect"`` gives ``(image, target)`` with
    boxes, labels, instance and semantic masks; ``mode="classify"`` gives
    ``(image, label)`` with one large shape per image (a crop-style
    classification set).
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        image_size: int = 128,
        min_size: float = 8,
        max_size: float | None = None,
        max_objects: int = 6,
        classes: Sequence[str] = CLASSES,
        min_visible: float = 0.5,
        mode: str = "detect",
        seed: int = 0,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if mode not in ("detect", "classify"):
            raise ValueError(f"mode must be 'detect' or 'classify', got {mode!r}")
        unknown = [c for c in classes if c not in CLASSES]
        if unknown or not classes:
            raise ValueError(f"unknown shape classes {unknown}; choose from {', '.join(CLASSES)}")
        if image_size < 32:
            raise ValueError(f"image_size must be at least 32 (a stride-32 map needs one cell), got {image_size}")
        max_size = image_size / 2 if max_size is None else max_size
        if not 4 <= min_size <= max_size <= image_size:
            raise ValueError(f"need 4 <= min_size <= max_size <= image_size, got {min_size}, {max_size}, {image_size}")
        self.split = split
        self.stream, default_n = SPLITS[split]
        self.num_images = default_n if num_images is None else int(num_images)
        self.image_size = int(image_size)
        self.min_size, self.max_size = float(min_size), float(max_size)
        self.max_objects = int(max_objects)
        self.classes = tuple(classes)
        self.min_visible = float(min_visible)
        self.mode = mode
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 99])
        self._noise = rng.standard_normal((_NOISE_TILE, _NOISE_TILE, 3)).astype(np.float32)
        # smooth noise: a blocky low-resolution field blurred once by averaging shifted copies
        coarse = rng.standard_normal((_NOISE_TILE // 8, _NOISE_TILE // 8, 3)).astype(np.float32)
        smooth = np.repeat(np.repeat(coarse, 8, 0), 8, 1)
        for ax in (0, 1):
            smooth = (smooth + np.roll(smooth, 4, ax) + np.roll(smooth, -4, ax)) / 3
        self._smooth = smooth
        self._cache: tuple[torch.Tensor, list[dict[str, torch.Tensor]]] | None = None

    # ------------------------------------------------------------------ drawing
    def __len__(self) -> int:
        return self.num_images

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, int(i)])

    def _background(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = self.image_size
        base = rng.uniform(0.15, 0.85, 3).astype(np.float32)
        f = rng.uniform(1.5, 10.0)
        th = rng.uniform(0, np.pi)
        ph = rng.uniform(0, 2 * np.pi)
        t = np.arange(n, dtype=np.float32) / n * 2 * np.pi * f
        ax, ay = t * np.cos(th), t * np.sin(th) + ph
        # sin(ax + ay) as a sum of two outer products: cheap for any angle
        grating = np.outer(np.cos(ay), np.sin(ax)) + np.outer(np.sin(ay), np.cos(ax))
        amp = rng.uniform(0.0, 0.12)
        oy, ox = rng.integers(0, _NOISE_TILE - n, 2) if n < _NOISE_TILE else (0, 0)
        smooth = self._tile(self._smooth, oy, ox)
        # img = base + amp * grating + c * smooth, written channel by channel: broadcasting the
        # 3 colours over (H, W, 3) makes NumPy loop 3 elements at a time, 3x slower (same numbers)
        ag = amp * grating
        img = np.empty((n, n, 3), ag.dtype)
        for ch in range(3):
            img[..., ch] = base[ch] + ag
        img += rng.uniform(0.05, 0.15) * smooth
        return img, base

    def _tile(self, tile: np.ndarray, oy: int, ox: int) -> np.ndarray:
        n = self.image_size
        if n <= _NOISE_TILE:
            return tile[oy:oy + n, ox:ox + n]
        reps = -(-n // _NOISE_TILE)
        return np.tile(tile, (reps, reps, 1))[:n, :n]

    def _colour(self, rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
        for _ in range(20):
            c = rng.uniform(0.0, 1.0, 3).astype(np.float32)
            if np.abs(c - base).sum() > 0.6:
                return c
        return (1.0 - base).astype(np.float32)

    def scene(self, i: int, with_masks: bool = True) -> Scene:
        """Draw image ``i`` of this split (deterministic) as NumPy arrays (``masks`` is None without masks)."""
        if not 0 <= int(i) < self.num_images:
            raise IndexError(f"image index {i} out of range for a {self.split} split of {self.num_images} images")
        rng = self._rng(i)
        n = self.image_size
        img, base = self._background(rng)
        inst = np.zeros((n, n), np.int32)  # visible instance id per pixel (0 = background)
        boxes, labels, full_area, visible = [], [], [], np.zeros(0, np.int64)
        if self.mode == "classify":
            count, lo, hi = 1, 0.35 * n, 0.8 * n
        else:
            count, lo, hi = int(rng.integers(1, self.max_objects + 1)), self.min_size, self.max_size
        grain = self._tile(self._noise, *(rng.integers(0, _NOISE_TILE - n, 2) if n < _NOISE_TILE else (0, 0)))
        for _ in range(count):
            label = int(rng.integers(len(self.classes)))
            kind = self.classes[label]
            flip = bool(rng.integers(2))
            colour = self._colour(rng, base)
            for _try in range(10):
                s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # log-uniform: many small objects
                half = s / 2 + 1
                cx, cy = rng.uniform(half, n - half, 2)
                x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
                x1, y1 = min(n, int(np.ceil(cx + half)) + 1), min(n, int(np.ceil(cy + half)) + 1)
                xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
                ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
                m = _shape_mask(kind, s, cx, cy, xs, ys, flip)
                if not m.any():
                    continue
                # occlusion check: every earlier object must keep min_visible of its full area
                hidden = np.bincount(inst[y0:y1, x0:x1][m], minlength=len(boxes) + 1)[1:]
                if len(boxes) and np.any(visible - hidden < self.min_visible * np.asarray(full_area)):
                    continue
                rows, cols = np.nonzero(m)
                boxes.append([x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1])
                labels.append(label)
                full_area.append(int(m.sum()))
                visible = np.append(visible - hidden, full_area[-1])
                inst[y0:y1, x0:x1][m] = len(boxes)
                shade = colour * (1 + 0.06 * grain[y0:y1, x0:x1][m])
                img[y0:y1, x0:x1][m] = shade
                break
        img += 0.02 * grain
        np.clip(img, 0, 1, out=img)
        img *= 255
        img += 0.5
        image = img.astype(np.uint8)
        k = len(boxes)
        masks = inst[None] == np.arange(1, k + 1, dtype=np.int32)[:, None, None] if with_masks else None
        lab = np.asarray(labels, np.int64).reshape(k)
        semantic = np.concatenate([[0], lab + 1])[inst]  # instance id -> class + 1 (0 stays background)
        return Scene(image, np.asarray(boxes, np.float32).reshape(k, 4), lab, masks, semantic)

    # ------------------------------------------------------------------ tensors
    def __getitem__(self, i: int):
        sc = self.scene(i)
        image = torch.from_numpy(sc.image).permute(2, 0, 1).float() / 255
        if self.mode == "classify":
            return image, int(sc.labels[0])
        return image, self._target(sc)

    @staticmethod
    def _target(sc: Scene) -> dict[str, torch.Tensor]:
        t = {"boxes": torch.from_numpy(sc.boxes), "labels": torch.from_numpy(sc.labels)}
        if sc.masks is not None:
            t["masks"] = torch.from_numpy(sc.masks)
        t["semantic"] = torch.from_numpy(sc.semantic)
        t["sizes"] = torch.from_numpy(sc.sizes)
        return t

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, list]:
        """Images ``(B, 3, H, W)`` in [0, 1] and the list of their targets (or labels)."""
        items = [self[int(i)] for i in indices]
        images = torch.stack([im for im, _ in items])
        if self.mode == "classify":
            return images, torch.tensor([t for _, t in items])
        return images, [t for _, t in items]

    def materialize(self) -> tuple[torch.Tensor, list]:
        """Draw the whole split once and keep it: uint8 images ``(N, 3, H, W)`` and targets.

        Training reads from this cache.  To save memory, instance masks are left
        out and semantic masks are kept as ``uint8`` (losses and metrics take them
        as they are; call ``.long()`` for your own indexing).  A 4000-image train
        split takes about 260 MB.
        """
        if self._cache is None:
            n = self.image_size
            images = torch.empty((self.num_images, 3, n, n), dtype=torch.uint8)
            targets = []
            for i in range(self.num_images):
                sc = self.scene(i, with_masks=False)
                images[i] = torch.from_numpy(sc.image).permute(2, 0, 1)
                if self.mode == "classify":
                    targets.append(int(sc.labels[0]))
                else:
                    sc.semantic = sc.semantic.astype(np.uint8)  # class ids < 256: 8x less memory than int64
                    targets.append(self._target(sc))
            self._cache = (images, targets)
        return self._cache

    def __repr__(self) -> str:
        return (f"ShapesWorld(split={self.split!r}, images={self.num_images}, size={self.image_size}, "
                f"objects 1-{self.max_objects} of {self.min_size:g}-{self.max_size:g} px, "
                f"classes={list(self.classes)}, mode={self.mode!r}, seed={self.seed})")


# ----------------------------------------------------------------- small data sets for single lessons
def lfw_split(size: int = 32, n_train: int = 140, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-image's ``lfw_subset`` (100 faces, 100 non-faces, 25x25 grey) ready for an ImageNet backbone.

    Grey is repeated into 3 channels and the images are resized to ``size``
    pixels; a seeded shuffle splits them into ``n_train`` training and the
    rest validation images.  Returns ``(x_train, y_train, x_val, y_val)``,
    labels 1 = face, 0 = not a face.
    """
    from .images import lfw_faces

    imgs, labels = lfw_faces()
    x = torch.from_numpy(imgs)[:, None].repeat(1, 3, 1, 1)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.from_numpy(labels)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, va = order[:n_train], order[n_train:]
    return x[tr], y[tr], x[va], y[va]


def toy_shapes(n: int = 240, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic 3-class task: one circle, square or triangle per image, random size, place and colours.

    Returns images ``(n, 3, size, size)`` in [0, 1] and labels (indices into
    :data:`CLASSES`), balanced and the same for the same seed.  Smaller and
    plainer than ``ShapesWorld(mode="classify")`` (flat colours, no texture),
    so a classifier learns it in a few steps.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32) + 0.5,
                            torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij")
    labels = torch.arange(n) % len(CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.empty(n, 3, size, size)
    for i, lab in enumerate(labels.tolist()):
        r = size * (0.15 + 0.2 * float(torch.rand(1, generator=g)))
        cy, cx = (r + (size - 2 * r) * torch.rand(2, generator=g)).tolist()
        if lab == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif lab == 1:
            mask = ((yy - cy).abs() <= r * 0.85) & ((xx - cx).abs() <= r * 0.85)
        else:  # an upright triangle: below the apex, inside two slanted edges
            top, bottom = cy - r, cy + r * 0.8
            half = (yy - top) / (bottom - top) * r
            mask = (yy >= top) & (yy <= bottom) & ((xx - cx).abs() <= half)
        bg, fg = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
        fg = torch.where((fg - bg).abs() < 0.3, 1 - bg, fg)  # keep the shape visible
        noise = 0.08 * torch.randn(3, size, size, generator=g)
        images[i] = (torch.where(mask, fg, bg) + noise).clamp(0, 1)
    return images, labels


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
    from PIL import Image, ImageDraw

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


def attention_probe_data(n: int = 240, size: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Pictures with three coloured distractor discs; every second one also holds a red square (label 1).

    Returns ``(images (n, 3, size, size) in [0, 1], labels (n,), boxes)``; a box is ``None`` without a square.
    """
    from PIL import Image, ImageDraw

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
