"""The rasteriser against an independent ray caster (Embree), plus its edge cases."""

import numpy as np
import pytest
import torch

from ivlm_core.demo.objects import DEMO_OBJECTS
from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.embree_reference import EmbreeCaster
from ivlm_core.render.rasterize import rasterize
from ivlm_core.render.renderer import render_mesh
from ivlm_core.render.shading import position_colors
from ivlm_core.render.views import OBJECT_VIEWS, normalize_object_vertices


def agreement(ours, reference) -> float:
    """Share of pixels where both see nothing, or both see the same face."""
    return float(np.mean(ours == reference))


def rasterize_views(vertices: np.ndarray, faces: np.ndarray, cameras: PinholeCameras, dtype=torch.float32):
    v = torch.tensor(vertices, dtype=torch.float64)
    screen = cameras.project(cameras.world_to_camera(v)).to(dtype)
    return rasterize(screen, torch.tensor(faces), cameras.image_size)


@pytest.mark.parametrize("name", ["chair", "mug", "knot_200k"])
def test_rasteriser_agrees_with_embree(name):
    mesh = DEMO_OBJECTS[name]().mesh
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    cameras = OBJECT_VIEWS.cameras(384)
    fragments = rasterize_views(vertices, mesh.faces, cameras)
    caster = EmbreeCaster(vertices, mesh.faces)
    for view in range(len(OBJECT_VIEWS)):
        hits = caster.cast(cameras, view)
        ours = fragments.pix_to_face[view].numpy()
        assert ours.max() >= 0, "the object should be visible"
        assert agreement(ours, hits.face) >= 0.995
        both = (ours >= 0) & (hits.face >= 0)
        depth_error = np.abs(fragments.depth[view].numpy()[both] - hits.depth[both])
        assert np.median(depth_error) < 1e-5 and np.quantile(depth_error, 0.999) < 1e-3


def test_barycentrics_reconstruct_the_ray_hit():
    mesh = DEMO_OBJECTS["mug"]().mesh
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    cameras = OBJECT_VIEWS.cameras(256)
    fragments = rasterize_views(vertices, mesh.faces, cameras, dtype=torch.float64)
    view = 1
    face = fragments.pix_to_face[view]
    covered = face >= 0
    corners = torch.tensor(vertices)[torch.tensor(mesh.faces)[face[covered]]]  # [K, 3, 3]
    points = (fragments.bary[view][covered][..., None] * corners).sum(1)
    # The interpolated point must lie on the pixel's ray: project it back to its own pixel centre.
    one = cameras[view]
    uvz = one.project(one.world_to_camera(points))[0]
    rows, cols = covered.nonzero(as_tuple=True)
    assert torch.allclose(uvz[:, 0], cols.double(), atol=1e-6)
    assert torch.allclose(uvz[:, 1], rows.double(), atol=1e-6)
    assert torch.allclose(uvz[:, 2], fragments.depth[view][covered], atol=1e-9)
    assert torch.allclose(fragments.bary[view][covered].sum(-1), torch.ones(int(covered.sum()), dtype=torch.float64))


def _screen_triangle(corners_uvz, size=(64, 64), **kwargs):
    screen = torch.tensor([corners_uvz], dtype=torch.float32)
    return rasterize(screen, torch.tensor([[0, 1, 2]]), size, **kwargs)


def test_nearest_face_wins_and_windings_are_both_drawn():
    # Two overlapping triangles of opposite winding; the nearer (z=1) one must win everywhere they overlap.
    screen = torch.tensor(
        [[[0, 0, 2.0], [60, 0, 2.0], [0, 60, 2.0], [0, 0, 1.0], [0, 60, 1.0], [60, 0, 1.0]]], dtype=torch.float32
    )
    fragments = rasterize(screen, torch.tensor([[0, 1, 2], [3, 4, 5]]), (64, 64))
    assert (fragments.pix_to_face[0, :30, :30] == 1).all()
    assert torch.allclose(fragments.depth[0, :30, :30], torch.tensor(1.0))


def test_screen_filling_triangle_and_chunking_give_identical_results():
    # A triangle much larger than the image goes through the enumerated (large box) path.
    corners = [[-500.0, -500.0, 3.0], [900.0, -500.0, 1.5], [-500.0, 900.0, 1.5]]
    big = _screen_triangle(corners, size=(96, 80))
    small_chunks = _screen_triangle(corners, size=(96, 80), max_candidates=97)
    assert big.mask.all()
    assert torch.equal(big.pix_to_face, small_chunks.pix_to_face)
    assert torch.allclose(big.bary, small_chunks.bary) and torch.allclose(big.depth, small_chunks.depth)


def test_chunking_does_not_change_dense_mesh_output():
    mesh = DEMO_OBJECTS["ball"]().mesh
    cameras = OBJECT_VIEWS.cameras(128)
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    v = torch.tensor(vertices)
    screen = cameras.project(cameras.world_to_camera(v)).float()
    a = rasterize(screen, torch.tensor(mesh.faces), (128, 128))
    b = rasterize(screen, torch.tensor(mesh.faces), (128, 128), max_candidates=1000)
    assert torch.equal(a.pix_to_face, b.pix_to_face)


def test_faces_behind_the_camera_and_off_screen_are_not_drawn():
    behind = _screen_triangle([[10, 10, -1.0], [50, 10, -1.0], [10, 50, -1.0]])
    assert not behind.mask.any()
    straddling = _screen_triangle([[10, 10, 1.0], [50, 10, -1.0], [10, 50, 1.0]])
    assert not straddling.mask.any()  # a face crossing the camera plane is dropped, not clipped
    off_screen = _screen_triangle([[100, 100, 1.0], [150, 100, 1.0], [100, 150, 1.0]])
    assert not off_screen.mask.any()
    nan = _screen_triangle([[float("nan"), 10, 1.0], [50, 10, 1.0], [10, 50, 1.0]])
    assert not nan.mask.any()


def test_empty_and_degenerate_input():
    empty = rasterize(torch.zeros(2, 0, 3), torch.zeros(0, 3, dtype=torch.int64), (8, 8))
    assert empty.pix_to_face.shape == (2, 8, 8) and not empty.mask.any()
    assert torch.isinf(empty.depth).all()
    line = _screen_triangle([[0, 0, 1.0], [30, 30, 1.0], [60, 60, 1.0]])  # zero area
    assert not line.mask.any()


def test_pixel_centre_sampling_convention():
    # Pixel (row i, col j) is sampled at (u=j, v=i): a triangle covering u, v in [0, 2.5] covers
    # pixel centres 0, 1, 2 on each axis but not 3.
    fragments = _screen_triangle([[0, 0, 1.0], [5.0, 0, 1.0], [0, 5.0, 1.0]], size=(8, 8))
    covered = fragments.mask[0]
    assert covered[0, :6].tolist() == [True, True, True, True, True, True]
    assert covered[2, :4].tolist() == [True, True, True, True]
    assert not covered[3, 3]


def test_render_is_shaded_and_background_is_white():
    mesh = DEMO_OBJECTS["ball"]().mesh
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    v = torch.tensor(vertices)
    rendering = render_mesh(
        v, torch.tensor(mesh.faces), OBJECT_VIEWS.cameras(96), position_colors(v), OBJECT_VIEWS.light_positions()
    )
    image = rendering.rgb_uint8()
    assert image.shape == (4, 96, 96, 3)
    assert (image[~rendering.mask.numpy()] == 255).all()
    inside = rendering.rgb[rendering.mask]
    assert inside.min() >= 0 and inside.max() <= 1.0 + 1e-6
    # Normals on a sphere point away from its centre.
    n = rendering.normals[rendering.mask]
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(n), dtype=n.dtype), atol=1e-5)


def test_rasteriser_runs_on_cuda_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    mesh = DEMO_OBJECTS["mug"]().mesh
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    cameras = OBJECT_VIEWS.cameras(256)
    cpu = rasterize_views(vertices, mesh.faces, cameras)
    screen = cameras.project(cameras.world_to_camera(torch.tensor(vertices))).float().cuda()
    gpu = rasterize(screen, torch.tensor(mesh.faces).cuda(), (256, 256))
    assert agreement(gpu.pix_to_face.cpu().numpy(), cpu.pix_to_face.numpy()) > 0.999
