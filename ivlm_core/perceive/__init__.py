"""Perceive: the person's and objects' boxes and masks and the person's COCO-17 keypoints in a photo.

Three hub models, each loaded from a local folder `<models>/perception/<name>` (never downloaded here):
Grounding DINO (open-vocabulary boxes), SAM (box -> mask) and ViTPose (box -> keypoints).

Names are imported lazily, so `from ivlm_core.perceive import COCO_KEYPOINTS` does not load transformers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivlm_core.perceive.coco import COCO_KEYPOINTS, NUM_COCO_KEYPOINTS
    from ivlm_core.perceive.detect import DEFAULT_BOX_THRESHOLD, DEFAULT_TEXT_THRESHOLD, Detection, ObjectDetector
    from ivlm_core.perceive.folders import SPECS, PerceptionModelSpec, check_folder, check_folders
    from ivlm_core.perceive.keypoints import KeypointEstimator
    from ivlm_core.perceive.perceiver import ObjectDetection, Perceiver, Perception, PersonDetection
    from ivlm_core.perceive.segment import BoxSegmenter

__all__ = [
    "COCO_KEYPOINTS",
    "DEFAULT_BOX_THRESHOLD",
    "DEFAULT_TEXT_THRESHOLD",
    "NUM_COCO_KEYPOINTS",
    "SPECS",
    "BoxSegmenter",
    "Detection",
    "KeypointEstimator",
    "ObjectDetection",
    "ObjectDetector",
    "Perceiver",
    "Perception",
    "PerceptionModelSpec",
    "PersonDetection",
    "check_folder",
    "check_folders",
]

_MODULES = {
    "COCO_KEYPOINTS": "coco",
    "NUM_COCO_KEYPOINTS": "coco",
    "SPECS": "folders",
    "PerceptionModelSpec": "folders",
    "check_folder": "folders",
    "check_folders": "folders",
    "DEFAULT_BOX_THRESHOLD": "detect",
    "DEFAULT_TEXT_THRESHOLD": "detect",
    "Detection": "detect",
    "ObjectDetector": "detect",
    "BoxSegmenter": "segment",
    "KeypointEstimator": "keypoints",
    "Perceiver": "perceiver",
    "Perception": "perceiver",
    "PersonDetection": "perceiver",
    "ObjectDetection": "perceiver",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
