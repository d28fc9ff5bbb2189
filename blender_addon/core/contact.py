"""Contact maths for the scene: vertex-group batches, names, the export sidecar."""

from __future__ import annotations

import json
import ntpath
import os
import re
import tempfile
from collections.abc import Iterable

SIDECAR_SCHEMA = "ivlm-sidecar-1"
WEIGHT_LEVELS = 256  # vertex-group weights are batched by weight rounded to 1/255


def group_name(label: str) -> str:
    """The vertex group holding contact with `label`, e.g. 'contact_chair'."""
    clean = re.sub(r"[^0-9A-Za-z_.-]+", "_", label.strip()).strip("_") or "object"
    return f"contact_{clean}"[:63]


def photo_stem(source: str) -> str:
    """What a run is named after: the photo's file name without its folders and extension. Paths may come from
    Windows or POSIX (a .blend made on one and opened on the other), so both separators split (ntpath does)."""
    # "//" is Blender's "relative to the .blend" prefix, which ntpath would read as a UNC share
    name = ntpath.basename(source.strip().removeprefix("//"))
    stem, dot, _ = name.rpartition(".")
    return (stem if dot and stem else name).strip() or "photo"


def weight_batches(weights: Iterable[float], threshold: float = 0.0) -> dict[float, list[int]]:
    """{weight: vertex indices} for weights above `threshold`, weights rounded to 1/(WEIGHT_LEVELS-1), so
    `VertexGroup.add(indices, weight, 'REPLACE')` is called once per level rather than once per vertex."""
    batches: dict[float, list[int]] = {}
    step = WEIGHT_LEVELS - 1
    for index, weight in enumerate(weights):
        if weight > threshold:
            level = round(min(max(weight, 0.0), 1.0) * step) / step
            if level > 0.0:
                batches.setdefault(level, []).append(index)
    return batches


def sidecar(groups: dict[str, dict[str, dict]], objects: dict[str, dict], provenance: dict) -> dict:
    """The sidecar: per mesh, per contact group, the vertex indices and weights; object transforms; provenance.

    groups: {mesh name: {group name: {"indices": [...], "weights": [...]}}}
    objects: {object name: {"matrix_world": 4x4, "vertex_count": n, ...}}
    """
    return {"schema": SIDECAR_SCHEMA, "groups": groups, "objects": objects, "provenance": provenance}


def write_json_atomic(path: str, data: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
