"""Train a named ShapesWorld model and ship it as a checkpoint: ``python -m course_lib.train NAME``.

The named configs (:data:`CONFIGS`) are plain ``build_model`` dicts plus a
training recipe.  Training uses :func:`course_lib.training.fit` (progress bar,
device auto, seeding) on a ShapesWorld train split drawn once into memory.
The command writes ``data/checkpoints/NAME.pt`` (weights + config) and records
in ``data/checkpoints/manifest.json`` the config, seed, recipe, val metrics,
training time, torch version and the file's sha256, so that::

    python -m course_lib.train det_fpn            # retrain one checkpoint
    python -m course_lib.train --all              # retrain everything the lessons load

reproduces the shipped files (bit for bit on the same torch version and CPU:
the step count is fixed and every random number is seeded).  Lessons load them
with :func:`load_trained`, which checks the sha256 and uses ``weights_only=True``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from . import weights as W
from .data import CLASSES, ShapesWorld
from .metrics import detection_map, mean_iou
from .model import Model, build_model

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_DIR = ROOT / "data" / "checkpoints"
MANIFEST = "manifest.json"

_DET_HEAD = {"name": "detection", "num_classes": len(CLASSES), "class_names": list(CLASSES),
             "width": 48, "depth": 2, "reg_bins": 8}
_RECIPE = {"steps": 500, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-4, "seed": 0,
           "train_images": 4000, "image_size": 128, "bn_momentum": 0.1}


def _det(neck: Mapping[str, Any], backbone: Mapping[str, Any] | None = None, **head_kw) -> dict[str, Any]:
    return {"task": "detection",
            "model": {"backbone": dict(backbone or {"name": "tiny_cnn"}), "neck": dict(neck),
                      "head": {**_DET_HEAD, **head_kw}},
            "recipe": dict(_RECIPE)}


#: Every named config: ``{"task", "model" (a build_model dict), "recipe"}``.
CONFIGS: dict[str, dict[str, Any]] = {
    # lesson 05's ablation: the same backbone and head, three necks
    "det_none": _det({"name": "identity", "keys": ["C5"]}),
    "det_fpn": _det({"name": "fpn", "out_channels": 64}),
    "det_pan": _det({"name": "pan", "out_channels": 64}),
    # lesson 05's backbone swap: a small YOLO-style eye (YOLOv8n's CSP backbone), from scratch
    "det_yolo_fpn": _det({"name": "fpn", "out_channels": 64},
                         backbone={"name": "yolo_csp", "levels": ["C3", "C4", "C5"]}),
    # ... and the pretrained ImageNet eye, cut at C5 = features[17] (320 ch), with the recipe that fits
    # 60 s on 2 cores: batch 16 (more steps in a fixed time), the stem (C1, C2: edges and blobs) frozen,
    # so no backward pass through the two largest maps, channels-last memory, and IoU-aware class targets
    # (quality focal loss).  Measured in 60 s runs on 2 cores: mAP@0.5 0.90-0.91 with batch 16 alone, 0.91
    # adding the frozen stem and channels-last (1.5x the steps), 0.91-0.925 with all four (seeds 0-2).
    "det_mnv2_fpn": {**_det({"name": "fpn", "out_channels": 64},
                            backbone={"name": "mobilenet_v2_320", "pretrained": True}, cls_loss="quality"),
                     "recipe": {**_RECIPE, "batch_size": 16, "lr": 3e-3, "channels_last": True,
                                "freeze": ["backbone.stages.C1", "backbone.stages.C2"]}},
    # lesson 04's segmentation head
    "seg_fpn": {"task": "segmentation",
                "model": {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 64},
                          "head": {"name": "segmentation", "num_classes": len(CLASSES) + 1,
                                   "class_names": ["background", *CLASSES]}},
                "recipe": {**_RECIPE, "steps": 250}},
}
#: The checkpoints the lessons load (``--all`` trains these).
SHIPPED = ("det_fpn", "det_none", "det_pan", "seg_fpn")


def get_config(name: str) -> dict[str, Any]:
    """A deep copy of a named config (so changing it does not change the catalogue)."""
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
    return copy.deepcopy(CONFIGS[name])


# ----------------------------------------------------------------- data
def world_batches(world: ShapesWorld, batch_size: int = 32, seed: int = 0,
                  channels_last: bool = False) -> Callable[[], Iterator]:
    """``(images, targets)`` batches from a ShapesWorld split drawn once into memory; call once per epoch.

    ``channels_last`` stores the images as (N, H, W, C) in memory, the layout the CPU's
    convolution kernels prefer (a model moved with ``.to(memory_format=torch.channels_last)``).
    """
    images, targets = world.materialize()
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    epoch = [0]

    def batches() -> Iterator:
        g = torch.Generator().manual_seed(seed + epoch[0])
        epoch[0] += 1
        order = torch.randperm(len(images), generator=g)
        for i in range(0, len(order) - batch_size + 1, batch_size):  # full batches only
            idx = order[i:i + batch_size]
            yield images[idx].float().div_(255), [targets[j] for j in idx.tolist()]

    batches.num_batches = len(images) // batch_size  # type: ignore[attr-defined]
    return batches


@torch.no_grad()
def predict(model: Model, images: torch.Tensor, batch_size: int = 100, **decode_kw) -> list:
    """Run a model over images in batches (eval mode) and decode its head's outputs."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device)
            x = x.float().div(255) if x.dtype == torch.uint8 else x
            res = model.head.decode(model(x), **decode_kw)
            out.extend(res if isinstance(res, list) else list(res.cpu()))
    finally:
        model.train(was)
    return out


def evaluate_detector(model: Model, world: ShapesWorld | None = None, score_thresh: float = 0.05) -> dict[str, Any]:
    """mAP@0.5, mAP@[.5:.95] and the small / medium / large breakdown on a split (default: val)."""
    world = world or ShapesWorld("val")
    images, targets = world.materialize()
    preds = predict(model, images, score_thresh=score_thresh, iou_thresh=0.6)
    return detection_map(preds, targets, num_classes=model.head.num_classes, image_size=world.image_size)


def evaluate_segmenter(model: Model, world: ShapesWorld | None = None) -> dict[str, Any]:
    """mIoU (background included) and pixel accuracy on a split (default: val)."""
    world = world or ShapesWorld("val")
    images, targets = world.materialize()
    pred = torch.stack(predict(model, images))
    sem = torch.stack([t["semantic"] for t in targets])
    return mean_iou(pred, sem, model.head.num_classes)


# ----------------------------------------------------------------- training
class CosineSchedule:
    """A :func:`fit` callback that lowers the learning rate along a half cosine, to 5 % at the end.

    Progress is the fraction of ``steps`` done, or of ``time_budget_s`` spent,
    whichever is further.  ``fit`` calls it after every evaluation, so pass
    ``eval_every`` (e.g. 10) to update the rate every few steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int | None, time_budget_s: float | None = None,
                 then: Callable | None = None):
        self.optimizer, self.steps, self.budget, self.then = optimizer, steps, time_budget_s, then
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.start = time.perf_counter()

    def __call__(self, hist) -> None:
        done = hist.steps_done / self.steps if self.steps else 0.0
        if self.budget:
            done = max(done, (time.perf_counter() - self.start) / self.budget)
        f = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
        for g, lr in zip(self.optimizer.param_groups, self.base):
            g["lr"] = lr * f
        if self.then is not None:
            self.then(hist)


def set_bn_momentum(model: torch.nn.Module, momentum: float) -> None:
    """Let BatchNorm's running statistics follow the weights faster in short runs.

    YOLO-style blocks keep BatchNorm running statistics with momentum 0.03 (a ~33-step memory), made for
    300-epoch runs.  In a run of a few hundred steps the weights change faster than that memory, so the
    eval-mode statistics lag behind: measured here, mAP@0.5 after 120 steps was 0.02 with 0.03 and 0.27 with 0.1.
    """
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def run_recipe(model: torch.nn.Module, recipe: Mapping[str, Any], *, loss_fn: Callable | None = None,
               time_budget_s: float | None = None, progress: bool = True, callback: Callable | None = None,
               eval_every: int | None = None, device: str = "cpu", desc: str = "training") -> tuple[Any, float]:
    """Train ``model`` on the ShapesWorld train split with a recipe: AdamW, cosine schedule, :func:`fit`.

    Recipe keys: ``steps``, ``batch_size``, ``lr``, ``weight_decay``, ``seed``, ``train_images``,
    ``image_size``, ``bn_momentum``; optional ``freeze`` (submodule names whose weights and
    BatchNorm statistics stay as they are, e.g. ``"backbone.stages.C1"``) and ``channels_last``
    (model and images in the (N, H, W, C) memory layout).  Returns the
    :class:`~course_lib.training.History` and the training seconds.
    """
    from .training import fit, freeze

    set_bn_momentum(model, recipe["bn_momentum"])
    for part in recipe.get("freeze", ()):
        freeze(model.get_submodule(part))
    channels_last = bool(recipe.get("channels_last", False))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    world = ShapesWorld("train", num_images=recipe["train_images"], image_size=recipe["image_size"])
    data = world_batches(world, recipe["batch_size"], seed=recipe["seed"], channels_last=channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    schedule = CosineSchedule(opt, recipe["steps"], time_budget_s, then=callback)
    t0 = time.perf_counter()
    hist = fit(model, data, loss_fn=loss_fn, steps=recipe["steps"], time_budget_s=time_budget_s, optimizer=opt,
               seed=recipe["seed"], device=device, progress=progress, callback=schedule,
               eval_every=eval_every or 10, grad_clip=10.0, desc=desc)
    return hist, time.perf_counter() - t0


def train(name_or_config: str | Mapping[str, Any], *, steps: int | None = None, time_budget_s: float | None = None,
          progress: bool = True, callback: Callable | None = None, eval_every: int | None = None,
          device: str = "cpu", evaluate: bool = True, train_images: int | None = None) -> tuple[Model, dict[str, Any]]:
    """Build a named config (or a config dict), train it with :func:`~course_lib.training.fit`, evaluate it.

    ``steps`` / ``time_budget_s`` override the recipe's budget (a time budget
    stops after that many seconds, whichever comes first).  Returns the trained
    model and a report ``{"name", "config", "recipe", "metrics", "seconds", "steps", "history"}``.
    """

    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else copy.deepcopy(dict(name_or_config))
    recipe = {**_RECIPE, **cfg.get("recipe", {})}
    if steps is not None:
        recipe["steps"] = int(steps)
    if train_images is not None:
        recipe["train_images"] = int(train_images)
    torch.manual_seed(recipe["seed"])
    model = build_model(cfg["model"])
    hist, seconds = run_recipe(model, recipe, time_budget_s=time_budget_s, progress=progress, callback=callback,
                               eval_every=eval_every, device=device,
                               desc=str(name_or_config) if isinstance(name_or_config, str) else "training")
    model.eval()
    metrics: dict[str, Any] = {}
    if evaluate:
        val = ShapesWorld("val", image_size=recipe["image_size"])
        metrics = evaluate_detector(model, val) if cfg["task"] == "detection" else evaluate_segmenter(model, val)
    report = {"name": name_or_config if isinstance(name_or_config, str) else "custom", "task": cfg["task"],
              "config": model.config, "recipe": recipe, "metrics": metrics, "seconds": round(seconds, 1),
              "steps": hist.steps_done, "history": hist}
    return model, report


# ----------------------------------------------------------------- checkpoints
def save_checkpoint(model: Model, report: Mapping[str, Any], directory: str | Path = CHECKPOINT_DIR) -> Path:
    """Write ``NAME.pt`` (config + weights, plain tensors only) and its manifest entry with the sha256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = report["name"]
    path = directory / f"{name}.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"config": report["config"], "task": report["task"], "state_dict": state}, path)
    manifest = read_manifest(directory)
    manifest[name] = {
        "file": path.name, "sha256": W.sha256_of(path), "bytes": path.stat().st_size,
        "task": report["task"], "config": report["config"], "recipe": report["recipe"],
        "seed": report["recipe"]["seed"], "steps": report["steps"], "train_seconds": report["seconds"],
        "metrics": _jsonable(report["metrics"]), "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "command": f"python -m course_lib.train {name} --threads {torch.get_num_threads()}",
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def _jsonable(m: Mapping[str, Any]) -> dict[str, Any]:
    def fix(v):
        if isinstance(v, float):
            return None if v != v else round(v, 4)
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in m.items()}


def read_manifest(directory: str | Path = CHECKPOINT_DIR) -> dict[str, Any]:
    """The manifest ``{name: {file, sha256, config, metrics, ...}}`` (empty if there is none yet)."""
    p = Path(directory) / MANIFEST
    return json.loads(p.read_text()) if p.is_file() else {}


def load_trained(name: str, directory: str | Path = CHECKPOINT_DIR) -> Model:
    """Load a shipped checkpoint by name: sha256 checked, ``weights_only=True``, model in eval mode."""
    manifest = read_manifest(directory)
    if name not in manifest:
        raise FileNotFoundError(
            f"no checkpoint {name!r} in {Path(directory) / MANIFEST} (have: {', '.join(manifest) or 'none'}); "
            f"train it with: python -m course_lib.train {name}"
        )
    entry = manifest[name]
    ckpt = W.load_checkpoint(Path(directory) / entry["file"], entry["sha256"])
    cfg = copy.deepcopy(ckpt["config"])
    cfg["backbone"] = {**cfg["backbone"], "pretrained": False}  # the checkpoint holds every weight
    model = build_model(cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.config = ckpt["config"]
    return model.eval()


# ----------------------------------------------------------------- benchmark results
BENCHMARK_FILE = ROOT / "benchmarks" / "detector.json"


def read_benchmark(path: str | Path = BENCHMARK_FILE) -> dict[str, Any]:
    """The wall-clock detector table that ``benchmarks/bench_detector.py`` saved: ``{"machine", "budget_s", "rows"}``.

    Each row gets ``"current"``: whether its model and recipe are still those of the named config
    today (a table measured before a config changed is stale: rerun ``make bench``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark results at {path}; measure them with: python benchmarks/bench_detector.py")
    data = json.loads(path.read_text())
    for row in data["rows"]:
        cfg = CONFIGS.get(row["config"])
        recipe = {**_RECIPE, **cfg["recipe"]} if cfg else {}
        same_recipe = {k: v for k, v in recipe.items() if k != "steps"} == {
            k: v for k, v in row.get("recipe", {}).items() if k != "steps"}
        row["current"] = bool(cfg) and cfg["model"] == row.get("model") and same_recipe
    return data


# ----------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"configs to train: {', '.join(CONFIGS)}")
    parser.add_argument("--all", action="store_true", help=f"train every shipped checkpoint ({', '.join(SHIPPED)})")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's step count")
    parser.add_argument("--out", default=str(CHECKPOINT_DIR), help="where to write NAME.pt and manifest.json")
    parser.add_argument("--train-images", type=int, default=None, help="override the recipe's train split size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    names = list(SHIPPED) if args.all else args.names
    if not names:
        parser.error("name a config, or use --all")
    for n in names:
        if n not in CONFIGS:
            parser.error(f"unknown config {n!r}; known: {', '.join(CONFIGS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    for n in names:
        model, report = train(n, steps=args.steps, train_images=args.train_images)
        path = save_checkpoint(model, report, args.out)
        shown = {k: v for k, v in report["metrics"].items() if not isinstance(v, list)}
        print(f"{n}: {report['steps']} steps in {report['seconds']:.0f}s -> {path} "
              f"({path.stat().st_size / 1e6:.2f} MB) {json.dumps(_jsonable(shown))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
