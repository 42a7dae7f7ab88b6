"""The zoo: published architectures rebuilt from course parts, or split into them.

* :mod:`~course_lib.zoo.yolov8`: YOLOv8 at every published scale, wired as ``yolov8.yaml`` says, to the parameter;
* :mod:`~course_lib.zoo.rtdetr`: a small RT-DETR (hybrid encoder neck, query decoder head, no NMS);
* :mod:`~course_lib.zoo.torchvision_parts`: where the backbone, neck and head of torchvision's detectors and
  segmenters live, and any torchvision classifier, detector or segmenter as a course Model
  (``as_course_model``, also ``cl.from_torchvision``).
* :mod:`~course_lib.zoo.darknet`: YOLOv3's Darknet-53 from the paper's table (registered backbone
  ``darknet53``, 40.6 M parameters without its classifier);
* :mod:`~course_lib.zoo.pretrained_detectors`: torchvision's COCO detectors on the learner's photo
  (:func:`detect`), when their weights are on the machine;
* :mod:`~course_lib.zoo.source_audit`: the source text's claims about YOLOv8, quoted, with their corrections.

The rebuilt models are made of registered parts (``yolov8_pan``, ``yolov8_detect``, ``hybrid_encoder``,
``detr_decoder``, next to the course's own backbones), so ``cl.build_model(model.config)`` builds any of them
again.  Importing :mod:`course_lib.heads` imports this package, which registers them.

>>> from course_lib.zoo import build_yolov8
>>> model = build_yolov8("n")
>>> model.config["neck"]["name"]
'yolov8_pan'
"""

from __future__ import annotations

from . import darknet, pretrained_detectors, rtdetr, source_audit, torchvision_parts, yolov8
from .pretrained_detectors import detect
from .rtdetr import build_rtdetr_small, rtdetr_small_config
from .yolov8 import build_yolov8, layer_table, yolov8_config

__all__ = ["build_rtdetr_small", "build_yolov8", "darknet", "detect", "layer_table", "pretrained_detectors", "rtdetr",
           "rtdetr_small_config", "source_audit", "torchvision_parts", "yolov8", "yolov8_config"]
