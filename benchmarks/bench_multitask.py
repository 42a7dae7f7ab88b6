"""Benchmark: does sharing one backbone + neck help each task?  Lesson 10's comparison, over seeds.

Four arms, each trained from scratch with the ``multitask`` config's recipe on the same
ShapesWorld images: the multi-task model (three heads) and one single-task model per head
(the same backbone, neck and head; ``recipes.single_task``).  Two protocols:

* ``plateau`` -- each arm trains until its val metric stops improving (``recipes.PLATEAU``: a check
  every 150 steps, stop once the last two checks add less than 0.5 points, for every head), with a cap
  (1500 steps; the cosine schedule runs over the cap);
* ``budget`` -- every arm gets the recipe's 500 steps (what ``python -m course_lib.training multitask``
  records in the manifest for seed 0).

    python benchmarks/bench_multitask.py                   # print the saved table (course_lib/training/results/multitask.json)
    python benchmarks/bench_multitask.py --train           # measure: seeds 0 1 2, both protocols (~2.5 h on 1 core of an idle machine)
    python benchmarks/bench_multitask.py --train --protocols plateau --seeds 0 --json /tmp/s0.json   # one process
    python benchmarks/bench_multitask.py --train --protocols plateau --seeds 1 --json /tmp/s1.json   # per core,
    python benchmarks/bench_multitask.py --merge /tmp/s0.json /tmp/s1.json                           # then join

Every finished run is written to ``course_lib/training/results/multitask.json`` at once (machine, date, config, recipe,
the plateau rule, and per run: arm, protocol, seed, metrics, steps reached, what stopped it, seconds,
the val curve), so an interrupted measurement keeps what it finished; lesson 10 reads it with
``read_benchmark``.  One torch thread (the default) keeps runs comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.run_all import machine  # noqa: E402
from course_lib.training import (  # noqa: E402
    PLATEAU,
    RECIPE,
    get_config,
    read_benchmark,
    sharing_table,
    sharing_text,
    train_arms,
)

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "course_lib" / "training" / "results" / "multitask.json"   # read by lesson 10
CONFIG = "multitask"
ARMS = ("multitask", "classification", "detection", "segmentation")


def row(arm: str, protocol: str, seed: int, rep: dict) -> dict:
    cfg = get_config(CONFIG)
    return {"config": CONFIG, "arm": arm, "protocol": protocol, "seed": seed, "steps": rep["steps"],
            "stopped_by": rep["stopped_by"], "train_s": rep["seconds"],
            "metrics": {k: round(float(v), 4) for k, v in rep["metrics"].items() if not isinstance(v, list)},
            "curve": rep.get("curve", []), "threads": torch.get_num_threads(),
            "model": cfg["model"], "recipe": rep["recipe"]}


def save(path: Path, info: dict, plateau: dict, rows: list[dict]) -> None:
    cfg = get_config(CONFIG)
    data = {"machine": info, "config": CONFIG, "model": cfg["model"], "recipe": {**RECIPE, **cfg["recipe"]},
            "plateau": plateau, "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def report(path: Path) -> str:
    bench = read_benchmark(path)
    lines = [f"measured {bench['machine']['date']} on {bench['machine']['cpu']}; plateau rule {bench['plateau']}"]
    for protocol in ("plateau", "budget"):
        if sharing_table(bench, protocol):
            lines += [f"\n{protocol}:", sharing_text(bench, protocol)]
    stale = sorted({r["arm"] for r in bench["rows"] if not r["current"]})
    if stale:
        lines.append(f"\nwarning: measured with an older config or recipe ({', '.join(stale)}); rerun --train")
    return "\n".join(lines)


def merge(parts: list[Path], path: Path) -> int:
    """Join runs measured in several processes (each with its own ``--json``) into ``path``."""
    loaded = [json.loads(f.read_text()) for f in parts]
    rules = {json.dumps(d["plateau"], sort_keys=True) for d in loaded}
    if len(rules) > 1:
        raise SystemExit(f"the files were measured with different plateau rules: {sorted(rules)}")
    new = [r for d in loaded for r in d["rows"]]
    keys = {(r["arm"], r["protocol"], r["seed"]) for r in new}
    if len(keys) < len(new):
        raise SystemExit("the files measure the same arm, protocol and seed more than once")
    old = json.loads(path.read_text())["rows"] if path.is_file() else []
    rows = [r for r in old if (r["arm"], r["protocol"], r["seed"]) not in keys] + new
    rows.sort(key=lambda r: (r["protocol"] != "plateau", r["seed"], ARMS.index(r["arm"])))
    save(path, loaded[0]["machine"], loaded[0]["plateau"], rows)
    print(report(path))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", action="store_true", help="train the arms (otherwise: print the saved table)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--protocols", nargs="+", default=["plateau", "budget"], choices=["plateau", "budget"])
    p.add_argument("--cap", type=int, default=PLATEAU["cap"], help="most steps of a plateau run")
    p.add_argument("--every", type=int, default=PLATEAU["every"], help="steps between the plateau checks")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(SAVED), help="where to save (and, with --resume, what to extend)")
    p.add_argument("--resume", action="store_true", help="keep the saved runs and skip those already measured")
    p.add_argument("--merge", nargs="+", metavar="JSON", help=f"put the runs of these --json files into "
                   f"{SAVED.name} (replacing its runs of the same arm, protocol and seed) and stop")
    a = p.parse_args()
    if a.merge:
        return merge([Path(f) for f in a.merge], SAVED)
    out = Path(a.json)
    if not a.train:
        print(report(out))
        return 0
    torch.set_num_threads(a.threads)
    plateau = {**PLATEAU, "cap": a.cap, "every": a.every}
    info = machine()
    rows = json.loads(out.read_text())["rows"] if a.resume and out.is_file() else []
    done = {(r["arm"], r["protocol"], r["seed"]) for r in rows}
    for protocol in a.protocols:
        for seed in a.seeds:
            for arm in a.arms:
                if (arm, protocol, seed) in done:
                    continue
                kw = {"plateau": plateau} if protocol == "plateau" else {"steps": RECIPE["steps"]}
                t0 = time.perf_counter()
                rep = train_arms(CONFIG, arms=[arm], seed=seed, progress=False, **kw)[arm]
                rows.append(row(arm, protocol, seed, rep))
                save(out, info, plateau, rows)
                print(f"{protocol:8s} seed {seed} {arm:15s} {rep['steps']:5d} steps ({rep['stopped_by']}) "
                      f"{rep['seconds']:6.0f} s train, {time.perf_counter() - t0:4.0f} s in all  "
                      f"{json.dumps(rows[-1]['metrics'])}", flush=True)
    print(report(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
