"""The synthetic body's skeleton: joint names, parent tables and designed joint centres (BODY frame, metres).

One skeleton serves both demo bodies. SMPL-X has 55 joints (22 body, jaw, 2 eyes, 2 x 15 finger joints),
SMPL-H has 52 (the same without jaw and eyes). Names and orders follow smplx's `joint_names.py`, parent
tables the real model files, so code written against real models indexes the demo ones the same way.

The figure is 1.70 m tall in T-pose: soles at y = -1.20, top of the head at y = +0.50, pelvis at
(0, -0.35, 0), arms along +/-X with palms down and thumbs forward (+Z), feet pointing +Z.
+X is the body's left, so left-side joints have x > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BODY_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
BODY_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# Finger order inside each hand, as in SMPL-H / SMPL-X files (pinky before ring).
FINGERS: tuple[str, ...] = ("index", "middle", "pinky", "ring", "thumb")
FACE_JOINT_NAMES: tuple[str, ...] = ("jaw", "left_eye_smplhf", "right_eye_smplhf")


def _hand_joint_names(side: str) -> list[str]:
    return [f"{side}_{finger}{k}" for finger in FINGERS for k in (1, 2, 3)]


SMPLX_JOINT_NAMES: tuple[str, ...] = (
    *BODY_JOINT_NAMES,
    *FACE_JOINT_NAMES,
    *_hand_joint_names("left"),
    *_hand_joint_names("right"),
)
SMPLH_JOINT_NAMES: tuple[str, ...] = (*BODY_JOINT_NAMES, *_hand_joint_names("left"), *_hand_joint_names("right"))


def _parents(names: tuple[str, ...]) -> np.ndarray:
    """Parent table for `names`: body from the SMPL table, face joints under the head, fingers as chains."""
    index = {name: i for i, name in enumerate(names)}
    parents = np.full(len(names), -1, dtype=np.int64)
    parents[: len(BODY_PARENTS)] = BODY_PARENTS
    for name in names[len(BODY_PARENTS) :]:
        if name in FACE_JOINT_NAMES:
            parents[index[name]] = index["head"]
            continue
        side, rest = name.split("_", 1)
        k = int(rest[-1])
        parents[index[name]] = index[f"{side}_wrist"] if k == 1 else index[f"{name[:-1]}{k - 1}"]
    return parents


SMPLX_PARENTS = _parents(SMPLX_JOINT_NAMES)
SMPLH_PARENTS = _parents(SMPLH_JOINT_NAMES)

# ---- designed geometry: left side only, the right side is the mirror image (x -> -x) ----------------

_CENTRE_JOINTS: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, -0.35, 0.0),
    "spine1": (0.0, -0.23, -0.015),
    "spine2": (0.0, -0.10, -0.010),
    "spine3": (0.0, 0.03, -0.005),
    "neck": (0.0, 0.225, -0.015),
    "head": (0.0, 0.315, 0.000),
    "jaw": (0.0, 0.345, 0.025),
}
_LEFT_JOINTS: dict[str, tuple[float, float, float]] = {
    "hip": (0.085, -0.45, 0.0),
    "knee": (0.100, -0.83, 0.010),
    "ankle": (0.110, -1.125, -0.020),
    "foot": (0.118, -1.180, 0.105),
    "collar": (0.075, 0.160, -0.010),
    "shoulder": (0.175, 0.175, -0.015),
    "elbow": (0.440, 0.175, -0.025),
    "wrist": (0.690, 0.175, -0.015),
    "eye_smplhf": (0.033, 0.402, 0.0845),
}

# Fingers of the LEFT hand (palm down, fingers along +X): knuckle position, fan angle in the x-z plane
# (degrees, + turns toward +Z), lengths of the three phalanges and the finger radius at its base.
_FINGER_DESIGN: dict[str, tuple[tuple[float, float, float], float, tuple[float, float, float], float]] = {
    "index": ((0.790, 0.170, 0.033), 5.0, (0.040, 0.024, 0.021), 0.0080),
    "middle": ((0.795, 0.170, 0.010), 1.0, (0.044, 0.028, 0.023), 0.0083),
    "ring": ((0.790, 0.170, -0.013), -3.5, (0.041, 0.026, 0.022), 0.0078),
    "pinky": ((0.780, 0.170, -0.036), -9.0, (0.032, 0.020, 0.019), 0.0068),
}
# The thumb is given by its joints directly: CMC, MCP, IP and the tip.
_THUMB_POINTS = ((0.712, 0.163, 0.028), (0.742, 0.158, 0.055), (0.768, 0.155, 0.071), (0.792, 0.153, 0.083))
THUMB_RADII = (0.0115, 0.0105, 0.0092, 0.0082)

HEAD_TOP_Y = 0.50
SOLE_Y = -1.20
EYEBALL_RADIUS = 0.0125


def _finger_points(finger: str) -> np.ndarray:
    """The four points of a left-hand finger: joints 1..3 and the tip."""
    if finger == "thumb":
        return np.array(_THUMB_POINTS)
    knuckle, angle, lengths, _ = _FINGER_DESIGN[finger]
    direction = np.array([np.cos(np.radians(angle)), 0.0, np.sin(np.radians(angle))])
    steps = np.concatenate([[0.0], np.cumsum(lengths)])
    return np.asarray(knuckle) + steps[:, None] * direction


def finger_radius(finger: str) -> float:
    return THUMB_RADII[0] if finger == "thumb" else _FINGER_DESIGN[finger][3]


def _mirror(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0])


def designed_points() -> dict[str, np.ndarray]:
    """Every named point of the design: all joints plus fingertips, toe tips and the top of the head."""
    points: dict[str, np.ndarray] = {k: np.asarray(v, dtype=float) for k, v in _CENTRE_JOINTS.items()}
    for part, p in _LEFT_JOINTS.items():
        left = np.asarray(p, dtype=float)
        points[f"left_{part}"] = left
        points[f"right_{part}"] = _mirror(left)
    for finger in FINGERS:
        chain = _finger_points(finger)
        for k in range(3):
            points[f"left_{finger}{k + 1}"] = chain[k]
            points[f"right_{finger}{k + 1}"] = _mirror(chain[k])
        points[f"left_{finger}_tip"] = chain[3]
        points[f"right_{finger}_tip"] = _mirror(chain[3])
    points["left_toe_tip"] = np.array([0.093, -1.186, 0.195])
    points["right_toe_tip"] = _mirror(points["left_toe_tip"])
    points["head_top"] = np.array([0.0, HEAD_TOP_Y, 0.0])
    points["chin"] = np.array([0.0, 0.300, 0.080])
    points["crotch"] = np.array([0.0, -0.50, -0.010])
    return points


def joint_positions(names: tuple[str, ...]) -> np.ndarray:
    """Designed joint centres [J, 3] for a joint-name list (BODY frame, metres)."""
    points = designed_points()
    return np.stack([points[name] for name in names])


@dataclass(frozen=True)
class Bone:
    """A segment whose surroundings follow `joint` (the joint's rotation moves it): used for skinning."""

    joint: str
    start: np.ndarray
    end: np.ndarray


def bones(names: tuple[str, ...]) -> list[Bone]:
    """Segments owned by each joint: joint -> each child, or joint -> a designed end point for leaves.

    Eye joints own no segment: eyeballs are separate parts and are bound to them directly.
    """
    points = designed_points()
    parents = _parents(names)
    out: list[Bone] = []
    for j, name in enumerate(names):
        if name in ("left_eye_smplhf", "right_eye_smplhf"):
            continue
        children = [names[c] for c in np.flatnonzero(parents == j) if "eye" not in names[c]]
        if name == "jaw":
            ends = ["chin"]
        elif name == "pelvis":  # the crotch follows the pelvis, not one leg, so spread legs stay smooth
            ends = [c for c in children] + ["crotch"]
        elif name == "head":
            ends = ["head_top"] + (["chin"] if "jaw" not in names else [])
        elif name.endswith("3") and any(f in name for f in FINGERS):
            ends = [name[:-1] + "_tip"]
        elif name.endswith("_foot"):
            ends = [name.split("_")[0] + "_toe_tip"]
        else:
            ends = [c for c in children if c != "jaw"]
        out.extend(Bone(name, points[name], points[e]) for e in ends)
    return out
