"""Armature layout for a rigged body: where each bone's head and tail go, and the skinning weights by group.

The armature's rest pose is the fitted body itself: every bone's head sits on its joint, so turning a bone turns
its part of the mesh about that joint, as SMPL-X's own skinning does. Tails only set a bone's length and roll
axis: towards the child joint when there is one, else along the parent-to-joint direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_BONE_LENGTH = 0.01  # metres; Blender drops zero-length bones, and tiny ones are hard to pick
LEAF_FRACTION = 0.5  # a leaf bone's length as a fraction of its parent's

Vector3 = tuple[float, float, float]

# Where a joint has several children, the one its bone points at (the chain that continues it).
PREFERRED_CHILD = {
    "pelvis": "spine1",
    "spine3": "neck",
    "neck": "head",
    "left_wrist": "left_middle1",
    "right_wrist": "right_middle1",
}


def _sub(a: Vector3, b: Vector3) -> Vector3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _length(v: Vector3) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


def _along(head: Vector3, direction: Vector3, length: float) -> Vector3:
    norm = _length(direction)
    if norm < 1e-9:
        direction, norm = (0.0, 0.0, 1.0), 1.0
    return (
        head[0] + direction[0] * length / norm,
        head[1] + direction[1] * length / norm,
        head[2] + direction[2] * length / norm,
    )


def bone_layout(names: list[str], parents: list[int], joints: list[Vector3]) -> list[tuple[Vector3, Vector3]]:
    """(head, tail) per joint, in the joints' frame. Parents must come before children (-1 for the root)."""
    if not (len(names) == len(parents) == len(joints)):
        raise ValueError(f"{len(names)} names, {len(parents)} parents and {len(joints)} joints differ in count")
    children: dict[int, list[int]] = {}
    for index, parent in enumerate(parents):
        if parent >= index:
            raise ValueError(f"joint {index} ({names[index]}) has parent {parent}, which does not come before it")
        if parent >= 0:
            children.setdefault(parent, []).append(index)
    layout: list[tuple[Vector3, Vector3]] = []
    for index, head in enumerate(joints):
        kids = children.get(index, [])
        preferred = [k for k in kids if names[k] == PREFERRED_CHILD.get(names[index])]
        target = preferred[0] if preferred else (kids[0] if len(kids) == 1 else None)
        tail = None
        if target is not None and _length(_sub(joints[target], head)) >= MIN_BONE_LENGTH:
            tail = joints[target]
        if tail is None:
            parent = parents[index]
            if parent >= 0:
                parent_length = _length(_sub(layout[parent][1], layout[parent][0]))
                direction = _sub(head, joints[parent])
                tail = _along(head, direction, max(parent_length * LEAF_FRACTION, MIN_BONE_LENGTH))
            else:
                tail = _along(head, (0.0, 0.0, 1.0), 0.1)
        layout.append((head, tail))
    return layout


def weight_batches(
    vertex: Sequence[int], joint: Sequence[int], weight: Sequence[float], count: int
) -> list[dict[float, list[int]]]:
    """Per joint, {weight: vertex indices}: `VertexGroup.add` takes one weight per call, so vertices sharing a
    weight (often exactly 1.0) go in one call."""
    if not (len(vertex) == len(joint) == len(weight)):
        raise ValueError("the skinning weight triples differ in length")
    if joint and not (0 <= min(joint) and max(joint) < count):
        raise ValueError(f"skinning weights name joints {min(joint)}..{max(joint)}; the skeleton has {count} joints")
    batches: list[dict[float, list[int]]] = [{} for _ in range(count)]
    for v, j, w in zip(vertex, joint, weight, strict=True):  # a plain loop: ~35k triples for SMPL-X, ~10 ms
        batches[j].setdefault(w, []).append(v)
    return batches
