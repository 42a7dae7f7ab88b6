"""Live explorers for JupyterLab (ipywidgets), one per file, all of one shape (:mod:`.base`).

Every explorer is built as ``Explorer(source, image=None, *, picker=None, ...)``:
it runs its network once per image (``n_forward`` counts the passes) and
``redraw()`` draws every control move from the cached outputs with
:mod:`course_lib.render`, so moving a slider never re-runs the network.  Each
has ``.widget`` (its root widget), one text field ``info``, plain control
attributes that tests can set, and ``static_figure()`` (a matplotlib figure of
the same view).  Showing an explorer in a notebook (``display(ex)`` or ``ex``
as a cell's last line) shows the live widget in JupyterLab and leaves the
static figure where widgets cannot run.
"""

from .architecture_browser import ArchitectureBrowser
from .attention_explorer import AttentionExplorer
from .base import Explorer, GalleryExplorer, Panel
from .cam_explorer import CAMExplorer
from .dilation_explorer import DilationExplorer
from .feature_explorer import FeatureExplorer
from .fusion_explorer import FusionExplorer
from .head_explorer import HeadExplorer
from .head_switcher import HeadSwitcher
from .part_swapper import PartSwapper
from .picker import ImagePicker
from .receptive_field_explorer import ReceptiveFieldExplorer
from .stage_explorer import StageExplorer

__all__ = ["ArchitectureBrowser", "AttentionExplorer", "CAMExplorer", "DilationExplorer", "Explorer", "FeatureExplorer",
           "FusionExplorer", "GalleryExplorer", "HeadExplorer", "HeadSwitcher", "ImagePicker", "Panel", "PartSwapper",
           "ReceptiveFieldExplorer", "StageExplorer"]
