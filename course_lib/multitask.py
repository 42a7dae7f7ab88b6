"""One backbone, one neck, many heads: multi-task learning (多任务学习) made literal.

A :class:`MultiTaskModel` runs the backbone and neck once and hands the same
fused maps to every head.  Training adds the heads' losses, so the shared eye
and brain learn features that serve all the judgements at once.

>>> model = build_multitask({"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 64},
...                          "heads": {"classification": {"num_classes": 3},
...                                    "detection": {"num_classes": 3},
...                                    "segmentation": {"num_classes": 4}}})

On ShapesWorld the three tasks read one image: *classification* names the
shape that covers the most pixels (:func:`dominant_label`), *detection* boxes
every shape, *segmentation* paints every pixel.
"""

from __future__ import annotations

import copy
import json
import platform
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import backbones, heads, necks
from . import weights as W
from .contract import ContractError, check_image_batch
from .data import CLASSES, ShapesWorld

TASKS = ("classification", "detection", "segmentation")


def dominant_label(target: Mapping[str, torch.Tensor], num_classes: int = len(CLASSES)) -> int:
    """The class whose shapes cover the most visible pixels of the image (from its semantic mask)."""
    counts = torch.bincount(target["semantic"].flatten(), minlength=num_classes + 1)[1:]
    return int(counts.argmax())


@dataclass
class MultiTrace:
    """One forward pass: the shared features once, every head's output."""

    image: torch.Tensor
    backbone: OrderedDict[str, torch.Tensor]
    neck: OrderedDict[str, torch.Tensor]
    heads: dict[str, Any]


class MultiTaskModel(nn.Module):
    """Shared backbone + neck, a ``nn.ModuleDict`` of heads; ``forward`` returns ``{task: output}``."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, task_heads: Mapping[str, nn.Module],
                 loss_weights: Mapping[str, float] | None = None, config: dict | None = None):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.heads = nn.ModuleDict(task_heads)
        self.loss_weights = {t: float((loss_weights or {}).get(t, 1.0)) for t in self.heads}
        self.config = copy.deepcopy(config) if config is not None else None

    def extract(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        check_image_batch(x, "MultiTaskModel")
        return self.neck(self.backbone(x))

    def forward(self, x: torch.Tensor, tasks: Sequence[str] | None = None) -> dict[str, Any]:
        feats = self.extract(x)
        return {t: self.heads[t](feats) for t in (tasks or list(self.heads))}

    def loss(self, outputs: Mapping[str, Any], targets: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The weighted sum of every head's loss, with each part reported (for :func:`~course_lib.training.fit`)."""
        parts: dict[str, torch.Tensor] = {}
        for task, out in outputs.items():
            head = self.heads[task]
            if task == "classification":
                device = out.device
                labels = torch.tensor([dominant_label(t, head.fc.out_features) for t in targets], device=device)
                parts[task] = head.loss(out, labels)
            else:
                parts[task] = head.loss(out, targets)
        total = sum(self.loss_weights[t] * v for t, v in parts.items())
        return {"loss": total, **{t: v.detach() for t, v in parts.items()}}

    @torch.no_grad()
    def trace(self, x: torch.Tensor) -> MultiTrace:
        """Backbone and neck once, then every head on the same cached maps (eval mode, restored after)."""
        if x.ndim == 3:
            x = x[None]
        was = self.training
        self.eval()
        try:
            x = x.to(next(self.parameters()).device)
            feats = self.backbone(x)
            fused = self.neck(feats)
            outs = {t: h(fused) for t, h in self.heads.items()}
        finally:
            self.train(was)
        return MultiTrace(x, feats, fused, outs)


def build_multitask(config: Mapping[str, Any]) -> MultiTaskModel:
    """Build ``{"backbone": {...}, "neck": {...}, "heads": {task: {...}}, "loss_weights": {...}}``.

    Each head is built from the same neck ``out_specs``; a head that does not
    fit names the neck and backbone it was offered.
    """
    cfg = copy.deepcopy(dict(config))
    b_kw = dict(cfg["backbone"])
    b_name = b_kw.pop("name")
    n_kw = dict(cfg.get("neck", {"name": "identity"}))
    n_name = n_kw.pop("name")
    backbone = backbones.build(b_name, **b_kw)
    try:
        neck = necks.build(n_name, backbone.out_specs, **n_kw)
    except ContractError as err:
        raise err.with_provider(f"backbone {b_name!r}") from None
    built = OrderedDict()
    for task, h_kw in cfg["heads"].items():
        h_kw = dict(h_kw)
        h_name = h_kw.pop("name", task)
        try:
            built[task] = heads.build(h_name, neck.out_specs, **h_kw)
        except ContractError as err:
            raise err.with_provider(f"neck {n_name!r} (on backbone {b_name!r})") from None
    return MultiTaskModel(backbone, neck, built, cfg.get("loss_weights"), config=cfg)


#: The lesson's multi-task model: lesson 05's detector parts with three heads.
MULTITASK_CONFIG: dict[str, Any] = {
    "backbone": {"name": "tiny_cnn"},
    "neck": {"name": "fpn", "out_channels": 64},
    "heads": {
        "classification": {"num_classes": len(CLASSES), "categories": list(CLASSES), "dropout": 0.0},
        "detection": {"num_classes": len(CLASSES), "class_names": list(CLASSES), "width": 48, "depth": 2,
                      "reg_bins": 8},
        "segmentation": {"num_classes": len(CLASSES) + 1, "class_names": ["background", *CLASSES]},
    },
    "loss_weights": {"classification": 0.5, "detection": 1.0, "segmentation": 1.0},
}
RECIPE = {"steps": 500, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-4, "seed": 0, "train_images": 4000,
          "image_size": 128, "bn_momentum": 0.1}  # lesson 05's detector recipe (course_lib.train)


@torch.no_grad()
def evaluate(model: MultiTaskModel, world: ShapesWorld | None = None, batch_size: int = 100) -> dict[str, float]:
    """Every task on one split: classification accuracy, detection mAP@0.5, segmentation mIoU."""
    from .metrics import detection_map, mean_iou

    world = world or ShapesWorld("val")
    images, targets = world.materialize()
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    preds: dict[str, list] = {t: [] for t in model.heads}
    try:
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].to(device).float().div(255)
            out = model(x)
            if "classification" in out:
                preds["classification"] += out["classification"].argmax(1).cpu().tolist()
            if "detection" in out:
                preds["detection"] += model.heads["detection"].decode(out["detection"], score_thresh=0.05)
            if "segmentation" in out:
                preds["segmentation"] += list(model.heads["segmentation"].decode(out["segmentation"]).cpu())
    finally:
        model.train(was)
    metrics: dict[str, float] = {}
    if preds.get("classification"):
        truth = [dominant_label(t) for t in targets]
        metrics["cls_accuracy"] = sum(p == t for p, t in zip(preds["classification"], truth)) / len(truth)
    if preds.get("detection"):
        det = detection_map(preds["detection"], targets, num_classes=len(CLASSES), image_size=world.image_size)
        metrics["det_map50"] = float(det["map50"])
        metrics["det_map50_small"] = float(det["map50_small"])
    if preds.get("segmentation"):
        sem = torch.stack([t["semantic"] for t in targets])
        metrics["seg_miou"] = float(mean_iou(torch.stack(preds["segmentation"]), sem, len(CLASSES) + 1)["miou"])
    return metrics


def train_multitask(config: Mapping[str, Any] | None = None, *, steps: int | None = None,
                    time_budget_s: float | None = None, progress: bool = True, callback: Callable | None = None,
                    device: str = "cpu", train_images: int | None = None) -> tuple[MultiTaskModel, dict[str, Any]]:
    """Train the multi-task model with :func:`~course_lib.training.fit`; return it with a report."""
    from .train import run_recipe

    cfg = copy.deepcopy(dict(config or MULTITASK_CONFIG))
    recipe = dict(RECIPE)
    if steps is not None:
        recipe["steps"] = int(steps)
    if train_images is not None:
        recipe["train_images"] = int(train_images)
    torch.manual_seed(recipe["seed"])
    model = build_multitask(cfg)
    hist, seconds = run_recipe(model, recipe, loss_fn=model.loss, time_budget_s=time_budget_s, progress=progress,
                               callback=callback, device=device, desc="multi-task")
    report = {"name": "multitask", "task": "multitask", "config": cfg, "recipe": recipe,
              "seconds": round(seconds, 1), "steps": hist.steps_done, "history": hist}
    return model.eval(), report


def save(model: MultiTaskModel, report: Mapping[str, Any], metrics: Mapping[str, float],
         directory: str | Path | None = None, baselines: Mapping[str, Mapping[str, float]] | None = None) -> Path:
    """Write ``multitask.pt`` (config + plain tensors) and its manifest entry with the sha256.

    ``baselines`` records the metrics of single-task models trained with the
    same recipe, for the lesson's comparison.
    """
    from .train import CHECKPOINT_DIR, MANIFEST, read_manifest

    directory = Path(directory) if directory is not None else CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "multitask.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"config": report["config"], "task": "multitask", "state_dict": state}, path)
    manifest = read_manifest(directory)
    manifest["multitask"] = {
        "file": path.name, "sha256": W.sha256_of(path), "bytes": path.stat().st_size, "task": "multitask",
        "config": report["config"], "recipe": report["recipe"], "seed": report["recipe"]["seed"],
        "steps": report["steps"], "train_seconds": report["seconds"],
        "metrics": {k: round(float(v), 4) for k, v in metrics.items()}, "torch": torch.__version__,
        "baselines": {t: {k: round(float(v), 4) for k, v in m.items()} for t, m in (baselines or {}).items()},
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "command": f"python -m course_lib.multitask --threads {torch.get_num_threads()}",
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def load(directory: str | Path | None = None) -> MultiTaskModel:
    """Load the shipped multi-task checkpoint: sha256 checked, ``weights_only=True``, eval mode."""
    from .train import CHECKPOINT_DIR, read_manifest

    directory = Path(directory) if directory is not None else CHECKPOINT_DIR
    entry = read_manifest(directory).get("multitask")
    if entry is None:
        raise FileNotFoundError(f"no 'multitask' checkpoint in {directory}; train it with: python -m course_lib.multitask")
    ckpt = W.load_checkpoint(directory / entry["file"], entry["sha256"])
    model = build_multitask(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib.multitask",
                                     description="Train the shipped multi-task checkpoint (lesson 07).")
    parser.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {RECIPE['steps']})")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (fix it to reproduce exactly)")
    parser.add_argument("--out", default=None, help="checkpoint folder (default data/checkpoints)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, report = train_multitask(steps=args.steps)
    metrics = evaluate(model)
    print(f"multi-task after {report['seconds']} s: {metrics}")
    baselines = {}
    for task in TASKS:  # the same recipe, one head at a time
        single = copy.deepcopy(MULTITASK_CONFIG)
        single["heads"] = {task: single["heads"][task]}
        m, r = train_multitask(single, steps=args.steps)
        baselines[task] = {**evaluate(m), "train_seconds": r["seconds"]}
        print(f"single-task {task} after {r['seconds']} s: {baselines[task]}")
    path = save(model, report, metrics, args.out, baselines)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
