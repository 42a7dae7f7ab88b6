"""The part swapper: control changes give the right verdict, a misfit is shown and never raised, and the
numbers it shows are those of the model ``build_model`` makes from the same config."""

from __future__ import annotations

import base64

import pytest
import torch

import course_lib as cl
from course_lib.data import ShapesWorld
from course_lib.measure import count_params
from course_lib.widgets import PartSwapper

CONFIG = {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
          "head": {"name": "detection", "num_classes": 3, "width": 16, "depth": 1, "reg_bins": 8}}
OPTIONS = {"backbone": ["tiny_cnn", "yolo_csp"], "neck": ["fpn", "pan", "gap", "identity"],
           "head": ["detection", "segmentation", "classification"]}


@pytest.fixture()
def swapper():
    return PartSwapper(CONFIG, ShapesWorld("val", num_images=1)[0][0], options=OPTIONS)


def test_starts_on_the_config_and_shows_the_built_model(swapper):
    assert [swapper.backbone.value, swapper.neck.value, swapper.head.value] == ["tiny_cnn", "fpn", "detection"]
    assert swapper.fits and swapper.message == ""
    assert swapper.config == {"backbone": {"name": "tiny_cnn"}, **{k: CONFIG[k] for k in ("neck", "head")}}
    assert swapper.levels == ["P3", "P4", "P5"]
    assert {k: (s.channels, s.stride) for k, s in swapper.out_specs.items()} == {
        "P3": (32, 8), "P4": (32, 16), "P5": (32, 32)}
    shapes = {(part, name): shape for part, name, shape in swapper.shapes}
    assert shapes[("input", "image")] == (1, 3, 128, 128)
    assert shapes[("backbone", "C5")] == (1, 128, 4, 4) and shapes[("neck", "P3")] == (1, 32, 16, 16)
    assert shapes[("head", "cls.P3")] == (1, 3, 16, 16)
    assert f"{swapper.params:,d}" in swapper.info.value and "fit" in swapper.info.value
    assert "P3" in swapper.table.value and "1 x 32 x 16 x 16" in swapper.table.value


def test_parameter_count_is_that_of_build_model_of_the_same_config(swapper):
    for parts in [("tiny_cnn", "fpn", "detection"), ("yolo_csp", "pan", "segmentation"),
                  ("tiny_cnn", "gap", "classification")]:
        assert swapper.select(*parts)
        assert swapper.params == count_params(cl.build_model(swapper.config)) > 0
        assert swapper.params == count_params(swapper.model)


def test_control_changes_change_the_state_and_reuse_the_cached_maps(swapper):
    assert swapper.n_forward == 1 and swapper.n_builds == 1
    swapper.neck.value = "pan"  # a plain control move: same backbone, its cached maps feed the new neck
    assert swapper.fits and swapper.config["neck"] == {"name": "pan"}
    assert swapper.n_forward == 1 and swapper.n_builds == 2
    swapper.head.value = "segmentation"
    assert swapper.shapes[-1][0] == "head" and swapper.shapes[-1][2][-2:] == (128, 128)  # a mask at full size
    assert swapper.n_forward == 1
    swapper.backbone.value = "yolo_csp"  # a new eye: one more backbone pass
    assert swapper.n_forward == 2
    assert ("backbone", "C2", (1, 32, 32, 32)) in swapper.shapes
    builds = swapper.n_builds
    swapper.select("tiny_cnn", "fpn", "detection")  # seen before: from the cache, nothing built or run
    assert swapper.n_builds == builds and swapper.n_forward == 2
    # the cached maps are exactly what the model's own backbone gives (parts are built under a fixed seed)
    with torch.no_grad():
        own = swapper.model.eval().backbone(swapper.image[None])
    assert all(torch.equal(own[k], swapper.result["trace"].backbone[k]) for k in own)


def test_a_misfit_shows_the_contract_message_and_does_not_raise(swapper):
    swapper.neck.value = "gap"  # a pooled vector: no grid for a detection head
    assert not swapper.fits
    assert "head 'detection'" in swapper.message and "neck 'gap'" in swapper.message  # both sides named
    assert "spatial" in swapper.message
    assert "do not fit" in swapper.info.value and "head &#x27;detection&#x27;" in swapper.info.value
    assert swapper.params is None and swapper.model is None and swapper.shapes == [] and swapper.levels == []
    assert swapper.table.value == ""
    assert "do not fit" in swapper.verdict()
    swapper.head.value = "classification"  # the fix: a classifier reads one pooled vector
    assert swapper.fits and swapper.levels == ["pooled"]


def test_static_figure_and_display(swapper):
    fig = swapper.static_figure([("tiny_cnn", "gap", "detection"), ("tiny_cnn", "fpn", "detection")])
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "do not fit" in text and "neck 'gap'" in text and "cls.P3" in text
    assert [swapper.backbone.value, swapper.neck.value, swapper.head.value] == ["tiny_cnn", "fpn", "detection"]
    bundle, meta = swapper._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert meta["image/png"]["alt"].startswith(swapper.ALT) and meta["image/png"]["course_problems"] == []


def test_a_new_image_runs_the_backbone_again(swapper):
    swapper.set_image(torch.rand(3, 96, 96))
    assert swapper.n_forward == 2 and ("input", "image", (1, 3, 96, 96)) in swapper.shapes
