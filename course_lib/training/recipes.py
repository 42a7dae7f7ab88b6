"""The course's named models and how each is trained: :data:`CONFIGS`, :func:`train`.

A named config is a plain ``build_model`` dict plus a training recipe::

    {"task": "detection", "model": {"backbone": ..., "neck": ..., "head": ...}, "recipe": {...}}

Every recipe starts from :data:`RECIPE` (AdamW, a cosine learning-rate schedule, BatchNorm
momentum 0.1, seed 0) and trains with :func:`~course_lib.training.fit` on a ShapesWorld train
split drawn once into memory.  ``"multitask"`` is lesson 08's detector parts with three heads
(classification, detection, segmentation) trained with the same recipe on the same images.
``python -m course_lib.training NAME`` trains one and saves it as a checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import CLASSES, ShapesWorld
from ..measure import evaluating
from ..model import Model, build_model
from .evaluation import DETECTION_COLUMNS
from .evaluation import evaluate as evaluate_model
from .loop import CLOCKS, fit, freeze, tensor_batches

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The recipe every named config starts from (lesson 08's detector recipe).
RECIPE = {"steps": 500, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-4, "seed": 0,
          "train_images": 4000, "image_size": 128, "bn_momentum": 0.1}
_DET_HEAD = {"name": "detection", "num_classes": len(CLASSES), "class_names": list(CLASSES),
             "width": 48, "depth": 2, "reg_bins": 8}


def _det(neck: Mapping[str, Any], backbone: Mapping[str, Any] | None = None, **head_kw) -> dict[str, Any]:
    return {"task": "detection",
            "model": {"backbone": dict(backbone or {"name": "tiny_cnn"}), "neck": dict(neck),
                      "head": {**_DET_HEAD, **head_kw}},
            "recipe": dict(RECIPE)}


def _cls(backbone: Mapping[str, Any]) -> dict[str, Any]:
    return {"task": "classification",
            "model": {"backbone": dict(backbone), "neck": {"name": "identity"},
                      "head": {"name": "classification", "num_classes": len(CLASSES), "class_names": list(CLASSES),
                               "dropout": 0.0}},
            "recipe": {**RECIPE, "train_images": 1000, "mode": "classify"}}


#: Every named config: ``{"task", "model" (a build_model dict), "recipe"}``.
CONFIGS: dict[str, dict[str, Any]] = {
    # lesson 08's ablation: the same backbone and head, three necks
    "det_none": _det({"name": "identity", "in_keys": ["C5"]}),
    "det_fpn": _det({"name": "fpn", "out_channels": 64}),
    "det_pan": _det({"name": "pan", "out_channels": 64}),
    # lesson 08's backbone swap: a small YOLO-style eye (YOLOv8n's CSP backbone), from scratch
    "det_yolo_fpn": _det({"name": "fpn", "out_channels": 64},
                         backbone={"name": "yolo_csp", "levels": ["C3", "C4", "C5"]}),
    # ... and the pretrained ImageNet eye, cut at C5 = features[17] (320 ch), with the recipe that fits
    # 60 s on 2 cores: batch 16 (more steps in a fixed time), the stem (C1, C2: edges and blobs) frozen,
    # so no backward pass through the two largest maps, channels-last memory, and IoU-aware class targets
    # (quality focal loss).  Measured in 60 s runs on 2 cores: mAP@0.5 0.90-0.91 with batch 16 alone, 0.91
    # adding the frozen stem and channels-last (1.5x the steps), 0.91-0.925 with all four (seeds 0-2).
    "det_mnv2_fpn": {**_det({"name": "fpn", "out_channels": 64},
                            backbone={"name": "mobilenet_v2_320", "pretrained": True}, cls_loss="quality"),
                     "recipe": {**RECIPE, "batch_size": 16, "lr": 3e-3, "channels_last": True,
                                "freeze": ["backbone.stages.C1", "backbone.stages.C2"]}},
    # lesson 07's segmentation head
    "seg_fpn": {"task": "segmentation",
                "model": {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 64},
                          "head": {"name": "segmentation", "num_classes": len(CLASSES) + 1,
                                   "class_names": ["background", *CLASSES]}},
                "recipe": {**RECIPE, "steps": 250}},
    # lesson 10: one backbone and neck, three heads, their losses added with these weights
    "multitask": {"task": "multitask",
                  "model": {"backbone": {"name": "tiny_cnn"}, "neck": {"name": "fpn", "out_channels": 64},
                            "heads": {"classification": {"num_classes": len(CLASSES), "class_names": list(CLASSES),
                                                         "dropout": 0.0},
                                      "detection": {k: v for k, v in _DET_HEAD.items() if k != "name"},
                                      "segmentation": {"num_classes": len(CLASSES) + 1,
                                                       "class_names": ["background", *CLASSES]}},
                            "loss_weights": {"classification": 0.5, "detection": 1.0, "segmentation": 1.0}},
                  "recipe": dict(RECIPE)},
    # a transformer eye (tiny_vit: one map, C4 at stride 16) with ViTDet's simple feature pyramid (P3..P5
    # from that one map), and with no neck (the head reads C4 alone); same head and recipe as det_fpn
    "det_vit_pyramid": _det({"name": "simple_pyramid", "out_channels": 64}, backbone={"name": "tiny_vit"}),
    "det_vit_none": _det({"name": "identity", "in_keys": ["C4"]}, backbone={"name": "tiny_vit"}),
    # lesson 11's first experiment: the two eyes of similar size (453,600 vs 458,160 parameters) as
    # classifiers on small data: 1000 training images of one large shape each (ShapesWorld's classify mode)
    "cls_vit": _cls({"name": "tiny_vit"}),
    "cls_cnn": _cls({"name": "tiny_cnn"}),
}
#: The checkpoints the lessons load (``--all`` trains these).
SHIPPED = ("det_fpn", "det_none", "det_pan", "seg_fpn", "multitask")


def get_config(name: str) -> dict[str, Any]:
    """A deep copy of a named config (so changing it does not change the catalogue)."""
    if name not in CONFIGS:
        raise KeyError(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
    return copy.deepcopy(CONFIGS[name])


# ----------------------------------------------------------------- the recipe
class CosineSchedule:
    """A :func:`fit` callback that lowers the learning rate along a half cosine, to 5 % at the end.

    Progress is the fraction of ``steps`` done, or of ``time_budget_s`` spent
    (on ``clock``, as :func:`fit` counts it), whichever is further.  ``fit`` calls
    it after every evaluation, so pass ``eval_every`` (e.g. 10) to update the rate every few steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int | None, time_budget_s: float | None = None,
                 then: Callable | None = None, clock: str = "wall"):
        self.optimizer, self.steps, self.budget, self.then = optimizer, steps, time_budget_s, then
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.clock = CLOCKS[clock]
        self.start = self.clock()

    def __call__(self, hist) -> None:
        done = hist.steps_done / self.steps if self.steps else 0.0
        if self.budget:
            done = max(done, (self.clock() - self.start) / self.budget)
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
               eval_every: int | None = None, device: str = "cpu", desc: str = "training",
               stop_when: Callable | None = None, clock: str = "wall") -> tuple[Any, float]:
    """Train ``model`` on the ShapesWorld train split with a recipe: AdamW, cosine schedule, :func:`fit`.

    Recipe keys: ``steps``, ``batch_size``, ``lr``, ``weight_decay``, ``seed``, ``train_images``,
    ``image_size``, ``bn_momentum``; optional ``freeze`` (submodule names whose weights and
    BatchNorm statistics stay as they are, e.g. ``"backbone.stages.C1"``) and ``channels_last``
    (model and images in the (N, H, W, C) memory layout) and ``mode`` (``"classify"``: ShapesWorld's
    one-large-shape images with one label each, for a classification head).  Without ``loss_fn`` the model's own
    loss trains it (with several heads: their weighted sum).  ``stop_when`` may end the run early
    (see :class:`Plateau`); ``clock`` is what ``time_budget_s`` counts (``fit``'s).  Returns the
    :class:`~course_lib.training.History` and the training seconds (wall clock).
    """
    set_bn_momentum(model, recipe["bn_momentum"])
    for part in recipe.get("freeze", ()):
        freeze(model.get_submodule(part))
    channels_last = bool(recipe.get("channels_last", False))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    world = ShapesWorld("train", num_images=recipe["train_images"], image_size=recipe["image_size"],
                        mode=recipe.get("mode", "detect"))
    images, targets = world.materialize()
    if world.mode == "classify":
        targets = torch.tensor(targets)  # one class label per image
    data = tensor_batches(images, targets, recipe["batch_size"], seed=recipe["seed"], drop_last=True,
                          channels_last=channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    schedule = CosineSchedule(opt, recipe["steps"], time_budget_s, then=callback, clock=clock)
    t0 = time.perf_counter()
    hist = fit(model, data, loss_fn=loss_fn, steps=recipe["steps"], time_budget_s=time_budget_s, optimizer=opt,
               seed=recipe["seed"], device=device, progress=progress, callback=schedule,
               eval_every=eval_every or 10, grad_clip=10.0, desc=desc, stop_when=stop_when, clock=clock)
    return hist, time.perf_counter() - t0


def train(name_or_config: str | Mapping[str, Any], *, steps: int | None = None, time_budget_s: float | None = None,
          progress: bool = True, callback: Callable | None = None, eval_every: int | None = None,
          device: str = "cpu", evaluate: bool = True, train_images: int | None = None, seed: int | None = None,
          plateau: Mapping[str, Any] | None = None, clock: str = "wall") -> tuple[Model, dict[str, Any]]:
    """Build a named config (or a config dict), train it with :func:`~course_lib.training.fit`, evaluate it.

    ``steps`` / ``time_budget_s`` / ``seed`` override the recipe's (a time budget
    stops after that many seconds, whichever comes first; ``clock="cpu"`` counts
    them in this process's CPU seconds, see :data:`~course_lib.training.loop.CLOCKS`).  ``plateau`` (e.g.
    :data:`PLATEAU`) trains until the val metrics stop improving instead: the
    recipe's ``steps`` become the cap ``plateau["cap"]`` and a :class:`Plateau`
    watches the run.  Returns the trained model and a report ``{"name", "task",
    "config", "recipe", "metrics", "seconds", "steps", "stopped_by", "history"}``,
    plus ``"curve"`` (the val metrics at every check) with ``plateau``.
    """
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else copy.deepcopy(dict(name_or_config))
    name = name_or_config if isinstance(name_or_config, str) else "custom"
    recipe = {**RECIPE, **cfg.get("recipe", {})}
    if steps is not None:
        recipe["steps"] = int(steps)
    if train_images is not None:
        recipe["train_images"] = int(train_images)
    if seed is not None:
        recipe["seed"] = int(seed)
    rule = {**PLATEAU, **plateau} if plateau is not None else None
    if rule is not None:
        recipe["steps"] = int(rule["cap"])
        eval_every = eval_every or math.gcd(10, int(rule["every"]))  # the callback must run at every check
        if rule["every"] % eval_every:
            raise ValueError(f"plateau checks every {rule['every']} steps need eval_every to divide it, "
                             f"got eval_every={eval_every}")
    torch.manual_seed(recipe["seed"])
    model = build_model(cfg["model"])
    val = ShapesWorld("val", num_images=(rule or {}).get("val_images"), image_size=recipe["image_size"],
                      mode=recipe.get("mode", "detect"))
    watch = Plateau(model, val, every=rule["every"], min_delta=rule["min_delta"], patience=rule["patience"],
                    then=callback) if rule is not None else None
    hist, seconds = run_recipe(model, recipe, time_budget_s=time_budget_s, progress=progress,
                               callback=watch or callback, stop_when=watch.stop if watch else None,
                               eval_every=eval_every, device=device, desc=name if name != "custom" else "training",
                               clock=clock)
    model.eval()
    if watch is not None and watch.curve and watch.curve[-1]["step"] == hist.steps_done:
        metrics = {k: v for k, v in watch.curve[-1].items() if k != "step"}   # the last check saw this model
    else:
        metrics = evaluate_model(model, val) if evaluate else {}
    report = {"name": name, "task": cfg["task"], "config": model.config, "recipe": recipe, "metrics": metrics,
              "seconds": round(seconds, 1), "cpu_seconds": round(hist.cpu_seconds, 1), "steps": hist.steps_done,
              "stopped_by": hist.stopped_by, "history": hist}
    if watch is not None:
        report["curve"] = watch.curve
    return model, report


def train_baselines(name_or_config: str | Mapping[str, Any], **train_kw) -> dict[str, dict[str, float]]:
    """For a config with several heads: one model per head, same recipe; ``{task: metrics + train_seconds}``.

    What sharing the backbone and neck costs or gains, measured: lesson 10's comparison.  Each
    single-task model keeps the config's backbone, neck, that head and its loss weight.
    """
    return {task: {**rep["metrics"], "train_seconds": rep["seconds"]}
            for task, rep in train_arms(name_or_config, arms=_heads(name_or_config), **train_kw).items()}


def _heads(name_or_config: str | Mapping[str, Any]) -> list[str]:
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return list(cfg["model"]["heads"])


def single_task(name_or_config: str | Mapping[str, Any], task: str) -> dict[str, Any]:
    """The config of a multi-head model cut down to one head (the same backbone, neck, recipe and loss weight)."""
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else copy.deepcopy(dict(name_or_config))
    heads = cfg["model"]["heads"]
    if task not in heads:
        raise KeyError(f"no head {task!r} in this config; its heads: {', '.join(heads)}")
    cfg["model"]["heads"] = {task: heads[task]}
    return cfg


def train_arms(name_or_config: str | Mapping[str, Any], arms: Sequence[str] | None = None,
               **train_kw) -> dict[str, dict[str, Any]]:
    """Train the arms of a sharing experiment: ``"multitask"`` (every head) and one single-task model per head.

    ``arms`` defaults to all of them; every arm gets the same recipe, data and ``train_kw``
    (e.g. ``seed=1`` or ``plateau=PLATEAU``).  Returns ``{arm: train()'s report without the model}``.
    """
    arms = list(arms) if arms is not None else ["multitask", *_heads(name_or_config)]
    out = {}
    for arm in arms:
        cfg = (get_config(name_or_config) if isinstance(name_or_config, str) else copy.deepcopy(dict(name_or_config))) \
            if arm == "multitask" else single_task(name_or_config, arm)
        _, out[arm] = train(cfg, **train_kw)
    return out


# ----------------------------------------------------------------- training to a plateau
#: Lesson 10's "trained until it stops improving": check the val metrics every ``every`` steps, stop once the
#: best of the last ``patience`` checks is less than ``min_delta`` (0.5 points) above the best before them,
#: for every head; never beyond ``cap`` steps (the cosine schedule runs over the cap).  ``val_images``: how many
#: val images each check scores (``None``: the whole split, as the final metrics do).
PLATEAU: dict[str, Any] = {"every": 150, "min_delta": 0.005, "patience": 2, "cap": 1500, "val_images": None}
#: The val metric that decides each head's plateau (the keys :func:`~course_lib.training.evaluate` reports).
PLATEAU_METRIC = {"classification": "cls_accuracy", "detection": "det_map50", "segmentation": "seg_miou"}


def plateaued(values: Sequence[float], min_delta: float = 0.005, patience: int = 2) -> bool:
    """Has a metric stopped improving?  The best of its last ``patience`` values beats the best before them
    by less than ``min_delta``.

    >>> plateaued([0.40, 0.60, 0.70])            # still climbing: +10 points
    False
    >>> plateaued([0.40, 0.70, 0.702, 0.699])    # the last two add 0.2 points
    True
    """
    if patience < 1:
        raise ValueError(f"patience must be at least 1, got {patience}")
    if len(values) <= patience:
        return False
    return max(values[-patience:]) - max(values[:-patience]) < min_delta


class Plateau:
    """A :func:`fit` callback that evaluates the model on a split every ``every`` steps, and its ``stop``
    (``fit(stop_when=...)``) that ends training once every head's metric has :func:`plateaued`.

    ``curve`` holds one dict per check: ``{"step", "cls_accuracy", ...}`` (what
    :func:`~course_lib.training.evaluate` reports).  ``then`` is called after it (another callback).
    """

    def __init__(self, model: Model, world: ShapesWorld, every: int = 250, min_delta: float = 0.005,
                 patience: int = 2, keys: Sequence[str] | None = None, then: Callable | None = None,
                 evaluate: Callable[[Model, ShapesWorld], Mapping[str, float]] | None = None):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.model, self.world, self.every, self.then = model, world, int(every), then
        self.min_delta, self.patience = float(min_delta), int(patience)
        tasks = list(model.heads) if getattr(model, "multi_head", False) else []
        self.keys = list(keys) if keys is not None else [PLATEAU_METRIC[t] for t in tasks if t in PLATEAU_METRIC]
        self._evaluate = evaluate or evaluate_model
        self.curve: list[dict[str, float]] = []

    def __call__(self, hist) -> None:
        if hist.steps_done % self.every == 0 and (not self.curve or self.curve[-1]["step"] != hist.steps_done):
            with evaluating(self.model):
                got = self._evaluate(self.model, self.world)
            self.curve.append({"step": hist.steps_done,
                               **{k: round(float(v), 4) for k, v in got.items() if not isinstance(v, list)}})
        if self.then is not None:
            self.then(hist)

    def stop(self, hist=None) -> str:
        """``"plateau"`` once every watched metric has stopped improving, else ``""``."""
        if not self.keys or len(self.curve) <= self.patience:
            return ""
        done = all(plateaued([c[k] for c in self.curve], self.min_delta, self.patience) for k in self.keys)
        return "plateau" if done else ""


# ----------------------------------------------------------------- benchmark results
def results_dir() -> Traversable:
    """The folder of the benchmark tables the lessons read (package data: ``course_lib/training/results/``),
    written by ``benchmarks/bench_*.py`` in a source checkout and installed with the package."""
    return resources.files(__package__) / "results"


def read_benchmark(path: str | Path) -> dict[str, Any]:
    """A benchmark table a ``benchmarks/bench_*.py`` script saved: ``{"machine", ..., "rows"}``.

    ``path`` is a file, or the bare name of a table in :func:`results_dir`: lesson 08's wall-clock detector table
    ``read_benchmark("detector")`` (``results/detector.json``), lesson 10's seeds of the sharing experiment
    ``"multitask"`` and lesson 11's transformer-vs-CNN seeds ``"transformer"``.
    Each row gets ``"current"``: whether its model and recipe (all but the steps and the seed) are still those
    of the named config today (a table measured before a config changed is stale: rerun its script).
    """
    path = results_dir() / f"{path}.json" if isinstance(path, str) and path.isidentifier() else Path(path)
    if not path.is_file():
        stem = Path(path.name).stem
        script = f"bench_{stem}.py" if stem in ("detector", "multitask", "transformer") else "bench_detector.py"
        raise FileNotFoundError(f"no benchmark results at {path}; measure them with: python benchmarks/{script}")
    data = json.loads(path.read_text())
    for row in data["rows"]:
        cfg = CONFIGS.get(row["config"])
        recipe = {**RECIPE, **cfg["recipe"]} if cfg else {}
        same_recipe = {k: v for k, v in recipe.items() if k not in ("steps", "seed")} == {
            k: v for k, v in row.get("recipe", {}).items() if k not in ("steps", "seed")}
        row["current"] = bool(cfg) and cfg["model"] == row.get("model") and same_recipe
    return data


def budget_seconds(bench: Mapping[str, Any], row: Mapping[str, Any]) -> float:
    """The seconds of a benchmark run on the clock its budget counted: CPU seconds for a table measured with
    ``clock="cpu"`` (``results/transformer.json``), wall-clock seconds otherwise."""
    return float(row["train_cpu_s"] if bench.get("clock") == "cpu" else row["train_s"])


def benchmark_table(bench: Mapping[str, Any], names: Sequence[str],
                    columns: Sequence[str] = DETECTION_COLUMNS) -> list[dict[str, Any]]:
    """Rows of a :func:`read_benchmark` table for the configs ``names``: ``{"config", "steps", *columns}``.

    The steps are those the fixed wall-clock budget allowed on the machine that measured the table.
    """
    by = {r["config"]: r for r in bench["rows"]}
    missing = [n for n in names if n not in by]
    if missing:
        raise KeyError(f"no benchmark row for {missing}; the table has {', '.join(by)}")
    return [{"config": n, "steps": by[n]["steps"], **{c: by[n][c] for c in columns}} for n in names]


def seed_summary(rows: list[Mapping[str, Any]], metric: str) -> dict[str, dict[str, Any]]:
    """``{config: {"mean", "std", "values", "seeds"}}`` of ``metric`` over the rows of each config (one per seed).

    ``std`` is the sample standard deviation (``n - 1``; 0.0 for a single seed): the spread the seeds give.
    """
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(r["config"], {"values": [], "seeds": []})
        out[r["config"]]["values"].append(float(r[metric]))
        out[r["config"]]["seeds"].append(r.get("seed"))
    for d in out.values():
        v = d["values"]
        d["mean"] = sum(v) / len(v)
        d["std"] = math.sqrt(sum((x - d["mean"]) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return out


def gap_verdict(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("a", "b"),
                scale: float = 100.0, unit: str = "points") -> str:
    """One sentence on two :func:`seed_summary` entries: the gap of the means, and whether it exceeds the spread.

    The rule is :func:`compare_arms`' (the one the course uses everywhere): a direction is named only when the gap
    is larger than the widest range (max - min) of either arm's seeds; otherwise no clear winner.
    """
    c = compare_arms(a["values"], b["values"])
    gap = c["gap"]
    ahead, behind = names if gap >= 0 else names[::-1]
    size = f"{scale * abs(gap):.1f} {unit} (seeds' widest range: {scale * c['spread']:.1f})"
    if c["verdict"] != "about the same":
        return f"{ahead} is ahead of {behind} by {size}: more than the spread, a clear direction"
    return f"{ahead} and {behind} differ by {size}: within the spread of the seeds, no clear winner"


def seed_table(rows: list[Mapping[str, Any]], arms: list[str], metrics: list[str]) -> str:
    """A text table of benchmark rows, one line per arm: steps and each metric as mean ± std over the seeds,
    then the per-seed values (seed: value, ...)."""
    head = f"{'config':17s}{'seeds':>6s}{'steps':>13s}" + "".join(f"{m:>18s}" for m in metrics)
    lines, per_seed = [head], []
    for arm in arms:
        mine = [r for r in rows if r["config"] == arm]
        if not mine:
            lines.append(f"{arm:17s}  (not measured)")
            continue
        st = seed_summary(mine, "steps")[arm]
        cells = [f"{st['mean']:6.0f} ± {st['std']:3.0f}"]
        cells += [f"{d['mean']:.3f} ± {d['std']:.3f}" for d in (seed_summary(mine, m)[arm] for m in metrics)]
        lines.append(f"{arm:17s}{len(mine):>6d}{cells[0]:>13s}" + "".join(f"{c:>18s}" for c in cells[1:]))
        per_seed.append(f"  {arm}: " + "; ".join(
            f"seed {r['seed']}: {r['steps']} steps, " + ", ".join(f"{m} {r[m]:.3f}" for m in metrics) for r in mine))
    return "\n".join(lines + ["per seed:"] + per_seed)


def compare_arms(multi: Sequence[float], single: Sequence[float]) -> dict[str, Any]:
    """Multi-task vs single-task seeds of one metric: means, standard deviations, the gap and a verdict.

    The verdict names a direction only when the gap between the means is larger than the
    ``spread``: the widest range (max - min) of either arm's seeds.  Otherwise the two are
    "about the same" -- the seeds disagree more than the arms do.
    """
    if len(multi) < 2 or len(single) < 2:
        raise ValueError(f"need at least 2 seeds per arm to see a spread, got {len(multi)} and {len(single)}")
    mt, st = torch.tensor([float(v) for v in multi]), torch.tensor([float(v) for v in single])
    gap = float(mt.mean() - st.mean())
    spread = max(float(mt.max() - mt.min()), float(st.max() - st.min()))
    verdict = "about the same" if abs(gap) <= spread else ("better" if gap > 0 else "worse")
    return {"multi_mean": float(mt.mean()), "multi_std": float(mt.std()), "single_mean": float(st.mean()),
            "single_std": float(st.std()), "gap": gap, "spread": spread, "verdict": verdict,
            "seeds": min(len(mt), len(st))}


def sharing_table(bench: Mapping[str, Any], protocol: str = "plateau") -> dict[str, dict[str, Any]]:
    """``{metric: compare_arms(...) + per-seed values}`` from ``results/multitask.json``'s rows.

    For each head's metric (``cls_accuracy``, ``det_map50``, ``det_map50_small``, ``seg_miou``), the
    multi-task model's seeds against that head's single-task seeds, trained with ``protocol``
    (``"plateau"`` or ``"budget"``); a metric with fewer than 2 seeds in an arm is left out.
    """
    rows = [r for r in bench["rows"] if r["protocol"] == protocol]
    rule = bench.get("plateau")
    table = {}
    for task, keys in (("classification", ["cls_accuracy"]), ("detection", ["det_map50", "det_map50_small"]),
                       ("segmentation", ["seg_miou"])):
        seeds = sorted({r["seed"] for r in rows if r["arm"] == "multitask"} & {r["seed"] for r in rows
                                                                                 if r["arm"] == task})
        if len(seeds) < 2:
            continue
        by = {(r["arm"], r["seed"]): r for r in rows}
        for key in keys:
            multi = [by["multitask", s]["metrics"][key] for s in seeds]
            single = [by[task, s]["metrics"][key] for s in seeds]
            table[key] = {**compare_arms(multi, single), "task": task, "seed_list": seeds, "multi": multi,
                          "single": single,
                          "multi_steps": [by["multitask", s]["steps"] for s in seeds],
                          "single_steps": [by[task, s]["steps"] for s in seeds],
                          "multi_stopped": [by["multitask", s].get("stopped_by", "") for s in seeds],
                          "single_stopped": [by[task, s].get("stopped_by", "") for s in seeds],
                          "multi_flat": [ended_flat(by["multitask", s], rule) for s in seeds],
                          "single_flat": [ended_flat(by[task, s], rule) for s in seeds]}
    return table


def ended_flat(run: Mapping[str, Any], rule: Mapping[str, Any] | None = None,
               keys: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> bool:
    """Did a plateau-protocol run end on a plateau?  True when the rule stopped it, or when it reached the cap
    with every watched metric flat at its last check (:func:`plateaued` on its curve); False when it was
    still improving at the cap.  ``run`` is a row of ``results/multitask.json`` (its ``arm`` and ``curve``);
    ``keys`` asks about those metrics only, ``tasks`` about those heads' metrics only (e.g. the dense heads,
    ``("detection", "segmentation")``: a multi-task run's two, a single-task run's one, none of a classifier)."""
    rule = {**PLATEAU, **(rule or {})}
    if run.get("stopped_by") == "plateau":
        return True
    curve = run.get("curve") or []
    if keys is None:
        heads = list(PLATEAU_METRIC) if run.get("arm") == "multitask" else [run.get("arm")]
        keys = [PLATEAU_METRIC[t] for t in heads if t in PLATEAU_METRIC and (tasks is None or t in tasks)]
    return bool(keys) and all(plateaued([c[k] for c in curve], rule["min_delta"], rule["patience"]) for k in keys)


#: What each head's val metric is called in tables and figures.
METRIC_NAMES: dict[str, str] = {"cls_accuracy": "classification accuracy", "det_map50": "detection mAP@0.5",
                                "det_map50_small": "small objects mAP@0.5", "seg_miou": "segmentation mIoU"}


def sharing_text(bench: Mapping[str, Any], protocol: str = "plateau") -> str:
    """:func:`sharing_table` as a tidy table: per metric the mean ± std of each arm, the gap and the spread in
    points and the verdict; then the steps every run reached and how it ended (``p``: stopped by the plateau
    rule, ``f``: reached the cap flat, the rule holding at its last check, ``c``: still improving at the cap;
    a budget run stops at its budget)."""
    from ..backbones.measure import format_table

    table = sharing_table(bench, protocol)
    if not table:
        return f"(no {protocol} runs with 2 or more seeds in both arms)"
    rows = [{"metric": METRIC_NAMES.get(k, k), "multi-task": f"{r['multi_mean']:.3f} ± {r['multi_std']:.3f}",
             "single-task": f"{r['single_mean']:.3f} ± {r['single_std']:.3f}", "gap (points)": f"{100 * r['gap']:+.1f}",
             "spread": f"{100 * r['spread']:.1f}", "verdict": r["verdict"]} for k, r in table.items()]
    steps = {}
    for r in table.values():  # one entry per arm: detection's two metrics come from the same runs
        for arm, name in (("multi", "multi-task"), ("single", r.get("task", "single-task"))):
            marks = [("p" if w == "plateau" else "f" if flat else "c") if protocol == "plateau" else ""
                     for w, flat in zip(r[f"{arm}_stopped"], r[f"{arm}_flat"])]
            steps.setdefault(name, " ".join(f"{n}{m}" for n, m in zip(r[f"{arm}_steps"], marks)))
    seeds = next(iter(table.values()))["seed_list"]
    legend = (" (p: stopped by the plateau rule, f: flat at the cap, c: still improving at the cap)"
              if protocol == "plateau" else "")
    return (format_table(rows) + f"\nsteps per run, seeds {seeds}{legend}:\n"
            + "\n".join(f"  {arm:15s} {s}" for arm, s in steps.items()))
