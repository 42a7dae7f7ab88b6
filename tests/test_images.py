"""load_image converts every reasonable picture and explains every unreasonable one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import course_lib as cl


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_samples_are_real_rgb_photos():
    photos = cl.sample_images()
    assert {"chelsea", "coffee", "astronaut", "rocket", "horse", "brick"} <= set(photos)
    for name, arr in photos.items():
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, name
    assert photos["chelsea"].shape == (300, 451, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "1", "LA"])
def test_odd_modes_become_rgb(mode):
    img = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    x = cl.load_image(_png(img, "TIFF" if mode == "CMYK" else "PNG"))
    assert x.shape == (3, 30, 40) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_sixteen_bit_keeps_its_scale():
    arr = np.full((20, 20), 65535 // 2, dtype=np.uint16)
    x = cl.load_image(_png(Image.fromarray(arr)))
    assert float(x.mean()) == pytest.approx(0.5, abs=0.01)


def test_transparent_pixels_become_white():
    x = cl.load_image(_png(Image.new("RGBA", (20, 20), (255, 0, 0, 0))))
    assert torch.allclose(x, torch.ones_like(x))


def test_paths_pil_arrays_and_tensors(tmp_path):
    p = tmp_path / "cat.jpg"
    Image.fromarray(cl.sample_images()["chelsea"]).save(p)
    from_path = cl.load_image(p)
    from_pil = cl.load_image(Image.open(p))
    assert torch.equal(from_path, from_pil)
    arr = cl.sample_images()["coffee"]
    assert torch.equal(cl.load_image(arr), cl.load_image(torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255))


def test_max_side_shrinks_large_pictures():
    x = cl.load_image(np.zeros((1000, 2000, 3), np.uint8), max_side=500)
    assert x.shape == (3, 250, 500)


@pytest.mark.parametrize("src, match", [
    (b"", "empty"),
    (b"hello, I am a text file", "not an image"),
    (np.zeros((1, 1, 3), np.uint8), "only 1x1 pixels"),
    (np.zeros((10, 10, 7), np.uint8), "shape"),
    (np.full((20, 20, 3), 200.0), "Divide by 255"),
    (12345, "cannot make an image from a int"),
])
def test_bad_inputs_raise_image_error(src, match):
    with pytest.raises(cl.ImageError, match=match):
        cl.load_image(src)


def test_truncated_and_bomb_files(tmp_path):
    data = _png(Image.fromarray(cl.sample_images()["chelsea"]), "JPEG")
    with pytest.raises(cl.ImageError, match="damaged or cut short"):
        cl.load_image(data[: len(data) // 2])
    bomb = _png(Image.new("1", (20000, 20000)))
    with pytest.raises(cl.ImageError, match="megapixel"):
        cl.load_image(bomb, max_pixels=100_000_000 // 4)
    missing = tmp_path / "nope.png"
    with pytest.raises(cl.ImageError, match="no file"):
        cl.load_image(missing)


def test_open_binary_files_and_streams(tmp_path):
    p = tmp_path / "cat.jpg"
    Image.fromarray(cl.sample_images()["chelsea"]).save(p)
    want = cl.load_image(p)
    with open(p, "rb") as f:
        assert torch.equal(cl.load_image(f), want)
    assert torch.equal(cl.load_image(io.BytesIO(p.read_bytes())), want)
    with open(p, "rb", buffering=0) as f:  # a raw, unbuffered file
        assert torch.equal(cl.load_image(f, max_side=100), cl.load_image(p, max_side=100))

    class Upload:  # anything with .read(), e.g. a web response or an archive member
        def read(self):
            return p.read_bytes()

    assert torch.equal(cl.load_image(Upload()), want)


def test_a_stream_is_read_from_where_it_stands():
    data = _png(Image.new("RGB", (20, 20), (0, 0, 255)))
    buf = io.BytesIO(b"HEADER" + data)
    buf.seek(6)
    assert cl.load_image(buf)[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(cl.ImageError, match=r"empty \(0 bytes left.*already read to the end.*seek\(0\)"):
        cl.load_image(buf)  # now at the end
    buf.seek(6)
    assert cl.load_image(buf).shape == (3, 20, 20)


def test_bad_file_objects_say_what_to_do(tmp_path):
    p = tmp_path / "cat.png"
    p.write_bytes(_png(Image.new("RGB", (20, 20))))
    with open(p) as f, pytest.raises(cl.ImageError, match=r"'cat\.png' is open in text mode.*open\(path, \"rb\"\)"):
        cl.load_image(f)
    with open(p, "rb") as f:
        pass
    with pytest.raises(cl.ImageError, match=r"'cat\.png' is already closed.*with open"):
        cl.load_image(f)
    closed = io.BytesIO(b"x")
    closed.close()
    with pytest.raises(cl.ImageError, match="the file object is already closed"):
        cl.load_image(closed)
    with pytest.raises(cl.ImageError, match="text mode"):
        cl.load_image(io.StringIO("not an image"))
    with pytest.raises(cl.ImageError, match=r"the file object is empty \(0 bytes"):
        cl.load_image(io.BytesIO())
    with pytest.raises(cl.ImageError, match="not an image file"):
        cl.load_image(io.BytesIO(b"name,age\nalice,3\n"))
    with open(tmp_path / "out.png", "wb") as f, pytest.raises(cl.ImageError, match="cannot be read.*writing only"):
        cl.load_image(f)
