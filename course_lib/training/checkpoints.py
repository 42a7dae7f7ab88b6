"""Checkpoints: one file format and one manifest for every trained model the course ships.

A checkpoint ``NAME.pt`` holds only ``{"config", "task", "state_dict"}`` (plain tensors),
so it loads with ``torch.load(..., weights_only=True)`` and ``cl.build_model(config)``
rebuilds its architecture, one head or several.  ``manifest.json`` next to it records
for each name its file, sha256, size, config, recipe, seed, validation metrics, training
time, CPU threads, torch and Python versions, and the command that made it.

The shipped checkpoints are package data (``course_lib/training/checkpoints/``), read
through :mod:`importlib.resources`: they load the same way from a source checkout, after
``pip install .``, and from any working directory.
"""

from __future__ import annotations

import copy
import json
import os
import platform
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import weights as W
from ..model import Model, build_model

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MANIFEST = "manifest.json"


def shipped_dir() -> Traversable:
    """The folder inside the installed package that holds the shipped checkpoints."""
    return resources.files(__package__) / "checkpoints"


def default_out() -> Path:
    """Where a new checkpoint goes by default: the package's own folder, when it is writable (a source checkout)."""
    folder = Path(str(shipped_dir()))
    if not (folder.is_dir() and os.access(folder, os.W_OK)):
        raise PermissionError(f"the package's checkpoint folder {folder} is not writable; "
                              "choose a folder with --out DIR (python -m course_lib.training NAME --out DIR)")
    return folder


def _folder(directory: str | os.PathLike | Traversable | None) -> Traversable:
    if directory is None:
        return shipped_dir()
    return Path(directory) if isinstance(directory, (str, os.PathLike)) else directory


def _jsonable(m: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as JSON: floats rounded to 4 digits (NaN becomes null), nested dicts and lists too."""
    def fix(v):
        if isinstance(v, float):
            return None if v != v else round(v, 4)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, Mapping):
            return {k: fix(x) for k, x in v.items()}
        return v

    return {k: fix(v) for k, v in m.items()}


def save_checkpoint(model: Model, report: Mapping[str, Any], directory: str | os.PathLike | None = None) -> Path:
    """Write ``NAME.pt`` (config + weights, plain tensors only) and its manifest entry with the sha256.

    ``report`` is what :func:`~course_lib.training.train` returns; its optional
    ``"baselines"`` (single-task models trained with the same recipe) go into the manifest too.
    ``directory`` defaults to :func:`default_out`.
    """
    directory = Path(directory) if directory is not None else default_out()
    directory.mkdir(parents=True, exist_ok=True)
    name = report["name"]
    path = directory / f"{name}.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"config": report["config"], "task": report["task"], "state_dict": state}, path)
    manifest = read_manifest(directory)
    threads = torch.get_num_threads()
    manifest[name] = {
        "file": path.name, "sha256": W.sha256_of(path), "bytes": path.stat().st_size,
        "task": report["task"], "config": report["config"], "recipe": report["recipe"],
        "seed": report["recipe"]["seed"], "steps": report["steps"], "train_seconds": report["seconds"],
        "metrics": _jsonable(report["metrics"]), "torch": torch.__version__, "python": platform.python_version(),
        "threads": threads, "command": f"python -m course_lib.training {name} --threads {threads}",
        **({"baselines": _jsonable(report["baselines"])} if report.get("baselines") else {}),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def read_manifest(directory: str | os.PathLike | Traversable | None = None) -> dict[str, Any]:
    """The manifest ``{name: {file, sha256, config, metrics, ...}}`` (default: the shipped one; empty if none)."""
    p = _folder(directory) / MANIFEST
    return json.loads(p.read_text()) if p.is_file() else {}


def load_trained(name: str, directory: str | os.PathLike | Traversable | None = None) -> Model:
    """Load a checkpoint by name (default: a shipped one): sha256 checked, ``weights_only=True``, eval mode."""
    folder = _folder(directory)
    manifest = read_manifest(folder)
    if name not in manifest:
        raise FileNotFoundError(
            f"no checkpoint {name!r} in {folder / MANIFEST} (have: {', '.join(manifest) or 'none'}); "
            f"train it with: python -m course_lib.training {name}"
        )
    entry = manifest[name]
    with resources.as_file(folder / entry["file"]) as path:
        ckpt = W.load_checkpoint(path, entry["sha256"])
    cfg = copy.deepcopy(ckpt["config"])
    backbone = cfg["backbone"] if isinstance(cfg["backbone"], Mapping) else {"name": cfg["backbone"]}
    cfg["backbone"] = {**backbone, "pretrained": False}  # the checkpoint holds every weight
    model = build_model(cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.config = ckpt["config"]
    return model.eval()
