"""Which person a run is about when the photo holds several: the one the client names by box, else the one who
interacts with the object.

Interaction is read from the image, before any 3D exists: the share of the area around each object (its box,
enlarged by 10 % of its size on every side, since a hand around a mug lies at its edge) that the person's mask
covers. The person holding, sitting on or kicking the object covers that area; a bystander is elsewhere or
hidden behind the object and the person using it. When no person's mask reaches any object, the person whose
box is nearest an object is taken, and without any object the highest detector score. Every choice comes
with a sentence saying why, and all people's boxes are kept so a client can offer another choice.
(Depth cannot help yet: the object's depth is only known after it is placed against the chosen body.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ivlm_core.perceive.detect import Detection, box_iou

OBJECT_MARGIN = 0.10  # share of the object's box size added on each side
CLIENT_MATCH_IOU = 0.5  # a client's box names a detected person when they overlap at least this much
TIE = 0.02  # overlaps closer than this are a tie, broken by the detector's score
MAX_CANDIDATES = 8  # people segmented and compared (highest detector scores); more are listed, not compared


@dataclass(frozen=True)
class PersonCandidate:
    """A detected person: xyxy box in photo pixels, detector score, and the measured object overlap."""

    box: np.ndarray  # float32 [4]
    score: float
    object_overlap: float | None = None  # 0-1, the largest over the objects; None where not measured


@dataclass(frozen=True)
class PeopleChoice:
    """Every person detected (highest score first), which one the run uses, and why."""

    candidates: list[PersonCandidate]
    chosen: int | None  # index into candidates; None when nobody was found or the client's box matched nobody
    box: np.ndarray | None  # the box used for the person: the chosen candidate's, or the client's own
    reason: str


def enlarged(box: np.ndarray, margin: float, height: int, width: int) -> np.ndarray:
    """An xyxy box grown by `margin` times its size on each side, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return np.array([max(x0 - dx, 0.0), max(y0 - dy, 0.0), min(x1 + dx, width), min(y1 + dy, height)])


def mask_share_in_box(mask: np.ndarray, box: np.ndarray) -> float:
    """The share of the box's pixels (those whose centres lie inside it) that the bool mask [H, W] covers."""
    x0, y0 = max(math.ceil(float(box[0]) - 0.5), 0), max(math.ceil(float(box[1]) - 0.5), 0)
    x1, y1 = min(math.ceil(float(box[2]) - 0.5), mask.shape[1]), min(math.ceil(float(box[3]) - 0.5), mask.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    return float(mask[y0:y1, x0:x1].mean())


def box_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Pixels between two xyxy boxes (0 when they overlap)."""
    dx = max(float(a[0]) - float(b[2]), float(b[0]) - float(a[2]), 0.0)
    dy = max(float(a[1]) - float(b[3]), float(b[1]) - float(a[3]), 0.0)
    return math.hypot(dx, dy)


def _named(index: int, count: int) -> str:
    return f"person {index + 1} of {count}"


def _others(best: int, values: list[float], unit: str) -> str:
    return ", ".join(f"{v:.0%}" if unit == "%" else f"{v:.0f} {unit}" for i, v in enumerate(values) if i != best)


def choose_person(
    people: list[Detection],
    masks: np.ndarray | None,
    object_boxes: dict[str, np.ndarray],
    client_box: np.ndarray | None = None,
) -> PeopleChoice:
    """people: detections best first; masks: bool [M, H, W] of the first M <= len(people) (the others are listed,
    not compared; None without a segmenter pass); object boxes by label (the objects found); client_box: the
    xyxy box the client named, if any."""
    if client_box is not None:
        return _client_choice(people, client_box)
    if not people:
        return PeopleChoice([], None, None, "no person found")
    count = len(people)
    if masks is None or not object_boxes:
        candidates = [PersonCandidate(p.box, p.score) for p in people]
        why = (
            "the only person detected"
            if count == 1
            else (
                f"{count} people detected and no object found to tell who uses it; chose the highest detector score "
                f"({people[0].score:.2f})"
            )
        )
        return PeopleChoice(candidates, 0, people[0].box, why)
    height, width = masks.shape[1:]
    around = {label: enlarged(box, OBJECT_MARGIN, height, width) for label, box in object_boxes.items()}
    overlaps = [max(mask_share_in_box(mask, box) for box in around.values()) for mask in masks]
    measured = len(overlaps)
    candidates = [PersonCandidate(p.box, p.score, overlaps[i] if i < measured else None) for i, p in enumerate(people)]
    if count == 1:
        return PeopleChoice(candidates, 0, people[0].box, "the only person detected")
    labels = ", ".join(repr(label) for label in object_boxes)
    compared = "" if measured == count else f" (the {measured} with the highest detector scores compared)"
    if max(overlaps) > 0.0:
        best = next(i for i, o in enumerate(overlaps) if o >= max(overlaps) - TIE)  # ties: the higher score (earlier)
        reason = (
            f"{count} people detected{compared}; chose {_named(best, count)}, whose mask covers the most of the area "
            f"around {labels} ({overlaps[best]:.0%}; the others {_others(best, overlaps, '%')})"
        )
        return PeopleChoice(candidates, best, people[best].box, reason)
    gaps = [min(box_gap(p.box, box) for box in object_boxes.values()) for p in people[:measured]]
    best = min(range(measured), key=lambda i: (round(gaps[i]), i))
    reason = (
        f"{count} people detected{compared} and none reaches {labels}; chose {_named(best, count)}, the nearest "
        f"to it ({gaps[best]:.0f} px away; the others {_others(best, gaps, 'px')})"
    )
    return PeopleChoice(candidates, best, people[best].box, reason)


def _client_choice(people: list[Detection], client_box: np.ndarray) -> PeopleChoice:
    candidates = [PersonCandidate(p.box, p.score) for p in people]
    box = np.asarray(client_box, np.float32)
    if people:
        ious = box_iou(box, np.stack([p.box for p in people]))
        best = int(np.argmax(ious))
        if ious[best] >= CLIENT_MATCH_IOU:
            why = f"the person the client named by box ({_named(best, len(people))}, box overlap {ious[best]:.2f})"
            return PeopleChoice(candidates, best, people[best].box, why)
        why = (
            f"the client's box matches none of the {len(people)} people detected (best overlap {ious[best]:.2f} "
            f"< {CLIENT_MATCH_IOU}); it is used as given"
        )
    else:
        why = "no person detected; the client's box is used as given"
    return PeopleChoice(candidates, None, box, why)
