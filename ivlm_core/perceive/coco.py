"""Keypoint sets: the one place their names and order are defined (ViTPose outputs, fitting inputs).

COCO-17: the body keypoints of COCO. COCO-WholeBody (Jin et al. 2020): 133 keypoints, COCO-17 first, then
6 feet, 68 face (the iBUG-68 layout), 21 left-hand and 21 right-hand points, named as in mmpose's dataset
description (which ViTPose's whole-body models were trained with).
"""

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

FEET_KEYPOINTS: tuple[str, ...] = (
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
FACE_KEYPOINTS: tuple[str, ...] = tuple(f"face-{i}" for i in range(68))
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root", *(f"{side}_{finger}{k}" for finger in _FINGERS for k in (1, 2, 3, 4)))


LEFT_HAND_KEYPOINTS = _hand("left")
RIGHT_HAND_KEYPOINTS = _hand("right")

COCO_WHOLEBODY_KEYPOINTS: tuple[str, ...] = (
    *COCO_KEYPOINTS,
    *FEET_KEYPOINTS,
    *FACE_KEYPOINTS,
    *LEFT_HAND_KEYPOINTS,
    *RIGHT_HAND_KEYPOINTS,
)
"""Index i is channel i of a COCO-WholeBody model's heatmaps (133)."""

NUM_WHOLEBODY_KEYPOINTS = len(COCO_WHOLEBODY_KEYPOINTS)


def _span(names: tuple[str, ...]) -> range:
    start = COCO_WHOLEBODY_KEYPOINTS.index(names[0])
    return range(start, start + len(names))


WHOLEBODY_PARTS: dict[str, range] = {
    "body": range(NUM_COCO_KEYPOINTS),
    "feet": _span(FEET_KEYPOINTS),
    "face": _span(FACE_KEYPOINTS),
    "left_hand": _span(LEFT_HAND_KEYPOINTS),
    "right_hand": _span(RIGHT_HAND_KEYPOINTS),
}
"""Index ranges of each part inside COCO_WHOLEBODY_KEYPOINTS."""

KEYPOINT_FORMATS: dict[int, str] = {NUM_COCO_KEYPOINTS: "coco17", NUM_WHOLEBODY_KEYPOINTS: "coco_wholebody"}
"""The format name for a keypoint count (what results and notes call it)."""


def keypoint_names(count: int) -> tuple[str, ...]:
    """The names for a keypoint array of `count` rows (17 or 133); ValueError otherwise."""
    if count == NUM_COCO_KEYPOINTS:
        return COCO_KEYPOINTS
    if count == NUM_WHOLEBODY_KEYPOINTS:
        return COCO_WHOLEBODY_KEYPOINTS
    raise ValueError(f"{count} keypoints: neither COCO-17 nor COCO-WholeBody (133)")


def mirror_index(names: tuple[str, ...]) -> list[int]:
    """For each keypoint, the index of its left/right counterpart (itself when it has none).

    Face points mirror by the iBUG-68 layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67)."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for name in names:
        if name.startswith("left_"):
            out.append(index["right_" + name[5:]])
        elif name.startswith("right_"):
            out.append(index["left_" + name[6:]])
        elif name.startswith("face-"):
            out.append(index[f"face-{_IBUG_MIRROR[int(name[5:])]}"])
        else:
            out.append(index[name])
    return out


def _ibug_mirror() -> list[int]:
    pairs: list[tuple[int, int]] = [(i, 16 - i) for i in range(17)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(27 + i, 27 + i) for i in range(4)]  # nose ridge
    pairs += [(31 + i, 35 - i) for i in range(5)]  # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48 + i, 54 - i) for i in range(7)]  # outer lip, upper
    pairs += [(55 + i, 59 - i) for i in range(5)]  # outer lip, lower
    pairs += [(60 + i, 64 - i) for i in range(5)]  # inner lip, upper
    pairs += [(65, 67), (66, 66)]  # inner lip, lower
    table = list(range(68))
    for a, b in pairs:
        table[a], table[b] = b, a
    return table


_IBUG_MIRROR = _ibug_mirror()
