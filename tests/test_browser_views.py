"""Explorers drawn in the browser (``course_lib.widgets.browser``): what goes to the page once per image, and
that the view's state follows every control with no forward pass.  (That the canvas redraws in JupyterLab while
the kernel is busy is ``tests/browser/test_views_in_lab.py``; that it lives on the offline site, ``test_site``.)"""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

import course_lib as cl
from course_lib.images import imagenet_view
from course_lib.widgets import FeatureExplorer, StageExplorer
from course_lib.widgets.browser import SCRIPT, SNAPSHOT_MIME, MapView, bar_group, lut, map_group, quantise


def _maps(group: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(group["data"]), np.uint8).reshape(group["n"], group["h"], group["w"])


def test_maps_are_quantised_one_scale_per_map_and_colour_maps_are_lookup_tables():
    m = torch.stack([torch.arange(12.0).reshape(3, 4), -5 * torch.arange(12.0).reshape(3, 4), torch.ones(3, 4)])
    q = np.frombuffer(base64.b64decode(quantise(m)), np.uint8).reshape(3, 3, 4)
    assert q[0].min() == 0 and q[0].max() == 255 and q[0, 0, 1] == round(255 / 11)
    assert (q[1] == 255 - q[0]).all()                     # its own scale: the sign flips the order
    assert (q[2] == 0).all()                              # a flat map is 0, never a division by zero
    table = np.frombuffer(base64.b64decode(lut("magma")), np.uint8).reshape(256, 3)
    assert tuple(table[0]) == (0, 0, 4) and tuple(table[-1]) == (252, 253, 191)    # matplotlib's magma ends
    g = map_group("C3", m, order=[2, 0, 1])
    assert (g["n"], g["h"], g["w"], g["order"], g["labels"]) == (3, 3, 4, [2, 0, 1], ["#0", "#1", "#2"])
    bars = bar_group("logits", [0.1, 0.7, 0.2], ["a", "b", "c"])
    assert bars["kind"] == "bars" and bars["order"] == [1, 2, 0]


def test_the_view_follows_its_controls_in_python_too():
    slider, view = cl.widgets.base.W.IntSlider(value=5, min=1, max=16), MapView()
    links = view.follow({"k": (slider, "value")})
    assert view.k == 5 and len(links) == 1 and links[0].source == (slider, "value")
    slider.value = 9
    assert view.k == 9


def test_the_stage_explorer_sends_every_stage_once_and_draws_in_the_browser(classifier):
    ex = StageExplorer(classifier, cl.sample_images()["chelsea"], prepare=imagenet_view)
    payload = ex.view.payload
    names = [g["name"] for g in payload["groups"]]
    assert names == list(ex.stage.options)               # one group per stage, in the dropdown's order
    kinds = {g["name"]: g.get("kind") for g in payload["groups"]}
    assert kinds["head · output"] == "bars" and kinds["backbone · C3"] is None
    c3 = payload["groups"][names.index("backbone · C3")]
    assert c3["n"] == 16 and c3["labels"] == [f"#{c}" for c in ex.top_channels("backbone · C3", 16)]
    got = _maps(c3)[0].astype(float)                      # the strongest channel, as Python has it
    want = ex._rows["backbone · C3"][0, ex.top_channels("backbone · C3", 1)[0]].numpy()
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.999
    head = payload["groups"][names.index("head · output")]
    assert head["labels"][head["order"][0]] == "Egyptian cat"
    assert ex.view in _all_children(ex.widget)                 # on the page, in place of the Python picture
    forwards = ex.n_forward
    ex.top_k.value = 3
    ex.stage.value = "backbone · C5"
    assert (ex.view.k, ex.view.group) == (3, names.index("backbone · C5"))
    assert ex.n_forward == forwards                      # no control move runs the network
    snap = ex._repr_mimebundle_()[0][SNAPSHOT_MIME]
    assert snap["payload"] is payload and snap["state"]["k"] == 3


def test_the_feature_explorer_sends_every_channel_of_every_stage(classifier):
    ex = FeatureExplorer(classifier.backbone, cl.sample_images()["chelsea"])
    payload = ex.view.payload
    assert [g["name"] for g in payload["groups"]] == list(ex.stage.options)     # the dropdown's index is the group
    for g in payload["groups"]:
        assert (g["n"], g["h"], g["w"]) == tuple(ex.features[g["name"]].shape)
        assert g["order"] == ex._ranking[g["name"]].tolist()
    assert payload["modes"] == ["channel", "topk"] and payload["photo"].startswith("data:image/jpeg;base64,")
    forwards = ex.n_forward
    ex.stage.value = "C4"
    ex.mode.value = "top-k"
    ex.overlay.value = False
    ex.channel.value = 5
    assert (ex.view.group, ex.view.mode, ex.view.overlay, ex.view.channel) == (ex.stage.index, 1, False, 5)
    assert payload["groups"][ex.view.group]["name"] == "C4"
    assert ex.n_forward == forwards


def _all_children(w) -> list:
    out = []
    for c in getattr(w, "children", ()):
        out += [c, *_all_children(c)]
    return out


@pytest.mark.parametrize("host", ["export default", "function courseExplorerBoot"])
def test_one_script_serves_jupyterlab_and_the_site(host):
    esm = MapView()._esm
    assert esm.startswith(SCRIPT.read_text(encoding="utf-8"))
    assert host in (esm if host == "export default" else SCRIPT.read_text(encoding="utf-8"))
    assert "export" not in SCRIPT.read_text(encoding="utf-8").split("//")[0]   # a classic script for file://


def test_the_head_explorer_sends_every_candidate_box_once(classifier):
    """The boxes view's payload holds every box the thresholds can show; filtering it by score and level and
    running greedy class-wise NMS (what explorer.js does) gives exactly Python's counts, for any thresholds."""
    from torchvision.ops import batched_nms

    from course_lib.data import ShapesWorld
    from course_lib.widgets import HeadExplorer

    torch.manual_seed(0)
    det = cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
                          "head": {"name": "detection", "num_classes": 3, "width": 16, "depth": 1, "reg_bins": 8,
                                   "class_names": ["circle", "square", "triangle"]}}).eval()
    with torch.no_grad():
        for h in det.head.heads.values():
            h.cls_out.bias.fill_(0.5)
    images, _ = ShapesWorld("val", num_images=2).batch([0, 1])
    ex = HeadExplorer(det, images)
    p = ex.view.payload
    c = p["cands"]
    assert p["kind"] == "boxes" and len(c["scores"]) == len(c["boxes"]) == len(c["labels"]) == len(c["level"]) > 100
    assert min(c["scores"]) > ex.score.min and p["levels"] == list(det.head.levels)
    forwards = ex.n_forward
    for score, iou, level in ((0.3, 0.5, "all"), (0.55, 0.3, "all"), (0.4, 0.7, det.head.levels[0])):
        ex.score.value, ex.iou.value, ex.level.value = score, iou, level
        ids = [i for i, s in enumerate(c["scores"]) if s > score and (level == "all" or
               p["levels"][c["level"][i]] == level)]
        boxes = torch.tensor([c["boxes"][i] for i in ids]).reshape(-1, 4)
        scores = torch.tensor([c["scores"][i] for i in ids])
        labels = torch.tensor([c["labels"][i] for i in ids], dtype=torch.long)
        assert len(ids) == ex.n_before
        assert len(batched_nms(boxes, scores, labels, iou)) == ex.n_after == ex.view_expect()["after"]
        assert (ex.view.score, ex.view.iou, ex.view.level) == (score, iou, ex.level.index)
    assert ex.n_forward == forwards                        # no threshold runs the network
    ex.gallery.value = list(ex.images)[1]
    assert ex.view.payload is not p                        # a new picture: its boxes are sent, once
    # the offline site gets the boxes of the gallery's first pictures too: its image list works without a kernel
    snap = ex._repr_mimebundle_()[0][SNAPSHOT_MIME]
    shown = snap["payload"]["gallery"]
    assert [g["name"] for g in shown] == ["image 1", "image 0"] and snap["state"]["image"] == 0
    assert shown[0]["payload"]["cands"] == ex.view.payload["cands"] and shown[1]["payload"]["cands"] == c
    assert snap["payload"]["controls"]["image"] and ex.gallery.value == "image 1" and ex.n_forward == forwards + 1


def test_a_frame_key_is_spelled_as_the_page_spells_it():
    """``frame_key`` must equal explorer.js's ``courseFrameKey`` (JSON.stringify, numbers to 6 decimals, whole
    floats as integers): a slider's 0.30000000000000004 and Python's 0.3 are the same picture."""
    from course_lib.widgets.browser import frame_key

    assert frame_key([1, 0.1 + 0.2, True, "C3 · x", 2.0, None]) == '[1,0.3,true,"C3 · x",2,null]'
    js = SCRIPT.read_text(encoding="utf-8")
    assert "Number(v.toFixed(6))" in js and "JSON.stringify(values.map(" in js


def _decoded(url: str) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), dtype=float)


def test_pictures_made_in_python_are_kept_once_and_blend_in_the_page(classifier, cat, monkeypatch):
    """The CAM explorer (a FramesView): shown once, it has made every class's picture and every method's, with
    no forward pass; each picture is kept once (the colour bar is one image for all); the page's blend of the
    two layers at the slider's opacity is Python's own picture; a combination not made yet is drawn once and sent
    as a message, and visiting it again sends nothing."""
    from course_lib.widgets import CAMExplorer
    from course_lib.widgets.browser import FramesView, frame_key

    ex = CAMExplorer(classifier, cat, prepare=imagenet_view, top_k=4)
    assert isinstance(ex.view, FramesView) and ex.view in _all_children(ex.widget)
    assert ex.view.payload["frames"] == {}               # made when shown, or when the page asks
    ex.view._handle_custom_msg({"ask": "frames"}, [])      # what a page that shows ex.widget alone sends
    made = ex.view.payload
    snap = ex._repr_mimebundle_()[0][SNAPSHOT_MIME]
    assert snap["payload"] is made                         # displayed after that: nothing to make again
    keys = set(snap["payload"]["frames"])
    assert keys == {frame_key([c, 0]) for c in range(4)} | {frame_key([0, 1])}
    assert ex.n_forward == 1
    images = snap["payload"]["images"]
    bars = {f["parts"][1]["img"] for f in snap["payload"]["frames"].values()}
    assert len(bars) == 1 and len(images) == 1 + 5 + 1     # the photo, five heat layers, one colour bar
    frame = snap["payload"]["frames"][frame_key([2, 0])]
    base, over = _decoded(images[frame["parts"][0]["img"]]), _decoded(images[frame["parts"][0]["over"]])
    ex.cls.value, ex.opacity.value = 2, 0.3
    import io

    from PIL import Image

    python = np.asarray(Image.open(io.BytesIO(ex.image_widget.value)).convert("RGB"), dtype=float)
    page = base * 0.7 + over * 0.3                       # what the canvas draws: globalAlpha = opacity
    assert np.abs(page - python).mean() < 2.5             # the same picture, up to JPEG's rounding
    assert "class" in frame["info"] and ex.maps.names[2] in frame["info"]

    sent = []
    monkeypatch.setattr(ex.view, "send", lambda msg: sent.append(msg))
    ex.method.value = "Grad-CAM"                          # class 2 by Grad-CAM was not made: drawn once, sent
    assert len(sent) == 1 and sent[0]["frame"] == frame_key([2, 1]) and sent[0]["images"]
    ex.method.value = "CAM"
    ex.method.value = "Grad-CAM"                          # seen before: nothing new to send
    assert len(sent) == 1 and ex.n_forward == 1
    assert (ex.view.a0, ex.view.a1, ex.view.opacity) == (2, 1, 0.3)   # the view follows the controls
