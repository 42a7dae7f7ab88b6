"""Lesson 10: one shared backbone + neck, three heads, built by cl.build_model; the head switcher."""

from __future__ import annotations

import pytest
import torch

import course_lib as cl
from course_lib.data import ShapesWorld, dominant_label
from course_lib.training import CONFIGS, evaluate, load_trained, read_manifest, shipped_dir
from course_lib.widgets import HeadSwitcher

CONFIG = CONFIGS["multitask"]["model"]


@pytest.fixture(scope="module")
def batch():
    return ShapesWorld("val", num_images=4).batch(range(4))


def test_three_heads_share_one_backbone_pass(batch):
    model = cl.build_model(CONFIG)
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    out = model(batch[0])
    assert len(calls) == 1
    assert out["classification"].shape == (4, 3)
    assert out["segmentation"].shape == (4, 4, 128, 128)
    assert {k.split(".")[0] for k in out["detection"]} == {"cls", "box"}
    assert list(model(batch[0], tasks=["segmentation"])) == ["segmentation"]


def test_trace_runs_the_shared_parts_once_for_every_head(batch):
    model = cl.build_model(CONFIG)
    calls = []
    model.neck.register_forward_hook(lambda *a: calls.append(1))
    tr = model.trace(batch[0][0])
    assert len(calls) == 1 and isinstance(tr, cl.Trace)
    assert set(tr.head) == {"classification", "detection", "segmentation"}
    assert ("head", "classification", (1, 3)) in tr.shapes()
    assert ("head", "detection.cls.P3", (1, 3, 16, 16)) in tr.shapes()
    assert [r["part"] for r in model.summary()][2:] == ["heads.classification", "heads.detection",
                                                        "heads.segmentation"]


def test_joint_loss_is_the_weighted_sum_and_trains_every_part(batch):
    torch.manual_seed(0)
    model = cl.build_model(CONFIG)
    x, targets = batch
    parts = model.loss(model(x), targets)
    expected = sum(model.loss_weights[t] * parts[t] for t in model.heads)
    assert model.loss_weights == {"classification": 0.5, "detection": 1.0, "segmentation": 1.0}
    assert torch.allclose(parts["loss"], expected)
    head = model.heads["classification"]
    labels = torch.tensor([dominant_label(t) for t in targets])
    assert torch.allclose(parts["classification"], head.loss(model(x)["classification"], labels))
    parts["loss"].backward()
    for name in ("backbone", "neck"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, name).parameters()), name
    for task, head in model.heads.items():
        assert any(p.grad is not None for p in head.parameters()), task


def test_dominant_label_counts_visible_pixels():
    sem = torch.zeros(10, 10, dtype=torch.long)
    sem[:2] = 1      # 20 pixels of class 0 (circle)
    sem[2:7] = 3     # 50 pixels of class 2 (triangle)
    assert dominant_label({"semantic": sem}) == 2
    assert dominant_label({"semantic": sem.to(torch.uint8)}) == 2  # the memory-light cache


def test_a_head_that_does_not_fit_names_both_sides():
    cfg = {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
           "heads": {"detection": {"in_keys": ["C5"]}}}
    with pytest.raises(cl.ContractError, match="neck 'fpn' \\(on backbone 'tiny_cnn'\\) gives P3"):
        cl.build_model(cfg)
    with pytest.raises(ValueError, match="loss_weights"):
        cl.build_model({**cfg, "head": {"name": "detection"}})


def test_heads_are_named_by_task_or_by_name():
    cfg = {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
           "heads": {"shape": {"name": "classification", "num_classes": 3}, "segmentation": {"num_classes": 4}}}
    model = cl.build_model(cfg)
    assert list(model.heads) == ["shape", "segmentation"]
    assert model.config["heads"]["segmentation"]["name"] == "segmentation"
    assert model.loss_weights == {"shape": 1.0, "segmentation": 1.0}


def test_shipped_checkpoint_matches_manifest_and_beats_chance():
    entry = read_manifest()["multitask"]
    path = shipped_dir() / entry["file"]
    assert cl.weights.sha256_of(str(path)) == entry["sha256"] and len(path.read_bytes()) < 5_000_000
    model = load_trained("multitask")
    metrics = evaluate(model, ShapesWorld("val", num_images=60))
    assert metrics["cls_accuracy"] > 0.6 and metrics["det_map50"] > 0.5 and metrics["seg_miou"] > 0.5
    assert set(entry["baselines"]) == set(model.heads)


def test_head_switcher_redraws_without_rerunning_the_shared_parts():
    model = load_trained("multitask")
    images, _ = ShapesWorld("val", num_images=5).materialize()
    sw = HeadSwitcher(model, images)
    seen = set()
    for task in ("classification", "detection", "segmentation"):
        sw.head.value = task
        seen.add(sw.image_widget.value)
    assert len(seen) == 3 and sw.n_forward == 1
    sw.head.value = "detection"
    sw.score.value = 0.9
    few = sw.info.value
    sw.score.value = 0.1
    assert few != sw.info.value and sw.n_forward == 1
    sw.gallery.value = "image 2"
    assert sw.n_forward == 2
    assert len(sw.static_figure(images=(0, 1)).axes) == 8
