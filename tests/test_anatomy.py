"""Lesson 09: YOLOv8n rebuilt exactly, the small RT-DETR, torchvision's parts, the architecture browser."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

import course_lib as cl
from course_lib.heads.detection import DFL
from course_lib.measure import count_flops, count_params
from course_lib.widgets.architecture_browser import ArchitectureBrowser, run_with_hooks
from course_lib.zoo import rtdetr, torchvision_parts, yolov8


@pytest.fixture(scope="module")
def v8n():
    return yolov8.build_yolov8("n").eval()


def test_yolov8n_parameter_count_is_exact(v8n):
    assert count_params(v8n) == 3_157_200
    assert count_params(v8n.backbone) == 1_272_656
    assert count_params(v8n.neck) == 986_880
    assert count_params(v8n.head) == 897_664


@pytest.mark.parametrize("scale", ["s", "m"])
def test_other_scales_match_their_published_counts(scale):
    assert count_params(yolov8.build_yolov8(scale)) == yolov8.PUBLISHED_PARAMS[scale]


def test_yolov8n_output_at_640(v8n):
    with torch.no_grad():
        out = v8n(torch.zeros(1, 3, 640, 640))
    assert out.shape == (1, 84, 8400)
    # boxes are positive widths/heights in pixels, class scores are probabilities
    assert (out[:, 2:4] > 0).all() and ((out[:, 4:] >= 0) & (out[:, 4:] <= 1)).all()
    v8n.train()
    maps = v8n(torch.zeros(1, 3, 640, 640))
    v8n.eval()
    assert [tuple(m.shape) for m in maps] == [(1, 144, 80, 80), (1, 144, 40, 40), (1, 144, 20, 20)]


def test_layer_table_matches_the_published_wiring(v8n):
    rows = yolov8.layer_table(v8n, 640)
    assert [r["index"] for r in rows] == list(range(23))
    modules = [r["module"] for r in rows]
    assert modules[:10] == ["Conv", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "SPPF"]
    assert modules[10:22] == ["Upsample", "Concat", "C2f"] * 2 + ["Conv", "Concat", "C2f"] * 2
    assert modules[22] == "Detect"
    strides = [r["stride"] for r in rows[:10]]
    assert strides == [2, 4, 4, 8, 8, 16, 16, 32, 32, 32]
    channels = [r["channels"] for r in rows[:22]]
    assert channels == [16, 32, 32, 64, 64, 128, 128, 256, 256, 256,
                        256, 384, 128, 128, 192, 64, 64, 192, 128, 128, 384, 256]
    assert sum(r["params"] for r in rows) == 3_157_200
    # "from" is read off the data: the four concats take the layer before and a skip from earlier
    assert {r["index"]: r["from"] for r in rows if r["from"] != -1} == {
        11: "[-1, 6]", 14: "[-1, 4]", 17: "[-1, 12]", 20: "[-1, 9]", 22: "[15, 18, 21]"}
    assert rows[22]["stride"] == "8/16/32" and rows[22]["channels"] == 84
    assert [r["part"] for r in rows] == ["backbone"] * 10 + ["neck"] * 12 + ["head"]


def test_layer_table_follows_the_neck_forward(v8n):
    """The table is read from one real forward pass: a neck wired differently gives a different table."""

    class NoLastStep(yolov8.YOLOv8Neck):
        def forward(self, feats):  # layers 10-18 only: P5 comes straight from the backbone
            p3, p4, p5 = (feats[k] for k in self.in_keys)
            x12 = self.c2f_12(self.concat([self.up(p5), p4]))
            x15 = self.c2f_15(self.concat([self.up(x12), p3]))
            x18 = self.c2f_18(self.concat([self.down_16(x15), x12]))
            return OrderedDict(P3=x15, P4=x18, P5=p5)

    neck = NoLastStep(v8n.backbone.out_specs)
    rows = yolov8.layer_table(cl.Model(v8n.backbone, neck, v8n.head), 128)
    assert [r["module"] for r in rows[10:]] == ["Upsample", "Concat", "C2f"] * 2 + ["Conv", "Concat", "C2f",
                                                                                    "Detect"]
    assert rows[-1]["index"] == 19 and rows[-1]["from"] == "[15, 18, 9]"
    assert sum(r["params"] for r in rows) == 3_157_200 - count_params(neck.down_19) - count_params(neck.c2f_21)
    assert not any(m._forward_hooks for m in v8n.modules()) and not v8n.training  # hooks gone, mode kept


def test_yolov8n_flops_in_published_range(v8n):
    assert 8.7e9 <= count_flops(v8n, 640) <= 8.9e9


def test_dfl_computes_the_expected_distance():
    dfl = DFL(16)
    logits = torch.randn(2, 64, 5)
    probs = logits.view(2, 4, 16, 5).softmax(2)
    expected = (probs * torch.arange(16).view(1, 1, 16, 1)).sum(2)
    assert torch.allclose(dfl(logits), expected, atol=1e-5)
    assert sum(p.numel() for p in dfl.parameters()) == 16 and not any(p.requires_grad for p in dfl.parameters())


def test_yolov8_decode_runs_nms_and_keeps_pixel_boxes(v8n):
    with torch.no_grad():
        out = v8n(torch.rand(1, 3, 320, 320))
    dets = v8n.head.decode(out, score_threshold=0.0, max_det=50)[0]
    assert len(dets["boxes"]) == 50
    assert (dets["scores"][:-1] >= dets["scores"][1:]).all()  # NMS keeps the best first
    assert (dets["boxes"][:, 2:] >= dets["boxes"][:, :2]).all()


def test_small_rtdetr_shapes_and_loss():
    torch.manual_seed(0)
    model = rtdetr.build_rtdetr_small(num_classes=5, dim=64, num_queries=20, layers=2)
    trace = model.trace(torch.rand(1, 3, 256, 256))
    assert [tuple(t.shape) for t in trace.neck.values()] == [(1, 64, 32, 32), (1, 64, 16, 16), (1, 64, 8, 8)]
    assert trace.head["logits"].shape == (1, 20, 5) and trace.head["boxes"].shape == (1, 20, 4)
    assert model.neck.last_attention_input == (8, 8)
    model.train()
    out = model(torch.rand(2, 3, 128, 128))
    targets = [{"boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.2, 0.2, 0.1, 0.1]]), "labels": torch.tensor([1, 3])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    loss = model.head.loss(out, targets)
    loss.backward()
    assert torch.isfinite(loss) and model.head.queries.weight.grad is not None


def test_sincos_positions_are_distinct_per_cell():
    pos = rtdetr.sincos_2d(4, 5, 32)
    assert pos.shape == (20, 32)
    assert torch.cdist(pos, pos).fill_diagonal_(1).min() > 0


def test_torchvision_parts_put_fpn_inside_backbone():
    import matplotlib.pyplot as plt
    from torchvision.models import detection

    model = detection.fcos_resnet50_fpn(weights=None, weights_backbone=None)
    parts = torchvision_parts.split_torchvision(model)
    assert parts["neck"][1] is model.backbone.fpn and parts["backbone"][1] is model.backbone.body
    rows = torchvision_parts.trace_torchvision(model, torch.rand(1, 3, 128, 128))
    assert [r["part"] for r in rows] == ["backbone", "neck", "head"]
    assert sum(r["params"] for r in rows) == count_params(model)
    assert len(rows[1]["outputs"]) == 5 and all(shape[1] == 256 for shape in rows[1]["outputs"].values())
    assert model.training  # traced in eval mode, training mode given back
    ax = torchvision_parts.draw_pipeline(rows, "FCOS")          # the diagram keeps every text readable
    cl.render.figure_bytes(ax.figure)
    assert cl.render.figure_problems(ax.figure) == []
    assert ax.texts[5].get_text().splitlines()[-1] == "p7: (1, 256, 1, 1)"   # the neck's five maps, all listed
    plt.close(ax.figure)
    with pytest.raises(TypeError, match="don't know how to split"):
        torchvision_parts.split_torchvision(torch.nn.Linear(2, 2))


def test_architecture_browser_records_once_and_redraws(v8n):
    image = cl.load_image(cl.sample_images()["coffee"])
    browser = ArchitectureBrowser({"YOLOv8n": lambda: v8n,
                                   "RT-DETR": lambda: rtdetr.build_rtdetr_small(dim=64, num_queries=10)},
                                  image=image, size=128)
    assert browser.n_forward == 1
    assert "3,157,200 parameters" in browser.info.value
    browser.tree.value = "backbone.stages.C3"
    first = browser.image_widget.value
    assert "(1, 64, 16, 16)" in browser.info.value
    browser.tree.value = "neck"
    assert browser.image_widget.value != first and browser.n_forward == 1
    browser.model_dropdown.value = "RT-DETR"
    assert browser.n_forward == 2 and browser.tree.value == "backbone"
    browser.model_dropdown.value = "YOLOv8n"
    assert browser.n_forward == 2  # recorded before: no new forward pass
    fig = browser.static_figure("YOLOv8n", weights="random weights")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 4 and "random weights" in fig._suptitle.get_text()   # input, backbone, neck, head
    assert panels[3].images and "best class score" in panels[3].get_title()    # the head panel is never blank
    assert len(fig.axes) == 7                                                   # every map has its colour bar
    assert browser.n_forward == 2                                               # drawn from the recording


def test_hooks_are_released(v8n):
    run_with_hooks(v8n, torch.rand(1, 3, 64, 64))
    assert all(not m._forward_hooks for m in v8n.modules())
