"""Anatomical axes of the SMPL-X finger joints, from the model's own rest pose: flexion, spread and twist.

SMPL-X rotates each joint in the rest pose's frame, so a finger curls towards the palm by turning about
(bone direction x palm normal). Both the real model and the demo body rest with flat hands, palms down;
the axes are computed from their joints and fingertip vertices, so nothing here assumes one model.

A hand pose in this basis, [..., 15, 3] = (flex, spread, twist) per joint in smplx's joint order (index,
middle, pinky, ring, thumb; three joints each), makes joint limits simple boxes (`HAND_LIMITS`).
"""

from __future__ import annotations

import torch

from ivlm_core.fit.body_kinematics import NUM_HAND_JOINTS, BodyKinematics

FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")  # smplx's order of the 15 hand joints
WRIST = {"left": 20, "right": 21}
FIRST_HAND_JOINT = {"left": 25, "right": 40}
TIP_NAMES = {"index": "index", "middle": "middle", "pinky": "pinky", "ring": "ring", "thumb": "thumb"}

# Ranges in radians of (flex, spread, twist) for joints 1, 2, 3 of a finger, and of the thumb.
_FINGER = ((-0.25, 1.75), (-0.35, 0.35), (-0.25, 0.25)), ((-0.1, 1.9), (-0.1, 0.1), (-0.12, 0.12))
_THUMB = (
    ((-0.7, 1.2), (-0.9, 0.9), (-0.7, 0.7)),
    ((-0.3, 1.2), (-0.3, 0.3), (-0.3, 0.3)),
    ((-0.3, 1.5), (-0.2, 0.2), (-0.2, 0.2)),
)


def hand_limits() -> torch.Tensor:
    """[15, 3, 2] (low, high) of (flex, spread, twist) per hand joint, in smplx's joint order."""
    rows = []
    for finger in FINGER_ORDER:
        for k in range(3):
            rows.append(_THUMB[k] if finger == "thumb" else _FINGER[0 if k == 0 else 1])
    return torch.tensor(rows, dtype=torch.float32)


class HandFrames:
    """(flex, spread, twist) axes of each hand joint: `axes[side]` is [15, 3, 3] with the axes as rows."""

    def __init__(self, kinematics: BodyKinematics) -> None:
        from smplx.vertex_ids import vertex_ids

        joints = kinematics.j_template
        tips = vertex_ids["smplx"]
        self.axes: dict[str, torch.Tensor] = {}
        for side in ("left", "right"):
            first = FIRST_HAND_JOINT[side]
            wrist = joints[WRIST[side]]
            index1, pinky1 = joints[first], joints[first + 6]
            back = torch.linalg.cross(index1 - wrist, pinky1 - wrist)
            palm = -back if side == "left" else back  # palm normal: out of the palm
            palm = palm / palm.norm()
            rows = []
            for f, finger in enumerate(FINGER_ORDER):
                for k in range(3):
                    joint = joints[first + 3 * f + k]
                    child = (
                        joints[first + 3 * f + k + 1]
                        if k < 2
                        else kinematics.v_template[tips[f"{side[0]}{TIP_NAMES[finger]}"]]
                    )
                    bone = (child - joint) / (child - joint).norm()
                    flex = torch.linalg.cross(bone, palm)
                    flex = flex / flex.norm()
                    spread = torch.linalg.cross(flex, bone)
                    rows.append(torch.stack([flex, spread, bone]))
            self.axes[side] = torch.stack(rows)  # [15, 3, 3]

    def to_axis_angle(self, coefficients: torch.Tensor, side: str) -> torch.Tensor:
        """[..., 15, 3] (flex, spread, twist) -> [..., 45] axis-angle in the model's rest frame."""
        return torch.einsum("...jc,jcx->...jx", coefficients, self.axes[side]).reshape(*coefficients.shape[:-2], 45)

    def from_axis_angle(self, pose: torch.Tensor, side: str) -> torch.Tensor:
        """[..., 45] axis-angle -> [..., 15, 3] (flex, spread, twist); the inverse of `to_axis_angle`."""
        return torch.einsum("...jx,jcx->...jc", pose.reshape(*pose.shape[:-1], NUM_HAND_JOINTS, 3), self.axes[side])


def curl(amounts: dict[str, float]) -> torch.Tensor:
    """[15, 3] coefficients flexing each finger's three joints by `amounts[finger]` radians (others 0)."""
    out = torch.zeros(NUM_HAND_JOINTS, 3)
    for f, finger in enumerate(FINGER_ORDER):
        out[3 * f : 3 * f + 3, 0] = float(amounts.get(finger, 0.0))
    return out
