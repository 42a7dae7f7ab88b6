"""Lesson 00's widgets, driven by setting their values (no browser needed)."""

from __future__ import annotations

import datetime
import io

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
    assert "(1, 96, 14, 14)" in ex.shape_label.value and "96ch /16" in ex.shape_label.value
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
    assert "not an image file" in picker.status.value
    assert picker.name == "upload: green.png"  # the previous picture stays
    assert ex.n_forward == 2


def test_static_figure_has_one_row_per_spatial_stage(picker_and_explorer):
    _, ex = picker_and_explorer
    fig = ex.static_figure(k=3)
    assert len(fig.axes) == 5 * 3  # input row + C2..C5
