"""Train named models and ship them as checkpoints: ``python -m course_lib.training NAME ... | --all``.

    python -m course_lib.training det_fpn                  # retrain one checkpoint
    python -m course_lib.training --all --threads 1        # retrain everything the lessons load
    python -m course_lib.training det_fpn --out my_ckpts   # somewhere else

Each run writes ``NAME.pt`` (weights + config) into ``--out`` (default: the package's own
checkpoint folder, when it is writable: a source checkout) and records in ``manifest.json``
the config, seed, recipe, val metrics, training time, torch version and the file's sha256.
A model with several heads (``multitask``) also trains one single-head model per task with the
same recipe, and records their metrics as ``baselines``.  The step count is fixed and every
random number is seeded, so a retrain reproduces the manifest's metrics within two AP points; on
the same kind of CPU, torch version and thread count the file comes out bit for bit the same, on
another kind of CPU its bytes (and sha256) differ (see ``checkpoints/README.md``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import torch

from .checkpoints import _jsonable, default_out, save_checkpoint
from .recipes import CONFIGS, SHIPPED, train, train_baselines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"configs to train: {', '.join(CONFIGS)}")
    parser.add_argument("--all", action="store_true", help=f"train every shipped checkpoint ({', '.join(SHIPPED)})")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    parser.add_argument("--out", default=None, help="where to write NAME.pt and manifest.json "
                                                     "(default: the package's checkpoint folder)")
    parser.add_argument("--train-images", type=int, default=None, help="override the recipe's train split size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (fix it to reproduce exactly)")
    args = parser.parse_args(argv)
    names = list(SHIPPED) if args.all else args.names
    if not names:
        parser.error("name a config, or use --all")
    for n in names:
        if n not in CONFIGS:
            parser.error(f"unknown config {n!r}; known: {', '.join(CONFIGS)}")
    out = args.out or default_out()
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = {"steps": args.steps, "train_images": args.train_images}
    for n in names:
        model, report = train(n, **budget)
        if "heads" in CONFIGS[n]["model"]:
            report["baselines"] = train_baselines(n, progress=False, **budget)
        path = save_checkpoint(model, report, out)
        shown = {k: v for k, v in report["metrics"].items() if not isinstance(v, list)}
        print(f"{n}: {report['steps']} steps in {report['seconds']:.0f}s -> {path} "
              f"({path.stat().st_size / 1e6:.2f} MB) {json.dumps(_jsonable(shown))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
