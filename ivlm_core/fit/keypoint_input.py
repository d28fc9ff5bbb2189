"""What the body fit may use from a keypoint array, and what it must tell the user about it.

Checks, in order, each with a clear outcome: the array's shape (COCO-17 or COCO-WholeBody, finite); keypoints
outside the photo or on its border (a detector extrapolates there) are dropped, and a person cut by the border
is reported; a tiny person (under `SMALL_PERSON_PX` tall) is fitted from the body keypoints alone, since its
hands and face are a few pixels, and one under `MIN_PERSON_PX` is refused; a hidden torso is refused (nothing
then says where the body is or which way it faces); limbs with no usable keypoint are listed (their pose is
the prior's guess, and the result says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ivlm_core.errors import BadInputError
from ivlm_core.perceive.coco import (
    COCO_WHOLEBODY_KEYPOINTS,
    KEYPOINT_FORMATS,
    NUM_COCO_KEYPOINTS,
    NUM_WHOLEBODY_KEYPOINTS,
    WHOLEBODY_PARTS,
    mirror_index,
)

MIN_PERSON_PX = 40.0
SMALL_PERSON_PX = 100.0
BORDER_PX = 2.0  # keypoints closer than this to the image edge are treated as outside it
MIN_BODY_KEYPOINTS = 6
MIN_REFINE_KEYPOINTS = 3  # with a first estimate placing the body, a few keypoints still refine it
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
# Body parts named in notes, with the keypoints that show them.
LIMBS: dict[str, tuple[str, ...]] = {
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
    "left arm": ("left_elbow", "left_wrist"),
    "right arm": ("right_elbow", "right_wrist"),
    "left leg": ("left_knee", "left_ankle"),
    "right leg": ("right_knee", "right_ankle"),
    "left foot": ("left_big_toe", "left_small_toe", "left_heel"),
    "right foot": ("right_big_toe", "right_small_toe", "right_heel"),
    "left hand": tuple(COCO_WHOLEBODY_KEYPOINTS[i] for i in WHOLEBODY_PARTS["left_hand"][1:]),
    "right hand": tuple(COCO_WHOLEBODY_KEYPOINTS[i] for i in WHOLEBODY_PARTS["right_hand"][1:]),
}
HEIGHT_PER_BODY_SPAN = 1.15  # person height / vertical span of the confident COCO-17 keypoints, roughly


@dataclass
class PreparedKeypoints:
    """Keypoints as COCO-WholeBody rows [133, 3] (COCO-17 input fills the first 17, the rest unused), the weight
    of each (0 = unused), and what the checks found."""

    format: str  # "coco17" or "coco_wholebody"
    points: np.ndarray  # [133, 2] pixels
    weight: np.ndarray  # [133] confidence where used, else 0
    person_px: float  # estimated person height in pixels
    unseen: list[str] = field(default_factory=list)  # limbs with no usable keypoint
    cut_sides: list[str] = field(default_factory=list)  # image borders the person is cut by
    flags: list[str] = field(default_factory=list)  # machine-readable: "cut_by_border", "small_person", ...
    notes: list[str] = field(default_factory=list)

    def mirrored(self) -> PreparedKeypoints:
        """The same keypoints with every left and right label swapped (what a mirrored photo's labels look like)."""
        swap = mirror_index(COCO_WHOLEBODY_KEYPOINTS)
        return PreparedKeypoints(
            self.format,
            self.points[swap],
            self.weight[swap],
            self.person_px,
            list(self.unseen),
            list(self.cut_sides),
            list(self.flags),
            list(self.notes),
        )


def _index(name: str) -> int:
    return COCO_WHOLEBODY_KEYPOINTS.index(name)


def prepare_keypoints(
    keypoints: np.ndarray,
    image_size: tuple[int, int],
    confidence_threshold: float,
    person_mask: np.ndarray | None = None,
    *,
    torso_required: bool = True,
) -> PreparedKeypoints:
    """Checks and weights keypoints [17 or 133, 3] (x, y, confidence; pixels). Raises BadInputError with the reason
    when no body can be fitted from them (`torso_required=False` when another estimate already places the body)."""
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.ndim != 2 or keypoints.shape[0] not in KEYPOINT_FORMATS or keypoints.shape[1] != 3:
        raise BadInputError(
            f"keypoints have shape {keypoints.shape}; expected ({NUM_COCO_KEYPOINTS}, 3) or "
            f"({NUM_WHOLEBODY_KEYPOINTS}, 3) (x, y, confidence)",
            "Pass COCO-17 or COCO-WholeBody keypoints in pixels, in the order of ivlm_core.perceive.coco.",
        )
    if not np.isfinite(keypoints).all():
        raise BadInputError(
            "keypoints contain NaN or infinite values", "Send finite pixel coordinates and confidences."
        )
    fmt = KEYPOINT_FORMATS[len(keypoints)]
    points = np.zeros((NUM_WHOLEBODY_KEYPOINTS, 2))
    confidence = np.zeros(NUM_WHOLEBODY_KEYPOINTS)
    points[: len(keypoints)] = keypoints[:, :2]
    confidence[: len(keypoints)] = np.clip(keypoints[:, 2], 0.0, 1.0)
    out = PreparedKeypoints(fmt, points, np.where(confidence >= confidence_threshold, confidence, 0.0), 0.0)
    _drop_border(out, image_size, person_mask)
    _check_size(out, person_mask)
    _check_torso(out, torso_required, confidence_threshold)
    _list_unseen(out)
    return out


def _drop_border(out: PreparedKeypoints, image_size: tuple[int, int], person_mask: np.ndarray | None) -> None:
    height, width = image_size
    x, y = out.points[:, 0], out.points[:, 1]
    sides = {
        "left": x < BORDER_PX,
        "right": x > width - 1 - BORDER_PX,
        "top": y < BORDER_PX,
        "bottom": y > height - 1 - BORDER_PX,
    }
    outside = np.zeros(len(x), bool)
    cut = []
    for side, beyond in sides.items():
        if (beyond & (out.weight > 0)).any():
            cut.append(side)
        outside |= beyond
    if person_mask is not None and person_mask.any():
        edges = {
            "left": person_mask[:, 0],
            "right": person_mask[:, -1],
            "top": person_mask[0],
            "bottom": person_mask[-1],
        }
        cut += [side for side, edge in edges.items() if edge.sum() >= 3 and side not in cut]
    out.weight[outside] = 0.0
    if cut:
        out.cut_sides = cut
        out.flags.append("cut_by_border")


def _check_size(out: PreparedKeypoints, person_mask: np.ndarray | None) -> None:
    body = np.flatnonzero(out.weight[:NUM_COCO_KEYPOINTS] > 0)
    span = float(np.ptp(out.points[body, 1])) if len(body) else 0.0
    if len(body):
        span = max(span, float(np.ptp(out.points[body, 0])) * 0.8)  # a lying person spans the image sideways
    height = span * HEIGHT_PER_BODY_SPAN
    if person_mask is not None and person_mask.any():
        rows, cols = np.flatnonzero(person_mask.any(1)), np.flatnonzero(person_mask.any(0))
        height = max(height, float(max(np.ptp(rows), 0.8 * np.ptp(cols))))
    out.person_px = height
    if len(body) >= MIN_BODY_KEYPOINTS and height < MIN_PERSON_PX:
        raise BadInputError(
            f"the person is about {height:.0f} px tall in the photo (under {MIN_PERSON_PX:.0f} px): too small to fit a body",
            "Use a photo where the person is larger (crop closer to them), or supply the body.",
        )
    if height < SMALL_PERSON_PX and out.format == "coco_wholebody":
        out.weight[NUM_COCO_KEYPOINTS:] = np.where(
            np.isin(np.arange(NUM_COCO_KEYPOINTS, NUM_WHOLEBODY_KEYPOINTS), list(WHOLEBODY_PARTS["feet"])),
            out.weight[NUM_COCO_KEYPOINTS:],
            0.0,
        )
        out.flags.append("small_person")
        out.notes.append(
            f"the person is about {height:.0f} px tall (under {SMALL_PERSON_PX:.0f} px): hands and face are too small "
            "to use, so the body was fitted from its body and feet keypoints and the hands were left relaxed"
        )


def _check_torso(out: PreparedKeypoints, required: bool, threshold: float) -> None:
    confident = out.weight > 0
    torso = [name for name in TORSO if confident[_index(name)]]
    body_count = int(confident[:NUM_COCO_KEYPOINTS].sum())
    needed = MIN_BODY_KEYPOINTS if required else MIN_REFINE_KEYPOINTS
    if body_count < needed:
        raise BadInputError(
            f"only {body_count} keypoints are confident (>= {threshold}) and usable; {needed} body keypoints are "
            "needed: too little to fit a body",
            "Use a photo where the person is clearly visible (shoulders and hips included), or supply the body.",
        )
    if not required:
        return
    if len(torso) < 3:
        hidden = [name.replace("_", " ") for name in TORSO if name not in torso]
        raise BadInputError(
            f"the torso is hidden ({', '.join(hidden)} not found): nothing says where the body is or which way it "
            "faces",
            "Use a photo where the person's shoulders and hips are visible, or supply the body.",
        )
    if len(torso) == 3:
        out.notes.append(f"{next(n for n in TORSO if n not in torso).replace('_', ' ')} hidden: fitted from the rest")


def _list_unseen(out: PreparedKeypoints) -> None:
    confident = out.weight > 0
    candidates = [
        limb for limb in LIMBS if out.format == "coco_wholebody" or ("foot" not in limb and "hand" not in limb)
    ]
    if "small_person" in out.flags:  # its hands were dropped on purpose, and said so
        candidates = [limb for limb in candidates if "hand" not in limb]
    limbs = [limb for limb in candidates if not any(confident[_index(name)] for name in LIMBS[limb])]
    out.unseen = limbs
    if limbs:
        out.flags.append("parts_unseen")
        where = f" (cut by the image's {' and '.join(out.cut_sides)} edge)" if out.cut_sides else ""
        out.notes.append(f"not seen in the photo{where}: {', '.join(limbs)}; their pose is the prior's guess")
    elif out.cut_sides:
        out.notes.append(f"the person touches the image's {' and '.join(out.cut_sides)} edge")
