"""Frames between the server's results and Blender's scene (metres everywhere).

The server answers in the photo's OpenCV camera frame (x right, y down, z forward, camera at the origin). In the
scene that camera sits at the world origin looking along +Y with +Z up, so
    Blender world (x, y, z) = (x_cv, z_cv, -y_cv).
The same matrices are defined in ivlm_core/frames.py (server side); a test checks the two agree.
4x4 matrices are row-major nested tuples, column-vector convention (p' = M p).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Row4 = tuple[float, float, float, float]
Matrix4 = tuple[Row4, ...]

WORLD_FROM_CV_CAMERA: Matrix4 = (
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 1.0, 0.0),
    (0.0, -1.0, 0.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
)
# OpenGL/Blender camera (x right, y up, looking along -z) -> OpenCV camera: flip y and z.
CV_CAMERA_FROM_GL_CAMERA: Matrix4 = (
    (1.0, 0.0, 0.0, 0.0),
    (0.0, -1.0, 0.0, 0.0),
    (0.0, 0.0, -1.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
)


def _row(values: Iterable[float]) -> Row4:
    """Four floats as a matrix row; a row of any other length is an error, not a silently odd matrix."""
    a, b, c, d = values
    return (float(a), float(b), float(c), float(d))


def matmul(a: Matrix4, b: Matrix4) -> Matrix4:
    return tuple(_row(sum(a[i][k] * b[k][j] for k in range(4)) for j in range(4)) for i in range(4))


# Where the Blender camera object sits: its matrix_world (a +90 degree turn about X, at the origin).
WORLD_FROM_GL_CAMERA: Matrix4 = matmul(WORLD_FROM_CV_CAMERA, CV_CAMERA_FROM_GL_CAMERA)


def world_from_object(camera_from_object: list[list[float]]) -> Matrix4:
    """An object's matrix_world from the server's `camera_from_object`."""
    return matmul(WORLD_FROM_CV_CAMERA, tuple(_row(row) for row in camera_from_object))


# Its inverse: WORLD_FROM_CV_CAMERA is a rotation, so the transpose.
CV_CAMERA_FROM_WORLD: Matrix4 = tuple(_row(row[i] for row in WORLD_FROM_CV_CAMERA) for i in range(4))


def camera_from_object(world_from_object: Sequence[Sequence[float]]) -> list[list[float]] | None:
    """The server's `camera_from_object` of an object whose matrix_world is `world_from_object`, its scale taken
    out (the server places the mesh as sent, already scaled); None when the matrix flattens or mirrors it, which no
    rotation can express (the server then starts from its own placement)."""
    moved = matmul(CV_CAMERA_FROM_WORLD, tuple(_row(row) for row in world_from_object))
    lengths = [sum(moved[i][j] ** 2 for i in range(3)) ** 0.5 for j in range(3)]
    if min(lengths) < 1e-9:
        return None
    pose = [[moved[i][j] / lengths[j] if j < 3 else moved[i][j] for j in range(4)] for i in range(3)]
    (a, b, c), (d, e, f), (g, h, k) = (row[:3] for row in pose)
    if a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g) <= 0.0:
        return None
    return [*pose, [0.0, 0.0, 0.0, 1.0]]


def world_points_to_cv(flat_xyz: Sequence[float]) -> list[float]:
    """Flat world coordinates -> flat [x0, y0, z0, ...] in the camera frame (x, -z, y): `cv_points_to_world` undone."""
    out = [0.0] * len(flat_xyz)
    out[0::3] = flat_xyz[0::3]
    out[1::3] = [-v for v in flat_xyz[2::3]]
    out[2::3] = flat_xyz[1::3]
    return out


def cv_points_to_world(flat_xyz: Sequence[float]) -> list[float]:
    """Flat [x0, y0, z0, x1, ...] in the camera frame -> flat world coordinates (x, z, -y)."""
    out = [0.0] * len(flat_xyz)
    out[0::3] = flat_xyz[0::3]
    out[1::3] = flat_xyz[2::3]
    out[2::3] = [-v for v in flat_xyz[1::3]]
    return out


def camera_settings(intrinsics: list[list[float]], image_size_hw: list[int], sensor_mm: float = 36.0) -> dict:
    """Blender camera data and render size that reproduce pinhole intrinsics K for an image of (h, w) pixels."""
    height, width = int(image_size_hw[0]), int(image_size_hw[1])
    fx, cx, cy = float(intrinsics[0][0]), float(intrinsics[0][2]), float(intrinsics[1][2])
    longest = max(width, height)
    return {
        "sensor_fit": "HORIZONTAL" if width >= height else "VERTICAL",
        "sensor_width": sensor_mm,
        "sensor_height": sensor_mm,
        "lens": fx * sensor_mm / longest,
        "shift_x": (width / 2.0 - cx) / longest,
        "shift_y": (cy - height / 2.0) / longest,
        "resolution_x": width,
        "resolution_y": height,
    }
