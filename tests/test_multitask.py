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


# ---------------------------------------------------------------- training every arm to a plateau
def test_plateau_rule_compares_the_last_checks_with_the_best_before():
    from course_lib.training import plateaued

    assert not plateaued([0.40, 0.60])                          # too few checks to tell
    assert not plateaued([0.40, 0.60, 0.70])                    # +10 points in the last two
    assert plateaued([0.40, 0.70, 0.702, 0.699])                # +0.2 points: flat
    assert plateaued([0.42, 0.42, 0.41])                        # stuck (a constant answer is flat too)
    assert not plateaued([0.40, 0.70, 0.69, 0.706], min_delta=0.005)   # the best of the last two counts
    assert plateaued([0.5, 0.6, 0.6], patience=1) and not plateaued([0.5, 0.6, 0.7], patience=1)
    with pytest.raises(ValueError, match="patience"):
        plateaued([0.1, 0.2], patience=0)


def test_fit_ends_where_stop_when_says():
    from course_lib.training import fit

    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    net = torch.nn.Linear(4, 2)
    seen = []

    def stop_when(hist):
        seen.append(hist.steps_done)
        return "plateau" if hist.steps_done >= 6 else ""

    hist = fit(net, [(x[i:i + 8], y[i:i + 8]) for i in range(0, 64, 8)], loss_fn=torch.nn.functional.cross_entropy,
               steps=100, eval_every=3, stop_when=stop_when, progress=False, device="cpu")
    assert hist.stopped_by == "plateau" and hist.steps_done == 6 and seen == [3, 6]


TINY = {"task": "multitask",
        "model": {"backbone": {"name": "tiny_cnn", "widths": [8, 8, 16, 16, 16]},
                  "neck": {"name": "fpn", "out_channels": 8},
                  "heads": {"classification": {"num_classes": 3, "dropout": 0.0},
                            "segmentation": {"num_classes": 4}},
                  "loss_weights": {"classification": 0.5}},
        "recipe": {"batch_size": 4, "train_images": 16, "image_size": 64}}


def test_train_stops_on_a_plateau_and_arms_differ_only_in_their_heads():
    from course_lib.training import Plateau, single_task, train, train_arms

    only = single_task(TINY, "segmentation")
    assert list(only["model"]["heads"]) == ["segmentation"] and only["model"]["neck"] == TINY["model"]["neck"]
    with pytest.raises(KeyError, match="classification, segmentation"):
        single_task(TINY, "detection")
    rule = {"every": 2, "patience": 2, "min_delta": 1.1, "cap": 40, "val_images": 4}   # 1.1: nothing can improve
    _, rep = train(TINY, plateau=rule, progress=False)
    assert rep["stopped_by"] == "plateau" and rep["steps"] == 6 and rep["recipe"]["steps"] == 40
    assert [c["step"] for c in rep["curve"]] == [2, 4, 6] and set(rep["metrics"]) == {"cls_accuracy", "seg_miou"}
    arms = train_arms(TINY, steps=2, seed=3, progress=False, evaluate=False)
    assert list(arms) == ["multitask", "classification", "segmentation"]
    assert all(r["steps"] == 2 and r["recipe"]["seed"] == 3 for r in arms.values())
    assert list(arms["classification"]["config"]["heads"]) == ["classification"]
    # a metric still rising keeps the run going
    rising = iter(range(100))
    watch = Plateau(cl.build_model(TINY["model"]), ShapesWorld("val", num_images=2), every=1,
                    evaluate=lambda model, world: {"cls_accuracy": next(rising) / 10, "seg_miou": 0.5})
    for step in range(1, 5):
        watch(type("H", (), {"steps_done": step})())
    assert watch.keys == ["cls_accuracy", "seg_miou"] and watch.stop() == ""


def test_sharing_verdict_names_a_direction_only_beyond_the_seeds_spread():
    from course_lib.training import compare_arms

    assert compare_arms([0.90, 0.91, 0.89], [0.40, 0.42, 0.41])["verdict"] == "better"
    assert compare_arms([0.80, 0.81, 0.79], [0.82, 0.83, 0.84])["verdict"] == "worse"
    r = compare_arms([0.80, 0.84, 0.82], [0.81, 0.83, 0.80])     # gap 0.7 points, spread 4 points
    assert r["verdict"] == "about the same" and r["spread"] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="2 seeds"):
        compare_arms([0.8], [0.7, 0.6])


def test_the_saved_sharing_benchmark_reads_back(tmp_path):
    from pathlib import Path

    from course_lib.training import ended_flat, read_benchmark, sharing_table

    path = Path(__file__).resolve().parents[1] / "course_lib" / "training" / "results" / "multitask.json"
    bench = read_benchmark(path)
    assert {"machine", "config", "recipe", "plateau", "rows"} <= set(bench) and "date" in bench["machine"]
    for row in bench["rows"]:
        assert row["arm"] in ("multitask", "classification", "detection", "segmentation")
        assert row["protocol"] in ("plateau", "budget") and row["steps"] <= max(bench["plateau"]["cap"], 500)
        assert row["current"], "rerun: python benchmarks/bench_multitask.py --train"
    for protocol in ("plateau", "budget"):   # both protocols, three seeds each
        table = sharing_table(bench, protocol)
        assert set(table) == {"cls_accuracy", "det_map50", "det_map50_small", "seg_miou"}
        assert all(r["seeds"] >= 3 for r in table.values())
    # "to a plateau": every dense run ended flat (stopped by the rule, or flat at the cap)
    dense = ("detection", "segmentation")
    assert all(ended_flat(r, bench["plateau"], tasks=dense) for r in bench["rows"]
               if r["protocol"] == "plateau" and r["arm"] != "classification")
    with pytest.raises(FileNotFoundError, match="bench_multitask"):
        read_benchmark(tmp_path / "multitask.json")


def test_commonest_shape_exercise_is_computed_on_the_test_split():
    from collections import Counter

    ids = {e.id for e in cl.exercises.for_lesson("10")}
    assert "10.saved" not in ids and len(ids) >= 3   # its answer was printed in the lesson
    ex = cl.exercises.get("10.commonest")
    _, targets = ShapesWorld("test").materialize()
    counts = Counter(dominant_label(t) for t in targets)
    assert ex.is_correct(max(counts.values()) / 500) and 1 / 3 < ex.solution() < 0.5
    _, val = ShapesWorld("val").materialize()
    assert not ex.is_correct(Counter(dominant_label(t) for t in val).most_common(1)[0][1] / 500)  # the lesson's split


def test_the_classification_loss_weight_does_not_slow_a_single_task_model():
    """AdamW divides each step by the gradient's running size, so scaling a loss by 0.5 (the classification
    weight) leaves the steps as they were: a weak single-task classifier is not a matter of its weight."""
    from course_lib.training import single_task, train

    outs = []
    for w in (0.5, 1.0):
        cfg = single_task(TINY, "classification")
        cfg["model"]["loss_weights"] = {"classification": w}
        model, _ = train(cfg, steps=4, progress=False, evaluate=False)
        x, _ = ShapesWorld("val", num_images=4, image_size=64).batch(range(4))
        with torch.no_grad():
            outs.append(model(x)["classification"])
    torch.manual_seed(0)
    untrained = cl.build_model(single_task(TINY, "classification")["model"]).eval()
    with torch.no_grad():
        before = untrained(x)["classification"]
    assert torch.allclose(outs[0], outs[1], atol=1e-4) and not torch.allclose(outs[1], before, atol=1e-3)


def test_the_sharing_table_reads_as_a_tidy_table_with_every_runs_steps():
    from course_lib.training import sharing_text

    metrics = {"multitask": {"cls_accuracy": 0.9, "det_map50": 0.8, "det_map50_small": 0.7, "seg_miou": 0.8},
               "classification": {"cls_accuracy": 0.4}, "detection": {"det_map50": 0.8, "det_map50_small": 0.75},
               "segmentation": {"seg_miou": 0.85}}
    rows = [{"arm": arm, "protocol": "plateau", "seed": s, "metrics": {k: v + 0.01 * s for k, v in m.items()},
             "steps": 300 + 150 * s, "stopped_by": "plateau" if s else "steps"}
            for arm, m in metrics.items() for s in (0, 1)]
    flat = [{"step": 100 * i, "cls_accuracy": a, "det_map50": d, "seg_miou": 0.8}   # at the cap, the last two
            for i, (a, d) in enumerate([(0.5, 0.6), (0.9, 0.8), (0.902, 0.801), (0.9, 0.802)], 1)]  # add < 0.5 points
    rows[0]["curve"] = flat                                         # multi-task, seed 0: flat at the cap
    rows[2]["curve"] = [{**c, "cls_accuracy": 0.3 + 0.1 * i} for i, c in enumerate(flat)]   # still climbing
    text = sharing_text({"rows": rows, "plateau": {"min_delta": 0.005, "patience": 2}}, "plateau")
    lines = text.splitlines()
    assert "classification accuracy" in lines[1] and "+50.0" in lines[1] and lines[1].endswith("better")
    assert "segmentation mIoU" in lines[4] and lines[4].endswith("worse")
    assert "f: flat at the cap" in lines[5]
    assert lines[6].split() == ["multi-task", "300f", "450p"] and lines[7].split() == ["classification", "300c", "450p"]
    assert len(lines) == 10                                        # four metrics, four arms (detection once)
    assert "no budget runs" in sharing_text({"rows": rows}, "budget")
