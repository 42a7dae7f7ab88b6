"""Benchmark: a transformer eye against a CNN eye, trained for the same wall-clock budget per arm.

Lesson 11's two experiments, each over several seeds (the seed changes the initial weights and the
order of the batches; the images are the same ShapesWorld splits).  The budget is counted on the CPU clock
(``fit(clock="cpu")``: the seconds of computing this process got, one torch thread), so other programs on a
shared machine do not take steps from one arm and not another; on an idle core it is the wall clock:

(a) classification on small data (1000 training images, one large shape each): ``cls_vit`` (tiny ViT,
    453,600 parameters in the eye) vs ``cls_cnn`` (tiny CNN, 458,160), the same classification head; val accuracy.
(b) detection: ``det_vit_pyramid`` (tiny ViT + ViTDet's simple feature pyramid) vs ``det_vit_none``
    (tiny ViT, the head reads its one stride-16 map) vs ``det_fpn`` (tiny CNN + FPN); val mAP@0.5
    overall and on small objects.

Within each seed the arms run one after another, their order rotated from seed to seed.  Each run records
the steps it reached and both its CPU and its wall-clock seconds.

    python benchmarks/bench_transformer.py                         # 3 seeds, 300 s / 180 s per arm, 1 thread
    python benchmarks/bench_transformer.py --only classification --json /tmp/c.json   # two processes share
    python benchmarks/bench_transformer.py --only detection --json /tmp/d.json        # the work, then
    python benchmarks/bench_transformer.py --merge /tmp/c.json /tmp/d.json            # one table
    python benchmarks/bench_transformer.py --seeds 0 --cls-budget 5 --det-budget 5 --json /tmp/t.json

The default run saves ``course_lib/training/results/transformer.json`` (machine, date, configs, one row per arm and
seed) and the seed-0 ``cls_vit`` model to the package's checkpoints (``load_trained("cls_vit")``) (lesson 11 looks at its attention).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.run_all import machine  # noqa: E402
from course_lib.training import train  # noqa: E402
from course_lib.training.checkpoints import save_checkpoint  # noqa: E402
from course_lib.training.recipes import get_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "course_lib" / "training" / "results" / "transformer.json"   # read by lesson 11
CHECKPOINTS = ROOT / "course_lib" / "training" / "checkpoints"             # cls_vit ships with the package

#: Training CPU seconds per arm and seed.  The tiny CNN classifier leaves the floor of always answering one class
#: after about 500 steps and levels off near 0.8 by about 1250 (measured here: 2000 steps, cosine schedule), so
#: 300 s (about 2,400 of its steps on one core of this machine) lets it get there.
CLS_BUDGET, DET_BUDGET = 300.0, 180.0
CLOCK = "cpu"

EXPERIMENTS = {
    "classification": {"arms": ["cls_vit", "cls_cnn"], "metrics": ["accuracy"]},
    "detection": {"arms": ["det_vit_pyramid", "det_vit_none", "det_fpn"],
                  "metrics": ["map50", "map50_small", "map50_medium", "map50_large", "map"]},
}


def majority_accuracy() -> dict:
    """The accuracy of always answering the most common class of the val split: the floor to beat."""
    from course_lib.data import ShapesWorld

    _, labels = ShapesWorld("val", mode="classify").materialize()
    counts = torch.bincount(torch.tensor(labels)).tolist()
    return {"val_class_counts": counts, "majority_accuracy": round(max(counts) / sum(counts), 4)}


def run_one(name: str, seed: int, budget: float, metrics: list[str]) -> tuple[dict, object, dict]:
    """Train config ``name`` with ``seed`` for ``budget`` seconds; one row of the table."""
    cfg = get_config(name)
    cfg["recipe"]["seed"] = seed
    t0 = time.perf_counter()
    model, rep = train(cfg, steps=100_000, time_budget_s=budget, progress=False, clock=CLOCK)
    rep["name"] = name
    row = {"experiment": "", "config": name, "seed": seed, "params": sum(p.numel() for p in model.parameters()),
           "steps": rep["steps"], "train_s": rep["seconds"], "train_cpu_s": rep["cpu_seconds"],
           "eval_s": round(time.perf_counter() - t0 - rep["seconds"], 1), "threads": torch.get_num_threads(),
           **{k: round(float(rep["metrics"][k]), 4) for k in metrics},
           "model": rep["config"], "recipe": rep["recipe"]}
    return row, model, rep


def mark_command(directory: Path, name: str, budget: float) -> None:
    """Say in the checkpoint manifest which command made the file (not the 500-step ``course_lib.training`` one)."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest[name]["command"] = f"python benchmarks/bench_transformer.py  (seed 0, {budget:.0f} CPU s, 1 thread)"
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def summary(rows: list[dict]) -> str:
    """Mean +- std per arm and metric (and steps), as a text table."""
    lines = []
    for exp, spec in EXPERIMENTS.items():
        for arm in spec["arms"]:
            rs = [r for r in rows if r["config"] == arm]
            if not rs:
                continue
            cells = []
            for k in ["steps", *spec["metrics"][:2]]:
                v = [r[k] for r in rs]
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                cells.append(f"{k} {statistics.mean(v):.3f} +- {sd:.3f}" if k != "steps"
                             else f"steps {statistics.mean(v):.0f} +- {sd:.0f}")
            lines.append(f"{exp:14s} {arm:16s} n={len(rs)}  " + "  ".join(cells))
    return "\n".join(lines)


def merge(cls_json: str, det_json: str) -> int:
    """One table from the two ``--only`` runs (classification from the first file, detection from the second)."""
    a, b = (json.loads(Path(f).read_text()) for f in (cls_json, det_json))
    if not (a["finished"] and b["finished"]):
        raise SystemExit("both runs must have finished")
    data = {**a, "rows": [r for r in a["rows"] if r["experiment"] == "classification"]
            + [r for r in b["rows"] if r["experiment"] == "detection"],
            "budget_s": {"classification": a["budget_s"]["classification"], "detection": b["budget_s"]["detection"]},
            "machine_detection_run": b["machine"]}
    SAVED.write_text(json.dumps(data, indent=1) + "\n")
    print(f"saved {os.path.relpath(SAVED, ROOT)}")
    print(summary(data["rows"]))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cls-budget", type=float, default=CLS_BUDGET, help="training seconds per classification arm")
    p.add_argument("--det-budget", type=float, default=DET_BUDGET, help="training seconds per detection arm")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help=f"save here (the default run saves {SAVED.name})")
    p.add_argument("--only", choices=list(EXPERIMENTS), help="run one experiment (two processes can then share "
                   "the work; --merge joins their files)")
    p.add_argument("--merge", nargs=2, metavar=("CLS_JSON", "DET_JSON"),
                   help=f"join the two --only files into {SAVED.name} and stop")
    a = p.parse_args()
    if a.merge:
        return merge(*a.merge)
    torch.set_num_threads(a.threads)
    default = a.seeds == [0, 1, 2] and a.cls_budget == CLS_BUDGET and a.det_budget == DET_BUDGET and a.threads == 1
    out = Path(a.json) if a.json else (SAVED if default and not a.only else None)
    budgets = {"classification": a.cls_budget, "detection": a.det_budget}
    data = {"machine": machine(), "threads": a.threads, "seeds": a.seeds, "budget_s": budgets, "clock": CLOCK,
            "experiments": {e: {"arms": s["arms"], "metrics": s["metrics"],
                                "configs": {n: get_config(n) for n in s["arms"]}} for e, s in EXPERIMENTS.items()},
            "rows": [], "finished": False}
    data["experiments"]["classification"].update(majority_accuracy())
    for exp, spec in EXPERIMENTS.items():
        if a.only and exp != a.only:
            continue
        for i, seed in enumerate(a.seeds):
            k = i % len(spec["arms"])
            for arm in spec["arms"][k:] + spec["arms"][:k]:  # the order rotates from seed to seed
                row, model, rep = run_one(arm, seed, budgets[exp], spec["metrics"])
                row["experiment"] = exp
                data["rows"].append(row)
                print(f"{exp} {arm} seed {seed}: steps {row['steps']} in {row['train_cpu_s']} CPU s "
                      f"({row['train_s']} s wall), "
                      + ", ".join(f"{m} {row[m]:.3f}" for m in spec["metrics"][:2]), flush=True)
                if default and arm == "cls_vit" and seed == 0:
                    save_checkpoint(model, rep, CHECKPOINTS)
                    mark_command(CHECKPOINTS, arm, budgets[exp])
                if out:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(data, indent=1) + "\n")
    data["finished"] = True
    if out:
        out.write_text(json.dumps(data, indent=1) + "\n")
        print(f"saved {os.path.relpath(out, ROOT)}")
    print(summary(data["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
