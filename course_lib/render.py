"""Fast pictures with PIL and NumPy (no matplotlib): what the widgets redraw on every move.

The one home of every drawing helper the explorers use: one :data:`PALETTE`
(class colours), one heat-over-photo blend (:func:`overlay`), one
:func:`mask_overlay`, one :func:`font`, captions and badges for labels, and the
encoders (:func:`png_bytes`, :func:`jpeg_bytes`).  The explorers call these and
never draw with PIL themselves.

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

#: Class colours: index 0 is the background (black, left clear by :func:`mask_overlay`), then one colour
#: per class; boxes of class ``c`` use ``PALETTE[1 + c]`` (:func:`class_colour`).
PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]],
                   dtype=np.uint8)
#: Colours of the schematic drawings (paths, objects, taps).
ORANGE, GREY, BLUE, GREEN, RED, WHITE, BLACK = ((245, 130, 48), (200, 200, 200), (0, 110, 190), (40, 160, 60),
                                                (210, 40, 40), (255, 255, 255), (0, 0, 0))

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


def overlay(image: np.ndarray | torch.Tensor | Image.Image, heat: np.ndarray | torch.Tensor, alpha: float = 0.5,
            cmap: str = "jet", *, normalize: bool = True, gamma: float = 1.0, by_heat: bool = False,
            dim: float = 1.0) -> Image.Image:
    """Blend a heat map (any size; stretched smoothly to the image) over a photo: the one heat-over-photo blend.

    ``normalize`` stretches the heat to [0, 1] first (else it is clipped there); ``gamma`` < 1 lifts faint
    values.  With ``by_heat`` the colour covers the photo in proportion to the heat (``alpha`` where it is
    hottest, the photo untouched where it is zero), which shows *where* a map lives; ``dim`` darkens the photo
    underneath so the colour stands out.
    """
    base = to_uint8(np.asarray(image) if isinstance(image, Image.Image) else image)
    h, w = base.shape[:2]
    h01 = normalize01(heat) if normalize else np.clip(_numpy(heat), 0, 1)
    if gamma != 1.0:
        h01 = h01 ** gamma
    col = resize(colorize(h01, cmap, normalize=False), (w, h), smooth=True).astype(np.float32)
    if by_heat:
        a = resize((h01 * 255).astype(np.uint8), (w, h), smooth=True).astype(np.float32)[..., None] / 255 * alpha
    else:
        a = np.float32(alpha)
    out = base.astype(np.float32) * (1 - a) * dim + col * a
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def mask_overlay(image: np.ndarray | torch.Tensor, classes: np.ndarray | torch.Tensor,
                 opacity: float = 0.5) -> Image.Image:
    """Colour every pixel by its class from :data:`PALETTE` (0 = background stays clear) and blend it over the image."""
    base = to_uint8(image).astype(np.float32)
    cls = _numpy(classes).astype(np.int64)
    col = PALETTE[cls % len(PALETTE)].astype(np.float32)
    a = (cls > 0)[..., None] * float(opacity)
    return Image.fromarray((base * (1 - a) + col * a).astype(np.uint8))


def class_colour(c: int) -> tuple[int, int, int]:
    """The box colour of class ``c`` (0-based): the same colour :func:`mask_overlay` paints class ``c + 1``."""
    return tuple(int(v) for v in PALETTE[1 + int(c) % (len(PALETTE) - 1)])


def tile(m: np.ndarray | torch.Tensor, width: int, cmap: str = "viridis", normalize: bool = True) -> Image.Image:
    """A 2-D map as a picture ``width`` pixels wide, cells kept sharp (nearest neighbour)."""
    h, w = m.shape[-2:]
    return Image.fromarray(colorize(m, cmap, normalize)).resize((width, max(1, round(width * h / w))), Image.NEAREST)


def photo(image: np.ndarray | torch.Tensor, width: int) -> np.ndarray:
    """A photo resized smoothly to ``width`` pixels (aspect kept), as ``(H, W, 3)`` uint8."""
    arr = to_uint8(image)
    h, w = arr.shape[:2]
    return resize(arr, (width, max(1, round(h * width / w))), smooth=True)


def label(img: Image.Image, text: str, height: int = 16) -> Image.Image:
    """A caption strip above a picture."""
    out = Image.new("RGB", (img.width, img.height + height), WHITE)
    out.paste(img, (0, height))
    ImageDraw.Draw(out).text((2, 2), text, fill=BLACK, font=font())
    return out


def badge(img: Image.Image, xy: tuple[float, float], text: str, fg=WHITE, bg=BLACK) -> Image.Image:
    """Write ``text`` at ``xy`` on a filled box (``bg=None``: no box), in place; returns ``img``."""
    d = ImageDraw.Draw(img)
    x, y = xy
    if bg is not None:
        _, _, x2, y2 = d.textbbox((x + 2, y), text, font=font())
        d.rectangle([x, y, x2 + 2, y2 + 1], fill=bg)
    d.text((x + 2, y), text, fill=fg, font=font())
    return img


def grid(tiles: Sequence[Image.Image], ncols: int, pad: int = 2, bg=WHITE) -> Image.Image:
    """Paste equally sized pictures in rows of ``ncols``."""
    tiles = list(tiles)
    tw, th = tiles[0].size
    nrows = (len(tiles) + ncols - 1) // ncols
    canvas = Image.new("RGB", (ncols * (tw + pad) + pad, nrows * (th + pad) + pad), bg)
    for i, t in enumerate(tiles):
        canvas.paste(t, (pad + (i % ncols) * (tw + pad), pad + (i // ncols) * (th + pad)))
    return canvas


def frame(img: Image.Image, margin: int, fill=(120, 120, 120)) -> Image.Image:
    """The picture inside a ``margin``-pixel border (room to draw what falls outside it)."""
    canvas = Image.new("RGB", (img.width + 2 * margin, img.height + 2 * margin), fill)
    canvas.paste(img, (margin, margin))
    return canvas


def dots(img: Image.Image, points: Sequence[tuple[float, float]], radii: Sequence[float],
         fills: Sequence[tuple[int, int, int]], outline=WHITE) -> Image.Image:
    """Draw filled circles (centre ``(x, y)``, radius, colour) in place; returns ``img``."""
    d = ImageDraw.Draw(img)
    for (x, y), r, f in zip(points, radii, fills):
        d.ellipse([x - r, y - r, x + r, y + r], fill=f, outline=outline)
    return img


def grid_overlay(image, stride: int, objects: Sequence = (), rf_size: int | None = None,
                 rf_centre: tuple[float, float] | None = None, title: str = "") -> Image.Image:
    """Draw a stride-``stride`` map's cells over the image, the objects' boxes and one receptive field.

    ``objects`` are boxes ``(x0, y0, x1, y1)`` or things with a ``.box``; ``rf_centre`` is ``(x, y)`` in
    pixels (default: the image centre); ``rf_size`` the receptive field's side.
    """
    img = Image.fromarray(to_uint8(image)).convert("RGB")
    d = ImageDraw.Draw(img)
    w, h = img.size
    for x in range(0, w, stride):
        d.line([(x, 0), (x, h)], fill=WHITE, width=1)
    for y in range(0, h, stride):
        d.line([(0, y), (w, y)], fill=WHITE, width=1)
    for ob in objects:
        d.rectangle(getattr(ob, "box", ob), outline=ORANGE, width=2)
    if rf_size:
        cx, cy = rf_centre if rf_centre is not None else (w / 2, h / 2)
        r = rf_size / 2
        d.rectangle([cx - r, cy - r, cx + r, cy + r], outline=RED, width=3)
    if title:
        badge(img, (0, 0), title)
    return img


def neck_diagram(levels: Sequence[str], paths: dict[str, bool], has_bottom_up: bool, selected: str,
                 width: int = 330, fusion: str = "add") -> Image.Image:
    """A schematic of a pyramid neck: backbone maps, top-down column, bottom-up column; off paths in grey."""
    n = len(levels)
    row = 46
    img = Image.new("RGB", (width, n * row + 26), WHITE)
    d = ImageDraw.Draw(img)
    f = font()
    cols = [12, 130, 248] if has_bottom_up else [40, 200]
    names = ["C", "P", "N"] if has_bottom_up else ["C", "P"]
    d.text((cols[0], 4), "backbone", fill=BLACK, font=f)
    d.text((cols[1], 4), "top-down", fill=BLACK, font=f)
    if has_bottom_up:
        d.text((cols[2], 4), "bottom-up", fill=BLACK, font=f)
    boxw = 62
    ys = {lv: 20 + (n - 1 - i) * row for i, lv in enumerate(levels)}  # coarsest on top

    def box(col: int, lv: str, prefix: str) -> None:
        y = ys[lv]
        hot = lv == selected
        d.rectangle([col, y + 6, col + boxw, y + 30], outline=ORANGE if hot else (60, 60, 60), width=3 if hot else 1)
        d.text((col + 6, y + 12), f"{prefix}{lv[1:]}", fill=BLACK, font=f)

    def arrow(p0: tuple[float, float], p1: tuple[float, float], on: bool, text: str = "") -> None:
        col = BLUE if on else GREY
        d.line([p0, p1], fill=col, width=3 if on else 1)
        vx, vy = p1[0] - p0[0], p1[1] - p0[1]
        norm = max(1e-6, (vx * vx + vy * vy) ** 0.5)
        ux, uy = vx / norm, vy / norm
        tip = [p1, (p1[0] - 7 * ux - 4 * uy, p1[1] - 7 * uy + 4 * ux), (p1[0] - 7 * ux + 4 * uy, p1[1] - 7 * uy - 4 * ux)]
        d.polygon(tip, fill=col)
        if text:
            d.text(((p0[0] + p1[0]) / 2 - 8, (p0[1] + p1[1]) / 2 - 11), text, fill=col, font=f)

    for col, prefix in zip(cols, names):
        for lv in levels:
            box(col, lv, prefix)
    top = levels[-1]
    for lv in levels:
        y = ys[lv] + 18
        on = paths.get("lateral", True) or lv == top  # the top lateral always feeds the top-down path
        arrow((cols[0] + boxw, y), (cols[1], y), on, "1x1" if lv == top else "")
        if has_bottom_up:
            arrow((cols[1] + boxw, y), (cols[2], y), True)
    for hi, lo in zip(levels[::-1], levels[::-1][1:]):
        x = cols[1] + boxw / 2
        arrow((x, ys[hi] + 30), (x, ys[lo] + 6), paths.get("top_down", True), "2x")
    if has_bottom_up:
        for lo, hi in zip(levels, levels[1:]):
            x = cols[2] + boxw / 2
            arrow((x, ys[lo] + 6), (x, ys[hi] + 30), paths.get("bottom_up", True), "s2")
    d.text((4, img.height - 14), f"fusion: {'+ (add)' if fusion == 'add' else 'concat + C2f'}; grey = off",
           fill=(90, 90, 90), font=f)
    return img


def feature_grid(maps: torch.Tensor, channels: Sequence[int], ncols: int = 4, cell: int = 96,
                 cmap: str = "viridis", labels: bool = True) -> Image.Image:
    """Draw chosen channels of a ``(C, H, W)`` map side by side, each normalised on its own."""
    channels = list(channels)
    ncols = max(1, min(ncols, max(1, len(channels))))
    h, w = maps.shape[-2:]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    tiles = []
    for c in channels or [None]:
        t = Image.new("RGB", (cell, cell), WHITE)
        if c is not None:
            t.paste(Image.fromarray(colorize(maps[c], cmap)).resize(size, Image.NEAREST))
            if labels:
                badge(t, (0, 0), f"#{c}")
        tiles.append(t)
    return grid(tiles, ncols)


def bars(labels: Sequence[str], values: Sequence[float], width: int = 420, row: int = 22,
         color: tuple[int, int, int] = (52, 120, 200)) -> Image.Image:
    """A horizontal bar chart of probabilities in [0, 1] (top-k verdicts)."""
    label_w = 170
    img = Image.new("RGB", (width, row * max(1, len(labels)) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    f = font()
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = 2 + i * row
        draw.text((4, y + 4), str(lab)[:26], fill=(0, 0, 0), font=f)
        bw = int((width - label_w - 50) * max(0.0, min(1.0, float(v))))
        draw.rectangle([label_w, y + 3, label_w + bw, y + row - 4], fill=color)
        draw.text((label_w + bw + 4, y + 4), f"{v:.1%}", fill=(0, 0, 0), font=f)
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
    f = font()
    boxes = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float32)
    palette = colors or [class_colour(c) for c in range(len(PALETTE) - 1)]
    for i, b in enumerate(boxes.reshape(-1, 4)):
        col = palette[i % len(palette)] if colors is None or len(colors) != len(boxes) else colors[i]
        x1, y1, x2, y2 = (float(v) * scale for v in b)
        draw.rectangle([x1, y1, x2, y2], outline=col, width=width)
        text = " ".join(t for t in (labels[i] if labels is not None else "",
                                    f"{scores[i]:.2f}" if scores is not None else "") if t)
        if text:
            draw.rectangle([x1, max(0, y1 - 11), x1 + 6 * len(text) + 2, max(11, y1)], fill=col)
            draw.text((x1 + 1, max(0, y1 - 11)), text, fill=(255, 255, 255), font=f)
    return img


def iou_diagram(a: Sequence[float], b: Sequence[float], size: tuple[int, int] = (120, 90),
                scale: int = 3) -> Image.Image:
    """Two boxes ``x1, y1, x2, y2`` (blue ``a``, orange ``b``), their intersection shaded, and the IoU (交并比).

    The caption spells the number out: intersection / union = intersection / (area a + area b - intersection).
    """
    w, h = size
    img = Image.new("RGB", (w * scale, h * scale), WHITE)
    d = ImageDraw.Draw(img)
    ix1, iy1, ix2, iy2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    if inter > 0:
        d.rectangle([ix1 * scale, iy1 * scale, ix2 * scale, iy2 * scale], fill=(150, 200, 150))
    for box, col, name in ((a, BLUE, "a"), (b, ORANGE, "b")):
        d.rectangle([v * scale for v in box], outline=col, width=3)
        d.text((box[0] * scale + 4, box[1] * scale + 3), name, fill=col, font=font())
    return label(img, f"IoU = {inter:g} / {union:g} = {inter / union:.3f}")


def cells_overlay(image: np.ndarray | torch.Tensor, stride: int, cells: torch.Tensor | Sequence,
                  boxes: torch.Tensor | Sequence = (), scale: int = 2, title: str = "") -> Image.Image:
    """Shade some cells of a stride-``stride`` grid over the image: ``cells`` rows ``(box index, row, col)``.

    Each shaded cell takes the colour of its box (``PALETTE`` order), and its box is drawn in that colour,
    so one sees which cells are the positives of which object.
    """
    img = Image.fromarray(to_uint8(image)).convert("RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    shade = Image.new("RGB", img.size, BLACK)
    mask = Image.new("L", img.size, 0)
    ds, dm = ImageDraw.Draw(shade), ImageDraw.Draw(mask)
    k = stride * scale
    for g, r, c in (tuple(int(v) for v in cell) for cell in cells):
        ds.rectangle([c * k, r * k, (c + 1) * k - 1, (r + 1) * k - 1], fill=class_colour(g % (len(PALETTE) - 1)))
        dm.rectangle([c * k, r * k, (c + 1) * k - 1, (r + 1) * k - 1], fill=150)
    img = Image.composite(shade, img, mask)
    d = ImageDraw.Draw(img)
    for x in range(0, img.width, k):
        d.line([(x, 0), (x, img.height)], fill=GREY, width=1)
    for y in range(0, img.height, k):
        d.line([(0, y), (img.width, y)], fill=GREY, width=1)
    for i, b in enumerate(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)):
        d.rectangle([float(v) * scale for v in b], outline=class_colour(i % (len(PALETTE) - 1)), width=2)
    if title:
        badge(img, (0, 0), title)
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


def jpeg_bytes(img: Image.Image | np.ndarray, quality: int = 88) -> bytes:
    """Encode a photo-like picture as JPEG for ``ipywidgets.Image``: photo overlays encode in well under a
    millisecond, about 30x faster than PNG at this size, which keeps a slider move within a few milliseconds."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (what a notebook stores for it); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


_FONT = None


def font() -> ImageFont.ImageFont:
    """The one font every picture uses (PIL's built-in bitmap font: no file, no download)."""
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


def c2f_diagram(n: int = 2, c: int | None = None, ax=None):
    """A matplotlib drawing of the C2f block (:class:`course_lib.blocks.C2f`) with ``n`` bottlenecks.

    The 1x1 ``cv1`` makes ``2c`` channels, split into two chunks of ``c``; chunk 0 bypasses everything (the
    *partial* of Cross Stage Partial), each bottleneck reads the newest chunk and adds one more; the ``2 + n``
    chunks are concatenated and the 1x1 ``cv2`` mixes them.  ``c`` (optional) writes channel counts on the
    chunks.  Returns the figure (drawn on ``ax`` when given).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if n < 1:
        raise ValueError(f"a C2f block has at least one bottleneck, got n={n}")
    width = "c" if c is None else str(c)
    step = 1.7
    xs = [3.2 + step * i for i in range(2 + n)]          # one column per chunk
    x_cv2 = xs[-1] + step * 1.1
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 * (x_cv2 + 1.6) / 1.7, 3.4))
    else:
        fig = ax.figure
    cols = {"conv": "#cfe3f7", "bypass": "#e6e6e6", "chunk": "#fde3c8", "bottleneck": "#f8c08f", "cat": "#d8f0d2"}

    def box(x: float, y: float, text: str, kind: str, w: float = 1.3, h: float = 0.62) -> None:
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03",
                                    fc=cols[kind], ec="#444444", lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(p0: tuple[float, float], p1: tuple[float, float], text: str = "") -> None:
        ax.annotate("", xy=p1, xytext=p0, arrowprops=dict(arrowstyle="->", color="#1f5fa8", lw=1.2))
        if text:
            ax.text((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2 + 0.12, text, ha="center", fontsize=7, color="#1f5fa8")

    y_top, y_chunk, y_cat = 1.35, 0.0, -1.35
    box(0.0, y_chunk, "input\nc_in", "conv", w=1.0)
    box(1.5, y_chunk, "cv1: 1x1 conv\n-> 2c", "conv")
    arrow((0.5, y_chunk), (0.85, y_chunk))
    for i, x in enumerate(xs):
        if i == 0:
            box(x, y_chunk, f"chunk 0\n{width} (bypass)", "bypass")
        elif i == 1:
            box(x, y_chunk, f"chunk 1\n{width}", "chunk")
        else:
            box(x, y_chunk, f"chunk {i}\n{width}", "bottleneck")
        arrow((x, y_chunk - 0.31), (x, y_cat + 0.31))                         # every chunk joins the concat
    arrow((2.15, y_chunk), (xs[0] - 0.65, y_chunk))
    ax.text(2.55, 0.62, "split in two", ha="center", fontsize=7, color="#1f5fa8")
    ax.annotate("", xy=(xs[1] - 0.3, y_chunk + 0.31), xytext=(2.15, y_chunk + 0.2),
                arrowprops=dict(arrowstyle="->", color="#1f5fa8", lw=1.2, connectionstyle="arc3,rad=-0.35"))
    for k in range(1, n + 1):                                                 # bottleneck k reads chunk k
        xb = (xs[k] + xs[k + 1]) / 2
        box(xb, y_top, f"Bottleneck {k}\n3x3, 3x3", "bottleneck", w=1.4)
        arrow((xs[k], y_chunk + 0.31), (xb - 0.35, y_top - 0.31))
        arrow((xb + 0.35, y_top - 0.31), (xs[k + 1], y_chunk + 0.31))
    cat_w = xs[-1] - xs[0] + 1.3
    total = f"{(2 + n) * c} channels" if c is not None else f"{2 + n}c channels"
    box((xs[0] + xs[-1]) / 2, y_cat, f"concat: {2 + n} chunks x {width} = {total}", "cat", w=cat_w)
    box(x_cv2, y_cat, "cv2: 1x1 conv\n-> c_out", "conv")
    arrow((xs[-1] + 0.65, y_cat), (x_cv2 - 0.65, y_cat))
    ax.set_xlim(-0.7, x_cv2 + 0.8)
    ax.set_ylim(y_cat - 0.6, y_top + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"C2f with n = {n}: chunk 0 skips every bottleneck; all {2 + n} chunks are concatenated",
                 fontsize=9)
    return fig
