"""Lesson 11's experiments: the classification recipe, the seed summaries and the saved benchmark file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_lib.lessons import exercises
from course_lib.training import CONFIGS, budget_seconds, gap_verdict, read_benchmark, seed_summary, seed_table, train

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "course_lib" / "training" / "results" / "transformer.json"


def test_classification_configs_train_on_one_label_per_image():
    """``mode: classify`` in a recipe: ShapesWorld's one-large-shape images, integer labels, the head's own loss."""
    assert CONFIGS["cls_vit"]["recipe"]["mode"] == CONFIGS["cls_cnn"]["recipe"]["mode"] == "classify"
    assert CONFIGS["cls_vit"]["model"]["head"] == CONFIGS["cls_cnn"]["model"]["head"]   # only the eye differs
    torch.set_num_threads(1)
    model, rep = train("cls_cnn", steps=2, train_images=64, progress=False, evaluate=False)
    assert rep["steps"] == 2 and rep["task"] == "classification" and all(0 < v < 10 for v in rep["history"].loss)
    assert model.head.fc.out_features == 3


def test_seed_summary_and_the_verdict_name_a_direction_only_beyond_the_spread():
    rows = [{"config": "a", "seed": s, "acc": v} for s, v in enumerate([0.50, 0.52, 0.54])]
    rows += [{"config": "b", "seed": s, "acc": v} for s, v in enumerate([0.40, 0.41, 0.42])]
    s = seed_summary(rows, "acc")
    assert s["a"]["mean"] == pytest.approx(0.52) and s["a"]["std"] == pytest.approx(0.02)   # n - 1
    assert s["b"]["values"] == [0.40, 0.41, 0.42] and s["b"]["seeds"] == [0, 1, 2]
    assert "a clear direction" in gap_verdict(s["a"], s["b"], ("A", "B"))
    assert gap_verdict(s["b"], s["a"], ("B", "A")).startswith("A is ahead of B by 11.0 points")
    close = seed_summary([{"config": "c", "acc": 0.51}, {"config": "c", "acc": 0.53}], "acc")
    assert "no clear winner" in gap_verdict(s["a"], close["c"])
    assert "0.520 ± 0.020" in seed_table([{**r, "steps": 10} for r in rows], ["a", "b", "z"], ["acc"])


@pytest.mark.skipif(not SAVED.is_file(), reason="run python benchmarks/bench_transformer.py")
def test_the_saved_benchmark_has_every_arm_for_every_seed_on_one_budget():
    bench = read_benchmark(SAVED)
    assert {"machine", "seeds", "budget_s", "experiments", "rows"} <= set(bench)
    assert len(bench["seeds"]) >= 3 and bench["machine"]["date"]
    for exp, spec in bench["experiments"].items():
        assert set(spec["configs"]) == set(spec["arms"])
        for arm in spec["arms"]:
            mine = [r for r in bench["rows"] if r["config"] == arm]
            assert sorted(r["seed"] for r in mine) == sorted(bench["seeds"]), arm
            assert all(r["experiment"] == exp and r["steps"] > 0 for r in mine)
            assert all(budget_seconds(bench, r) <= bench["budget_s"][exp] + 1 for r in mine)   # on its clock
            assert all(set(spec["metrics"]) <= set(r) for r in mine)
    assert 0 < bench["experiments"]["classification"]["majority_accuracy"] < 1


def test_to_grid_exercise_runs_the_learners_function_on_real_tokens():
    ex = exercises.get("11.to_grid")
    assert ex.is_correct(lambda t, h, w: t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w))
    assert not ex.is_correct(lambda t, h, w: t[:, 1:].reshape(t.shape[0], t.shape[-1], h, w))   # no transpose
    assert not ex.is_correct(lambda t, h, w: t[:, :-1].transpose(1, 2).reshape(t.shape[0], -1, h, w))
    assert not ex.is_correct(lambda t, h, w: t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, w, h))
