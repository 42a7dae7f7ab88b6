"""Getting pictures in: real photos that ship offline, and a forgiving loader.

:func:`load_image` accepts whatever a learner has at hand (a path, an open file,
the bytes of an upload, a PIL image, a NumPy array) and returns a float tensor ``(3, H, W)``
in ``[0, 1]``, the shape every backbone expects.  Odd but valid pictures
(grayscale, RGBA, palette, CMYK, 16-bit, animated) are converted; things that
are not pictures raise :class:`ImageError` with a sentence that says what to do.
"""

from __future__ import annotations

import io
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest picture accepted, in pixels (a 40-megapixel photo is fine; a
#: "decompression bomb" that claims 100000 x 100000 pixels is not).
MAX_PIXELS = 50_000_000
MIN_SIDE = 16


class ImageError(ValueError):
    """The input could not be turned into an RGB image; the message says why and what to do."""


def _from_pil(img: Image.Image, max_pixels: int) -> np.ndarray:
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(
            f"the image claims to be {w}x{h} pixels ({w * h / 1e6:.0f} megapixels), more than the "
            f"{max_pixels / 1e6:.0f} megapixel limit. Resize it (e.g. to 1024 pixels on the long side) and try again."
        )
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animated GIF/PNG/WebP: use the first frame
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(
            f"the image file is damaged or cut short ({err}). Save or download it again, then upload the new copy."
        ) from None
    img = ImageOps.exif_transpose(img)  # phone photos: honour the rotation tag
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi, 0, 1)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)  # transparent -> white
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.size == 0:
        raise ImageError(f"the array is empty (shape {arr.shape}); an image needs height and width")
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # channels-first (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(
            f"an image array must be (H, W) grayscale or (H, W, 3) RGB / (H, W, 4) RGBA, got shape {arr.shape}"
        )
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    elif arr.dtype == np.uint8:
        arr = arr / 255.0
    elif arr.dtype == np.uint16:
        arr = arr / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("the array contains NaN or infinite values; an image needs finite numbers")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            if lo >= 0 and hi <= 255:
                raise ImageError(
                    f"float pixel values run from {lo:.3g} to {hi:.3g}; expected [0, 1]. "
                    "Divide by 255 (or pass a uint8 array)."
                )
            raise ImageError(f"float pixel values run from {lo:.3g} to {hi:.3g}; expected [0, 1]")
        arr = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"integer pixel values run from {lo} to {hi}; expected 0..255 (uint8)")
        arr = arr / 255.0
    else:
        raise ImageError(f"cannot read pixels of dtype {arr.dtype}; use uint8 (0..255) or float (0..1)")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:  # RGBA: composite on white
        alpha = arr[..., 3:4]
        arr = arr[..., :3] * alpha + (1 - alpha)
    return arr


def _read_file_object(f: Any) -> bytes:
    """The bytes of an open binary file (``open(p, "rb")``, ``io.BytesIO``, anything with ``.read()``)."""
    name = getattr(f, "name", None)
    what = f"the file {Path(name).name!r}" if isinstance(name, (str, os.PathLike)) else "the file object"
    if getattr(f, "closed", False):
        raise ImageError(
            f"{what} is already closed. Pass it while it is open (inside the `with open(...) as f:` block), "
            "or pass the path itself."
        )
    mode = getattr(f, "mode", "b")  # (gzip files give a number here)
    if isinstance(f, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise ImageError(
            f"{what} is open in text mode, but an image is binary data. Open it with open(path, \"rb\") "
            "(note the \"b\"), or pass the path itself."
        )
    try:
        data = f.read()
    except io.UnsupportedOperation:
        raise ImageError(f"{what} cannot be read (is it open for writing only?). Open it with open(path, \"rb\").") \
            from None
    except OSError as err:
        raise ImageError(f"{what} could not be read ({err}). Open it again, or pass the path itself.") from None
    if isinstance(data, str):
        raise ImageError(f"{what} gives text, but an image is binary data. Open it with open(path, \"rb\").")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"{what}'s .read() gave a {type(data).__name__}, not bytes; pass a binary file")
    if not data:
        raise ImageError(
            f"{what} is empty (0 bytes left to read): it holds no image, or it was already read to the end. "
            "Call f.seek(0) first (or open it again)."
        )
    return bytes(data)


def load_image(
    src: Any,
    max_side: int | None = None,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> torch.Tensor:
    """Turn ``src`` into a float tensor ``(3, H, W)`` with values in ``[0, 1]``.

    ``src`` may be a file path, an open binary file (``open("cat.jpg", "rb")``,
    ``io.BytesIO(...)``, anything with ``.read()``; read from where it stands),
    the raw bytes of an image file (what an upload widget gives), a PIL image, a
    NumPy array (``(H, W)``, ``(H, W, 3|4)``, uint8 / uint16 / float in [0, 1])
    or a tensor.  ``max_side`` shrinks large
    pictures so their long side is at most that many pixels.

    Raises :class:`ImageError` (a ``ValueError``) with a clear message for
    anything that is not a usable picture.
    """
    arr: np.ndarray
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.exists():
            raise ImageError(f"no file at {str(path)!r}; check the path (relative paths start at {Path.cwd()})")
        if path.is_dir():
            raise ImageError(f"{str(path)!r} is a folder, not an image file")
        src = path.read_bytes()
        if not src:
            raise ImageError(f"{path.name} is an empty file (0 bytes); it holds no image")
    elif callable(getattr(src, "read", None)) and not isinstance(src, (Image.Image, np.ndarray, torch.Tensor)):
        src = _read_file_object(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        if not data:
            raise ImageError("the upload is empty (0 bytes); it holds no image")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            if isinstance(err, UnidentifiedImageError):
                head = data[:32].lstrip()
                kind = " (it looks like text)" if head[:1].isascii() and head.isascii() and b"\x00" not in head else ""
                raise ImageError(
                    f"this is not an image file{kind}: none of the image formats PIL knows (PNG, JPEG, GIF, "
                    "BMP, TIFF, WebP, ...) can read it. Choose a photo file instead."
                ) from None
            raise ImageError(
                f"the image is far too large to open safely ({err}). Resize it to a few megapixels and try again."
            ) from None
        except OSError as err:
            raise ImageError(f"the image file could not be read ({err}); it may be damaged") from None
        arr = _from_pil(img, max_pixels)
    elif isinstance(src, Image.Image):
        arr = _from_pil(src, max_pixels)
    elif isinstance(src, torch.Tensor):
        t = src.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        arr = _from_array(t.numpy())
    elif isinstance(src, np.ndarray):
        arr = _from_array(src)
    else:
        raise ImageError(
            f"cannot make an image from a {type(src).__name__}; pass a file path, an open binary file, "
            "the bytes of an image file, a PIL image or a NumPy array"
        )
    h, w = arr.shape[:2]
    if h * w > max_pixels:
        raise ImageError(f"the image is {w}x{h} pixels, more than the {max_pixels / 1e6:.0f} megapixel limit")
    if min(h, w) < min_side:
        raise ImageError(
            f"the image is only {w}x{h} pixels; the course needs at least {min_side} pixels on each side "
            "(the deepest feature maps step 32 pixels at a time). Use a larger picture."
        )
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        t = torch.nn.functional.interpolate(t[None], size=size, mode="bilinear", antialias=True, align_corners=False)
        t = t[0].clamp(0, 1)
    return t


#: The real photos shipped inside scikit-image (no download needed).
SAMPLE_NAMES = (
    "chelsea", "coffee", "astronaut", "rocket", "horse", "hubble_deep_field", "brick", "grass", "gravel",
)


@lru_cache(maxsize=1)
def _samples() -> dict[str, np.ndarray]:
    from skimage import data

    out = {}
    for name in SAMPLE_NAMES:
        arr = np.asarray(getattr(data, name)())
        if arr.dtype == bool:  # the horse is a silhouette: black on white
            arr = np.where(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        arr = np.ascontiguousarray(arr[..., :3].astype(np.uint8))
        arr.setflags(write=False)
        out[name] = arr
    return out


def sample_images() -> dict[str, np.ndarray]:
    """Real photos, offline: name -> RGB ``uint8`` array ``(H, W, 3)``.

    ``chelsea`` is the cat of lesson 00.  The arrays are read-only; copy one
    before drawing on it.
    """
    return dict(_samples())


def to_uint8(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float tensor in [0, 1] (or an RGB array) -> ``(H, W, 3)`` uint8 for display."""
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        if t.ndim == 4:
            t = t[0]
        arr = t.permute(1, 2, 0).numpy()
    else:
        arr = np.asarray(img)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    return arr


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's ``lfw_subset``: 200 real 25x25 grayscale images, labels 1 = face, 0 = not a face."""
    from skimage import data

    images = np.asarray(data.lfw_subset(), dtype=np.float32)
    labels = np.array([1] * 100 + [0] * 100, dtype=np.int64)
    return images, labels


def imagenet_view(img: torch.Tensor, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """The view ImageNet models were evaluated on: shorter side to 256, centre crop 224x224.

    This is torchvision's ``weights.transforms()`` without the normalisation
    (course backbones normalise inside).  Works on ``(3, H, W)`` or ``(B, 3, H, W)``.
    """
    from torchvision.transforms import functional as TF

    out = TF.resize(img, resize, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(out, crop)
