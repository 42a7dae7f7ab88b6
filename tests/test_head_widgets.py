"""Head explorer: slider moves redraw from the cache and change what is shown."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_lib as cl
from course_lib import render
from course_lib.data import ShapesWorld
from course_lib.widgets import HeadExplorer


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    det = cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
                          "head": {"name": "detection", "num_classes": 3, "width": 16, "depth": 1, "reg_bins": 8,
                                   "class_names": ["circle", "square", "triangle"]}})
    seg = cl.build_model({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
                          "head": {"name": "segmentation", "num_classes": 4, "width": 16}})
    # make the untrained detector confident everywhere so that there are boxes to suppress
    with torch.no_grad():
        for h in det.head.heads.values():
            h.cls_out.bias.fill_(2.0)
    return det.eval(), seg.eval()


def test_sliders_redraw_without_forward_passes(models):
    det, seg = models
    images, _ = ShapesWorld("val", num_images=3).batch([0, 1, 2])
    ex = HeadExplorer(det, images, segmenter=seg)
    assert ex.n_forward == 1 and ex.image_widget.value
    first = ex.image_widget.value
    ex.score.value = 0.2
    assert ex.n_before > ex.n_after > 0  # NMS removes duplicates
    before_low, after_low = ex.n_before, ex.n_after
    ex.score.value = 0.9
    assert ex.n_before <= before_low
    ex.score.value = 0.2
    ex.iou.value = 0.9  # a lenient NMS keeps more boxes
    assert ex.n_after >= after_low
    ex.level.value = "P5"
    assert ex.n_before <= 16 * 3
    ex.cls.value = 1
    assert set(ex.detections(nms=False)["labels"].tolist()) <= {1}
    ex.opacity.value = 0.0
    assert ex.image_widget.value != first
    assert ex.n_forward == 1, "slider moves must not re-run the network"
    ex.gallery.value = "image 2"
    assert ex.n_forward == 2
    ex.gallery.value = "image 0"
    assert ex.n_forward == 2, "a seen image comes from the cache"
    assert "NMS" in ex.info.value and str(ex.n_after) in ex.info.value


def test_static_figure_and_bad_input(models):
    det, _ = models
    ex = HeadExplorer(det, {"a": ShapesWorld("val", num_images=1)[0][0]})
    fig = ex.static_figure()
    assert len(fig.axes) == 1 and ex.n_forward == 1
    title = fig.axes[0].get_title()
    assert title.startswith("a: ") and f"{ex.n_before} boxes before NMS, {ex.n_after} after" in title
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), np.asarray(ex.picture()))
    assert ex.opacity.disabled  # no segmenter: the opacity slider is disabled
    with pytest.raises(TypeError, match="images"):
        HeadExplorer(det, [1, 2])


def test_mask_overlay_colours_only_objects():
    img = torch.zeros(3, 4, 4)
    cls = torch.zeros(4, 4, dtype=torch.long)
    cls[0, 0] = 1
    out = render.mask_overlay(img, cls, opacity=1.0)
    a = np.asarray(out)
    assert tuple(a[0, 0]) == render.mask_colour(1) and a[1, 1].tolist() == [0, 0, 0]
    assert render.class_colour(0) == render.mask_colour(1)  # a box of class 0 has the colour of its mask
