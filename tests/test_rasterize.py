"""The rasteriser against an independent ray caster (Embree), plus its edge cases."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ivlm_core.demo import primitives
from ivlm_core.demo.objects import DEMO_OBJECTS
from ivlm_core.demo.primitives import cube, plane
from ivlm_core.render.cameras import PinholeCameras, cv_look_at
from ivlm_core.render.embree_reference import EmbreeCaster
from ivlm_core.render.rasterize import rasterize
from ivlm_core.render.renderer import rasterize_mesh, render_mesh
from ivlm_core.render.shading import position_colors
from ivlm_core.render.views import OBJECT_VIEWS, normalize_object_vertices


def agreement(ours, reference) -> float:
    """Share of pixels where both see nothing, or both see the same face."""
    return float(np.mean(ours == reference))


def rasterize_views(vertices: np.ndarray, faces: np.ndarray, cameras: PinholeCameras, dtype=torch.float32):
    v = torch.tensor(vertices, dtype=torch.float64)
    screen = cameras.project(cameras.world_to_camera(v)).to(dtype)
    return rasterize(screen, torch.tensor(faces), cameras.image_size)


def assert_agrees_with_embree(mesh, image_size: int) -> None:
    """Face ids on >= 99.5 % of pixels and depths (median < 1e-5, 99.9 % < 1e-3) of the 4 object views."""
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    cameras = OBJECT_VIEWS.cameras(image_size)
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


@pytest.mark.parametrize("name", ["chair", "mug", "knot_200k"])
def test_rasteriser_agrees_with_embree(name):
    assert_agrees_with_embree(DEMO_OBJECTS[name]().mesh, 384)


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


def assert_same_fragments(a, b, eps: float = 1e-4) -> None:
    """Two rasterisations of the same scene by different code paths (chunk sizes).

    Float32 edge tests and depths may round differently, so a face id may differ only where both answers are
    right: two faces whose depths at the pixel are within eps (a shared edge or coincident faces), or, for
    coverage, a pixel centre within eps of the covering face's edge (a barycentric weight below eps). Depth and
    barycentrics are compared with a tolerance where the faces agree, and agreement must hold on nearly all pixels.
    """
    same = a.pix_to_face == b.pix_to_face
    both = a.mask & b.mask
    swapped = both & ~same
    assert torch.all((a.depth[swapped] - b.depth[swapped]).abs() < eps), (
        "a different face won with a clearly different depth"
    )
    for one, other in ((a, b), (b, a)):
        only = one.mask & ~other.mask
        assert torch.all(one.bary[only].amin(-1) < eps), "coverage differs on a pixel away from any edge"
    assert float(same.float().mean()) > 0.999
    agree = same & a.mask
    assert torch.allclose(a.depth[agree], b.depth[agree], rtol=1e-5, atol=0.0)
    assert torch.allclose(a.bary[agree], b.bary[agree], atol=1e-5)


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
    assert big.mask.all() and small_chunks.mask.all()  # one face covering every pixel: ids agree by construction
    assert_same_fragments(big, small_chunks)


def test_chunking_does_not_change_dense_mesh_output():
    mesh = DEMO_OBJECTS["ball"]().mesh
    cameras = OBJECT_VIEWS.cameras(128)
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    v = torch.tensor(vertices)
    screen = cameras.project(cameras.world_to_camera(v)).float()
    a = rasterize(screen, torch.tensor(mesh.faces), (128, 128))
    b = rasterize(screen, torch.tensor(mesh.faces), (128, 128), max_candidates=1000)
    assert a.mask.sum() > 4 * 1000  # the ball covers thousands of pixels per view
    assert_same_fragments(a, b)


def test_faces_behind_the_camera_and_off_screen_are_not_drawn():
    behind = _screen_triangle([[10, 10, -1.0], [50, 10, -1.0], [10, 50, -1.0]])
    assert not behind.mask.any()
    straddling = _screen_triangle([[10, 10, 1.0], [50, 10, -1.0], [10, 50, 1.0]])
    assert not straddling.mask.any()  # screen space cannot clip: rasterize_mesh clips first (tests below)
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
    # Near-plane clipping and long slivers (row spans) on the device too.
    floor, cylinder = plane(10.0), primitives.cylinder(128, 0.3, 1.0)
    vertices = torch.tensor(np.concatenate([floor.vertices, cylinder.vertices + [0.0, 0.5, -2.0]]), dtype=torch.float32)
    faces = torch.tensor(np.concatenate([floor.faces, cylinder.faces + 4]))
    cameras = _cameras([((0, 1.6, 0), (0, 0.0, -4)), ((0, 3, 3), (0, 0, -2))], size=(240, 320))
    cpu = rasterize_mesh(vertices, faces, cameras)
    gpu = rasterize_mesh(vertices.cuda(), faces.cuda(), cameras.to("cuda"))
    assert agreement(gpu.pix_to_face.cpu().numpy(), cpu.pix_to_face.numpy()) > 0.999
    both = (gpu.pix_to_face.cpu() == cpu.pix_to_face) & cpu.mask
    assert torch.allclose(gpu.bary.cpu()[both], cpu.bary[both], atol=1e-4)


def _cameras(eyes_targets, size=(120, 160), focal=110.0, znear=1e-3) -> PinholeCameras:
    extrinsics = torch.stack([cv_look_at(eye, target) for eye, target in eyes_targets])
    k = torch.tensor(
        [[focal, 0.0, (size[1] - 1) / 2], [0.0, focal, (size[0] - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    return PinholeCameras(extrinsics, k.expand(len(eyes_targets), 3, 3).clone(), size, znear)


def _compare_with_embree(vertices, faces, cameras, min_agreement=0.995):
    """Our clipped rasterisation against rays started on the near plane, view by view; returns the fragments."""
    fragments = rasterize_mesh(torch.tensor(vertices), torch.tensor(faces), cameras)
    caster = EmbreeCaster(vertices, faces)
    for view in range(cameras.batch_size):
        hits = caster.cast(cameras, view, znear=cameras.znear)
        ours = fragments.pix_to_face[view].numpy()
        assert agreement(ours, hits.face) >= min_agreement, f"view {view}"
        both = (ours >= 0) & (hits.face >= 0)
        depth_error = np.abs(fragments.depth[view].numpy()[both] - hits.depth[both])
        assert np.median(depth_error) < 1e-6 and np.quantile(depth_error, 0.999) < 1e-4
    return fragments


def _assert_barycentrics_on_pixel_rays(fragments, vertices, faces, cameras):
    """Barycentrics w.r.t. the ORIGINAL faces rebuild a point on each pixel's ray at the pixel's depth."""
    for view in range(cameras.batch_size):
        face = fragments.pix_to_face[view]
        covered = face >= 0
        corners = torch.tensor(vertices)[torch.tensor(faces)[face[covered]]]
        points = (fragments.bary[view][covered][..., None] * corners).sum(1)
        uvz = cameras[view].project(cameras[view].world_to_camera(points))[0]
        rows, cols = covered.nonzero(as_tuple=True)
        assert torch.allclose(uvz[:, 0], cols.double(), atol=1e-5)
        assert torch.allclose(uvz[:, 1], rows.double(), atol=1e-5)
        assert torch.allclose(uvz[:, 2], fragments.depth[view][covered], rtol=1e-9, atol=1e-9)
        assert (fragments.bary[view][covered] >= -1e-9).all()


def test_floor_running_behind_the_camera_is_clipped_not_dropped():
    # A 10 m floor of 2 triangles with a 1 m cube on it; the first two cameras stand on the floor, so both
    # floor triangles cross their near plane; the third sees everything from afar (nothing to clip).
    floor, box = plane(10.0), cube(1.0)
    vertices = np.concatenate([floor.vertices, box.vertices + [0.5, 0.5, -3.0]])
    faces = np.concatenate([floor.faces, box.faces + len(floor.vertices)])
    cameras = _cameras([((0, 1.6, 0), (0, 0.0, -4)), ((1, 1.7, 2), (-1, 0.2, -2)), ((0, 12, 14), (0, 0, 0))])
    fragments = _compare_with_embree(vertices, faces, cameras)
    floor_pixels = (fragments.pix_to_face[:2] < 2) & (fragments.pix_to_face[:2] >= 0)
    assert floor_pixels.float().mean() > 0.3  # before clipping, both near views showed no floor at all
    _assert_barycentrics_on_pixel_rays(fragments, vertices, faces, cameras)


def test_plate_crossing_the_near_plane_shows_what_is_behind_the_cut():
    # A tilted plate (a fanned 8-gon) runs from behind the camera through znear = 0.3 m to 2 m in front of
    # a wall. Where the plate is cut away the wall must show, as on rays started at the near plane.
    angle = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    plate = np.stack([1.2 * np.cos(angle), 0.3 * np.sin(angle) - 0.2, 0.9 + 1.3 * np.sin(angle)], -1)
    plate_faces = np.stack([np.zeros(6, int), np.arange(1, 7), np.arange(2, 8)], -1)
    wall = np.array([[-4.0, -3, 3], [4, -3, 3], [4, 3, 3], [-4, 3, 3]])
    vertices = np.concatenate([plate, wall])
    faces = np.concatenate([plate_faces, np.array([[8, 9, 10], [8, 10, 11]])])
    cameras = _cameras([((0, 0, 0), (0, 0, 1)), ((0.3, 0.1, 0.1), (0.2, -0.3, 1))], znear=0.3)
    points = cameras.world_to_camera(torch.tensor(vertices))[..., 2]
    assert ((points < 0.3)[:, faces].any(-1) & (points >= 0.3)[:, faces].any(-1)).any(-1).all()  # it crosses
    fragments = _compare_with_embree(vertices, faces, cameras)
    assert (fragments.pix_to_face < 6).logical_and(fragments.pix_to_face >= 0).any()
    assert (fragments.depth[fragments.mask] >= 0.3 - 1e-9).all()
    _assert_barycentrics_on_pixel_rays(fragments, vertices, faces, cameras)


def test_clipping_keeps_float32_renders_and_faces_wholly_behind_are_dropped():
    floor = plane(10.0)
    cameras = _cameras([((0, 1.6, 0), (0, 0.0, -4))])
    behind = cube(0.5)  # wholly behind the camera: never drawn
    vertices = np.concatenate([floor.vertices, behind.vertices + [0.0, 1.6, 2.0]])
    faces = np.concatenate([floor.faces, behind.faces + 4])
    ours = rasterize_mesh(torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces), cameras)
    hits = EmbreeCaster(vertices, faces).cast(cameras, 0)
    assert agreement(ours.pix_to_face[0].numpy(), hits.face) >= 0.995
    assert ours.pix_to_face.max() < 2


def test_sliver_fans_agree_with_embree():
    # 80,000 slivers: the fanned caps of a 20,000-section cylinder, each as long as the cap is wide.
    mesh = primitives.cylinder(20_000)
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    cameras = OBJECT_VIEWS.cameras(192)
    fragments = rasterize_views(vertices, mesh.faces, cameras)
    caster = EmbreeCaster(vertices, mesh.faces)
    for view in range(len(OBJECT_VIEWS)):
        hits = caster.cast(cameras, view)
        # Pixel centres on a sliver's edge are common here; ids may differ on those ties, the mask may not.
        assert agreement(fragments.pix_to_face[view].numpy() >= 0, hits.face >= 0) >= 0.999
        assert agreement(fragments.pix_to_face[view].numpy(), hits.face) >= 0.99


def test_scan_of_sub_pixel_faces_agrees_with_embree():
    # A scan-like stone whose faces are mostly smaller than a pixel: most boxes hold one pixel centre or none,
    # so the box test before the planes and the single-pixel path decide nearly every pixel.
    assert_agrees_with_embree(primitives.scan_like(faces=300_000), 320)


@pytest.mark.slow
def test_two_million_slivers_render_in_bounded_memory():
    # The fanned caps and sides of a 500,000-section cylinder: 2M triangles, nearly all a pixel wide or less.
    script = textwrap.dedent(
        r"""
        import re
        import numpy as np, torch
        from ivlm_core.demo.primitives import cylinder
        from ivlm_core.render.canonical import render_object_views
        mesh = cylinder(500_000)
        renders = render_object_views(mesh, image_size=256)
        peak_mb = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
        print(mesh.num_faces, float(renders.fragments.mask.float().mean()), peak_mb)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == 1_999_996
    assert float(out[1]) > 0.05
    assert float(out[2]) < 1500  # MB, whole process


def _both_ways(vertices, faces, cameras):
    """Our fragments with back faces culled where exact (the default) and with both windings drawn."""
    v, f = torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces)
    return rasterize_mesh(v, f, cameras), rasterize_mesh(v, f, cameras, orientation=0)


def _culls(vertices, faces, cameras) -> torch.Tensor:
    """Per view: whether the renderer skips back faces there."""
    from ivlm_core.mesh import closed_orientation
    from ivlm_core.render.renderer import back_face_culling

    v, f = torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces)
    cameras = cameras.to(dtype=torch.float32)
    cull = back_face_culling(v, f, cameras.world_to_camera(v), cameras, closed_orientation(vertices, faces))
    return torch.zeros(cameras.batch_size, dtype=torch.bool) if cull is None else cull.views


@pytest.mark.parametrize("winding", [1, -1])
def test_back_face_culling_on_closed_meshes_changes_no_pixel(winding):
    # Outward-wound (the faces turned away are skipped) and inside out (every face re-wound: the other side is
    # skipped); seen from outside by the 4 object views, with the sub-pixel faces of a scan and long slivers.
    for mesh in (primitives.scan_like(faces=60_000), primitives.cylinder(64), cube()):
        vertices, _, _ = normalize_object_vertices(mesh.vertices)
        faces = mesh.faces if winding == 1 else mesh.faces[:, ::-1].copy()
        cameras = OBJECT_VIEWS.cameras(160)
        assert _culls(vertices, faces, cameras).all()
        culled, both = _both_ways(vertices, faces, cameras)
        assert agreement(culled.pix_to_face.numpy(), both.pix_to_face.numpy()) >= 0.9999
        same = culled.pix_to_face == both.pix_to_face
        assert torch.allclose(culled.bary[same], both.bary[same], rtol=0.0, atol=1e-6)
        assert torch.allclose(culled.depth[same], both.depth[same], rtol=0.0, atol=1e-6)
        caster = EmbreeCaster(vertices, faces)
        for view in range(len(OBJECT_VIEWS)):
            assert agreement(culled.pix_to_face[view].numpy(), caster.cast(cameras, view).face) >= 0.995


def test_back_faces_are_skipped_in_world_space_and_edge_on_faces_are_drawn():
    # A closed box seen from outside, and from a point in the plane of two of its faces (edge-on there): exactly
    # the faces turned away from the eye are skipped; edge-on faces are drawn.
    from ivlm_core.mesh import closed_orientation
    from ivlm_core.render.renderer import back_face_culling

    box = cube(1.0)
    v, f = torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces)
    eyes = np.array([(3.0, 0.2, 0.1), (0.5, 0.2, 3.0)])
    cameras = _cameras([(tuple(eye), (0, 0, 0)) for eye in eyes]).to(dtype=torch.float32)
    orientation = closed_orientation(box.vertices, box.faces)
    cull = back_face_culling(v, f, cameras.world_to_camera(v), cameras, orientation)
    assert cull is not None and cull.views.tolist() == [True, True]
    corners = box.vertices[box.faces]  # [F, 3, 3]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) * orientation
    facing = np.einsum("fc,bfc->bf", normals, eyes[:, None, :] - corners[None, :, 0])  # exact here: axis planes
    assert (facing[1] == 0).sum() == 2 and (facing > 0).sum() == 4 and (facing < 0).sum() == 18  # 2 edge-on faces
    drawn = cull.drawn(slice(None)).numpy()
    # The decision comes from float32 planes and camera centres: faces more than 1e-3 (in |n| * distance) from
    # edge-on must follow the exact side; edge-on ones (within it) must be drawn, whatever the rounding.
    clear = np.abs(facing) > 1e-3
    assert (drawn[clear] == (facing[clear] > 0)).all()
    assert drawn[~clear].all()


def test_a_mesh_made_in_inference_mode_is_drawn_as_any_other():
    # Inference-mode tensors keep no version counter, which the per-tensor orientation cache reads.
    mesh = cube()
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    cameras = OBJECT_VIEWS.cameras(64)
    outside = rasterize_mesh(torch.tensor(vertices, dtype=torch.float32), torch.tensor(mesh.faces), cameras)
    with torch.inference_mode():
        inside = rasterize_mesh(torch.tensor(vertices, dtype=torch.float32), torch.tensor(mesh.faces), cameras)
    assert agreement(inside.pix_to_face.numpy(), outside.pix_to_face.numpy()) >= 0.9999
    assert bool(inside.mask.any())
    same = inside.pix_to_face == outside.pix_to_face
    assert torch.allclose(inside.depth[same], outside.depth[same], rtol=0.0, atol=1e-6)


def test_open_meshes_and_cameras_inside_are_drawn_from_both_sides():
    # An open sheet seen from above and below, and a closed box seen from inside: no culling, as Embree sees.
    sheet, room = plane(2.0), cube(6.0)
    sheet_cameras = _cameras([((0.3, 2.0, 0.5), (0, 0, 0)), ((0.3, -2.0, 0.5), (0, 0, 0))])
    room_cameras = _cameras([((0.5, 0.2, 0.1), (0, 0, -3)), ((0.0, 0.0, 0.0), (1, 0.3, 0.2)), ((-1, -1, 1), (2, 1, 2))])
    for mesh, cameras in ((sheet, sheet_cameras), (room, room_cameras)):
        assert not _culls(mesh.vertices, mesh.faces, cameras).any()
        fragments = _compare_with_embree(mesh.vertices, mesh.faces, cameras)
        assert fragments.mask.float().mean(dim=(1, 2)).min() > 0.2  # seen from both sides / every wall seen


def test_culling_stops_where_the_near_plane_cuts_a_closed_mesh():
    # A camera outside a closed box whose near plane cuts into it: the cut opens the box, so its inside walls
    # (faces turned away from the camera) show through the hole, as Embree's rays started on the near plane see.
    box = cube(1.0)
    cameras = _cameras([((0.05, 0.03, 0.8), (0.02, -0.01, 0)), ((3.0, 0.2, 0.1), (0, 0, 0))], znear=0.5)
    assert _culls(box.vertices, box.faces, cameras).tolist() == [False, True]
    _compare_with_embree(box.vertices, box.faces, cameras)


def test_depth_and_barycentrics_carry_gradients_to_the_vertices():
    """Vertices that need gradients are rasterised to the same fragments (up to tie pixels on edges: they are
    projected by the separate transform and projection, a different float path), and depth and barycentrics are
    differentiable with respect to them (the face search runs without gradients; the resolve keeps them)."""
    mesh = primitives.uv_sphere()
    cameras = OBJECT_VIEWS.cameras(64, dtype=torch.float32)
    faces = torch.tensor(mesh.faces)
    points = np.asarray(mesh.vertices) / np.abs(mesh.vertices).max() * 0.4
    plain = rasterize_mesh(torch.tensor(points, dtype=torch.float32), faces, cameras)
    vertices = torch.tensor(points, dtype=torch.float32).requires_grad_(True)
    traced = rasterize_mesh(vertices, faces, cameras)
    assert (traced.pix_to_face == plain.pix_to_face).float().mean() >= 0.999
    covered = traced.mask & plain.mask & (traced.pix_to_face == plain.pix_to_face)
    assert torch.allclose(traced.depth[covered], plain.depth[covered], atol=1e-5) and traced.depth.requires_grad
    (traced.depth[covered].sum() + traced.bary[covered][:, 0].sum()).backward()
    assert vertices.grad is not None and torch.isfinite(vertices.grad).all() and vertices.grad.abs().sum() > 0
