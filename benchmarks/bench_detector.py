"""Benchmark: detectors built from course_lib parts, trained for a fixed wall-clock budget.

Reproduces lesson 08's tables: the same tiny backbone and head with neck = none
(C5 only), FPN or PAN; then the backbone swap with the same neck and head (a
from-scratch YOLO-style CSP backbone, and the pretrained MobileNetV2 with its
recipe).  Each row: val mAP@0.5, mAP@[.5:.95] and AP@0.5 on small / medium /
large objects (sizes under 16 px, 16-32 px, 32 px and up in a 128-pixel image).

    python benchmarks/bench_detector.py                      # every config, 60 s each, 2 threads
    python benchmarks/bench_detector.py det_fpn --budget 30
    python benchmarks/bench_detector.py det_fpn --json out/det_fpn.json   # one row, saved
    python benchmarks/bench_detector.py --table out/*.json                # merge saved rows

The full default run also saves its rows (with the machine and each config) to
``course_lib/training/results/detector.json`` (package data), which lesson 08 shows.

Targets (printed, not asserted): a detector from course_lib parts reaches mAP@0.5
>= 0.90 in 60 s on 2 CPU cores, and FPN's small-object AP beats no-neck's by >= 10
points with overall AP not worse.  Timings depend on the machine: run it on an
otherwise idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.run_all import machine  # noqa: E402
from course_lib.training import CONFIGS, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

DEFAULT = ["det_none", "det_fpn", "det_pan", "det_yolo_fpn", "det_mnv2_fpn"]
SAVED = ROOT / "course_lib" / "training" / "results" / "detector.json"   # read by lesson 08

COLUMNS = ("config", "params", "steps", "train_s", "map50", "map", "map50_small", "map50_medium", "map50_large")


def run_one(name: str, budget: float) -> dict:
    t0 = time.perf_counter()
    model, rep = train(name, steps=100_000, time_budget_s=budget, progress=False)
    m = rep["metrics"]
    return {"config": name, "params": sum(p.numel() for p in model.parameters()), "steps": rep["steps"],
            "train_s": rep["seconds"], "eval_s": round(time.perf_counter() - t0 - rep["seconds"], 1),
            "threads": torch.get_num_threads(), **{k: round(m[k], 4) for k in COLUMNS[4:]},
            "model": rep["config"], "recipe": rep["recipe"]}


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) and c.startswith("map") else str(r[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    by = {r["config"]: r for r in rows}
    if "det_fpn" in by and "det_none" in by:
        f, n = by["det_fpn"], by["det_none"]
        lines.append(f"\nFPN vs no neck: small AP {100 * (f['map50_small'] - n['map50_small']):+.1f} points, "
                     f"overall mAP@0.5 {100 * (f['map50'] - n['map50']):+.1f} points")
        lines.append(f"det_fpn mAP@0.5 = {f['map50']:.3f} after {f['train_s']:.0f} s on {f['threads']} threads")
    if rows:
        best = max(rows, key=lambda r: r["map50"])
        verdict = "met" if best["map50"] >= 0.90 and best["train_s"] <= 61 else "not met"
        lines.append(f"best: {best['config']} mAP@0.5 = {best['map50']:.3f} after {best['train_s']:.0f} s on "
                     f"{best['threads']} threads (target >= 0.90 in 60 s on 2 cores: {verdict})")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="*", default=DEFAULT)
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per config")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help=f"save the rows to this file (a full default run saves {SAVED.name})")
    p.add_argument("--table", nargs="+", help="print a table from saved JSON rows instead of training")
    a = p.parse_args()
    if a.table:
        rows = [r for f in a.table for r in json.loads(Path(f).read_text())["rows"]]
        print(table(rows))
        return 0
    torch.set_num_threads(a.threads)
    unknown = [c for c in a.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    info = machine()
    rows = [run_one(c, a.budget) for c in a.configs]
    out = a.json or (SAVED if a.configs == DEFAULT and a.budget == 60 and a.threads == 2 else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"machine": info, "budget_s": a.budget, "rows": rows}, indent=1) + "\n")
        print(f"saved {os.path.relpath(out, ROOT)}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
