"""course_lib: backbone (the eye) -> neck (the brain) -> head (the judgement).

>>> import course_lib as cl
>>> x = cl.load_image(cl.sample_images()["chelsea"])
>>> model = cl.build_model({"backbone": {"name": "mobilenet_v2", "pretrained": True},
...                         "neck": {"name": "gap"},
...                         "head": {"name": "classification", "pretrained": True}})
>>> model.eval(); model.head.decode(model(x[None]))[0][0].name
'Egyptian cat'
"""

from __future__ import annotations

from . import backbones, blocks, heads, necks, render, weights
from .contract import Backbone, ContractError, FeatureSpec, Head, Neck, describe_specs
from .images import ImageError, load_image, sample_images, to_uint8
from .language import get_language, set_language
from .model import Model, Trace, build_model
from .zoo.torchvision_parts import as_course_model as from_torchvision

__version__ = "0.1.0"

# Every figure of the course: text >= 9 pt, perceptual colour maps, colour-blind-safe lines, a CJK font fallback.
render.use_course_style()

__all__ = [
    "Backbone", "ContractError", "FeatureSpec", "Head", "ImageError", "Model", "Neck", "Trace",
    "backbones", "blocks", "build_model", "describe_specs", "from_torchvision", "get_language", "heads", "load_image",
    "necks", "render", "set_language",
    "sample_images", "to_uint8", "weights",
]


# Every lesson asks ``cl.exercises.get("01.stride")``; the exercises and the glossary live in ``lessons/``.
_LESSON_PARTS = {"exercises": "lessons.exercises", "glossary": "lessons.glossary"}


def __getattr__(name: str):
    # Heavier or optional parts load on first use: cl.data, cl.widgets, cl.exercises, ...
    import importlib

    if name in _LESSON_PARTS:
        return importlib.import_module(f"{__name__}.{_LESSON_PARTS[name]}")
    if name in {"data", "widgets", "lessons", "training", "boxes", "explain", "measure", "metrics", "netguard"}:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
