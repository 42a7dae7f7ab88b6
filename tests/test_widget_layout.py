"""The explorer layout rules: pictures at most ~512 px wide with the controls beside them, one picture picker,
controls that do nothing in the current mode disabled, labels shown whole, and a click that picks a cell."""

from __future__ import annotations

import io

import ipywidgets as W
import pytest
import torch
from PIL import Image

import course_lib as cl
from course_lib import widgets
from course_lib.data import ShapesWorld
from course_lib.widgets.base import PICTURE_PX, pictures

SHOWN_PX = PICTURE_PX + 8  # "near 512": a legend's few pixels of padding allowed


@pytest.fixture(scope="module")
def eye():
    torch.manual_seed(0)
    return cl.backbones.build("mobilenet_v2", pretrained=True).eval()


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
                           "head": {"name": "detection", "num_classes": 3, "width": 16, "depth": 1, "reg_bins": 8,
                                    "class_names": ["circle", "square", "triangle"]}}).eval()


@pytest.fixture(scope="module")
def shapes():
    return ShapesWorld("val", num_images=2).batch([0, 1])[0]


@pytest.fixture(scope="module")
def explorers(eye, detector, shapes, cat, classifier):
    small = cl.load_image(cl.sample_images()["chelsea"], max_side=160)
    multi = cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 16},
                            "heads": {"classification": {"name": "classification", "num_classes": 3,
                                                         "class_names": ["circle", "square", "triangle"]},
                                      "detection": {"name": "detection", "num_classes": 3, "width": 16,
                                                    "depth": 1, "reg_bins": 8},
                                      "segmentation": {"name": "segmentation", "num_classes": 4, "width": 16}}})
    return {
        "stage": widgets.StageExplorer(classifier, small),
        "feature": widgets.FeatureExplorer(eye, small),
        "rf": widgets.ReceptiveFieldExplorer(eye, small),
        "fusion": widgets.FusionExplorer(eye, {"cat": small}, out_channels=8, max_side=160),
        "dilation": widgets.DilationExplorer(eye, small, rates=(1, 6, 12)),
        "cam": widgets.CAMExplorer(classifier, small, top_k=3),
        "head": widgets.HeadExplorer(detector, shapes),
        "switcher": widgets.HeadSwitcher(multi, shapes),
        "attention": widgets.AttentionExplorer(cl.backbones.build("tiny_vit").eval(), small),
        "swapper": widgets.PartSwapper({"backbone": "tiny_cnn", "neck": "fpn", "head": "detection"}, shapes[0]),
        "browser": widgets.ArchitectureBrowser(detector, small, size=128),
    }


def _all(widget: W.Widget) -> list[W.Widget]:
    return [widget, *(w for c in getattr(widget, "children", ()) for w in _all(c))]


def _px(css: str | None) -> float:
    assert css and css.endswith("px"), css
    return float(css[:-2])


def test_every_explorer_is_covered(explorers):
    exported = {n for n in widgets.__all__ if isinstance(getattr(widgets, n), type)
                and issubclass(getattr(widgets, n), widgets.Explorer) and n not in ("Explorer", "GalleryExplorer")}
    assert {type(e).__name__ for e in explorers.values()} == exported


def test_pictures_are_capped_near_512_px_and_drawn_that_size(explorers):
    for name, ex in explorers.items():
        for pic in pictures(ex.widget):
            assert _px(pic.layout.max_width) <= PICTURE_PX, name  # never stretched across the page
            assert pic.layout.align_self == "flex-start", name
            if pic.value:
                width = Image.open(io.BytesIO(pic.value)).width
                assert width <= SHOWN_PX, (name, width)  # drawn at the size it is shown: text stays readable


def test_controls_sit_in_one_column_beside_the_pictures(explorers):
    for name, ex in explorers.items():
        root = ex.widget
        assert isinstance(root, W.HBox) and root.layout.flex_flow == "row wrap", name
        column = root.children[0]
        assert _px(column.layout.width) <= 360, name
        assert ex.info in column.children, name  # the explanation stays next to the controls
        assert not pictures(column), name


def test_no_label_is_cut_off(explorers):
    for name, ex in explorers.items():
        for w in _all(ex.widget):
            style = getattr(w, "style", None)
            if getattr(w, "description", "") and style is not None and hasattr(style, "description_width"):
                assert style.description_width == "initial", (name, w.description)
    picker = widgets.ImagePicker()
    assert picker.upload.layout.width == "auto"  # "Upload your own" shown whole, not "Upload your o…"


def _image_choosers(widget: W.Widget) -> list[W.Widget]:
    """Visible dropdowns whose choices are pictures."""
    names = set(cl.sample_images()) | {"picked", "cat", "image 0"}
    return [w for w in _all(widget) if isinstance(w, W.Dropdown) and w.layout.display != "none"
            and names & {str(o[0] if isinstance(o, tuple) else o) for o in w.options}]


def test_one_picker_per_explorer(eye, cat):
    picker = widgets.ImagePicker(max_side=160)
    fx = widgets.FusionExplorer(eye, {"cat": cat, "shapes": cat.flip(-1)}, picker=picker, out_channels=8,
                                max_side=160)
    # the picker is the one place to choose a picture: the gallery's pictures joined its list
    assert len(_image_choosers(fx.widget)) == 0 and len(_image_choosers(picker.widget)) == 1
    assert {"cat", "shapes"} <= set(picker.dropdown.options)
    n = fx.n_forward
    picker.dropdown.value = "shapes"
    assert fx.gallery.value == "shapes" and fx.n_forward == n + 1  # a gallery picture, traced once
    picker.dropdown.value = "cat"
    assert fx.gallery.value == "cat" and fx.n_forward == n + 1  # cached
    picker.dropdown.value = "coffee"
    assert fx.gallery.value == "picked"


def test_one_picker_without_a_picker_too(explorers):
    for name, ex in explorers.items():
        assert len(_image_choosers(ex.widget)) <= 1, name


def test_controls_that_do_nothing_now_are_disabled(explorers):
    fx = explorers["fusion"]
    fx.reduce.value = "mean"
    assert fx.channel.disabled
    fx.reduce.value = "channel"
    assert not fx.channel.disabled
    fx.neck.value = "FPN"
    assert fx.bottom_up.disabled
    fx.neck.value = "PAN (add)"
    assert not fx.bottom_up.disabled

    fe = explorers["feature"]
    fe.mode.value = "top-k"
    assert fe.channel.disabled and not fe.top_k.disabled
    fe.mode.value = "channel"
    assert not fe.channel.disabled and fe.top_k.disabled

    at = explorers["attention"]
    at.query.value = "class token"
    assert at.qy.disabled and at.qx.disabled
    at.query.value = "patch"
    assert not at.qy.disabled and not at.qx.disabled

    sw = explorers["switcher"]
    for task in sw.head.options:
        sw.head.value = task
        assert sw.score.disabled == (task != "detection"), task

    st = explorers["stage"]
    st.stage.value = next(s for s in st.stage.options if s.startswith("input"))
    assert st.top_k.disabled
    st.stage.value = next(s for s in st.stage.options if s.startswith("backbone"))
    assert not st.top_k.disabled

    he = explorers["head"]
    assert he.opacity.disabled  # no segmenter: no mask to fade


def test_discrete_choices_are_dropdowns(explorers):
    assert isinstance(explorers["dilation"].rate, W.Dropdown)
    assert not any(isinstance(w, W.SelectionSlider) for ex in explorers.values() for w in _all(ex.widget))


def test_a_click_on_the_picture_picks_the_cell(explorers):
    rf = explorers["rf"]
    rf.stage.value = "C4"
    H, W_ = rf._grid()
    w = rf.width
    h = round(rf.image.shape[-2] * rf._scale)
    assert rf.click(w - 1, h - 1) == (H - 1, W_ - 1)
    assert rf.click(0, 0) == (0, 0) and (rf.y.value, rf.x.value) == (0, 0)
    rf.view.clicked = [w - 1, h - 1, 1]            # a click on the page's picture comes in through the view
    assert (rf.y.value, rf.x.value) == (H - 1, W_ - 1)

    he = explorers["head"]
    s = he.scale
    assert he.click(10 * s + 1, 20 * s + 1) == (20, 10)
    assert "At pixel (x = 10, y = 20)" in he.info.value and "P3 cell" in he.info.value
    right = he.image.shape[-1] * s + 6  # the "after NMS" picture, beside the first
    assert he.click(right + 5 * s, 7 * s) == (7, 5)
    assert he.click(1, 10_000) is None


def test_static_figures_show_pictures_at_their_size(explorers):
    for name in ("rf", "dilation", "head"):
        fig = explorers[name].static_figure()
        for ax in fig.axes:
            shown = ax.get_window_extent().width
            drawn = ax.images[0].get_array().shape[1]
            assert shown >= 0.7 * min(drawn, 1300 / len(fig.axes)), (name, shown, drawn)


def test_every_explorer_draws_in_the_browser_and_carries_its_snapshot(explorers):
    """Each explorer shows a browser view (maps, boxes or pictures kept in the page) where its pictures were,
    and its output carries the snapshot the offline site brings alive; making it runs the network no more."""
    from course_lib.widgets.browser import PANEL_MIME, SNAPSHOT_MIME, BrowserView

    for name, ex in explorers.items():
        assert isinstance(ex.view, BrowserView) and ex.view in _all(ex.widget), name
        forwards = ex.n_forward
        data = ex._repr_mimebundle_()[0]
        assert data[PANEL_MIME] == {"panel": type(ex).__name__, "explorer": True}, name
        snap = data[SNAPSHOT_MIME]
        assert snap["payload"] and set(snap["state"]) >= set(ex.view.STATE), name   # (+ the site's image list)
        if snap["payload"].get("kind") == "frames":
            assert len(snap["payload"]["frames"]) >= 2, name       # the first control has somewhere to go
        if name not in ("swapper", "switcher", "head"):   # these build a model, or trace a gallery picture, per choice
            assert ex.n_forward == forwards, name
