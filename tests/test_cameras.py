"""Cameras against hand-computed projections, and the frame conventions against known points."""

import math

import numpy as np
import pytest
import torch

from ivlm_core import frames
from ivlm_core.render.cameras import PinholeCameras, cv_look_at, fov_focal_length, look_at_view_transform
from ivlm_core.render.views import HUMAN_VIEWS, OBJECT_VIEWS, normalize_object_vertices


def test_look_at_matches_pytorch3d_known_value():
    # PyTorch3D's documented example: look_at_view_transform(2.7, 0, 0) -> R = diag(-1, 1, -1), T = (0, 0, 2.7).
    rotation, translation = look_at_view_transform(2.7, 0.0, 0.0)
    assert torch.allclose(rotation[0], torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)), atol=1e-12)
    assert torch.allclose(translation[0], torch.tensor([0.0, 0.0, 2.7], dtype=torch.float64), atol=1e-12)


def test_projection_of_known_point_by_hand():
    # Camera at (0, 0, 2) looking at the origin, 1024 px, fov 60. For world point (0.5, 0.25, 0):
    # PyTorch3D view = (-0.5, 0.25, 2); NDC x = -0.5 * cot(30) / 2 = -0.4330127, y = 0.2165064;
    # pixel centre j = ((1 - x_ndc) * 1024 - 1) / 2 = 733.2025, i = ((1 - y_ndc) * 1024 - 1) / 2 = 400.6487.
    rotation, translation = look_at_view_transform(2.0, 0.0, 0.0)
    cams = PinholeCameras.from_pytorch3d(rotation, translation, 1024)
    uvz = cams.project(cams.world_to_camera(torch.tensor([[0.5, 0.25, 0.0]], dtype=torch.float64)))
    assert uvz[0, 0].tolist() == pytest.approx([733.2025, 400.6487, 2.0], abs=1e-4)
    assert fov_focal_length(1024) == pytest.approx(886.8100, abs=1e-4)


def _pytorch3d_pixel_by_formula(point, dist, elev, azim, y_shift, size):
    """Independent numpy re-derivation of look_at + FoV projection + PyTorch3D's pixel-centre rule."""
    e, a = math.radians(elev), math.radians(azim)
    eye = dist * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    z = -eye / np.linalg.norm(eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    view = np.array([np.dot(point - eye, x), np.dot(point - eye, y) + y_shift, np.dot(point - eye, z)])
    s = 1.0 / math.tan(math.radians(30.0))
    x_ndc, y_ndc = s * view[0] / view[2], s * view[1] / view[2]
    return ((1 - x_ndc) * size - 1) / 2, ((1 - y_ndc) * size - 1) / 2, view[2]


@pytest.mark.parametrize("view_set", [HUMAN_VIEWS, OBJECT_VIEWS], ids=["human", "object"])
def test_view_sets_project_like_pytorch3d(view_set):
    points = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [-0.4, 0.5, -0.3]])
    cams = view_set.cameras(512)
    uvz = cams.project(cams.world_to_camera(torch.tensor(points)))
    for b, view in enumerate(view_set.views):
        for k, point in enumerate(points):
            expected = _pytorch3d_pixel_by_formula(point, view.dist, view.elev, view.azim, view.y_shift, 512)
            assert uvz[b, k].tolist() == pytest.approx(expected, abs=1e-9)


def test_human_view_camera_positions_and_vectors():
    centres = HUMAN_VIEWS.cameras().camera_centers()
    # topfront: elev 45, azim 315, dist 2 -> (2 cos45 sin315, 2 sin45, 2 cos45 cos315) = (-1, sqrt 2, 1).
    assert centres[0].tolist() == pytest.approx([-1.0, math.sqrt(2.0), 1.0], abs=1e-12)
    # Views with a y shift keep the look-at rotation; only the view translation moves (camera goes down).
    assert centres[1, 1] < -math.sqrt(2.0)
    vectors = HUMAN_VIEWS.camera_vectors()
    expected = [
        [0.2, 0.125, 0.875, 0.5, 0.5],
        [0.2, 0.875, 0.875, 0.5, 0.65],
        [0.2, 0.125, 0.375, 0.5, 0.5],
        [0.2, 0.875, 0.375, 0.5, 0.65],
    ]
    assert np.allclose(vectors, expected)
    assert np.allclose(OBJECT_VIEWS.camera_vectors()[2], [0.2, 330 / 360, 0.375, 0.5, 0.5])
    assert HUMAN_VIEWS.names == ["topfront", "bottomfront", "topback", "bottomback"]
    assert OBJECT_VIEWS.names == ["frontleft", "frontright", "backleft", "backright"]


@pytest.mark.parametrize("elev", [90.0, -90.0])
def test_straight_up_or_down_view_is_a_rotation(elev):
    # PyTorch3D itself returns a degenerate matrix here; we return a valid rotation instead.
    rotation, _ = look_at_view_transform(2.0, elev, 0.0)
    assert torch.isfinite(rotation).all()
    assert torch.allclose(rotation[0].T @ rotation[0], torch.eye(3, dtype=torch.float64), atol=1e-6)
    # Orthogonal is not enough: a mirrored camera (det -1) is orthogonal too and flips every render.
    assert float(torch.linalg.det(rotation[0])) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("elev", [89.9, 89.999, 89.9999, 89.99999, -89.9999, -89.99999])
def test_views_next_to_the_pole_are_rotations(elev):
    """Between the fallback's threshold and the normalisation's eps the axes were not unit vectors (det 0.17
    at elevation 89.9999); every view must be a proper rotation."""
    rotation, _ = look_at_view_transform(2.0, elev, 30.0)
    assert torch.allclose(rotation[0].T @ rotation[0], torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert float(torch.linalg.det(rotation[0])) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(("elev", "azim"), [(90.0, 0.0), (-90.0, 180.0)])
def test_straight_up_or_down_view_is_the_limit_of_nearby_views(elev, azim):
    """Looking down is the limit of azimuth 0 (the documented fallback); looking up then comes out as the limit
    of azimuth 180. Either way the image does not jump or mirror when a view reaches the pole."""
    at_pole, _ = look_at_view_transform(2.0, elev, 0.0)
    nearby, _ = look_at_view_transform(2.0, math.copysign(89.99, elev), azim)
    # 0.01 degrees from the pole the axes turn by 1.7e-4 rad; a flipped or mirrored axis would differ by ~2.
    assert torch.allclose(at_pole, nearby, atol=1e-3)


def test_cv_look_at_on_known_points():
    # Camera 3 m in front of the origin (+Z) looking back at it: world +X is image right, +Y image up.
    transform = cv_look_at((0.0, 0.0, 3.0), (0.0, 0.0, 0.0))
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    camera = frames.transform_points(transform, points)
    assert np.allclose(camera.numpy(), [[0, 0, 3], [1, 0, 3], [0, -1, 3]])
    k = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]], dtype=torch.float64)
    cams = PinholeCameras(transform[None], k[None], (480, 640))
    uvz = cams.project(cams.world_to_camera(points))[0]
    assert uvz[1].tolist() == pytest.approx([320 + 500 / 3, 240, 3])  # right of centre
    assert uvz[2].tolist() == pytest.approx([320, 240 - 500 / 3, 3])  # above centre
    assert cams.camera_centers()[0].tolist() == pytest.approx([0, 0, 3])


def test_object_normalisation():
    vertices = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]])
    normalised, mean, scale = normalize_object_vertices(vertices)
    assert mean.tolist() == pytest.approx([0.5, 0.25, 0.125])  # vertex mean, not the box centre
    assert scale == 2.0
    assert np.ptp(normalised, axis=0).max() == pytest.approx(1.0)
    assert np.allclose(normalised * scale + mean, vertices)


def test_frame_conversions_on_known_points():
    body_up, body_forward, body_left = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]
    pts = np.array([body_up, body_forward, body_left])
    blender = frames.transform_points(frames.BLENDER_WORLD_FROM_BODY, pts)
    # Blender is Z-up and characters face -Y there.
    # Transforms of 0/±1 matrices: exact in IEEE arithmetic, compared with a tolerance all the same.
    assert np.allclose(blender, [[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], atol=1e-12)
    assert np.allclose(frames.BODY_FROM_BLENDER_WORLD @ frames.BLENDER_WORLD_FROM_BODY, np.eye(4))
    # A point 2 m in front of an OpenCV camera is at z = -2 for an OpenGL/Blender camera.
    gl = frames.transform_points(frames.GL_CAMERA_FROM_CV_CAMERA, np.array([[0.1, 0.2, 2.0]]))
    assert np.allclose(gl, [[0.1, -0.2, -2.0]], atol=1e-12)
    # PyTorch3D's +X (left) is OpenCV's -X.
    cv = frames.transform_points(frames.CV_CAMERA_FROM_P3D_VIEW, np.array([[1.0, 1.0, 3.0]]))
    assert np.allclose(cv, [[-1.0, -1.0, 3.0]], atol=1e-12)


def test_rigid_inverse_round_trip():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    transform = frames.make_transform(q, rng.normal(size=3))
    assert np.allclose(frames.invert_rigid(transform) @ transform, np.eye(4))
    t = torch.tensor(transform)
    assert torch.allclose(frames.invert_rigid(t) @ t, torch.eye(4, dtype=torch.float64))


def test_shared_points_and_per_view_points_transform_alike():
    """world_to_camera of shared points [N, 3] (one product per view on coordinate rows) equals the per-view path
    [B, N, 3] and a plain R p + t, to float64 rounding."""
    cams = OBJECT_VIEWS.cameras(256)
    points = torch.tensor(np.random.default_rng(0).normal(size=(500, 3)))
    shared = cams.world_to_camera(points)
    per_view = cams.world_to_camera(points.expand(len(cams.cv_camera_from_world), -1, -1))
    transform = cams.cv_camera_from_world
    plain = torch.einsum("bij,nj->bni", transform[:, :3, :3], points) + transform[:, None, :3, 3]
    assert shared.shape == per_view.shape == plain.shape == (4, 500, 3)
    assert torch.allclose(shared, plain, atol=1e-12) and torch.allclose(per_view, plain, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_world_to_screen_is_projecting_the_camera_space_points(dtype):
    """The fused product K [R | t] then a division equals project(world_to_camera(.)) to float rounding (float32:
    well under a thousandth of a pixel at 1024^2), and its result is a view of [3, B, N] coordinate rows."""
    cams = OBJECT_VIEWS.cameras(1024, dtype=dtype)
    rng = np.random.default_rng(1)
    points = torch.tensor(rng.uniform(-0.5, 0.5, size=(2000, 3)), dtype=dtype)
    fused = cams.world_to_screen(points)
    separate = cams.project(cams.world_to_camera(points))
    assert fused.shape == separate.shape == (4, 2000, 3) and fused.dtype == dtype
    pixel_tol, depth_tol = (1e-9, 1e-12) if dtype == torch.float64 else (2e-4, 1e-6)
    assert torch.allclose(fused[..., :2], separate[..., :2], atol=pixel_tol, rtol=0)
    assert torch.allclose(fused[..., 2], separate[..., 2], atol=depth_tol, rtol=0)
    assert fused.permute(2, 0, 1).is_contiguous()
