"""A battery of bad and odd inputs: each gets a clear message, and the kernel lives on.

Three kinds of input are covered:

* **broken** inputs (not an image, cut-short files, empty files, files opened in text
  mode, closed or read to the end, 1x1 pictures,
  decompression bombs, wrong tensors, parts that do not fit, tampered or
  malicious checkpoints, misspelt names): each must raise the library's own
  error (``ImageError``, ``ContractError``, ``ChecksumError`` ...) whose message
  says what went wrong *and* what to do, never a crash deep inside torch or PIL;
* **odd but valid** pictures (16-bit, CMYK, palette, RGBA, grayscale, animated,
  rotated by EXIF): each must load as a correct ``(3, H, W)`` float image;
* the same files through the **upload widget** (``ImagePicker``), which must
  show the message and keep the current picture.

Finally the whole battery runs inside a real Jupyter kernel, which must still be
alive and responsive at the end.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import textwrap
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import course_lib as cl
from course_lib.contract import ContractError
from course_lib.weights import ChecksumError, WeightsNotFoundError

# ---------------------------------------------------------------------------------------------
# Files a learner might upload.


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A real photo (scikit-image's coffee cup), small."""
    img = Image.fromarray(cl.sample_images()["coffee"])
    return img.resize(size, Image.BILINEAR)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels but carries almost no data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def broken_files() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, regex the message must match)."""
    png = _encode(photo(), "PNG")
    jpeg = _encode(photo(), "JPEG", quality=90)
    rng = np.random.default_rng(0)
    return {
        "text_file.txt": (b"name,age\nalice,3\nbob,5\n", r"not an image.*looks like text"),
        "web_page_saved_as.png": (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", r"not an image"),
        "random_bytes.bin": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), r"not an image"),
        "document.pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", r"not an image"),
        "truncated.png": (png[: len(png) // 2], r"damaged|cut short|could not be read"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], r"damaged|cut short|could not be read"),
        "empty.png": (b"", r"empty.*0 bytes"),
        "one_pixel.png": (_encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"), r"only 1x1 pixels.*at least"),
        "thin_strip.png": (_encode(Image.new("RGB", (640, 4)), "PNG"), r"only 640x4 pixels"),
        "bomb_10_gigapixel.png": (png_header_only(100_000, 100_000), r"too large|megapixel"),
        "bomb_81_megapixel.png": (png_header_only(9_000, 9_000), r"megapixel limit.*Resize"),
    }


def odd_files() -> dict[str, tuple[bytes, Callable[[torch.Tensor], None]]]:
    """name -> (file bytes, check of the loaded tensor): unusual but valid pictures."""

    def gray16() -> bytes:
        arr = np.zeros((32, 48), np.uint16)
        arr[:, :16], arr[:, 16:32], arr[:, 32:] = 0, 32768, 65535
        return _encode(Image.fromarray(arr), "PNG")

    def check_gray16(t):
        assert t.shape == (3, 32, 48)
        assert t[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
        assert abs(t[0, 0, 20].item() - 0.5) < 0.01 and t[0, 0, 40].item() == pytest.approx(1.0)

    def cmyk() -> bytes:
        return _encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red in CMYK

    def check_red(t):
        assert t.shape[0] == 3
        r, g, b = t.mean(dim=(1, 2)).tolist()
        assert r > 0.8 and g < 0.2 and b < 0.2, (r, g, b)

    def palette() -> bytes:
        img = Image.new("P", (32, 32))
        img.putpalette([0, 0, 255] + [0, 0, 0] * 255)  # index 0 = blue
        return _encode(img, "PNG")

    def check_blue(t):
        assert t.shape == (3, 32, 32)
        assert t[:, 5, 5].tolist() == [0.0, 0.0, 1.0]

    def palette_transparent() -> bytes:
        img = Image.new("P", (32, 32))
        img.putpalette([0, 0, 255] + [0, 0, 0] * 255)
        return _encode(img, "PNG", transparency=0)

    def check_white(t):
        assert t.shape == (3, 32, 32)
        assert torch.allclose(t, torch.ones_like(t)), "transparent pixels should turn white"

    def rgba() -> bytes:
        arr = np.zeros((32, 32, 4), np.uint8)
        arr[:, :16] = (255, 0, 0, 255)  # left: opaque red; right: fully transparent
        return _encode(Image.fromarray(arr, "RGBA"), "PNG")

    def check_rgba(t):
        assert t.shape == (3, 32, 32)
        assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and t[:, 0, 31].tolist() == [1.0, 1.0, 1.0]

    def gray() -> bytes:
        return _encode(Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (20, 1))), "PNG")

    def check_gray(t):
        assert t.shape == (3, 20, 32)
        assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])

    def gray_alpha() -> bytes:
        return _encode(Image.new("LA", (24, 24), (0, 255)), "PNG")

    def check_black(t):
        assert t.shape == (3, 24, 24) and t.max().item() == 0.0

    def animated() -> bytes:
        frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
        return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    def bilevel() -> bytes:
        return _encode(Image.new("1", (40, 20), 1), "PNG")

    def check_bilevel(t):
        assert t.shape == (3, 20, 40) and t.min().item() == 1.0

    def exif_rotated() -> bytes:
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write it
        return _encode(photo((80, 40)), "JPEG", exif=exif)

    def check_rotated(t):
        assert t.shape == (3, 80, 40), "the EXIF orientation tag must be honoured"

    def webp() -> bytes:
        return _encode(photo(), "WEBP")

    def check_photo(t):
        assert t.shape == (3, 64, 96) and 0 <= t.min() and t.max() <= 1

    return {
        "gray_16bit.png": (gray16(), check_gray16),
        "cmyk.jpg": (cmyk(), check_red),
        "palette.png": (palette(), check_blue),
        "palette_transparent.png": (palette_transparent(), check_white),
        "rgba.png": (rgba(), check_rgba),
        "grayscale.png": (gray(), check_gray),
        "gray_alpha.png": (gray_alpha(), check_black),
        "animated.gif": (animated(), check_red),
        "bilevel.png": (bilevel(), check_bilevel),
        "phone_rotated.jpg": (exif_rotated(), check_rotated),
        "photo.webp": (webp(), check_photo),
    }


# ---------------------------------------------------------------------------------------------
# Misuse of the public API.


@dataclass
class Case:
    id: str
    call: Callable[[Path], object]  # receives a scratch folder
    raises: type[BaseException] | tuple[type[BaseException], ...]
    message: str  # regex the message must match


def _model():
    return cl.build_model({"backbone": "resnet18", "neck": "gap", "head": {"name": "classification", "num_classes": 3}})


def _checkpoint(tmp: Path) -> Path:
    path = tmp / "head.pt"
    torch.save({"weight": torch.zeros(3, 4), "bias": torch.zeros(3)}, path)
    return path


class _Payload:
    """Unpickling this object would create a file: a stand-in for malicious code in a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _pickled_code(tmp: Path) -> object:
    path = tmp / "innocent_looking.pt"
    marker = tmp / "code_ran.txt"
    torch.save({"weight": torch.zeros(2), "surprise": _Payload(marker)}, path)
    try:
        return cl.weights.load_checkpoint(path)
    finally:
        assert not marker.exists(), "the checkpoint's pickled code was executed!"


def _tampered_hub_file(tmp: Path) -> object:
    """A file with the official name but other contents in torch's cache: the resolver must refuse it."""
    import torch.hub

    (tmp / "checkpoints").mkdir(exist_ok=True)
    (tmp / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"not the real weights")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp))
    try:
        return cl.weights.resolve("resnet18", download=False)
    finally:
        torch.hub.set_dir(old)


def _missing_weights(tmp: Path) -> object:
    import torch.hub

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp))  # an empty cache
    try:
        return cl.weights.resolve("resnet50", download=False)
    finally:
        torch.hub.set_dir(old)


def _empty_file(tmp: Path) -> object:
    (tmp / "empty.jpg").write_bytes(b"")
    return cl.load_image(tmp / "empty.jpg")


def _text_mode_file(tmp: Path) -> object:
    (tmp / "photo.png").write_bytes(_encode(photo(), "PNG"))
    with open(tmp / "photo.png") as f:  # forgot the "b"
        return cl.load_image(f)


def _closed_file(tmp: Path) -> object:
    (tmp / "photo.png").write_bytes(_encode(photo(), "PNG"))
    with open(tmp / "photo.png", "rb") as f:
        pass
    return cl.load_image(f)  # used after the with block


def _stream_read_to_end(tmp: Path) -> object:
    buf = io.BytesIO(_encode(photo(), "PNG"))
    cl.load_image(buf)
    return cl.load_image(buf)  # the same stream a second time, without seek(0)


ILL = r"add the batch dimension"
API_CASES = [
    Case("model_one_image_no_batch", lambda t: _model()(torch.rand(3, 64, 64)), ValueError, ILL),
    Case("model_channels_last", lambda t: _model()(torch.rand(1, 64, 64, 3)), ValueError, r"permute\(0, 3, 1, 2\)"),
    Case("model_gray_one_channel", lambda t: _model()(torch.rand(2, 1, 64, 64)), ValueError, r"3 colour channels"),
    Case("model_uint8_tensor", lambda t: _model()(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)), TypeError,
         r"float tensor.*\.float\(\) / 255"),
    Case("model_numpy_array", lambda t: _model()(np.zeros((1, 3, 64, 64), np.float32)), TypeError,
         r"torch\.Tensor.*load_image"),
    Case("model_too_small", lambda t: _model()(torch.rand(1, 3, 8, 8)), ValueError, r"at least 32x32"),
    Case("trace_channels_last", lambda t: _model().trace(torch.rand(64, 64, 3)), ValueError, r"\(B, 3, H, W\)"),
    Case("backbone_does_not_fit_neck",
         lambda t: cl.build_model({"backbone": "resnet18",
                                   "neck": {"name": "fpn", "in_keys": ["C3", "C4", "C5", "C6"]},
                                   "head": {"name": "classification", "num_classes": 3}}),
         ContractError, r"fpn.*expects.*C6.*backbone 'resnet18' gives C2 \(64ch /4\)"),
    Case("neck_does_not_fit_head",
         lambda t: cl.build_model({"backbone": "resnet18", "neck": "gap",
                                   "head": {"name": "detection", "num_classes": 3}}),
         ContractError, r"detection.*spatial.*neck 'gap' \(on backbone 'resnet18'\) gives pooled"),
    Case("unknown_backbone_name", lambda t: cl.backbones.build("resnet19"), KeyError,
         r"unknown backbone 'resnet19'\. Did you mean 'resnet18'"),
    Case("unknown_backbone_in_config",
         lambda t: cl.build_model({"backbone": "mobilenetv2", "head": {"name": "classification", "num_classes": 2}}),
         KeyError, r"Did you mean 'mobilenet_v2'"),
    Case("unknown_neck_name", lambda t: cl.necks.build("fnp", {"C5": cl.FeatureSpec(512, 32)}), KeyError,
         r"Did you mean 'fpn'"),
    Case("unknown_config_key",
         lambda t: cl.build_model({"backbone": "resnet18", "nek": "gap", "head": "classification"}), ValueError,
         r"unknown config keys \['nek'\]"),
    Case("checkpoint_sha256_mismatch", lambda t: cl.weights.load_checkpoint(_checkpoint(t), sha256="0" * 64),
         ChecksumError, r"sha256 is [0-9a-f]+\.\.\., expected 0000.*delete it and get it again"),
    Case("checkpoint_with_pickled_code", _pickled_code, ChecksumError, r"weights_only=True.*pickled code"),
    Case("official_weights_tampered", _tampered_hub_file, ChecksumError, r"resnet18-f37072fd\.pth: sha256"),
    Case("official_weights_missing", _missing_weights, WeightsNotFoundError,
         r"resnet50.*not on this machine.*pretrained=False"),
    Case("image_path_missing", lambda t: cl.load_image(t / "no_such_photo.jpg"), cl.ImageError, r"no file at"),
    Case("image_path_is_folder", lambda t: cl.load_image(t), cl.ImageError, r"is a folder"),
    Case("image_empty_file", _empty_file, cl.ImageError, r"empty file \(0 bytes\)"),
    Case("image_float_0_255", lambda t: cl.load_image(np.full((32, 32, 3), 200.0)), cl.ImageError,
         r"Divide by 255"),
    Case("image_nan", lambda t: cl.load_image(np.full((32, 32, 3), np.nan)), cl.ImageError, r"NaN"),
    Case("image_wrong_channels", lambda t: cl.load_image(np.zeros((32, 32, 5), np.uint8)), cl.ImageError,
         r"\(H, W, 3\)"),
    Case("image_from_a_list", lambda t: cl.load_image([[0, 1], [1, 0]]), cl.ImageError, r"cannot make an image"),
    Case("image_file_in_text_mode", _text_mode_file, cl.ImageError, r"text mode.*open\(path, \"rb\"\)"),
    Case("image_file_closed", _closed_file, cl.ImageError, r"'photo\.png' is already closed.*with open"),
    Case("image_stream_read_to_end", _stream_read_to_end, cl.ImageError, r"already read to the end.*seek\(0\)"),
    Case("image_stream_empty", lambda t: cl.load_image(io.BytesIO()), cl.ImageError, r"empty \(0 bytes"),
    Case("image_stream_of_text", lambda t: cl.load_image(io.StringIO("a,b\n1,2\n")), cl.ImageError, r"text mode"),
]

BROKEN = broken_files()
ODD = odd_files()


def test_battery_is_big_enough():
    assert len(BROKEN) + len(ODD) + len(API_CASES) >= 40


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_file_gives_clear_message(name):
    data, message = BROKEN[name]
    with pytest.raises(cl.ImageError) as info:
        cl.load_image(data)
    assert re.search(message, str(info.value), re.I | re.S), str(info.value)
    assert info.value.__cause__ is None or not isinstance(info.value.__cause__, (MemoryError,))


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_file_opened_as_a_file_object_gives_the_same_message(name, tmp_path):
    data, message = BROKEN[name]
    (tmp_path / name).write_bytes(data)
    with open(tmp_path / name, "rb") as f, pytest.raises(cl.ImageError) as info:
        cl.load_image(f)
    assert re.search(message, str(info.value), re.I | re.S), str(info.value)


@pytest.mark.parametrize("name", list(ODD))
def test_odd_but_valid_picture_loads(name):
    data, check = ODD[name]
    t = cl.load_image(data)
    assert t.dtype == torch.float32 and t.ndim == 3 and t.shape[0] == 3
    assert 0.0 <= t.min().item() and t.max().item() <= 1.0
    check(t)
    assert torch.equal(cl.load_image(io.BytesIO(data)), t)  # the same file as an open stream


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_misuse_gives_clear_message(case, tmp_path):
    with pytest.raises(case.raises) as info:
        case.call(tmp_path)
    text = info.value.args[0] if isinstance(info.value, KeyError) and info.value.args else str(info.value)
    assert re.search(case.message, str(text), re.S), f"unclear message for {case.id}: {text}"


def test_odd_pictures_work_with_the_pretrained_model(classifier):
    """Converted pictures are ordinary images: the real classifier gives finite scores for every one of them,
    and the photo saved as WebP is still recognised as the photo (colours in the right order, not mangled)."""
    with torch.no_grad():
        want = classifier.head.decode(classifier(cl.load_image(np.asarray(photo()))[None]), k=1)[0][0].name
    for name, (data, _) in ODD.items():
        x = cl.load_image(data)
        if min(x.shape[1:]) < 32:
            x = torch.nn.functional.interpolate(x[None], size=(64, 64))[0]
        with torch.no_grad():
            logits = classifier(x[None])
        assert logits.shape == (1, 1000) and torch.isfinite(logits).all(), name
        if name == "photo.webp":
            assert want in [c.name for c in classifier.head.decode(logits, k=3)[0]], name


# ---------------------------------------------------------------------------------------------
# The same files through the upload widget.


def _upload(picker, name: str, data: bytes) -> None:
    """Set the FileUpload's value the way the browser front end does (ipywidgets 8 format)."""
    from datetime import datetime, timezone

    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    picker.upload.value = (
        {"name": name, "type": "", "size": len(data), "content": memoryview(data), "last_modified": when},
    )


@pytest.fixture
def picker():
    from course_lib.widgets import ImagePicker

    return ImagePicker()


@pytest.mark.parametrize("name", list(BROKEN))
def test_upload_widget_shows_message_and_keeps_picture(picker, name):
    data, message = BROKEN[name]
    before, before_name = picker.image.clone(), picker.name
    _upload(picker, name, data)
    status = re.sub(r"<[^>]+>", "", picker.info.value)
    assert name in status, status
    assert re.search(message, status, re.I | re.S), status
    assert picker.name == before_name and torch.equal(picker.image, before)
    # The picker still works after a bad file: a good one goes through.
    assert picker.load_bytes(_encode(photo(), "PNG"), "good.png")
    assert picker.image.shape == (3, 64, 96)


@pytest.mark.parametrize("name", list(ODD))
def test_upload_widget_accepts_odd_pictures(picker, name):
    data, check = ODD[name]
    seen = []
    picker.on_change(seen.append)
    _upload(picker, name, data)
    assert name in picker.name and "✓" in picker.info.value, picker.info.value
    check(picker.image)
    assert len(seen) == 1 and seen[0] is picker.image


# ---------------------------------------------------------------------------------------------
# The whole battery inside a real Jupyter kernel: it must stay alive.

KERNEL_CODE = textwrap.dedent(
    """
    import importlib.util, json, pathlib, re, sys, tempfile
    spec = importlib.util.spec_from_file_location("bad_inputs_battery", {path!r})
    battery = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = battery
    spec.loader.exec_module(battery)
    import course_lib as cl
    results = {{}}
    for name, (data, message) in battery.broken_files().items():
        try:
            cl.load_image(data); results[name] = "no error"
        except cl.ImageError as err:
            results[name] = "ok" if re.search(message, str(err), re.I | re.S) else f"unclear: {{err}}"
        except BaseException as err:
            results[name] = f"wrong error {{type(err).__name__}}: {{err}}"
    for case in battery.API_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                case.call(pathlib.Path(tmp)); results[case.id] = "no error"
            except case.raises as err:
                text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
                results[case.id] = "ok" if re.search(case.message, str(text), re.S) else f"unclear: {{text}}"
            except BaseException as err:
                results[case.id] = f"wrong error {{type(err).__name__}}: {{err}}"
    print("RESULTS" + json.dumps(results))
    """
)


@pytest.mark.slow
def test_battery_in_a_live_kernel():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ))
    try:
        out: list[str] = []

        def hook(msg):
            if msg["header"]["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["header"]["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(KERNEL_CODE.format(path=__file__), timeout=300, output_hook=hook)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text[-3000:]
        results = json.loads(text.split("RESULTS", 1)[1].strip().splitlines()[0])
        assert len(results) >= 30
        bad = {k: v for k, v in results.items() if v != "ok"}
        assert not bad, bad
        assert km.is_alive()
        reply = kc.execute_interactive("1 + 1", timeout=60, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok", "the kernel no longer answers after the battery"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
