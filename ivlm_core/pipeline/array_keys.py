"""The names of per-object (and per-parameter) arrays in .npz files: the one place they are spelled.

The server's job files (inputs.npz, state.npz) key an object's arrays by its index in the request, the CLI's
arrays.npz by its label made file-safe; both as `<kind>__<which>`, e.g. `vertices__0`, `body_contact__chair`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")
SEPARATOR = "__"

VERTICES = "vertices"  # float32 [N, 3] an object's mesh as sent
FACES = "faces"  # int32 [F, 3]
OBJECT_CONTACT = "object_contact"  # float32 [N] contact per object vertex
BODY_CONTACT = "body_contact"  # float32 [10475] body contact with this object
OBJECT_MASK = "object_mask"  # bool [H, W] the object's detected silhouette
# float64 [4, 4] camera_from_object where a refit starts: the estimate's placement (its state) or where the user
# left the object (a fit job's inputs, when the client sent it)
OBJECT_POSE = "object_pose"
BODY_PARAM = "body_param"  # an SMPL-X parameter of the fitted body, keyed by its name
CLIENT_BODY_VERTICES = "client_body_vertices"  # float32 [10475, 3] a body the client sent (camera frame), not keyed


def key(kind: str, which: int | str) -> str:
    """The array name of `kind` for object (or parameter) `which`, e.g. key(VERTICES, 0) == "vertices__0"."""
    return f"{kind}{SEPARATOR}{which}"


def entries(arrays: Mapping[str, T], kind: str) -> dict[str, T]:
    """Every array of `kind`, by what follows the separator: entries(state, BODY_PARAM) -> {"betas": ...}."""
    prefix = kind + SEPARATOR
    return {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}
