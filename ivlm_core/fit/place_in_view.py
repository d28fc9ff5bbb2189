"""An object put where the photo shows it, without contact: the start of the manual-contact workflow.

With no contact predicted there is nothing to place the object against the body with, but the user still needs
it in view to paint or mark its contacts: it is stood upright, facing the camera, its centre on the ray through
its mask's box and at the depth where its size matches the box's. Without a mask it goes just in front of the
body (or 2 m ahead when there is no body either). A Refit from the painted contacts then places it properly.
"""

from __future__ import annotations

import numpy as np

from ivlm_core.fit.camera import CameraIntrinsics
from ivlm_core.fit.place_object import ObjectPlacement
from ivlm_core.frames import make_transform
from ivlm_core.mesh import TriangleMesh

# Y-up object frame (frames.BODY) -> CV_CAMERA, upright and facing the camera: 180 degrees about X.
CAMERA_FROM_UPRIGHT = np.diag([1.0, -1.0, -1.0])
NO_BODY_DEPTH_M = 2.0  # on the optical axis, when neither a mask nor a body says where
MIN_DEPTH_M = 0.1


def place_in_view(
    mesh: TriangleMesh,
    camera: CameraIntrinsics,
    object_mask: np.ndarray | None,
    body_vertices: np.ndarray | None,
    why: str,
) -> ObjectPlacement:
    """`camera_from_object` for `mesh` (local Y-up, metres) in the CV_CAMERA frame, from the mask [H, W] bool
    or the body [N, 3] (CV_CAMERA metres); `why` opens the placement's reason (why there is no contact)."""
    local = np.asarray(mesh.vertices, np.float64)
    lo, hi = local.min(0), local.max(0)
    centre_local = (lo + hi) / 2
    width_m, height_m = float(hi[0] - lo[0]), float(hi[1] - lo[1])
    box = _mask_box(object_mask)
    if box is not None:
        centre, where = _centre_from_box(box, camera, width_m, height_m), "where its mask is in the photo"
    elif body_vertices is not None and len(body_vertices):
        centre = _centre_before_body(np.asarray(body_vertices, np.float64), local - centre_local)
        where = "in front of the body (it was not found in the photo)"
    else:
        centre, where = np.array([0.0, 0.0, NO_BODY_DEPTH_M]), f"{NO_BODY_DEPTH_M:g} m in front of the camera"
    translation = centre - CAMERA_FROM_UPRIGHT @ centre_local
    return ObjectPlacement(
        "placed",
        f"{why}; it was put upright {where}, not against the body: paint or mark its contacts, then Refit",
        camera_from_object=make_transform(CAMERA_FROM_UPRIGHT, translation),
    )


def _mask_box(mask: np.ndarray | None) -> tuple[float, float, float, float] | None:
    """The xyxy pixel box of the mask's pixels (pixel centres at integers), or None for no or an empty mask."""
    if mask is None:
        return None
    rows, cols = np.nonzero(np.asarray(mask, bool))
    if rows.size == 0:
        return None
    return float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)


def _centre_from_box(
    box: tuple[float, float, float, float], camera: CameraIntrinsics, width_m: float, height_m: float
) -> np.ndarray:
    """The 3-D point on the ray through the box's centre at the depth where the object's width and height
    (metres) project to the box's (the mean of the two depths that have a size)."""
    x0, y0, x1, y1 = box
    depths = [camera.focal_px * size / span for size, span in ((width_m, x1 - x0), (height_m, y1 - y0)) if size > 0]
    depth = max(float(np.mean(depths)) if depths else NO_BODY_DEPTH_M, MIN_DEPTH_M)
    k = camera.matrix
    u, v = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5  # box edges are pixel edges; K's pixel centres are integers
    return np.array([(u - k[0, 2]) / k[0, 0] * depth, (v - k[1, 2]) / k[1, 1] * depth, depth])


def _centre_before_body(body: np.ndarray, centred_object: np.ndarray) -> np.ndarray:
    """Level with the body's centre, its far side touching the body's nearest depth (CV_CAMERA metres)."""
    centre = (body.min(0) + body.max(0)) / 2
    half_depth = float(np.ptp(centred_object[:, 2])) / 2
    depth = max(float(body[:, 2].min()) - half_depth, MIN_DEPTH_M)
    return np.array([centre[0], centre[1], depth])
