"""Lesson 00's widgets, driven by setting their values (no browser needed)."""

from __future__ import annotations

import base64
import datetime
import io

import numpy as np
import pytest
from PIL import Image

import course_lib as cl
from course_lib.images import imagenet_view


@pytest.fixture()
def picker_and_explorer(classifier):
    picker = cl.widgets.ImagePicker("chelsea")
    explorer = cl.widgets.StageExplorer(classifier, picker=picker, prepare=imagenet_view)
    return picker, explorer


def test_stage_dropdown_redraws_without_rerunning_the_network(picker_and_explorer):
    _, ex = picker_and_explorer
    assert ex.n_forward == 1
    seen = set()
    for stage in ex.stage.options:
        ex.stage.value = stage
        seen.add(ex.image_widget.value)
    assert len(seen) == len(ex.stage.options)  # every stage draws something different
    ex.stage.value = "backbone · C4"
    assert "(1, 96, 14, 14)" in ex.info.value and "96ch /16" in ex.info.value
    before = ex.image_widget.value
    ex.top_k.value = 3
    assert ex.image_widget.value != before
    assert ex.top_channels("backbone · C4", 3) == ex.top_channels("backbone · C4", 8)[:3]
    assert ex.n_forward == 1


def test_picking_another_photo_reruns_once_and_changes_the_verdict(picker_and_explorer):
    picker, ex = picker_and_explorer
    verdict = ex.verdict_widget.value
    picker.select("coffee")
    assert ex.n_forward == 2
    assert ex.verdict_widget.value != verdict
    assert ex.model.head.decode(ex.trace.head)[0][0].name == "espresso"


def test_upload_of_a_real_image_and_of_junk(picker_and_explorer):
    picker, ex = picker_and_explorer
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (10, 200, 30)).save(buf, format="PNG")
    picker.upload.value = ({"name": "green.png", "type": "image/png", "size": len(buf.getvalue()),
                            "content": memoryview(buf.getvalue()),
                            "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert picker.name == "upload: green.png" and picker.dropdown.value == "upload: green.png"
    assert tuple(picker.image.shape) == (3, 90, 120)
    assert ex.n_forward == 2
    assert picker.load_bytes(b"%PDF-1.4 not a picture", "paper.pdf") is False
    assert "not an image file" in picker.info.value
    assert picker.name == "upload: green.png"  # the previous picture stays
    assert ex.n_forward == 2


def test_static_figure_shows_the_top_channels_of_every_stage(picker_and_explorer):
    _, ex = picker_and_explorer
    fig = ex.static_figure(k=3)
    assert len(fig.axes) == 2 + 4 * 3 + 4  # input and verdict, C2..C5 maps, one colour bar per stage
    axes = [fig.axes[:2]] + [fig.axes[2 + i * 3:2 + (i + 1) * 3] for i in range(4)]
    assert axes[0][0].get_title() == "input"
    np.testing.assert_allclose(axes[0][0].images[0].get_array(), ex.trace.image[0].permute(1, 2, 0).clip(0, 1))
    assert "Egyptian cat" in axes[0][1].get_title()  # the verdict (bars) sits beside the input
    assert axes[0][1].images[0].get_array().shape[0] > 5 * 20  # five bars, each readable
    for row, stage in zip(axes[1:], ("C2", "C3", "C4", "C5")):
        assert len({(a.images[0].norm.vmin, a.images[0].norm.vmax) for a in row}) == 1  # one scale per row
        top = ex.top_channels(f"backbone · {stage}", 3)
        assert [a.get_title().split()[:2] for a in row] == [[stage, f"#{c}"] for c in top]
        t = ex.trace.backbone[stage][0, top[0]].numpy()
        np.testing.assert_array_equal(row[0].images[0].get_array(), t)  # the map itself, not a picture of it


def test_display_carries_the_widget_and_the_static_figure(picker_and_explorer):
    picker, ex = picker_and_explorer
    for shown in (ex, picker):
        bundle, meta = shown._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle  # JupyterLab draws the live widget
        png = base64.b64decode(bundle["image/png"])  # a static page draws the figure
        assert png[:4] == b"\x89PNG" and Image.open(io.BytesIO(png)).width > 100
        # ... with words for a screen reader: what the explorer draws, then what it shows now
        assert meta["image/png"]["alt"].startswith(type(shown).ALT) and "Shown:" in meta["image/png"]["alt"]
        assert meta["image/png"]["course_problems"] == []
    fig = ex.static_figure()                       # called directly, the figure has its words too
    assert cl.render.alt_text(fig).startswith(type(ex).ALT)
    assert ex.n_forward == 1  # drawing the figure ran no network


def test_every_explorer_has_the_one_shape():
    import importlib
    import inspect
    import pkgutil

    from course_lib import widgets

    explorers = [getattr(widgets, n) for n in widgets.__all__
                 if isinstance(getattr(widgets, n), type) and issubclass(getattr(widgets, n), widgets.Explorer)
                 and getattr(widgets, n) not in (widgets.Explorer, widgets.GalleryExplorer)]
    # every explorer defined in a widgets module is exported (nothing hides from the checks below)
    defined = {cls for info in pkgutil.iter_modules(widgets.__path__)
               for cls in vars(importlib.import_module(f"course_lib.widgets.{info.name}")).values()
               if isinstance(cls, type) and issubclass(cls, widgets.Explorer) and cls.__module__.endswith(info.name)
               and cls not in (widgets.Explorer, widgets.GalleryExplorer)}
    assert defined == set(explorers) and len(explorers) >= 8
    for cls in explorers:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        assert params[1].name == "image" and params[1].default is None, cls  # (source, image=None, ...)
        picker = inspect.signature(cls.__init__).parameters["picker"]
        assert picker.kind is inspect.Parameter.KEYWORD_ONLY, cls
        for method in ("redraw", "static_figure"):
            assert getattr(cls, method) is not getattr(widgets.Explorer, method, None), (cls, method)
        assert not hasattr(cls, "update"), cls
        assert cls.ALT != widgets.Explorer.ALT, cls          # says in words what it draws
    assert issubclass(widgets.ImagePicker, widgets.Panel)


def test_render_blends_heat_over_a_photo_one_way():
    from course_lib import render

    photo = np.full((4, 6, 3), 100, np.uint8)
    heat = np.zeros((2, 3), np.float32)
    heat[0, 0] = 1.0
    flat = np.asarray(render.overlay(photo, heat, alpha=0.5))
    assert flat.shape == (4, 6, 3) and (flat != 100).all()  # a constant alpha tints every pixel
    by_heat = np.asarray(render.overlay(photo, heat, alpha=0.8, by_heat=True, normalize=False))
    assert by_heat[3, 5].tolist() == [100, 100, 100]  # zero heat leaves the photo as it was
    assert by_heat[0, 0].tolist() != [100, 100, 100]
    labelled = render.label(render.tile(heat, 30), "P5")
    assert labelled.size == (30, 20 + render.caption_height())  # a caption strip above the tile
