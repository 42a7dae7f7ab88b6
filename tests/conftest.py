"""Fixtures shared by the tests (the network guard itself is set up in the root conftest.py)."""

from __future__ import annotations

import pytest


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
