"""Fast pictures with PIL and NumPy (no matplotlib): what the widgets redraw on every move.

Each function returns a PIL image; :func:`png_bytes` turns it into the bytes an
``ipywidgets.Image`` shows.  Drawing a 600-pixel picture this way takes a few
milliseconds, so a slider feels instant.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .images import to_uint8

_LUTS: dict[str, np.ndarray] = {}


def lut(name: str = "viridis") -> np.ndarray:
    """A 256x3 uint8 colour table from a matplotlib colormap (cached)."""
    if name not in _LUTS:
        import matplotlib

        cmap = matplotlib.colormaps[name]
        _LUTS[name] = (cmap(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return _LUTS[name]


def normalize01(a: np.ndarray | torch.Tensor) -> np.ndarray:
    """Scale values to [0, 1] (min -> 0, max -> 1; a constant map becomes 0)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    a = np.asarray(a, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def colorize(a: np.ndarray | torch.Tensor, cmap: str = "viridis", normalize: bool = True) -> np.ndarray:
    """A 2-D map -> an RGB uint8 picture through a colour table."""
    a01 = normalize01(a) if normalize else np.clip(np.asarray(a, dtype=np.float32), 0, 1)
    return lut(cmap)[(a01 * 255).astype(np.uint8)]


def resize(arr: np.ndarray, size: tuple[int, int], smooth: bool = False) -> np.ndarray:
    """Resize an RGB/grey uint8 array to ``(width, height)``: nearest keeps cells visible."""
    return np.asarray(Image.fromarray(arr).resize(size, Image.BILINEAR if smooth else Image.NEAREST))


def overlay(image: np.ndarray | torch.Tensor, heat: np.ndarray | torch.Tensor, alpha: float = 0.5,
            cmap: str = "jet") -> Image.Image:
    """Blend a heat map (any size; stretched to the image) over a photo."""
    base = to_uint8(image)
    h, w = base.shape[:2]
    col = resize(colorize(heat, cmap), (w, h), smooth=True)
    out = (base.astype(np.float32) * (1 - alpha) + col.astype(np.float32) * alpha).astype(np.uint8)
    return Image.fromarray(out)


def feature_grid(maps: torch.Tensor, channels: Sequence[int], ncols: int = 4, cell: int = 96,
                 cmap: str = "viridis", labels: bool = True) -> Image.Image:
    """Draw chosen channels of a ``(C, H, W)`` map side by side, each normalised on its own."""
    channels = list(channels)
    n = max(1, len(channels))
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    pad = 2
    canvas = Image.new("RGB", (ncols * (cell + pad) + pad, nrows * (cell + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    h, w = maps.shape[-2:]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    for i, c in enumerate(channels):
        tile = Image.fromarray(colorize(maps[c], cmap)).resize(size, Image.NEAREST)
        x, y = pad + (i % ncols) * (cell + pad), pad + (i // ncols) * (cell + pad)
        canvas.paste(tile, (x, y))
        if labels:
            draw.rectangle([x, y, x + 34, y + 11], fill=(0, 0, 0))
            draw.text((x + 2, y), f"#{c}", fill=(255, 255, 255), font=_font())
    return canvas


def bars(labels: Sequence[str], values: Sequence[float], width: int = 420, row: int = 22,
         color: tuple[int, int, int] = (52, 120, 200)) -> Image.Image:
    """A horizontal bar chart of probabilities in [0, 1] (top-k verdicts)."""
    label_w = 170
    img = Image.new("RGB", (width, row * max(1, len(labels)) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font()
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = 2 + i * row
        draw.text((4, y + 4), str(lab)[:26], fill=(0, 0, 0), font=font)
        bw = int((width - label_w - 50) * max(0.0, min(1.0, float(v))))
        draw.rectangle([label_w, y + 3, label_w + bw, y + row - 4], fill=color)
        draw.text((label_w + bw + 4, y + 4), f"{v:.1%}", fill=(0, 0, 0), font=font)
    return img


def draw_boxes(image: np.ndarray | torch.Tensor | Image.Image, boxes: np.ndarray | torch.Tensor,
               labels: Sequence[str] | None = None, scores: Sequence[float] | None = None,
               colors: Sequence[tuple[int, int, int]] | None = None, width: int = 2,
               scale: float = 1.0) -> Image.Image:
    """Draw ``(N, 4)`` boxes ``x1, y1, x2, y2`` (image pixels) with optional labels and scores."""
    img = image.copy() if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    font = _font()
    boxes = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float32)
    palette = colors or [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for i, b in enumerate(boxes.reshape(-1, 4)):
        col = palette[i % len(palette)] if colors is None or len(colors) != len(boxes) else colors[i]
        x1, y1, x2, y2 = (float(v) * scale for v in b)
        draw.rectangle([x1, y1, x2, y2], outline=col, width=width)
        text = " ".join(t for t in (labels[i] if labels is not None else "",
                                    f"{scores[i]:.2f}" if scores is not None else "") if t)
        if text:
            draw.rectangle([x1, max(0, y1 - 11), x1 + 6 * len(text) + 2, max(11, y1)], fill=col)
            draw.text((x1 + 1, max(0, y1 - 11)), text, fill=(255, 255, 255), font=font)
    return img


def hstack(images: Sequence[Image.Image], pad: int = 6, bg=(255, 255, 255)) -> Image.Image:
    """Place pictures side by side (top-aligned)."""
    w = sum(im.width for im in images) + pad * (len(images) - 1)
    h = max(im.height for im in images)
    out = Image.new("RGB", (w, h), bg)
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + pad
    return out


def png_bytes(img: Image.Image | np.ndarray) -> bytes:
    """Encode a picture as PNG bytes for ``ipywidgets.Image(value=...)`` (fast, uncompressed-ish)."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


_FONT = None


def _font():
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT
