"""The library's tables (lesson 08's among them): the rows hold the numbers the library computes elsewhere."""

from __future__ import annotations

import json

import pytest
import torch

import course_lib as cl
from course_lib import training as T
from course_lib.backbones.measure import format_table, swap_backbones
from course_lib.data import ShapesWorld
from course_lib.measure import count_params

SMALL = {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 32},
         "head": {"name": "detection", "num_classes": 3, "width": 16, "depth": 1}}


def test_format_table_writes_floats_and_integers_as_asked_and_keeps_the_rows():
    rows = [{"name": "a", "n": 852201, "ap": 0.82061}, {"name": "bb", "n": 7, "ap": 0.5}]
    assert format_table(rows).splitlines()[1].split() == ["a", "852201", "0.82061"]  # as before: str()
    lines = format_table(rows, digits=3, commas=True).splitlines()
    assert lines[1].split() == ["a", "852,201", "0.821"] and lines[2].split() == ["bb", "7", "0.500"]
    assert len({len(line) for line in lines}) == 1  # aligned
    assert rows[0]["ap"] == 0.82061


def test_compare_detectors_rows_are_evaluate_detector_and_count_params():
    world = ShapesWorld("val", num_images=20)
    shipped = T.load_trained("det_none")
    rows = T.compare_detectors(["det_none"], world)
    direct = T.evaluate_detector(shipped, world)
    assert list(rows[0]) == ["model", *T.DETECTION_COLUMNS, "params"]
    assert rows[0]["model"] == "det_none" and rows[0]["params"] == count_params(shipped)
    assert all(rows[0][c] == pytest.approx(float(direct[c])) for c in T.DETECTION_COLUMNS)
    torch.manual_seed(0)
    mine = T.compare_detectors({"untrained": cl.build_model(SMALL)}, world, columns=["map50"])
    assert list(mine[0]) == ["model", "map50", "params"] and mine[0]["map50"] == 0.0  # no box above 0.05 yet


def test_benchmark_table_picks_rows_and_columns(tmp_path):
    rows = [{"config": "det_fpn", "steps": 450, "map50": 0.79, "map": 0.5, "map50_small": 0.6,
             "map50_medium": 0.8, "map50_large": 0.8},
            {"config": "det_none", "steps": 668, "map50": 0.42, "map": 0.2, "map50_small": 0.07,
             "map50_medium": 0.4, "map50_large": 0.85}]
    path = tmp_path / "detector.json"
    path.write_text(json.dumps({"machine": {}, "budget_s": 60, "rows": rows}))
    bench = T.read_benchmark(path)
    table = T.benchmark_table(bench, ["det_none", "det_fpn"])
    assert [r["config"] for r in table] == ["det_none", "det_fpn"] and table[0]["steps"] == 668
    assert list(table[0]) == ["config", "steps", *T.DETECTION_COLUMNS]
    with pytest.raises(KeyError, match="det_pan"):
        T.benchmark_table(bench, ["det_pan"])


def test_swap_backbones_keeps_neck_and_head_and_counts_each_part():
    swaps = {"tiny": {"name": "tiny_cnn"}, "csp": {"name": "yolo_csp", "levels": ["C3", "C4", "C5"]}}
    rows = swap_backbones(SMALL, swaps, batch=2, image_size=64)
    assert [r["backbone"] for r in rows] == ["tiny", "csp"]
    for r, bb in zip(rows, swaps.values()):
        model = cl.build_model({**SMALL, "backbone": bb})
        assert r["backbone params"] == count_params(model.backbone) and r["neck params"] == count_params(model.neck)
        assert r["in"] == cl.describe_specs(model.backbone.out_specs)
        assert r["first output"] == (2, 3, 8, 8) and r["ms/image"] > 0
    assert rows[0]["head params"] == rows[1]["head params"]  # the neck's outputs are the same: so is the head


def test_stage_overview_has_one_row_per_backbone_and_one_column_per_stage():
    from course_lib.backbones import measure as M

    rows = {r["backbone"]: r for r in M.stage_overview(["resnet50", "tiny_swin"])}
    assert list(rows["resnet50"]) == ["backbone", "C1 /2", "C2 /4", "C3 /8", "C4 /16", "C5 /32"]
    assert [rows["resnet50"][f"C{i} /{2 ** i}"] for i in range(1, 6)] == [64, 256, 512, 1024, 2048]
    assert rows["tiny_swin"]["C1 /2"] == "-" and rows["tiny_swin"]["C5 /32"] == 128   # no stride-2 map


def test_roughness_tells_noise_from_smooth_maps_whatever_the_scale():
    import torch

    from course_lib.backbones import measure as M

    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 32).repeat(32, 1)
    noise = torch.randn(32, 32)
    r = M.roughness(torch.stack([ramp, 100 * ramp, noise]))
    assert r[0] < 0.01 and torch.isclose(r[0], r[1], rtol=1e-4) and 0.8 < r[2] < 1.2
