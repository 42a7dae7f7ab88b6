"""The course's one visual language, and the fast PIL/NumPy pictures the widgets redraw on every move.

Everything a figure or an explorer draws comes from here, so a change of style reaches every lesson:

* **Class colours** -- :data:`OKABE_ITO` (a palette that stays distinct under every common colour-vision
  deficiency) and :func:`class_colour`: the same class gets the same colour in boxes, masks, legends and bars
  (``class_colour(0) == class_colour("circle")``).  :data:`PALETTE` is the mask table (row 0 = background).
* **Colour maps** -- :data:`SEQUENTIAL` (viridis) for magnitudes, :data:`HEAT` (magma) for scores and heat over a
  photo, :data:`DIVERGING` (RdBu_r, always centred: ``vmin == -vmax``) for signed values.  Never jet or rainbow:
  their bright bands invent edges that are not in the data.  :func:`colorize`, :func:`imshow_kwargs`,
  :func:`add_colorbar`, :func:`heat_colorbar` (heat over photos), :func:`colorbar_strip` (for PIL pictures) and
  :func:`map_grid` (many maps on one shared scale, with one colour bar) use them.
* **Text** -- matplotlib figures use :data:`COURSE_RC` (no text under :data:`MIN_PT` = 9 pt, a CJK fallback font
  so figures can show Chinese); ``import course_lib`` applies it once (:func:`use_course_style`), and
  ``with course_style():`` applies it for one block.  Pictures drawn with PIL use :func:`font`, a real TrueType
  font (Noto Sans CJK when installed, else DejaVu Sans), and every label's width is *measured*
  (:func:`text_size`), never guessed, so labels stay inside the picture.
* **Detection and segmentation** -- :func:`draw_boxes` (class colours, best box drawn last, score labels on a
  filled tag that stays inside the image), :func:`mask_overlay` (class colours on a grey copy of the photo, so
  they cannot merge with the objects' own colours), :func:`segmentation_panels` (image | ground truth |
  prediction with a legend) and :func:`legend`.
* **Charts** -- :func:`bars` (top-k verdicts), :func:`labelled_scatter` (named points, e.g. parameters vs
  FLOPs of every backbone), labels inside the picture, and :func:`seed_bars` (mean ± std over seeds, a dot each).
* **Wiring diagrams** -- :func:`c2f_diagram`, :func:`neck_diagram` and :func:`layer_graph` (a measured layer
  table, e.g. YOLOv8's, as boxes in backbone / neck / head columns with its skip connections as arrows).

* **Pictures shown** -- every picture a lesson shows says what it shows in words: :func:`describe` gives a figure
  or PIL image its alt text, :func:`show` displays one now; in IPython every figure goes out through
  :func:`picture_bundle` (the PNG plus an ``<img alt=...>`` for screen readers and the rendered site), which also
  checks it against the rules above (:func:`figure_problems`: text >= 9 pt, no jet or rainbow, a colour bar or a
  shared scale on every map).  ``make site`` fails on a picture without words or breaking a rule, and writes every
  picture to ``_site/figures/`` for review (``make figures``).

Each PIL helper returns a PIL image; :func:`png_bytes` turns it into the bytes an ``ipywidgets.Image`` shows.
Drawing a 600-pixel picture this way takes a few milliseconds, so a slider feels instant.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import zlib
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .images import to_uint8
from .language import tr

# ---------------------------------------------------------------------------------------------- colours
#: Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/), in the order classes get them:
#: orange, sky blue, bluish green, reddish purple, blue, vermillion, yellow (black is kept for text).
OKABE_ITO: tuple[tuple[int, int, int], ...] = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (204, 121, 167),
                                              (0, 114, 178), (213, 94, 0), (240, 228, 66))
#: The colour of "no class" (background) in masks and legends.
BACKGROUND: tuple[int, int, int] = (0, 0, 0)
#: Mask colours: row 0 is the background (left clear by :func:`mask_overlay`), row ``1 + c`` is class ``c``,
#: so a mask of class ``1 + c`` and a box of class ``c`` share :func:`class_colour` ``(c)``.
PALETTE = np.array([BACKGROUND, *OKABE_ITO], dtype=np.uint8)
#: Colours of the schematic drawings (paths, objects, taps), taken from the same palette.
ORANGE, GREY, BLUE, GREEN, RED, WHITE, BLACK = (OKABE_ITO[0], (200, 200, 200), OKABE_ITO[4], OKABE_ITO[2],
                                                OKABE_ITO[5], (255, 255, 255), (0, 0, 0))
#: Class names whose colour is fixed by their position (ShapesWorld's classes, :data:`course_lib.data.CLASSES`);
#: any other name gets a colour from a stable hash of the name.
KNOWN_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")


def class_colour(c: int | str) -> tuple[int, int, int]:
    """The colour of class ``c`` everywhere (boxes, masks, legends, bars): a 0-based index or a class name.

    Indices cycle through :data:`OKABE_ITO`; a name in :data:`KNOWN_CLASSES` has the colour of its index
    (``"circle"`` is class 0), any other name one chosen by a hash of the name, so it never changes between
    calls, pictures or sessions.  ``"background"`` is :data:`BACKGROUND`.
    """
    if isinstance(c, str):
        if c == "background":
            return BACKGROUND
        c = KNOWN_CLASSES.index(c) if c in KNOWN_CLASSES else zlib.crc32(c.encode("utf-8"))
    return OKABE_ITO[int(c) % len(OKABE_ITO)]


def mpl_colour(c: Sequence[int] | int | str) -> tuple[float, float, float]:
    """A course colour for matplotlib (``color=``): an RGB triple in 0..255, or a class (as :func:`class_colour`)."""
    rgb = class_colour(c) if isinstance(c, (int, str)) else c
    return tuple(v / 255 for v in rgb)


def mask_colour(k: int) -> tuple[int, int, int]:
    """The colour of mask class ``k`` (0 = background, ``k`` >= 1 is object class ``k - 1``)."""
    return BACKGROUND if int(k) == 0 else class_colour(int(k) - 1)


def text_colour_on(bg: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``bg`` (by its luminance)."""
    r, g, b = (int(v) for v in bg[:3])
    return BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 150 else WHITE


# ---------------------------------------------------------------------------------------------- colour maps
#: Magnitudes (feature maps, activations): perceptually uniform, dark = low.
SEQUENTIAL = "viridis"
#: Scores, probabilities and heat drawn over a photo.
HEAT = "magma"
#: Signed values (responses, differences): blue < 0 < red, always centred on zero.
DIVERGING = "RdBu_r"
#: Colour maps the course never uses (they create false edges and fail for colour-blind readers).
BANNED_CMAPS = frozenset({"jet", "rainbow", "hsv", "gist_rainbow", "nipy_spectral", "turbo"})

_LUTS: dict[str, np.ndarray] = {}


def lut(name: str = SEQUENTIAL) -> np.ndarray:
    """A 256x3 uint8 colour table from a matplotlib colormap (cached)."""
    if name not in _LUTS:
        import matplotlib

        cmap = matplotlib.colormaps[name]
        _LUTS[name] = (cmap(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return _LUTS[name]


def normalize01(a: np.ndarray | torch.Tensor) -> np.ndarray:
    """Scale values to [0, 1] (min -> 0, max -> 1; a constant map becomes 0)."""
    a = _numpy(a).astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def value_range(maps: np.ndarray | torch.Tensor | Sequence, signed: bool | None = None) -> tuple[float, float]:
    """One ``(vmin, vmax)`` for one map or many (a shared scale); ``signed`` ranges are centred: ``(-m, m)``.

    ``signed=None`` decides from the data: signed when the negative values reach at least a quarter of the
    positive ones (so the small negative tail of a SiLU feature map still reads as a magnitude).
    """
    vals = [_numpy(m).astype(np.float32) for m in (maps if isinstance(maps, (list, tuple)) else [maps])]
    lo, hi = min(float(v.min()) for v in vals), max(float(v.max()) for v in vals)
    if signed is None:
        signed = lo < 0 and -lo >= 0.25 * max(hi, 0.0)
    if signed:
        m = max(abs(lo), abs(hi)) or 1.0
        return -m, m
    return lo, hi if hi > lo else lo + 1.0


def colorize(a: np.ndarray | torch.Tensor, cmap: str | None = None, normalize: bool = True, *,
             signed: bool = False, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """A 2-D map -> an RGB uint8 picture through a colour table (default :data:`SEQUENTIAL`).

    ``normalize`` stretches the map's own min..max to the table; ``vmin``/``vmax`` put it on a given scale
    instead (share one scale between maps with :func:`value_range`); ``normalize=False`` takes values as
    already in [0, 1].  ``signed`` uses :data:`DIVERGING` centred on zero (``vmin == -vmax``), so white is 0.
    """
    cmap = cmap or (DIVERGING if signed else SEQUENTIAL)
    arr = _numpy(a).astype(np.float32)
    if signed or vmin is not None or vmax is not None:
        lo, hi = value_range(arr, signed)
        lo = lo if vmin is None else vmin
        hi = hi if vmax is None else vmax
        if signed:
            hi = max(abs(lo), abs(hi)) or 1.0
            lo = -hi
        a01 = np.clip((arr - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    else:
        a01 = normalize01(arr) if normalize else np.clip(arr, 0, 1)
    return lut(cmap)[(a01 * 255).astype(np.uint8)]


def imshow_kwargs(a: np.ndarray | torch.Tensor | Sequence, signed: bool | None = None,
                  cmap: str | None = None) -> dict[str, Any]:
    """``cmap``, ``vmin`` and ``vmax`` for ``ax.imshow``: a perceptual map, centred on zero when signed.

    Pass one map, or all the maps of a grid to put them on one shared scale::

        ax.imshow(r, **render.imshow_kwargs(r, signed=True))     # RdBu_r, vmin = -vmax
    """
    lo, hi = value_range(a, signed)
    is_signed = signed if signed is not None else (lo == -hi)
    return {"cmap": cmap or (DIVERGING if is_signed else SEQUENTIAL), "vmin": lo, "vmax": hi}


def add_colorbar(im, ax=None, label: str = ""):
    """A colour bar beside ``ax`` (default: the axes of ``im``) for the image ``im`` that ``ax.imshow`` returned."""
    ax = ax if ax is not None else im.axes
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if label:
        cb.set_label(label)
    return cb


def heat_colorbar(axes, lo: float = 0.0, hi: float = 1.0, cmap: str = HEAT, label: str = ""):
    """One colour bar for heat blended over photos (:func:`overlay` with ``normalize=False``): the blend is an RGB
    picture, so it has no scale of its own; this bar gives the scale its heat was drawn on."""
    import matplotlib
    from matplotlib.cm import ScalarMappable

    axes = list(np.ravel(axes))
    sm = ScalarMappable(norm=matplotlib.colors.Normalize(lo, hi), cmap=cmap)
    cb = axes[0].figure.colorbar(sm, ax=axes, fraction=0.03, pad=0.02)
    if label:
        cb.set_label(label)
    return cb


def map_grid(maps: Sequence[np.ndarray | torch.Tensor], titles: Sequence[str] = (), ncols: int = 4, *,
             shared: bool = True, signed: bool | None = None, cmap: str | None = None, title: str = "",
             size: float = 2.2, label: str = ""):
    """Many 2-D maps in a grid of panels, with colour bars: a matplotlib figure.

    ``shared`` (the default) puts every panel on one scale with one colour bar, so equal colours mean equal
    values; otherwise each panel gets its own scale and its own bar.  The title says which.  ``signed``
    (``None``: decided from the data) uses :data:`DIVERGING`, centred on zero.
    """
    import matplotlib.pyplot as plt

    maps = [_numpy(m).astype(np.float32) for m in maps]
    ncols = max(1, min(ncols, len(maps)))
    nrows = (len(maps) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + (0.6 if shared else 0.4 * ncols), size * nrows),
                             squeeze=False)
    shared_kw = imshow_kwargs(maps, signed, cmap)
    im = None
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= len(maps):
            continue
        im = ax.imshow(maps[i], **(shared_kw if shared else imshow_kwargs(maps[i], signed, cmap)))
        if i < len(titles):
            ax.set_title(titles[i])
        if not shared:
            add_colorbar(im, ax, label)
    if shared and im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
        if label:
            cb.set_label(label)
    scale = tr("one colour scale for all panels") if shared else tr("each panel on its own colour scale")
    fig.suptitle(tr("{title} ({scale})", title=title, scale=scale) if title else scale)
    return fig


# ---------------------------------------------------------------------------------------------- text
#: The smallest text a figure may use (points); grids of panels use this for titles.
MIN_PT = 9
#: Body text, axis labels and panel titles (points).
TEXT_PT = 10
#: The size of text drawn into PIL pictures (pixels): about 9 pt at the 96 dpi a notebook shows them at.
FONT_PX = 12
#: matplotlib's own sans-serif font (it ships with matplotlib) and the CJK fonts tried for Chinese glyphs.
LATIN_FONT = "DejaVu Sans"
CJK_FONTS: tuple[str, ...] = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei")


@lru_cache(maxsize=1)
def cjk_font_family() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib can find on this machine (``None``: no CJK font)."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in have), None)


def course_rc() -> dict[str, Any]:
    """The course's matplotlib settings: text >= :data:`MIN_PT`, perceptual default map, Okabe-Ito lines.

    ``font.sans-serif`` lists DejaVu Sans first and the CJK font after it, and ``font.family`` names the CJK font
    after ``sans-serif`` (matplotlib resolves a generic family to one font only, so the fallback must be a family
    of its own): matplotlib falls back glyph by glyph, so a title can mix English and 中文.
    """
    from cycler import cycler

    cjk = cjk_font_family()
    return {
        "font.size": TEXT_PT, "axes.titlesize": TEXT_PT, "axes.labelsize": TEXT_PT, "figure.titlesize": TEXT_PT + 1,
        "xtick.labelsize": MIN_PT, "ytick.labelsize": MIN_PT, "legend.fontsize": MIN_PT,
        "legend.title_fontsize": MIN_PT, "font.family": ["sans-serif", cjk] if cjk else "sans-serif",
        "font.sans-serif": [LATIN_FONT, *([cjk] if cjk else [])],
        "image.cmap": SEQUENTIAL,
        "axes.prop_cycle": cycler(color=["#{:02x}{:02x}{:02x}".format(*c) for c in OKABE_ITO]),
    }


def monospace() -> list[str]:
    """``family=`` for monospaced text in a figure that may hold Chinese: the monospace font, then the CJK font
    (the glyph-by-glyph fallback :func:`course_rc` sets up for ``sans-serif``)."""
    cjk = cjk_font_family()
    return ["monospace", *([cjk] if cjk else [])]


def use_course_style() -> None:
    """Apply :func:`course_rc` to matplotlib for the rest of the session (``import course_lib`` does this).

    Learners then get readable, colour-blind-safe figures without asking; ``matplotlib.rcdefaults()`` undoes it.
    In IPython it also installs :func:`install_display`, so every figure shown carries its alt text.
    """
    import matplotlib

    matplotlib.rcParams.update(course_rc())
    install_display()


@contextlib.contextmanager
def course_style() -> Iterator[None]:
    """``with course_style():`` -- the course's matplotlib settings for one block only, restored after."""
    import matplotlib

    with matplotlib.rc_context(course_rc()):
        yield


@lru_cache(maxsize=1)
def font_file() -> tuple[str, int]:
    """``(path, face index)`` of the TrueType font PIL pictures use: Noto Sans CJK SC if installed, else DejaVu Sans.

    fontconfig (``fc-match``) is asked first, then matplotlib's font list; DejaVu Sans ships with matplotlib,
    so there is always a real font (never PIL's tiny bitmap one).
    """
    for name in CJK_FONTS:
        if shutil.which("fc-match"):
            try:
                got = subprocess.run(["fc-match", "-f", "%{family}|%{file}|%{index}", name], capture_output=True,
                                     text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                got = ""
            family, _, rest = got.partition("|")
            path, _, index = rest.partition("|")
            if name in family.split(",") and Path(path).is_file():
                return path, int(index or 0)
    cjk = cjk_font_family()
    if cjk:
        from matplotlib import font_manager

        path = font_manager.findfont(font_manager.FontProperties(family=cjk), fallback_to_default=False)
        for index in range(10):  # a .ttc holds several faces: find the one with this family name
            try:
                if ImageFont.truetype(path, 10, index=index).getname()[0] == cjk:
                    return path, index
            except OSError:
                break
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 0


def has_cjk_font() -> bool:
    """Whether :func:`font` can draw Chinese (a CJK font was found)."""
    return "CJK" in Path(font_file()[0]).name or font(FONT_PX).getname()[0] in CJK_FONTS


@lru_cache(maxsize=16)
def font(size: int = FONT_PX) -> ImageFont.FreeTypeFont:
    """The one font every PIL picture uses, ``size`` pixels tall (:func:`font_file`; cached per size).

    Never smaller than :data:`FONT_PX` (about 9 pt on screen): the rule for text in figures holds for the text
    drawn into pictures too, so asking for less is an error.
    """
    if size < FONT_PX:
        raise ValueError(f"text in pictures is at least render.FONT_PX = {FONT_PX} px (about {MIN_PT} pt); got {size}")
    path, index = font_file()
    return ImageFont.truetype(path, size, index=index)


def text_size(text: str, size: int = FONT_PX) -> tuple[int, int]:
    """The measured ``(width, height)`` in pixels of ``text`` in :func:`font` (``font.getbbox``; no guessing)."""
    x0, y0, x1, y1 = font(size).getbbox(text or " ")
    return int(np.ceil(x1 - min(0, x0))), int(np.ceil(y1 - min(0, y0)))


def line_height(size: int = FONT_PX) -> int:
    """The height of one line of text, accents and descenders included (the room a caption needs)."""
    asc, desc = font(size).getmetrics()
    return int(asc + desc)


def caption_height(size: int = FONT_PX) -> int:
    """The height of the caption strip :func:`label` puts above a picture: one line of text and a margin."""
    return line_height(size) + 3


def tag(img: Image.Image, xy: tuple[float, float], text: str, bg: Sequence[int] = BLACK,
        fg: Sequence[int] | None = None, size: int = FONT_PX, pad: int = 2) -> tuple[int, int, int, int]:
    """Write ``text`` on a filled box whose top-left corner is ``xy``, moved to stay inside ``img``, in place.

    The box is measured from the font; ``fg`` defaults to black or white, whichever reads on ``bg``.
    Returns the box ``(x0, y0, x1, y1)`` it filled.
    """
    tw, th = text_size(text, size)
    bw, bh = tw + 2 * pad, line_height(size) + pad
    x0 = int(min(max(0, xy[0]), max(0, img.width - bw)))
    y0 = int(min(max(0, xy[1]), max(0, img.height - bh)))
    d = ImageDraw.Draw(img)
    box = (x0, y0, min(img.width, x0 + bw) - 1, min(img.height, y0 + bh) - 1)
    d.rectangle(box, fill=tuple(bg))
    d.text((x0 + pad, y0 + pad // 2), text, fill=tuple(fg) if fg is not None else text_colour_on(bg),
           font=font(size))
    return box


def resize(arr: np.ndarray, size: tuple[int, int], smooth: bool = False) -> np.ndarray:
    """Resize an RGB/grey uint8 array to ``(width, height)``: nearest keeps cells visible."""
    return np.asarray(Image.fromarray(arr).resize(size, Image.BILINEAR if smooth else Image.NEAREST))


def overlay(image: np.ndarray | torch.Tensor | Image.Image, heat: np.ndarray | torch.Tensor, alpha: float = 0.5,
            cmap: str = HEAT, *, normalize: bool = True, gamma: float = 1.0, by_heat: bool = False,
            dim: float = 1.0) -> Image.Image:
    """Blend a heat map (any size; stretched smoothly to the image) over a photo: the one heat-over-photo blend.

    ``normalize`` stretches the heat to [0, 1] first (else it is clipped there); ``gamma`` < 1 lifts faint
    values.  With ``by_heat`` the colour covers the photo in proportion to the heat (``alpha`` where it is
    hottest, the photo untouched where it is zero), which shows *where* a map lives; ``dim`` darkens the photo
    underneath so the colour stands out.  The default map is :data:`HEAT` (magma: dark = cold, light = hot).
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


def grey(image: np.ndarray | torch.Tensor | Image.Image, lighten: float = 0.0) -> np.ndarray:
    """The photo in grey (its luminance) as ``(H, W, 3)`` uint8, ``lighten`` of the way towards white.

    Masks are painted on this copy, so the only colours in the picture are the class colours.
    """
    arr = to_uint8(np.asarray(image) if isinstance(image, Image.Image) else image).astype(np.float32)
    lum = arr[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lum = lum + (255 - lum) * float(lighten)
    return np.repeat(lum[..., None], 3, axis=-1).astype(np.uint8)


def _edges(cls: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another class, or which touch the border of a region."""
    e = np.zeros(cls.shape, dtype=bool)
    e[:, :-1] |= cls[:, :-1] != cls[:, 1:]
    e[:, 1:] |= cls[:, :-1] != cls[:, 1:]
    e[:-1] |= cls[:-1] != cls[1:]
    e[1:] |= cls[:-1] != cls[1:]
    return e & (cls > 0)


def mask_overlay(image: np.ndarray | torch.Tensor, classes: np.ndarray | torch.Tensor,
                 opacity: float = 0.5, *, contours: bool = True) -> Image.Image:
    """Paint every pixel's class (:func:`mask_colour`; 0 = background stays clear) over a grey copy of the photo.

    The photo is shown in grey (:func:`grey`) so a class colour never merges with an object's own colour;
    ``contours`` outlines every region in its full class colour, which keeps the edges visible at any
    ``opacity``.  ``classes`` may be smaller than the image (it is stretched, nearest neighbour).
    """
    base = grey(image).astype(np.float32)
    cls = _numpy(classes).astype(np.int64)
    if cls.shape != base.shape[:2]:
        cls = np.asarray(Image.fromarray(cls.astype(np.int32)).resize(base.shape[1::-1], Image.NEAREST))
    col = PALETTE[np.where(cls > 0, (cls - 1) % (len(PALETTE) - 1) + 1, 0)].astype(np.float32)
    a = (cls > 0)[..., None] * float(opacity)
    if contours:
        a = np.where(_edges(cls)[..., None], 1.0, a)
    return Image.fromarray((base * (1 - a) + col * a).astype(np.uint8))


def legend(names: Sequence[str], colours: Sequence[Sequence[int]] | None = None, width: int | None = None,
           size: int = FONT_PX) -> Image.Image:
    """A one-line legend strip: a swatch and a name per class (colours default to :func:`class_colour` by name).

    Items wrap onto more lines when ``width`` is too narrow for them; every width is measured.
    """
    colours = [tuple(c) for c in colours] if colours is not None else [class_colour(n) for n in names]
    lh, sw, gap = line_height(size), line_height(size) - 2, 12
    items = [(n, c, sw + 4 + text_size(n, size)[0]) for n, c in zip(names, colours)]
    width = width or sum(w for *_, w in items) + gap * max(0, len(items) - 1) + 8
    rows, x = [[]], 4
    for it in items:
        if rows[-1] and x + it[2] > width - 4:
            rows.append([])
            x = 4
        rows[-1].append(it)
        x += it[2] + gap
    img = Image.new("RGB", (width, len(rows) * (lh + 4) + 4), WHITE)
    d = ImageDraw.Draw(img)
    for r, row in enumerate(rows):
        x, y = 4, 4 + r * (lh + 4)
        for name, col, w in row:
            d.rectangle([x, y + 1, x + sw, y + sw + 1], fill=col, outline=(90, 90, 90))
            d.text((x + sw + 4, y), name, fill=BLACK, font=font(size))
            x += w + gap
    return img


def segmentation_panels(image: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray | None,
                        pred: torch.Tensor | np.ndarray, class_names: Sequence[str], scale: int = 2,
                        opacity: float = 0.6, titles: Sequence[str] | None = None) -> Image.Image:
    """Image | ground truth | prediction, side by side, with a legend of the class colours underneath.

    One image ``(3, H, W)`` with ``(H, W)`` class maps, or a batch ``(N, 3, H, W)`` with ``(N, H, W)``
    maps (one row each).  ``truth=None`` leaves the ground-truth column out.  Masks are drawn with
    :func:`mask_overlay` (class colours over a grey photo, outlined), class ``k`` of ``class_names`` in
    :func:`mask_colour` ``(k)``; a caption above each panel says what it is, the prediction's says how
    many pixels agree with the truth (``titles=None``: "image", "ground truth", "prediction", in the learner's
    language).
    """
    if titles is None:
        titles = (tr("image"), tr("ground truth"), tr("prediction"))
    pred_t = _numpy(pred).astype(np.int64)
    truth_t = None if truth is None else _numpy(truth).astype(np.int64)
    batched = pred_t.ndim == 3
    if not batched:
        pred_t = pred_t[None]
        truth_t = None if truth_t is None else truth_t[None]
    rows = []
    for i in range(len(pred_t)):
        img_i = to_uint8(image[i] if batched else image)       # (H, W, 3) from a (3, H, W) tensor or an array
        size = (img_i.shape[1] * scale, img_i.shape[0] * scale)
        cols = [(titles[0], Image.fromarray(img_i).resize(size, Image.NEAREST))]
        if truth_t is not None:
            cols.append((titles[1], mask_overlay(img_i, truth_t[i], opacity).resize(size, Image.NEAREST)))
        cap = titles[2]
        if truth_t is not None:
            cap = tr("{title}: {p:.0%} of pixels right", title=cap, p=float((pred_t[i] == truth_t[i]).mean()))
        cols.append((cap, mask_overlay(img_i, pred_t[i], opacity).resize(size, Image.NEAREST)))
        rows.append(hstack([label(pic, text) for text, pic in cols]))
    body = vstack(rows)
    names = list(class_names)
    key = legend(names[1:] if names and names[0] == "background" else names,
                 [mask_colour(k) for k in range(1 if names and names[0] == "background" else 0, len(names))]
                 if names and names[0] == "background" else None, width=body.width)
    return vstack([body, key])


def tile(m: np.ndarray | torch.Tensor, width: int, cmap: str = SEQUENTIAL, normalize: bool = True) -> Image.Image:
    """A 2-D map as a picture ``width`` pixels wide, cells kept sharp (nearest neighbour)."""
    h, w = m.shape[-2:]
    return Image.fromarray(colorize(m, cmap, normalize)).resize((width, max(1, round(width * h / w))), Image.NEAREST)


def photo(image: np.ndarray | torch.Tensor, width: int) -> np.ndarray:
    """A photo resized smoothly to ``width`` pixels (aspect kept), as ``(H, W, 3)`` uint8."""
    arr = to_uint8(image)
    h, w = arr.shape[:2]
    return resize(arr, (width, max(1, round(h * width / w))), smooth=True)


def label(img: Image.Image, text: str, height: int | None = None) -> Image.Image:
    """A caption strip above a picture (``height``: measured from the font when not given)."""
    height = height if height is not None else caption_height()
    out = Image.new("RGB", (img.width, img.height + height), WHITE)
    out.paste(img, (0, height))
    ImageDraw.Draw(out).text((2, 1), text, fill=BLACK, font=font())
    return out


def badge(img: Image.Image, xy: tuple[float, float], text: str, fg=WHITE, bg=BLACK) -> Image.Image:
    """Write ``text`` at ``xy`` on a filled box (``bg=None``: no box), kept inside the picture, in place.

    Returns ``img``.  Without a box the text gets a thin dark outline, so it reads on any background.
    """
    if bg is not None:
        tag(img, xy, text, bg=bg, fg=fg)
        return img
    tw, _ = text_size(text)
    x = min(max(0, xy[0]), max(0, img.width - tw - 2))
    y = min(max(0, xy[1]), max(0, img.height - line_height()))
    ImageDraw.Draw(img).text((x + 1, y), text, fill=fg, font=font(), stroke_width=1, stroke_fill=BLACK)
    return img


def colorbar_strip(lo: float, hi: float, width: int, cmap: str = SEQUENTIAL, text: str = "") -> Image.Image:
    """A horizontal colour bar for PIL pictures: the colour table from ``lo`` to ``hi``, numbers at both ends."""
    lh = line_height()
    img = Image.new("RGB", (width, 10 + lh + 4), WHITE)
    bar = np.repeat(lut(cmap)[None], 8, axis=0)
    img.paste(Image.fromarray(bar).resize((max(1, width - 8), 8), Image.BILINEAR), (4, 2))
    d = ImageDraw.Draw(img)
    left, right = f"{lo:.3g}", f"{hi:.3g}"
    d.text((4, 11), left, fill=BLACK, font=font())
    d.text((width - 4 - text_size(right)[0], 11), right, fill=BLACK, font=font())
    if text:
        d.text(((width - text_size(text)[0]) / 2, 11), text, fill=BLACK, font=font())
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
    pixels (default: the image centre); ``rf_size`` the receptive field's side, drawn in black (the grid is
    white, the boxes orange).
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
        d.rectangle([cx - r, cy - r, cx + r, cy + r], outline=BLACK, width=3)  # apart from boxes and grid
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
    d.text((cols[0], 4), tr("backbone"), fill=BLACK, font=f)
    d.text((cols[1], 4), tr("top-down"), fill=BLACK, font=f)
    if has_bottom_up:
        d.text((cols[2], 4), tr("bottom-up"), fill=BLACK, font=f)
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
    note = tr("fusion: + (add); grey = off") if fusion == "add" else tr("fusion: concat + C2f; grey = off")
    d.text((4, img.height - 14), note, fill=(90, 90, 90), font=f)
    return img


def feature_grid(maps: torch.Tensor, channels: Sequence[int], ncols: int = 4, cell: int = 96,
                 cmap: str = SEQUENTIAL, labels: bool = True, *, shared: bool = False,
                 scale_bar: bool = False) -> Image.Image:
    """Draw chosen channels of a ``(C, H, W)`` map side by side.

    Each channel is stretched to its own min..max (``shared=False``: shows *where* each one fires), or all
    share one scale (``shared=True``: shows which fires *more*).  ``scale_bar`` adds a colour bar under the
    grid that says which: the shared range in numbers, or "each map on its own scale".
    """
    channels = list(channels)
    ncols = max(1, min(ncols, max(1, len(channels))))
    h, w = maps.shape[-2:]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    lo, hi = value_range([maps[c] for c in channels], signed=False) if channels and shared else (0.0, 1.0)
    tiles = []
    for c in channels or [None]:
        t = Image.new("RGB", (cell, cell), WHITE)
        if c is not None:
            rgb = colorize(maps[c], cmap, vmin=lo, vmax=hi) if shared else colorize(maps[c], cmap)
            t.paste(Image.fromarray(rgb).resize(size, Image.NEAREST))
            if labels:
                badge(t, (0, 0), f"#{c}")
        tiles.append(t)
    out = grid(tiles, ncols)
    if not scale_bar:
        return out
    if shared:
        bar = colorbar_strip(lo, hi, out.width, cmap, tr("one scale for all"))
    else:
        bar = colorbar_strip(0, 1, out.width, cmap, tr("each map on its own scale"))
    return vstack([out, bar], pad=0)


def bars(labels: Sequence[str], values: Sequence[float], width: int = 420, row: int = 22,
         color: tuple[int, int, int] | Sequence[tuple[int, int, int]] = (0, 114, 178)) -> Image.Image:
    """A horizontal bar chart of probabilities in [0, 1] (top-k verdicts).

    ``color`` is one colour or one per bar (e.g. ``[class_colour(n) for n in labels]``); the label column is
    as wide as the longest label needs (measured), up to half the picture, longer ones end in "…".
    """
    f = font()
    texts = [str(lab) for lab in labels]
    label_w = min(width // 2, max([text_size(t)[0] for t in texts] + [20]) + 10)
    shown = []
    for t in texts:
        while len(t) > 1 and text_size(t)[0] > label_w - 10:
            t = t[:-2] + "…"
        shown.append(t)
    cols = [tuple(color)] * len(texts) if isinstance(color[0], (int, np.integer)) else [tuple(c) for c in color]
    pct_w = text_size("100.0%")[0] + 8
    img = Image.new("RGB", (width, row * max(1, len(labels)) + 4), WHITE)
    draw = ImageDraw.Draw(img)
    ty = (row - line_height()) // 2
    for i, (lab, v) in enumerate(zip(shown, values)):
        y = 2 + i * row
        draw.text((4, y + ty), lab, fill=BLACK, font=f)
        bw = int((width - label_w - pct_w) * max(0.0, min(1.0, float(v))))
        draw.rectangle([label_w, y + 3, label_w + bw, y + row - 4], fill=cols[i % len(cols)])
        draw.text((label_w + bw + 4, y + ty), f"{v:.1%}", fill=BLACK, font=f)
    return img


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def place_label(box: Sequence[float], size: tuple[int, int], image_size: tuple[int, int],
                taken: Sequence[Sequence[float]] = ()) -> tuple[int, int, int, int]:
    """Where a box's label of ``size`` (w, h) goes: a rectangle inside the image, as clear of ``taken`` as it can.

    Tried in order: above the box's top edge, just below it (inside the box), below the bottom edge, inside
    the bottom edge; each is moved to stay inside the image.  The first that overlaps no earlier label wins,
    else the one that overlaps least.
    """
    x1, y1, x2, y2 = box
    w, h = size
    width, height = image_size
    x = min(max(0, int(x1)), max(0, width - w))
    spots = [y1 - h, y1 + 1, y2 + 1, y2 - h]
    best, best_cost = None, None
    for y in spots:
        y = int(min(max(0, y), max(0, height - h)))
        r = (x, y, x + w, y + h)
        cost = sum(_overlap(r, t) for t in taken)
        if best is None or cost < best_cost:
            best, best_cost = r, cost
        if cost == 0:
            break
    return best


def draw_boxes(image: np.ndarray | torch.Tensor | Image.Image, boxes: np.ndarray | torch.Tensor,
               labels: Sequence[str] | None = None, scores: Sequence[float] | None = None,
               colors: Sequence[tuple[int, int, int]] | None = None, width: int = 2,
               scale: float = 1.0, *, classes: Sequence[int] | torch.Tensor | None = None,
               size: int = FONT_PX, hide_covered: bool = True) -> Image.Image:
    """Draw ``(N, 4)`` boxes ``x1, y1, x2, y2`` (image pixels) with their class colour, label and score.

    Colour: ``colors`` (one per box, or one for all) if given, else :func:`class_colour` of ``classes``
    (0-based indices), else of ``labels`` (names), else the first class colour.  With ``scores`` the boxes are
    drawn from the lowest score to the highest, so the best box lies on top; its label ("circle 0.93", on a
    filled tag in the box's colour) gets the first choice of place (:func:`place_label`): above the box, or
    below its top edge when there is no room, always inside the picture.  With ``hide_covered`` a label that
    would lie more than half under better boxes' labels is left out (its box is still drawn), so every label
    shown can be read.
    """
    img = image.copy() if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    img = img.convert("RGB")
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.NEAREST)
    boxes = _numpy(boxes).astype(np.float32).reshape(-1, 4) * scale
    n = len(boxes)
    if colors is not None and len(colors) == n:
        cols = [tuple(c) for c in colors]
    elif colors is not None:
        cols = [tuple(colors[i % len(colors)]) for i in range(n)]
    elif classes is not None:
        cols = [class_colour(int(c)) for c in _numpy(classes).reshape(-1)]
    elif labels is not None:
        cols = [class_colour(str(t)) for t in labels]
    else:
        cols = [class_colour(0)] * n
    texts = [" ".join(t for t in (str(labels[i]) if labels is not None else "",
                                  f"{float(scores[i]):.2f}" if scores is not None else "") if t) for i in range(n)]
    order = np.argsort(np.asarray(scores, dtype=np.float32), kind="stable") if scores is not None and n else \
        np.arange(n)
    draw = ImageDraw.Draw(img)
    for i in order:                                     # worst first, so the best box is drawn last (on top)
        draw.rectangle(boxes[i].tolist(), outline=cols[i], width=width)
    spots: dict[int, tuple[int, int, int, int]] = {}
    taken: list[tuple[int, int, int, int]] = []
    for i in order[::-1]:                               # the best label chooses its place first
        if texts[i]:
            tw, _ = text_size(texts[i], size)
            spot = place_label(boxes[i].tolist(), (tw + 4, line_height(size) + 2), img.size, taken)  # = tag()
            area = (spot[2] - spot[0]) * (spot[3] - spot[1])
            if not hide_covered or sum(_overlap(spot, t) for t in taken) <= area / 2:
                spots[i] = spot
                taken.append(spot)
    for i in order:                                     # ... and is drawn last
        if i in spots:
            tag(img, spots[i][:2], texts[i], bg=cols[i], size=size)
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

    Each shaded cell takes the colour of its box (:func:`class_colour` of the box's index), and its box is drawn in that colour,
    so one sees which cells are the positives of which object.
    """
    img = Image.fromarray(to_uint8(image)).convert("RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    shade = Image.new("RGB", img.size, BLACK)
    mask = Image.new("L", img.size, 0)
    ds, dm = ImageDraw.Draw(shade), ImageDraw.Draw(mask)
    k = stride * scale
    for g, r, c in (tuple(int(v) for v in cell) for cell in cells):
        ds.rectangle([c * k, r * k, (c + 1) * k - 1, (r + 1) * k - 1], fill=class_colour(g))
        dm.rectangle([c * k, r * k, (c + 1) * k - 1, (r + 1) * k - 1], fill=150)
    img = Image.composite(shade, img, mask)
    d = ImageDraw.Draw(img)
    for x in range(0, img.width, k):
        d.line([(x, 0), (x, img.height)], fill=GREY, width=1)
    for y in range(0, img.height, k):
        d.line([(0, y), (img.width, y)], fill=GREY, width=1)
    for i, b in enumerate(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)):
        d.rectangle([float(v) * scale for v in b], outline=class_colour(i), width=2)
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


def vstack(images: Sequence[Image.Image], pad: int = 6, bg=(255, 255, 255)) -> Image.Image:
    """Place pictures one under the other (left-aligned)."""
    w = max(im.width for im in images)
    h = sum(im.height for im in images) + pad * (len(images) - 1)
    out = Image.new("RGB", (w, h), bg)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + pad
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

    try:
        return figure_bytes(fig, dpi=80)
    finally:
        plt.close(fig)


def _numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    return a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


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
        ax.text(x, y, text, ha="center", va="center", fontsize=MIN_PT)

    def arrow(p0: tuple[float, float], p1: tuple[float, float], text: str = "") -> None:
        ax.annotate("", xy=p1, xytext=p0, arrowprops=dict(arrowstyle="->", color="#1f5fa8", lw=1.2))
        if text:
            ax.text((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2 + 0.12, text, ha="center", fontsize=MIN_PT, color="#1f5fa8")

    y_top, y_chunk, y_cat = 1.35, 0.0, -1.35
    box(0.0, y_chunk, tr("input") + "\nc_in", "conv", w=1.0)
    box(1.5, y_chunk, "cv1\n" + tr("1x1 conv") + "\n-> 2c", "conv")
    arrow((0.5, y_chunk), (0.85, y_chunk))
    for i, x in enumerate(xs):
        if i == 0:
            box(x, y_chunk, tr("chunk {i}", i=0) + "\n" + tr("{width} (bypass)", width=width), "bypass")
        else:
            box(x, y_chunk, tr("chunk {i}", i=i) + f"\n{width}", "chunk" if i == 1 else "bottleneck")
        arrow((x, y_chunk - 0.31), (x, y_cat + 0.31))                         # every chunk joins the concat
    arrow((2.15, y_chunk), (xs[0] - 0.65, y_chunk))
    ax.text(2.55, 0.62, tr("split in two"), ha="center", fontsize=MIN_PT, color="#1f5fa8")
    ax.annotate("", xy=(xs[1] - 0.3, y_chunk + 0.31), xytext=(2.15, y_chunk + 0.2),
                arrowprops=dict(arrowstyle="->", color="#1f5fa8", lw=1.2, connectionstyle="arc3,rad=-0.35"))
    for k in range(1, n + 1):                                                 # bottleneck k reads chunk k
        xb = (xs[k] + xs[k + 1]) / 2
        box(xb, y_top, tr("Bottleneck {k}", k=k) + "\n3x3, 3x3", "bottleneck", w=1.4)
        arrow((xs[k], y_chunk + 0.31), (xb - 0.35, y_top - 0.31))
        arrow((xb + 0.35, y_top - 0.31), (xs[k + 1], y_chunk + 0.31))
    cat_w = xs[-1] - xs[0] + 1.3
    total = tr("{c} channels", c=(2 + n) * c if c is not None else f"{2 + n}c")
    box((xs[0] + xs[-1]) / 2, y_cat, tr("concat: {k} chunks x {width} = {total}", k=2 + n, width=width, total=total),
        "cat", w=cat_w)
    box(x_cv2, y_cat, "cv2\n" + tr("1x1 conv") + "\n-> c_out", "conv")
    arrow((xs[-1] + 0.65, y_cat), (x_cv2 - 0.65, y_cat))
    ax.set_xlim(-0.7, x_cv2 + 0.8)
    ax.set_ylim(y_cat - 0.6, y_top + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(tr("C2f with n = {n}: chunk 0 skips every bottleneck; all {k} chunks are concatenated", n=n, k=2 + n),
                 fontsize=TEXT_PT)
    return fig


# ---------------------------------------------------------------------------------------------- neck figures
def box_cells(box: Sequence[float], stride: int, hw: tuple[int, int]) -> np.ndarray:
    """The ``(H, W)`` boolean mask of the cells of a stride-``stride`` map that a pixel box ``x0, y0, x1, y1`` touches."""
    h, w = hw
    x0, y0, x1, y1 = (float(v) / stride for v in box)
    m = np.zeros((h, w), dtype=bool)
    m[max(0, int(y0)):min(h, int(np.ceil(y1))), max(0, int(x0)):min(w, int(np.ceil(x1)))] = True
    return m


def selective_channel(fmap: np.ndarray | torch.Tensor, mask: np.ndarray) -> int:
    """The channel of a ``(C, H, W)`` map most selective for a region: largest (mean inside - mean outside) / std.

    The right summary to show *one object* on a deep map: the mean over channels mixes hundreds of channels,
    most of them about other things, so another object can come out brightest.
    """
    f = _numpy(fmap).astype(np.float32)
    mask = np.asarray(mask, dtype=bool)
    score = (f[:, mask].mean(1) - f[:, ~mask].mean(1)) / (f.reshape(len(f), -1).std(1) + 1e-6)
    return int(score.argmax())


def strength(fmap: np.ndarray | torch.Tensor) -> np.ndarray:
    """Each cell's feature strength: the length (L2 norm) of its channel vector, ``(C, H, W)`` -> ``(H, W)``.

    Unlike the mean over channels, positive and negative channels cannot cancel.
    """
    return np.sqrt((_numpy(fmap).astype(np.float32) ** 2).sum(0))


def _show_image(ax, image, boxes=(), classes=None, title: str = "") -> None:
    """An image on ``ax`` with its boxes drawn in class colours (no ticks)."""
    from matplotlib.patches import Rectangle

    ax.imshow(to_uint8(np.asarray(image) if isinstance(image, Image.Image) else image))
    cls = list(_numpy(classes).reshape(-1)) if classes is not None else [0] * len(boxes)
    for b, c in zip(_numpy(boxes).reshape(-1, 4) if len(boxes) else [], cls):
        ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, lw=1.5,
                               ec=mpl_colour(int(c))))
    ax.set_title(title)
    ax.axis("off")


def image_map_rows(rows: Sequence[tuple[Any, Sequence[np.ndarray | torch.Tensor], Sequence[str]]],
                   title: str = "", label: str = "", size: float = 2.6, signed: bool | None = None):
    """Rows of "image | map | map | ...": each map with its own colour bar (the levels have their own units).

    ``rows`` holds ``(image, maps, titles)``; the image is drawn once per row, the maps next to it.
    """
    import matplotlib.pyplot as plt

    ncols = 1 + max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols * 1.15, size * 0.72 * len(rows) + 0.5),
                             squeeze=False)
    for i, (image, maps, titles) in enumerate(rows):
        _show_image(axes[i, 0], image)
        for j, ax in enumerate(axes[i, 1:]):
            ax.axis("off")
            if j < len(maps):
                m = _numpy(maps[j]).astype(np.float32)
                add_colorbar(ax.imshow(m, **imshow_kwargs(m, signed)), ax, label)
                ax.set_title(titles[j] if j < len(titles) else "")
    fig.suptitle(tr("{title} (each map on its own colour scale)", title=title) if title
                 else tr("each map on its own colour scale"))
    fig.tight_layout()
    return fig


def fpn_diagram(ax=None, levels: Sequence[str] = ("C3", "C4", "C5"), channels: Sequence[int] | None = None,
                width: int | None = None, strides: Sequence[int] = (8, 16, 32)):
    """The FPN's wiring as a graph (matplotlib): 1x1 laterals, nearest 2x upsample and add top-down, 3x3 smoothing.

    Backbone maps ``C_i`` on the left (coarsest on top), the sum nodes of the top-down column in the middle,
    the outputs ``P_i`` on the right.  ``channels`` / ``width`` write the channel counts on the boxes.
    Returns the figure (drawn on ``ax`` when given).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyBboxPatch

    if ax is None:
        fig, ax = plt.subplots(figsize=(4.4, 3.6))
    else:
        fig = ax.figure
    n = len(levels)
    ys = {lv: 1.6 * (i - (n - 1) / 2) for i, lv in enumerate(levels)}        # finest at the bottom
    blue, grey = "#{:02x}{:02x}{:02x}".format(*BLUE), "#444444"

    def box(x: float, y: float, text: str, fc: str, w: float = 1.25, h: float = 0.72) -> None:
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03", fc=fc, ec=grey, lw=1))
        ax.text(x, y, text, ha="center", va="center", fontsize=MIN_PT)

    def arrow(p0: tuple[float, float], p1: tuple[float, float], text: str = "", dy: float = 0.13, **kw) -> None:
        ax.annotate("", xy=p1, xytext=p0, arrowprops=dict(arrowstyle="-|>", color=blue, lw=1.4, **kw))
        if text:
            ax.text((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2 + dy, text, ha="center", va="bottom",
                    fontsize=MIN_PT, color=blue)

    x_c, x_sum, x_p = 0.0, 2.6, 4.6
    for i, lv in enumerate(levels):
        y = ys[lv]
        ch = f"\n{channels[i]} ch" if channels is not None else ""
        box(x_c, y, f"{lv} /{strides[i]}{ch}", "#cfe3f7")
        box(x_p, y, f"P{lv[1:]}" + (f"\n{width} ch" if width else ""), "#d8f0d2")
        ax.add_patch(Circle((x_sum, y), 0.24, fc="#fde3c8", ec=grey, lw=1))
        ax.text(x_sum, y, "+", ha="center", va="center", fontsize=TEXT_PT + 2)
        arrow((x_c + 0.65, y), (x_sum - 0.26, y), "1x1")
        arrow((x_sum + 0.26, y), (x_p - 0.65, y), "3x3")
    for hi, lo in zip(levels[::-1], levels[::-1][1:]):
        arrow((x_sum, ys[hi] - 0.26), (x_sum, ys[lo] + 0.26))
        ax.text(x_sum + 0.12, (ys[hi] + ys[lo]) / 2, tr("upsample 2x\n(top-down)"), ha="left", va="center",
                fontsize=MIN_PT, color=blue)
    ax.set_xlim(-0.8, x_p + 0.8)
    ax.text((x_c + x_p) / 2, min(ys.values()) - 0.62, tr("1x1 = lateral, 3x3 = smoothing"), ha="center",
            va="top", fontsize=MIN_PT, color=blue)
    ax.set_ylim(min(ys.values()) - 1.0, max(ys.values()) + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(tr("FPN wiring: lateral, top-down add, smooth"))
    return fig


def fpn_figure(image, boxes, classes, on: dict[str, Any], off: dict[str, Any], *, title: str = "",
               channels: Sequence[int] | None = None):
    """The FPN lesson in one figure: its wiring, the image, and per level what the top-down path added.

    ``on`` / ``off`` map level names (``"P3"``...) to ``(C, H, W)`` outputs with the top-down path on and off.
    Top row: the feature strength (:func:`strength`) of each ``P`` with every path on, one shared scale.
    Bottom row: strength with the path minus without, centred diverging map, one shared scale: red cells got
    stronger from what came down, white ones were untouched (``P5``: nothing comes down to the top).
    """
    import matplotlib.pyplot as plt

    levels = list(on)
    s_on = [strength(on[k]) for k in levels]
    diff = [a - strength(off[k]) for a, k in zip(s_on, levels)]
    fig = plt.figure(figsize=(3.0 + 2.5 * (len(levels) + 1) + 0.8, 5.0))
    gs = fig.add_gridspec(2, len(levels) + 3, width_ratios=[1.7, 1, *([1] * len(levels)), 0.07])
    fpn_diagram(fig.add_subplot(gs[:, 0]), [f"C{k[1:]}" for k in levels], channels, on[levels[0]].shape[0])
    _show_image(fig.add_subplot(gs[0, 1]), image, boxes, classes, tr("input"))
    kw_on, kw_d = imshow_kwargs(s_on, signed=False), imshow_kwargs(diff, signed=True)
    rows = [(s_on, kw_on, lambda k: tr("{k}: strength", k=k), tr("|P| (one scale)")),
            (diff, kw_d, lambda k: tr("{k}: top-down adds", k=k), tr("|P| on - off (one scale)"))]
    for r, (maps, kw, name, bar_label) in enumerate(rows):
        for j, (k, m) in enumerate(zip(levels, maps)):
            ax = fig.add_subplot(gs[r, 2 + j])
            im = ax.imshow(m, **kw)
            ax.set_title(name(k))
            ax.axis("off")
        fig.colorbar(im, cax=fig.add_subplot(gs[r, -1]), label=bar_label)
    leg = fig.add_subplot(gs[1, 1])
    leg.axis("off")
    leg.text(0.0, 0.5, tr("bottom row:\n|P| with top-down\nminus without;\nred = stronger,\nwhite = unchanged"),
             fontsize=MIN_PT, va="center", transform=leg.transAxes)
    fig.suptitle(title or tr("A trained FPN: what the top-down path adds at each level"))
    fig.tight_layout()
    return fig


def path_off_text(path: str) -> str:
    """What switching ``path`` off leaves, in words, in the learner's language (the first column of
    :func:`fusion_rows`)."""
    return {
        "lateral": tr("lateral off:\neach level gets only\nwhat comes down\nfrom above"),
        "top_down": tr("top-down off:\neach level is only\nits own lateral"),
        "bottom_up": tr("bottom-up off:\nno short way up\nfrom the fine levels"),
    }.get(path) or path_off_title(path)


def path_off_title(path: str) -> str:
    """``"top-down off"``: the title of a path's row in :func:`fusion_rows`."""
    return tr("{path} off", path=path.replace("_", "-"))


def fusion_rows(image, levels: Sequence[str], out: Sequence[np.ndarray], carried: dict[str, Sequence[np.ndarray]],
                title: str = ""):
    """A neck's outputs and, one row per path, what that path carried: rows that differ by what they teach.

    Row 0: the image and each level's feature strength with all paths on (one shared scale, one bar).  Then one
    row per switched-off path: what switching it off leaves (in words), and per level the mean over channels of
    ``|on - off|`` (what the path carried), all these rows on one shared scale with one bar, so a blank panel
    really means "this path brings nothing here".
    """
    import matplotlib.pyplot as plt

    n = len(levels)
    fig, axes = plt.subplots(1 + len(carried), n + 1, figsize=(2.5 * (n + 1) + 0.8, 2.1 * (1 + len(carried))),
                             squeeze=False)
    _show_image(axes[0, 0], image, title=tr("input"))
    kw = imshow_kwargs(list(out), signed=False)
    for j, (lv, m) in enumerate(zip(levels, out), start=1):
        im = axes[0, j].imshow(m, **kw)
        axes[0, j].set_title(tr("{level}: strength, all on", level=lv))
        axes[0, j].axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, pad=0.02, label=tr("|P| (one scale)"))
    if carried:
        kw = imshow_kwargs([m for ms in carried.values() for m in ms], signed=False)
        for i, (path, maps) in enumerate(carried.items(), start=1):
            axes[i, 0].text(0.5, 0.5, path_off_text(path), ha="center", va="center",
                            fontsize=TEXT_PT, transform=axes[i, 0].transAxes)
            axes[i, 0].set_title(path_off_title(path))
            axes[i, 0].axis("off")
            for j, (lv, m) in enumerate(zip(levels, maps), start=1):
                im = axes[i, j].imshow(m, **kw)
                axes[i, j].set_title(tr("{level}: {path} carried", level=lv, path=path.replace("_", "-")))
                axes[i, j].axis("off")
        fig.colorbar(im, ax=axes[1:].ravel().tolist(), fraction=0.03, pad=0.02,
                     label=tr("mean |on - off| (one scale)"))
    fig.suptitle(title or tr("What each path carries to each level"))
    return fig


def tap_markers(img: Image.Image, points: Sequence[tuple[float, float]], inside: Sequence[bool],
                pinned: Sequence[bool] = ()) -> Image.Image:
    """Draw a dilated conv's taps in place: a filled blue dot inside the map, a hollow vermilion ring with a
    cross in the zero padding -- told apart by shape as well as colour.  ``pinned`` taps (beyond the
    picture, drawn at its border) are drawn smaller."""
    d = ImageDraw.Draw(img)
    for k, ((x, y), ok) in enumerate(zip(points, inside)):
        r = 3 if (pinned and pinned[k]) else 5
        if ok:
            d.ellipse([x - r, y - r, x + r, y + r], fill=BLUE, outline=WHITE)
        else:
            d.ellipse([x - r - 1, y - r - 1, x + r + 1, y + r + 1], outline=RED, width=2)
            d.line([x - r, y - r, x + r, y + r], fill=RED, width=2)
            d.line([x - r, y + r, x + r, y - r], fill=RED, width=2)
    return img


#: What :func:`tap_markers` and the field-of-view box mean, for :func:`legend` (in English; :func:`tap_legend`
#: gives the names in the learner's language).
TAP_LEGEND: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("tap inside the map (dot)", BLUE), ("tap in the zero padding (ring, x)", RED), ("field of view", ORANGE))


def tap_legend() -> tuple[list[str], list[tuple[int, int, int]]]:
    """The names (in the learner's language) and colours of :data:`TAP_LEGEND`, for :func:`legend`."""
    names = [tr("tap inside the map (dot)"), tr("tap in the zero padding (ring, x)"), tr("field of view")]
    return names, [c for _, c in TAP_LEGEND]


def attention_probe_figure(image, label: int, spatial: np.ndarray | torch.Tensor,
                           channel: np.ndarray | torch.Tensor, n_positive: int):
    """A trained attention probe: one picture, its spatial attention, and the channel weights of many pictures.

    ``channel`` is ``(N, C)`` weights, rows sorted so the ``n_positive`` pictures with the target come first.
    Every map is on the sigmoid's full 0..1 scale (with colour bars), so a flat map looks flat.
    """
    import matplotlib.pyplot as plt

    sp = _numpy(spatial)
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.0), gridspec_kw={"width_ratios": [1, 1.2, 2.8]})
    _show_image(axes[0], image, title=tr("a picture, label {label}", label=int(label)))
    add_colorbar(axes[1].imshow(sp, cmap=HEAT, vmin=0, vmax=1), axes[1])
    axes[1].set_title(tr("spatial weights {lo:.3f}..{hi:.3f}:\nalmost flat, idle", lo=sp.min(), hi=sp.max()))
    axes[1].axis("off")
    ch = _numpy(channel)
    add_colorbar(axes[2].imshow(ch, aspect="auto", cmap=HEAT, vmin=0, vmax=1, interpolation="nearest"), axes[2],
                 tr("weight"))
    axes[2].axhline(n_positive - 0.5, color="white", lw=1.5, ls="--")
    axes[2].set_title(tr("channel weights of {n} validation pictures\n(above the dashed line: the {k} with a red "
                         "square)", n=len(ch), k=n_positive))
    axes[2].set_xlabel(tr("channel"))
    axes[2].set_ylabel(tr("picture"))
    fig.tight_layout()
    return fig


def tap_legend_handles() -> tuple[list, list[str]]:
    """Matplotlib legend handles and labels for :func:`tap_markers` and the field-of-view box (``fig.legend(*...)``)."""
    from matplotlib.lines import Line2D

    rgb = mpl_colour
    handles = [Line2D([], [], ls="", marker="o", ms=8, mfc=rgb(BLUE), mec="white"),
               Line2D([], [], ls="", marker="$\\otimes$", ms=10, color=rgb(RED)),
               Line2D([], [], ls="", marker="s", ms=10, mfc="none", mec=rgb(ORANGE), mew=2)]
    return handles, tap_legend()[0]


def labelled_scatter(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], xlabel: str, ylabel: str,
                     title: str = "", log: bool = True, ax=None):
    """Points named in the picture (no legend to decode): one dot and its label per item, e.g. every backbone's
    parameters vs FLOPs.  ``log`` axes keep a 0.2 GFLOPs model and a 15 GFLOPs one both readable.  Colours
    follow :func:`class_colour` of each label.  Returns the figure (drawn on ``ax`` when given).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    fig = ax.figure
    for x, y, name in zip(xs, ys, labels):
        ax.scatter([x], [y], s=40, color=mpl_colour(str(name)), edgecolor="black", zorder=3)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    if title:
        ax.set_title(title)
    ax.margins(0.15)
    # place each label where it overlaps no label placed before (right, then below, above, further, left)
    renderer = fig.canvas.get_renderer()
    offsets = [(6, 3), (6, -12), (6, 14), (6, -24), (6, 26), (-6, 3), (-6, -12), (6, -36), (6, 38)]
    from matplotlib.transforms import Bbox

    dots_px = ax.transData.transform(np.column_stack([xs, ys]))
    placed = [Bbox.from_bounds(px - 5, py - 5, 10, 10) for px, py in dots_px]   # labels avoid the dots too
    for x, y, name in sorted(zip(xs, ys, labels), key=lambda t: (t[0], t[1])):
        for dx, dy in offsets:
            t = ax.annotate(str(name), (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=MIN_PT,
                            ha="left" if dx > 0 else "right",
                            arrowprops=None if abs(dy) < 20 else dict(arrowstyle="-", color="0.5", lw=0.6))
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
            t.remove()
        else:
            t = ax.annotate(str(name), (x, y), xytext=(6, 3), textcoords="offset points", fontsize=MIN_PT)
            box = t.get_window_extent(renderer)
        placed.append(box)
    return fig


def seed_bars(groups: Mapping[str, Mapping[str, Sequence[float]]], ax=None, baseline: float | None = None,
              baseline_label: str = "", ylabel: str = "", title: str = "", ylim: tuple[float, float] | None = (0, 1)):
    """Grouped bars of several seeds: ``groups[group][series]`` is one value per seed; each bar is the mean with a
    ±std error bar and one black dot per seed, so the spread is seen, not only summarised.  A series keeps one
    colour (:data:`OKABE_ITO` by position) in every group; ``baseline`` draws a labelled dashed line (e.g. always
    answering the commonest class).  Returns the axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    names = list(groups)
    series = list(dict.fromkeys(k for g in groups.values() for k in g))
    width = 0.8 / max(1, len(series))
    for j, key in enumerate(series):
        xs = [i + width * (j - (len(series) - 1) / 2) for i in range(len(names))]
        vals = [np.asarray(groups[g].get(key, []), dtype=float) for g in names]
        ax.bar(xs, [v.mean() if len(v) else 0.0 for v in vals], width=width * 0.95, alpha=0.85, label=key,
               yerr=[v.std(ddof=1) if len(v) > 1 else 0.0 for v in vals], capsize=3,
               color=mpl_colour(OKABE_ITO[j % len(OKABE_ITO)]))
        for x, v in zip(xs, vals):
            ax.plot([x] * len(v), v, "k.", ms=4)
    if baseline is not None:
        ax.axhline(baseline, ls="--", c="k", lw=1, label=baseline_label or None)
    ax.set_xticks(range(len(names)), names)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=MIN_PT)
    return ax


def _sources(frm: int | str, index: int) -> list[int]:
    """The layer indices a layer-table row reads (``-1`` = the layer just before; ``"[-1, 6]"`` = two)."""
    if isinstance(frm, int):
        return [index + frm if frm < 0 else frm]
    return [index + int(s) if int(s) < 0 else int(s) for s in str(frm).strip("[]").split(",")]


def layer_graph(rows: Sequence[dict[str, Any]], ax=None, title: str = ""):
    """A layer table (``index, from, module, part, params, stride, channels``) drawn as a graph: a matplotlib figure.

    One box per layer (module, output channels and stride) in four columns: the backbone going down, the
    neck's top-down path going back up (to its finest stride), its bottom-up path going down again, and the
    head.  Grey arrows join consecutive layers; orange arrows are the skip connections, a layer that reads an
    earlier layer's output besides (or instead of) the one just before it -- the concats of a PAN-FPN neck and
    the head's inputs.  Rows as :func:`course_lib.zoo.yolov8.layer_table` measures them.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    rows = list(rows)
    neck = [r for r in rows if r["part"] == "neck"]
    fine = min((r["stride"] for r in neck), default=0)
    split = max((k for k, r in enumerate(neck) if r["stride"] == fine), default=-1)
    columns: list[list[dict[str, Any]]] = [[r for r in rows if r["part"] == "backbone"], neck[:split + 1],
                                           neck[split + 1:], [r for r in rows if r["part"] == "head"]]
    names = ["backbone", "neck: top-down", "neck: bottom-up", "head"]   # the colour follows the part before ":"
    shown = [tr("backbone"), tr("neck: top-down"), tr("neck: bottom-up"), tr("head")]
    pos: dict[int, tuple[float, float]] = {}
    bottom = max(len(columns[0]) - 1, 0)
    for k, r in enumerate(columns[0]):
        pos[r["index"]] = (0.0, float(k))
    for k, r in enumerate(columns[1]):                     # back up, from the deepest backbone map
        pos[r["index"]] = (1.0, float(bottom - k))
    top = bottom - max(len(columns[1]) - 1, 0)
    for k, r in enumerate(columns[2]):
        pos[r["index"]] = (2.0, float(top + k))
    for r in columns[3]:
        ys = [pos[s][1] for s in _sources(r["from"], r["index"]) if s in pos]
        pos[r["index"]] = (3.0, sum(ys) / len(ys) if ys else float(bottom) / 2)
    xs = {c: 3.3 * c for c in range(4)}
    w, h = 2.5, 0.74
    part_colour = {"backbone": OKABE_ITO[4], "neck": OKABE_ITO[0], "head": OKABE_ITO[2]}
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 0.62 * (bottom + 1) + 1.6))
    else:
        fig = ax.figure

    def bw(r: dict[str, Any]) -> float:
        return w + 0.5 if r["part"] == "head" else w

    def xy(i: int) -> tuple[float, float]:
        c, y = pos[i]
        return xs[int(c)], y

    for r in rows:
        x, y = xy(r["index"])
        c = np.array(mpl_colour(part_colour.get(r["part"], GREY)))
        ax.add_patch(FancyBboxPatch((x - bw(r) / 2, y - h / 2), bw(r), h, boxstyle="round,pad=0.02",
                                    fc=(*c, 0.28), ec=c * 0.7, lw=1.2))
        stride = r["stride"] if isinstance(r["stride"], str) else f"{r['stride']}"
        params = f"{r['params'] / 1e3:.0f}k" if r["params"] >= 1000 else f"{r['params']}"
        ax.text(x, y - 0.13, f"{r['index']}  {r['module']}", ha="center", va="center", fontsize=TEXT_PT,
                fontweight="bold")
        ax.text(x, y + 0.19, tr("{ch} ch  /{stride}  {params} params", ch=r["channels"], stride=stride, params=params),
                ha="center", va="center", fontsize=MIN_PT)
    skip = np.array(mpl_colour(ORANGE)) * 0.85
    n_skips = 0
    for r in rows:
        x1, y1 = xy(r["index"])
        for s in _sources(r["from"], r["index"]):
            if s not in pos:
                continue
            x0, y0 = xy(s)
            is_skip = s != r["index"] - 1 or r["part"] == "head"
            same_col = x0 == x1
            far = abs(x1 - x0) > 4                          # jumps over a column: arc around its boxes
            if same_col:
                start, end = ((x0, y0 + h / 2), (x1, y1 - h / 2)) if y1 > y0 else ((x0, y0 - h / 2), (x1, y1 + h / 2))
            elif far:                                       # round the side of the columns it jumps over
                below = y0 > (top + bottom) / 2
                start = (x0 + w / 4, y0 + (h / 2 if below else -h / 2))
                end = (x1 - bw(r) / 2, y1) if below else (x1 - bw(r) / 4, y1 - h / 2)
            else:
                start, end = (x0 + w / 2 * np.sign(x1 - x0), y0), (x1 - bw(r) / 2 * np.sign(x1 - x0), y1)
            if not is_skip or (abs(y1 - y0) < 0.5 and not far):
                rad = 0.0
            elif far:
                rad = 0.4 if below else -0.4
            else:
                rad = 0.25 if y1 < y0 else -0.25
            ax.annotate("", xy=end, xytext=start, arrowprops=dict(
                arrowstyle="-|>", lw=1.8 if is_skip else 1.0, color=skip if is_skip else (0.45, 0.45, 0.45),
                connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0))
            n_skips += is_skip
    for c, name in enumerate(names):
        if columns[c]:
            ax.text(xs[c], -0.95, shown[c], ha="center", va="center", fontsize=TEXT_PT + 1, fontweight="bold",
                    color=np.array(mpl_colour(part_colour.get(name.split(":")[0], GREY))) * 0.7)
    ax.text(xs[3], bottom + 0.2, tr("orange arrows: skip connections\n(concat inputs, head inputs)\n"
                                    "ch = output channels, /s = stride"), ha="center", va="center", fontsize=MIN_PT, color=(0.3, 0.3, 0.3))
    ax.set_xlim(-w / 2 - 0.2, xs[3] + w / 2 + 0.5)
    ax.set_ylim(bottom + 1.3, -1.4)
    ax.axis("off")
    ax.set_title(title or tr("{n} layers, {k} skip connections", n=len(rows), k=n_skips), fontsize=TEXT_PT + 1)
    fig.n_skips = n_skips
    return fig


# ---------------------------------------------------------------------------------------------- pictures shown
# Every picture a lesson shows says what it shows in words (alt text, read by screen readers and written into the
# rendered site), and every matplotlib figure is checked against the rules above when it is shown.  Lessons give
# the words with ``describe(fig, "...")`` (or ``show(fig, "...")``); ``import course_lib`` teaches IPython to put
# them next to the PNG (:func:`install_display`), so a figure that is returned at the end of a cell or passed to
# ``plt.show()`` carries them too.

#: The attribute :func:`describe` stores a picture's alt text in.
ALT_ATTR = "course_alt"


def describe(picture: Any, alt: str) -> Any:
    """Give a picture (a matplotlib figure or a PIL image) its alt text -- what it shows, in words -- and return it.

    Write what a reader who cannot see the picture needs: the kind of picture and the point it makes, e.g.
    ``"Bar chart: mAP@0.5 of three detectors over 3 seeds; the CNN with FPN is highest."``::

        fig, ax = plt.subplots(); ...; render.describe(fig, "Loss falls from 1.1 to 0.3 over 20 epochs.");

    (the ``;`` matters on a cell's last line: the returned figure would be shown a second time.)
    """
    text = " ".join(str(alt).split())
    if not text:
        raise ValueError("alt text is empty: say in words what the picture shows")
    setattr(picture, ALT_ATTR, text)
    install_display()  # course_lib may have been imported before IPython started (a sitecustomize): now it runs
    return picture


def alt_text(picture: Any) -> str | None:
    """The alt text :func:`describe` gave ``picture`` (``None`` when it has none)."""
    return getattr(picture, ALT_ATTR, None)


def _figure_texts(fig) -> list:
    """Every piece of text a reader sees in ``fig``: titles, labels, tick labels of visible axes, legends, notes."""
    texts = list(fig.texts)
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        if getattr(fig, name, None) is not None:
            texts.append(getattr(fig, name))
    texts += [t for lg in fig.legends for t in [*lg.get_texts(), lg.get_title()]]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.get_legend() is not None:
            texts += [*ax.get_legend().get_texts(), ax.get_legend().get_title()]
        if ax.axison:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_visible():
                    texts += [axis.label, *axis.get_ticklabels(which="both")]
    return [t for t in texts if t is not None and t.get_visible() and t.get_text().strip()]


def figure_titles(fig) -> list[str]:
    """The figure's title and its panels' titles, in reading order (empty ones left out)."""
    out = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    out += [ax.get_title() for ax in fig.axes if ax.get_visible()]
    return [" ".join(t.split()) for t in out if t.strip()]


#: Grey scales show a grey photo (or a filter's weights as a picture), not a value to read off a scale.
PHOTO_CMAPS = frozenset({"gray", "grey", "gray_r", "grey_r", "Greys", "Greys_r", "binary", "binary_r"})


def _scalar_images(fig) -> list:
    """The colour-mapped pictures of ``fig``: 2-D data through a colour map (RGB photos and grey ones are not)."""
    out = []
    for ax in fig.axes:
        for im in ax.images:
            arr = im.get_array()
            if arr is not None and np.ndim(arr) == 2 and im.get_cmap().name not in PHOTO_CMAPS:
                out.append(im)
    return out


def figure_problems(fig) -> list[str]:
    """What in ``fig`` breaks the course's figure rules (an empty list: none). Draw the figure first.

    The rules code can check: no text under :data:`MIN_PT`; no colour map from :data:`BANNED_CMAPS`; every
    colour-mapped picture has a colour bar, or shares its exact scale (map and limits) with one that has.
    """
    problems = []
    small = sorted({(round(t.get_fontsize(), 1), t.get_text().strip()[:40]) for t in _figure_texts(fig)
                    if t.get_fontsize() < MIN_PT - 1e-6})
    problems += [f"text {text!r} is {size} pt (the smallest allowed is {MIN_PT} pt)" for size, text in small]
    mapped = [m for ax in fig.axes for m in [*ax.images, *ax.collections] if m.get_array() is not None]
    banned = sorted({m.get_cmap().name for m in mapped} & BANNED_CMAPS)
    problems += [f"colour map {name!r} invents edges; use render.SEQUENTIAL, HEAT or DIVERGING" for name in banned]

    def scale(im) -> tuple:
        return im.get_cmap().name, round(float(im.norm.vmin), 6), round(float(im.norm.vmax), 6)

    images = _scalar_images(fig)
    with_bar = {scale(im) for im in images if im.colorbar is not None}
    bare = [im for im in images if im.colorbar is None and scale(im) not in with_bar]
    if bare:
        titles = sorted({im.axes.get_title() or "untitled" for im in bare})
        problems.append(f"{len(bare)} colour-mapped panel(s) ({', '.join(titles)[:80]}) have neither a colour bar "
                        "nor the scale of one that has: render.add_colorbar, or render.map_grid(shared=True)")
    return problems


def figure_bytes(fig, dpi: float | None = None) -> bytes:
    """``fig`` as PNG bytes, cropped to what is drawn, at ``dpi`` (default: the figure's own, as the notebook's
    inline backend draws it); the figure stays open."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, bbox_inches="tight")
    return buf.getvalue()


def img_html(b64: str, alt: str, mime: str = "image/png") -> str:
    """An ``<img>`` of a base64 picture with its alt text, as wide as its output area at most."""
    import html

    return (f'<img src="data:{mime};base64,{b64}" alt="{html.escape(alt, quote=True)}" '
            'style="max-width:100%;height:auto">')


def picture_bundle(picture: Any, alt: str | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """``(data, metadata)`` of a picture as a notebook output: the PNG, and with alt text an ``<img alt=...>``.

    The HTML copy is what JupyterLab and the rendered site show, so screen readers get the words; the metadata
    keeps them (``metadata["image/png"]["alt"]``) with the figure-rule problems found
    (``metadata["image/png"]["course_problems"]``, checked by the site build).
    """
    import base64

    alt = alt or alt_text(picture)
    problems: list[str] = []
    if isinstance(picture, Image.Image):
        png = png_bytes(picture.convert("RGB") if picture.mode not in ("RGB", "RGBA", "L") else picture)
    else:
        png = figure_bytes(picture)
        try:  # after drawing: tick labels exist once the figure is drawn
            problems = figure_problems(picture)
        except Exception as err:  # an unusual artist must not cost the learner the picture
            problems = [f"the figure rules could not be checked: {err!r}"]
    b64 = base64.b64encode(png).decode("ascii")
    data = {"image/png": b64, "text/plain": f"[picture: {alt}]" if alt else "[picture without alt text]"}
    meta: dict[str, Any] = {"course_problems": problems}
    if alt:
        meta["alt"] = alt
        data["text/html"] = img_html(b64, alt)
    return data, {"image/png": meta}


def show(picture: Any, alt: str | None = None) -> None:
    """Display a picture now, with its alt text (``alt``, or what :func:`describe` gave it), and close the figure."""
    from IPython.display import display

    data, meta = picture_bundle(picture, alt)
    display(data, metadata=meta, raw=True)
    if not isinstance(picture, Image.Image):
        import matplotlib.pyplot as plt

        plt.close(picture)


def install_display() -> bool:
    """Make IPython show matplotlib figures and PIL images through :func:`picture_bundle` (alt text + rules).

    ``import course_lib`` calls it, and so does :func:`describe` (course_lib may be imported before IPython's
    shell exists, e.g. by a ``sitecustomize``); outside IPython it does nothing and returns ``False``.
    """
    import sys

    ipython = sys.modules.get("IPython")  # no IPython loaded, no shell: and importing it would cost 0.3 s
    ip = ipython.get_ipython() if ipython is not None else None
    if ip is None or not hasattr(ip, "display_formatter"):
        return False
    if getattr(ip, "_course_display", False):
        return True
    from matplotlib.figure import Figure

    bundles = ip.display_formatter.mimebundle_formatter
    bundles.for_type(Figure, picture_bundle)
    bundles.for_type(Image.Image, picture_bundle)
    ip._course_display = True
    return True
