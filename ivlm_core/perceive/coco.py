"""COCO-17 keypoints: the one place their names and order are defined (ViTPose outputs, fitting inputs)."""

from __future__ import annotations

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
"""Index i is channel i of a COCO keypoint model's heatmaps; 'left' is the person's own left."""

NUM_COCO_KEYPOINTS = len(COCO_KEYPOINTS)
