"""The fast shading, resolve and object-lift paths against plain dense references written here."""

import numpy as np
import pytest
import torch

from ivlm_core.demo import primitives
from ivlm_core.demo.objects import DEMO_OBJECTS
from ivlm_core.lift.operator import LiftOperator, lift_object_once
from ivlm_core.lift.pixel_maps import PixelMaps
from ivlm_core.render.rasterize import Fragments
from ivlm_core.render.renderer import rasterize_mesh, shade_pixels
from ivlm_core.render.shading import OBJECT_OVERLAY_YELLOW, PhongLighting, flat_colors, position_colors
from ivlm_core.render.views import OBJECT_VIEWS, normalize_object_vertices


def _object(mesh, size: int):
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    v = torch.tensor(vertices, dtype=torch.float32)
    f = torch.tensor(mesh.faces, dtype=torch.int64)
    cameras = OBJECT_VIEWS.cameras(size, dtype=torch.float32)
    return v, f, cameras, rasterize_mesh(v, f, cameras)


def _dense_reference(fragments, v, f, cameras, colors, lights, background=1.0):
    """Float64, whole frame, row gathers: the per-pixel formula of PyTorch3D's HardPhongShader, uint8 out."""
    v, colors, lights = v.double(), colors.double(), lights.double()
    face = fragments.pix_to_face.clamp(min=0)
    corners = f[face]  # [B, H, W, 3]
    bary = fragments.bary.double()[..., None]  # [B, H, W, 3, 1]
    n_v = torch.zeros_like(v)
    tri = v[f]
    for k in range(3):
        n_v.index_add_(0, f[:, k], torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1))
    n_v = torch.nn.functional.normalize(n_v, dim=-1)
    views = torch.arange(len(face))[:, None, None, None]
    per_view = colors if colors.dim() == 3 else colors.expand(len(face), *colors.shape)

    def interp(table):
        return (table[corners] * bary).sum(-2) if table.dim() == 2 else (table[views, corners] * bary).sum(-2)

    point, albedo = interp(v), interp(per_view)
    normal = torch.nn.functional.normalize(interp(n_v), dim=-1)
    light = lights[:, None, None, :]
    centre = cameras.camera_centers().double()[:, None, None, :]
    lighting = PhongLighting()
    to_light = torch.nn.functional.normalize(light - point, dim=-1)
    to_camera = torch.nn.functional.normalize(centre - point, dim=-1)
    cos = (normal * to_light).sum(-1, keepdim=True)
    reflected = 2 * cos * normal - to_light
    spec = torch.relu((to_camera * reflected).sum(-1, keepdim=True)) * (cos > 0)
    rgb = (lighting.ambient + lighting.diffuse * torch.relu(cos)) * albedo + lighting.specular * spec**64
    rgb = torch.where(fragments.mask[..., None], rgb, torch.full_like(rgb, background))
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def _assert_close_uint8(ours: np.ndarray, reference: np.ndarray) -> None:
    """At most 1/255 apart anywhere, and equal on all but 0.1 % of the values (rounding at a half step)."""
    diff = np.abs(ours.astype(np.int16) - reference)
    assert diff.max() <= 1
    assert np.mean(diff > 0) < 1e-3


@pytest.mark.parametrize("chunk", [1 << 16, 997])  # 997: many chunks, none aligned to a view's first pixel
def test_shaded_pixels_match_a_dense_reference(chunk):
    v, f, cameras, fragments = _object(DEMO_OBJECTS["mug"]().mesh, 160)
    lights = OBJECT_VIEWS.light_positions(dtype=torch.float32)
    both = torch.cat([position_colors(v), flat_colors(len(v), OBJECT_OVERLAY_YELLOW, v)], -1)
    shaded = shade_pixels(fragments, v, f, cameras, both, lights, chunk=chunk)
    sam, overlay = shaded.uint8_images()
    assert sam.shape == overlay.shape == (4, 160, 160, 3)
    _assert_close_uint8(sam, _dense_reference(fragments, v, f, cameras, both[:, :3], lights))
    _assert_close_uint8(overlay, _dense_reference(fragments, v, f, cameras, both[:, 3:], lights))


def test_per_view_colours_and_flat_faces_match_a_dense_reference():
    # A cube: flat faces whose vertex normals are averaged over corners; colours differ per view, and one
    # channel is constant in one view only (so it is interpolated in the others).
    v, f, cameras, fragments = _object(primitives.cube(), 96)
    lights = OBJECT_VIEWS.light_positions(dtype=torch.float32)
    colors = torch.rand(4, len(v), 3, generator=torch.Generator().manual_seed(0))
    colors[1, :, 2] = 0.25
    shaded = shade_pixels(fragments, v, f, cameras, colors, lights, chunk=500)
    (image,) = shaded.uint8_images()
    _assert_close_uint8(image, _dense_reference(fragments, v, f, cameras, colors, lights))


def test_unlit_albedo_and_background():
    v, f, cameras, fragments = _object(DEMO_OBJECTS["chair"]().mesh, 64)
    colors = position_colors(v)
    shaded = shade_pixels(fragments, v, f, cameras, colors, lighting=None)
    (image,) = shaded.uint8_images(background=(0.0, 0.5, 1.0))
    mask = fragments.mask.numpy()
    assert (image[~mask] == [0, 128, 255]).all()
    reference = (colors[f[fragments.pix_to_face.clamp(min=0)]] * fragments.bary[..., None]).sum(-2)
    expected = (reference * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(image[mask].astype(int) - expected[mask]).max() <= 1
    with pytest.raises(ValueError, match="light_positions"):
        shade_pixels(fragments, v, f, cameras, colors)


def test_covered_pixels_kept_by_the_rasteriser_equal_those_listed_from_the_images():
    _, _, _, fragments = _object(primitives.cylinder(32), 128)
    kept = fragments.covered()
    assert fragments.listed is kept
    listed = Fragments(fragments.pix_to_face, fragments.bary, fragments.depth).covered()
    for name in ("index", "view", "face"):  # ids: exact
        assert torch.equal(getattr(kept, name), getattr(listed, name)), name
    # The images were written from the kept list, so its barycentrics are the same values; a tolerance all the same.
    torch.testing.assert_close(kept.bary, listed.bary, atol=1e-6, rtol=0)


def test_object_lift_by_flat_pixels_equals_the_lift_operator():
    mesh = DEMO_OBJECTS["mug"]().mesh
    _, f, _, fragments = _object(mesh, 128)
    logits = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    logits = torch.nn.functional.interpolate(logits, size=(128, 128), mode="bilinear")[:, 0] * 4
    once = lift_object_once(fragments, f, mesh.num_vertices, logits)
    maps = PixelMaps.from_fragments(fragments, f, mesh.num_vertices, OBJECT_VIEWS.names)
    reference = LiftOperator(maps).object(logits)
    assert (once > 0).sum() > 50, "some vertices should be in contact"
    # In contact or not: the two decisions differ only where the sums lie within 1e-4 of the threshold (rounding).
    differs = (once > 0) != (reference > 0)
    assert float(torch.where(differs, reference.abs(), torch.zeros_like(reference)).max()) <= 1e-4
    assert torch.allclose(once, reference.to(once.dtype), atol=1e-5)


def test_vertex_normals_of_one_mesh_equal_the_batched_formula_and_keep_gradients():
    """The [N, 3] path (1-D gathers on coordinate rows) against the batched [B, N, 3] path (row gathers and
    torch.cross), on the demo mug; and the normals stay differentiable (the placement's contact normals need it)."""
    from ivlm_core.render.shading import vertex_normals

    mug = DEMO_OBJECTS["mug"]().mesh
    v = torch.tensor(mug.vertices, dtype=torch.float64)
    f = torch.tensor(mug.faces, dtype=torch.int64)
    one = vertex_normals(v, f)
    batched = vertex_normals(v[None], f)[0]
    assert one.shape == (len(v), 3)
    assert torch.allclose(one, batched, atol=1e-12)
    leaf = v.clone().requires_grad_()
    (vertex_normals(leaf, f)[:, 2] * leaf[:, 0]).sum().backward()
    assert leaf.grad is not None and bool(torch.isfinite(leaf.grad).all()) and float(leaf.grad.abs().sum()) > 0


def test_specular_power_by_squaring_matches_pow():
    """The specular exponent: powers of two by repeated squaring (within float32 ulps of torch.pow), any other
    exponent through torch.pow itself."""
    from ivlm_core.render.shading import _power

    x = torch.linspace(0, 1, 10001)
    assert torch.allclose(_power(x, 64.0), x.pow(64.0), rtol=1e-5, atol=1e-30)
    assert torch.allclose(_power(x, 1.0), x, rtol=1e-7, atol=0)
    for exponent in (0.5, 3.0, 10.0):
        assert torch.allclose(_power(x, exponent), x.pow(exponent), rtol=1e-6, atol=1e-30)
