"""Live explorers for JupyterLab (ipywidgets), one module per lesson.

Every explorer keeps the model's :class:`~course_lib.model.Trace` of the current
image and redraws from it with PIL, so moving a slider never re-runs the
network.  Each has ``.widget`` (what the notebook displays), plain attributes
that tests can read after setting control values, and ``static_figure()`` for
places where widgets cannot run.
"""

from .backbone_explorers import FeatureExplorer, ReceptiveFieldExplorer
from .head_explorer import HeadExplorer
from .neck_explorers import DilationExplorer, FusionExplorer
from .picker import ImagePicker
from .stage_explorer import StageExplorer

__all__ = ["HeadExplorer", "DilationExplorer", "FusionExplorer", "FeatureExplorer", "ReceptiveFieldExplorer", "ImagePicker", "StageExplorer"]
