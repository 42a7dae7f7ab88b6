"""Training: one loop, the named recipes, evaluation per task, checkpoints, representation probes.

* :mod:`.loop` -- :func:`fit`, the one training loop, and its helpers (:func:`tensor_batches`,
  :func:`freeze`, :func:`param_groups`, :func:`classification_metrics`, :func:`auto_device`);
* :mod:`.history` -- :class:`History` (what a run recorded) and :class:`LiveCurves`;
* :mod:`.recipes` -- :data:`CONFIGS`, the course's named models and their recipes, :func:`train` (to a budget
  or to a :class:`Plateau`), :func:`train_arms` (multi-task vs single-task), :func:`read_benchmark`;
* :mod:`.evaluation` -- :func:`evaluate` per task (mAP, mIoU, accuracy) and :func:`predict`;
* :mod:`.checkpoints` -- :func:`save_checkpoint`, :func:`load_trained`, :func:`read_manifest`;
* :mod:`.probes` -- :func:`embeddings`, :func:`pca_2d`, :func:`knn_accuracy`, :func:`standardize`,
  :func:`recalibrate_batchnorm`, :func:`linear_probe`, :func:`train_attention_probe`;
* ``python -m course_lib.training NAME | --all`` -- retrain and ship checkpoints.
"""

from __future__ import annotations

from .checkpoints import load_trained, read_manifest, save_checkpoint, shipped_dir
from .evaluation import evaluate, evaluate_classifier, evaluate_detector, evaluate_segmenter, predict
from .history import History, LiveCurves
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
    PLATEAU,
    RECIPE,
    SHIPPED,
    CosineSchedule,
    Plateau,
    compare_arms,
    get_config,
    plateaued,
    read_benchmark,
    run_recipe,
    set_bn_momentum,
    sharing_table,
    sharing_text,
    single_task,
    train,
    train_arms,
    train_baselines,
)

__all__ = [
    "CONFIGS", "PLATEAU", "RECIPE", "SHIPPED", "AttentionProbe", "CosineSchedule", "Plateau", "compare_arms",
    "plateaued", "sharing_table", "sharing_text", "single_task", "train_arms", "History", "LiveCurves", "ProbeResult",
    "auto_device", "classification_metrics", "embeddings", "evaluate", "evaluate_classifier", "evaluate_detector",
    "evaluate_segmenter", "fit", "freeze", "freeze_batchnorm", "get_config", "knn_accuracy", "linear_probe",
    "load_trained", "param_groups", "pca_2d", "predict", "read_benchmark", "read_manifest", "recalibrate_batchnorm",
    "run_recipe", "save_checkpoint", "seed_everything", "set_bn_momentum", "shipped_dir", "standardize",
    "tensor_batches", "to_device", "train",
    "train_attention_probe", "train_baselines",
]
