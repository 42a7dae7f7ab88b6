"""Training: one loop, the named recipes, evaluation per task, checkpoints, representation probes.

* :mod:`.loop` -- :func:`fit`, the one training loop, and its helpers (:func:`tensor_batches`,
  :func:`freeze`, :func:`param_groups`, :func:`classification_metrics`, :func:`auto_device`);
* :mod:`.history` -- :class:`History` (what a run recorded), :class:`LiveCurves` (one run or several on
  shared axes), :func:`compare_curves` and :func:`accuracy_baselines` (the majority / minority class lines);
* :mod:`.recipes` -- :data:`CONFIGS`, the course's named models and their recipes, :func:`train` (to a budget
  or to a :class:`Plateau`), :func:`train_arms` (multi-task vs single-task), :func:`read_benchmark` and
  :func:`benchmark_table` (the benchmarks' rows), :func:`seed_summary` / :func:`compare_arms` (seeds and their spread);
* :mod:`.evaluation` -- :func:`evaluate` per task (mAP, mIoU, accuracy), :func:`predict` and
  :func:`compare_detectors` (several detectors side by side);
* :mod:`.checkpoints` -- :func:`save_checkpoint`, :func:`load_trained`, :func:`read_manifest`;
* :mod:`.probes` -- :func:`embeddings`, :func:`pca_2d`, :func:`knn_accuracy`, :func:`standardize`,
  :func:`recalibrate_batchnorm`, :func:`linear_probe`, :func:`train_attention_probe`;
* ``python -m course_lib.training NAME | --all`` -- retrain and ship checkpoints.
"""

from __future__ import annotations

from .checkpoints import load_trained, read_manifest, save_checkpoint, shipped_dir
from .evaluation import (
    DETECTION_COLUMNS,
    compare_detectors,
    evaluate,
    evaluate_classifier,
    evaluate_detector,
    evaluate_segmenter,
    predict,
)
from .history import History, LiveCurves, accuracy_baselines, compare_curves, draw_baselines, draw_curves
from .loop import (
    auto_device,
    classification_metrics,
    fit,
    freeze,
    freeze_batchnorm,
    param_groups,
    seed_everything,
    tensor_batches,
    to_device,
)
from .probes import (
    AttentionProbe,
    ProbeResult,
    embeddings,
    knn_accuracy,
    linear_probe,
    pca_2d,
    recalibrate_batchnorm,
    standardize,
    train_attention_probe,
)
from .recipes import (
    CONFIGS,
    METRIC_NAMES,
    PLATEAU,
    RECIPE,
    SHIPPED,
    CosineSchedule,
    Plateau,
    benchmark_table,
    budget_seconds,
    compare_arms,
    ended_flat,
    gap_verdict,
    get_config,
    plateaued,
    read_benchmark,
    results_dir,
    run_recipe,
    seed_summary,
    seed_table,
    set_bn_momentum,
    sharing_table,
    sharing_text,
    single_task,
    train,
    train_arms,
    train_baselines,
)

__all__ = [
    "CONFIGS", "DETECTION_COLUMNS", "PLATEAU", "RECIPE", "SHIPPED", "AttentionProbe", "CosineSchedule", "History",
    "LiveCurves", "Plateau", "ProbeResult", "accuracy_baselines", "auto_device", "benchmark_table",
    "budget_seconds",
    "classification_metrics", "compare_arms", "compare_curves", "compare_detectors", "draw_baselines",
    "draw_curves", "embeddings", "ended_flat", "evaluate", "evaluate_classifier", "evaluate_detector", "evaluate_segmenter",
    "fit", "freeze", "freeze_batchnorm", "gap_verdict", "get_config", "knn_accuracy", "linear_probe",
    "load_trained", "param_groups", "pca_2d", "plateaued", "predict", "read_benchmark", "read_manifest", "results_dir",
    "recalibrate_batchnorm", "run_recipe", "save_checkpoint", "seed_everything", "seed_summary", "seed_table",
    "set_bn_momentum", "sharing_table", "sharing_text", "METRIC_NAMES", "shipped_dir", "single_task", "standardize",
    "tensor_batches", "to_device", "train", "train_arms", "train_attention_probe", "train_baselines",
]
