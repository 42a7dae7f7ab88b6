"""A real COCO detector on the learner's photo, through the resolver, without the network."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch

import course_lib as cl
from course_lib import weights as W
from course_lib.zoo import pretrained_detectors as PD


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(W, "hub_dir", lambda: tmp_path)
    monkeypatch.setattr(W, "offline_package_dir", lambda: None)
    monkeypatch.delenv("COURSE_ALLOW_DOWNLOAD", raising=False)
    PD._built.clear()
    return tmp_path


def test_the_official_files_come_from_torchvisions_enums():
    assert W.file_name(W.OFFICIAL["fasterrcnn_mobilenet_v3_large_fpn"]) == "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    assert W.file_name(W.OFFICIAL["ssdlite320_mobilenet_v3_large"]) == "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"
    names = PD.coco_names()
    assert len(names) == 91 and names[1] == "person" and names[17] == "cat"


def test_offline_it_says_what_it_would_show_and_the_one_line_that_gets_the_weights(empty_hub):
    photo = cl.sample_images()["astronaut"]
    result = PD.detect(photo)
    assert isinstance(result, PD.DetectorUnavailable) and not result and result.available is False
    line = "cl.weights.download('fasterrcnn_mobilenet_v3_large_fpn')"
    assert result.get_weights == line and line in repr(result) and line in result._repr_html_()
    assert "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth" in result.message and "boxes" in result.message
    pic = result.draw()
    assert pic.width == photo.shape[1] and pic.height > photo.shape[0]  # the photo plus the caption
    assert line in cl.render.alt_text(pic) and "without boxes" in cl.render.alt_text(pic)  # it says so in words
    with pytest.raises(W.WeightsNotFoundError, match=r"cl\.weights\.download\('fasterrcnn"):
        PD.detect(photo, strict=True)
    with pytest.raises(ValueError, match="known"):
        PD.detect(photo, model="yolo_world")


def _local_checkpoint(name: str, folder, monkeypatch) -> dict[str, torch.Tensor]:
    """A random-weight detector saved under the name torchvision's convention gives it, in a patched table."""
    torch.manual_seed(0)
    state = PD.build_detector(name, pretrained=False).state_dict()
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
    fname = f"{name}-{sha[:8]}.pth"
    tmp.rename(folder / fname)
    fake = SimpleNamespace(url=f"https://example.invalid/models/{fname}", meta=W.OFFICIAL[name].meta)
    monkeypatch.setitem(W.OFFICIAL, name, fake)
    return state


def test_a_local_file_loads_through_the_resolver_and_gives_detections(empty_hub, monkeypatch):
    name = "ssdlite320_mobilenet_v3_large"
    state = _local_checkpoint(name, empty_hub, monkeypatch)
    calls = []
    real_load = torch.load

    def spy(*a, **kw):
        calls.append(kw.get("weights_only"))
        return real_load(*a, **kw)

    monkeypatch.setattr(torch, "load", spy)
    photo = cl.sample_images()["chelsea"]
    res = PD.detect(photo, model=name, score_threshold=0.0)
    assert calls == [True]  # loaded once, with weights_only=True
    assert isinstance(res, PD.Detections) and res.available and len(res) > 0
    net = next(iter(PD._built.values()))
    torch.testing.assert_close(net.state_dict()["head.classification_head.module_list.0.1.weight"],
                               state["head.classification_head.module_list.0.1.weight"])
    h, w = photo.shape[:2]
    assert res.boxes.shape == (len(res), 4) and res.scores.shape == (len(res),)
    assert (res.boxes[:, 0] >= 0).all() and (res.boxes[:, 2] <= w + 1e-3).all() and (res.boxes[:, 3] <= h + 1e-3).all()
    assert torch.all(res.scores[:-1] >= res.scores[1:])  # best first
    assert res.labels == [PD.coco_names(name)[int(i)] for i in res.label_ids]
    assert set(res.rows()[0]) == {"label", "score", "box"} and name in repr(res)
    pic = res.draw()
    assert pic.size == (w, h)
    alt = cl.render.alt_text(pic)  # what was found, in words: the count and the best box first
    assert f"the {len(res)} box(es)" in alt and f"{res.labels[0]} {float(res.scores[0]):.2f}" in alt
    strict = PD.detect(photo, model=name, score_threshold=0.9)  # the same cached detector, fewer boxes
    assert calls == [True] and all(float(s) >= 0.9 for s in strict.scores)


def test_the_resolver_refuses_a_damaged_file(empty_hub, monkeypatch):
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    state = _local_checkpoint(name, empty_hub, monkeypatch)
    net = PD.build_detector(name, pretrained=True)  # strict load: every key torchvision's model has
    assert set(net.state_dict()) == set(state)
    path = W.resolve(name)
    W._verified.clear()
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(W.ChecksumError):
        PD.detect(cl.sample_images()["chelsea"], model=name)
