"""Test-wide setup: the network is blocked for the whole run, kernels included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(__file__).resolve().parent / "netguard_site"

# Every process the tests start (nbval's kernels, JupyterLab) inherits these and
# loads tests/netguard_site/sitecustomize.py, which installs the guard there too.
os.environ["COURSE_BLOCK_NETWORK"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("COURSE_ALLOW_DOWNLOAD", None)

from course_lib import netguard  # noqa: E402

netguard.install()


@pytest.fixture(scope="session")
def cat():
    """The scikit-image cat photo as a (3, H, W) float tensor."""
    import course_lib as cl

    return cl.load_image(cl.sample_images()["chelsea"])


@pytest.fixture(scope="session")
def classifier():
    """Lesson 00's pretrained MobileNetV2 classifier, in eval mode."""
    import course_lib as cl

    model = cl.build_model({"backbone": {"name": "mobilenet_v2", "pretrained": True},
                            "neck": {"name": "gap"},
                            "head": {"name": "classification", "pretrained": True}})
    return model.eval()
