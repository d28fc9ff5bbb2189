"""From a mesh and cameras to fragments, normals, depth and shaded pictures."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.weak import WeakIdKeyDictionary

from ivlm_core.mesh import closed_orientation
from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.rasterize import BackFaces, CoveredPixels, Fragments, clip_near, face_rows, rasterize
from ivlm_core.render.shading import PhongLighting, face_planes, phong, unit_vectors, vertex_normals

DEFAULT_LIGHTING = PhongLighting()  # InteractVLM's lights (frozen, so one shared default is safe)
# Pixels shaded per pass on the CPU: a chunk's ~20 channel vectors (about 5 MB) stay in its cache. A GPU shades
# each view in one pass (chunks would only add kernel launches).
SHADE_CHUNK = 1 << 16


@dataclass
class Rendering:
    """B views of one mesh. Images are [B, H, W, C]; every vector is in world coordinates."""

    fragments: Fragments
    rgb: torch.Tensor  # float in [0, 1], background colour where nothing is drawn
    normals: torch.Tensor  # unit surface normals, 0 on background

    @property
    def mask(self) -> torch.Tensor:
        return self.fragments.mask

    @property
    def depth(self) -> torch.Tensor:
        return self.fragments.depth

    def rgb_uint8(self) -> np.ndarray:
        return to_uint8(self.rgb)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """Float images in [0, 1] -> 8-bit, rounded to nearest, [B, H, W, 3]."""
    return _quantise(rgb).cpu().numpy()


def rasterize_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    max_candidates: int = 1 << 21,
    *,
    orientation: int | None = None,
    planes: torch.Tensor | None = None,
) -> Fragments:
    """Rasterises world-space vertices [N, 3] / faces [F, 3] in every camera of the batch.

    Faces crossing the cameras' near plane are clipped in camera space first (`clip_near`), so a floor that
    runs behind the camera is drawn up to the near plane instead of vanishing. orientation: the mesh's
    `closed_orientation` when the caller has it (`TriangleMesh.orientation`), else worked out here (once per
    pair of tensors); back faces are skipped where that is exact (`back_face_culling`). planes: the vertices'
    `face_planes` when the caller has them (else computed here if culling needs them).
    """
    cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    if vertices.dim() == 2 and not (vertices.requires_grad and torch.is_grad_enabled()):
        screen = cameras.world_to_screen(vertices)
        if vertices.shape[0] == 0 or bool(screen[..., 2].amin() >= cameras.znear):  # usual: nothing to clip
            if orientation is None:
                orientation = _cached_orientation(vertices, faces)
            return rasterize(
                screen,
                faces,
                cameras.image_size,
                znear=cameras.znear,
                max_candidates=max_candidates,
                cull=back_face_culling(vertices, faces, screen, cameras, orientation, planes),
            )
    points = cameras.world_to_camera(vertices)
    clipped = clip_near(points, faces, cameras.znear)
    if clipped is None:
        if orientation is None:
            orientation = _cached_orientation(vertices, faces)
        return rasterize(
            cameras.project(points),
            faces,
            cameras.image_size,
            znear=cameras.znear,
            max_candidates=max_candidates,
            cull=back_face_culling(vertices, faces, points, cameras, orientation, planes),
        )
    screen = cameras.project(torch.cat([points, clipped.vertices], 1))
    fragments = rasterize(
        screen,
        torch.cat([faces, clipped.faces]),
        cameras.image_size,
        znear=cameras.znear,
        max_candidates=max_candidates,
    )
    return clipped.restore(fragments)


def back_face_culling(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    points: torch.Tensor,
    cameras: PinholeCameras,
    orientation: int,
    planes: torch.Tensor | None = None,
) -> BackFaces | None:
    """The back faces `rasterize` may skip (its `cull`), or None to draw both windings everywhere.

    On a closed mesh wound one way (orientation +1 or -1, `mesh.closed_orientation`), a ray from a point
    outside it first meets a face turned towards that point, so the faces turned away are never the nearest
    and are skipped (about half of them). A view culls only when that holds for it: its camera centre is
    outside the mesh's bounding box (so outside the mesh), and no vertex is closer than znear (a face cut
    away by the near plane would open a hole onto the faces behind). Open meshes, meshes whose parts are
    wound both ways, and cameras inside the box draw both windings, as PyTorch3D does.
    vertices [N, 3] world, faces [F, 3], points [B, N, 3] their camera-space positions (only their depth z is
    read, so screen (u, v, z) will do); planes: their `face_planes` if the caller has them.
    """
    if orientation == 0 or vertices.shape[0] == 0:
        return None
    centres = cameras.camera_centers().to(vertices)
    lower, upper = vertices.amin(0), vertices.amax(0)
    outside = ((centres < lower) | (centres > upper)).any(1)
    clear = points[..., 2].amin(1) >= cameras.znear
    culls = outside & clear
    if not bool(culls.any()):
        return None
    planes = face_planes(vertices.detach(), faces) if planes is None else planes.detach()  # a test, no gradient
    # Turned by the orientation, a face's plane is positive on its outer side; views that draw both ways get 0.
    eyes = torch.cat([centres, torch.ones_like(centres[:, :1])], 1) * (culls[:, None] * orientation)
    # The margin: 1e-4 of |n| times the scene's size (the plane's terms at an eye are up to |n| (|eye| + |p0|)), far
    # above their float32 rounding; so faces within about 1e-4 rad of edge-on are drawn both ways.
    size = centres[culls].norm(dim=1).max() + torch.maximum(lower.abs(), upper.abs()).norm()
    # |n| row by row (vector_norm over the [3, F] rows' first axis took 140 ms on a 1.3M-face scan, this 3).
    limit = (planes[0] * planes[0]).addcmul_(planes[1], planes[1]).addcmul_(planes[2], planes[2]).sqrt_()
    limit.mul_(-1e-4 * size)
    return BackFaces(planes, eyes, limit)


# (faces tensor) -> (its _version, weak reference to the vertices, their _version, orientation)
_ORIENTATIONS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _cached_orientation(vertices: torch.Tensor, faces: torch.Tensor) -> int:
    """`closed_orientation` of these tensors, remembered while they live unchanged (it builds a matrix of all
    edges). Inference-mode tensors keep no version counter, so theirs is worked out every time."""
    cacheable = not (vertices.is_inference() or faces.is_inference())
    entry = _ORIENTATIONS.get(faces) if cacheable else None
    if entry is not None and entry[0] == faces._version and entry[1]() is vertices and entry[2] == vertices._version:
        return entry[3]
    orientation = closed_orientation(vertices.detach().cpu().numpy(), faces.cpu().numpy())
    if cacheable:
        _ORIENTATIONS[faces] = (faces._version, weakref.ref(vertices), vertices._version, orientation)
    return orientation


@dataclass
class ShadedPixels:
    """Shaded covered pixels only, channel-major: rgb [C, K] and unit normals [3, K] at `covered` (see
    `CoveredPixels`); channel-major because shading works on contiguous per-channel rows."""

    covered: CoveredPixels
    rgb: torch.Tensor
    normals: torch.Tensor

    def uint8_images(self, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[np.ndarray]:
        """One [B, H, W, 3] uint8 stack per colour scheme (3 channels each); the same as `to_uint8` of the
        float images, but only covered pixels are converted and the background is filled as bytes."""
        fill = _quantise(torch.tensor(background).clamp(0, 1)).to(self.rgb.device)
        values = _quantise(self.rgb)  # [C, K]: contiguous rows, so one fast pass
        return [self.covered.to_image(values[k : k + 3].T, fill).cpu().numpy() for k in range(0, len(values), 3)]


def _quantise(rgb: torch.Tensor) -> torch.Tensor:
    """Float colours in [0, 1] -> uint8, rounded to nearest (ties to even); the float -> uint8 conversion goes
    through numpy on the CPU (torch's ran 2.5x slower here; same bytes)."""
    scaled = torch.mul(rgb, 255.0).round_().clamp_(0, 255)
    if scaled.device.type == "cpu":
        return torch.from_numpy(scaled.detach().numpy().astype(np.uint8))
    return scaled.to(torch.uint8)


def shade_pixels(
    fragments: Fragments,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    vertex_colors: torch.Tensor,
    light_positions: torch.Tensor | None = None,
    *,
    lighting: PhongLighting | None = DEFAULT_LIGHTING,
    chunk: int | None = None,
    normals: torch.Tensor | None = None,
) -> ShadedPixels:
    """Shades the covered pixels of rasterised views. vertex_colors: [N, C] or [B, N, C] albedo in [0, 1].

    C = 3, or 3k: k colour schemes shaded in one pass (Phong is affine in the albedo, so each comes out as if
    shaded alone). light_positions: [B, 3] world position of each view's point light; needed unless lighting
    is None, which gives unlit albedo (for masks and ground-truth colour codes).

    Covered pixels are listed view by view, so each view's light and camera broadcast over its pixels, and go
    through in chunks of `chunk` pixels (default: SHADE_CHUNK on the CPU, a whole view on a GPU), channel-major
    ([channels, pixels]): every temporary of a chunk is a contiguous vector that stays in the CPU's cache
    (whole-frame [K, 3] passes were memory-bound and the dim-3 reductions slow). A colour channel that is the
    same at every vertex (a flat overlay) is not interpolated: the barycentrics sum to 1, so its value is that
    constant. normals: the vertices' `vertex_normals` [N, 3] when the caller has them.
    """
    lights = None  # per view: light position and camera centre, [B, 3, 1] each
    if lighting is not None:
        if light_positions is None:
            raise ValueError("light_positions are required for shaded renders")
        cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
        lights = light_positions.to(vertices)[:, :, None], cameras.camera_centers()[:, :, None]
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    covered = fragments.covered()  # only covered pixels are shaded: background is most of a render
    colors = vertex_colors.to(vertices)
    n_views = covered.shape[0]
    per_view = colors.expand(n_views, *colors.shape[-2:])  # [B, N, C] views, no copy for shared colours
    # [C]: one value everywhere (min == max; NaN never counts as constant). Reduced along the vertex axis, which is
    # contiguous for colours given as views of channel rows (the canonical renders).
    constant = (colors.amin(-2) == colors.amax(-2)).reshape(-1, colors.shape[-1]).all(0)
    varying = (~constant).nonzero()[:, 0]
    n_colors = colors.shape[-1]
    normals = vertex_normals(vertices, faces) if normals is None else normals.to(vertices)
    shared = torch.cat([normals.T, vertices.T])  # [6, N]
    shared_table = torch.cat([shared, colors.T[varying]]).contiguous() if colors.dim() == 2 else None
    faces_t = face_rows(faces)  # [3, F]: a corner's vertex ids of K pixels are one 1-D gather
    rgb = torch.empty(n_colors, covered.face.shape[0], dtype=vertices.dtype, device=vertices.device)
    pixel_normals = torch.empty(3, covered.face.shape[0], dtype=vertices.dtype, device=vertices.device)
    if chunk is None:
        chunk = SHADE_CHUNK if vertices.device.type == "cpu" else max(1, covered.face.shape[0])
    starts = torch.searchsorted(covered.view, torch.arange(n_views + 1, device=covered.view.device)).tolist()
    for view in range(n_views):
        if starts[view] == starts[view + 1]:
            continue
        table = shared_table if shared_table is not None else torch.cat([shared, per_view[view].T[varying]])
        flat = per_view[view, 0][constant][:, None]  # [constant channels, 1]
        for first in range(starts[view], starts[view + 1], chunk):
            pixels = slice(first, min(first + chunk, starts[view + 1]))
            values = _interpolate_channels(table, covered.corner_ids(faces_t, pixels), covered.bary[pixels])
            unit = unit_vectors(values[:3], dim=0)
            albedo = torch.empty(n_colors, values.shape[1], dtype=values.dtype, device=values.device)
            albedo[varying], albedo[constant] = values[6:], flat
            if lighting is not None and lights is not None:
                albedo = phong(values[3:6], unit, albedo, lights[0][view], lights[1][view], lighting, dim=0)
            rgb[:, pixels], pixel_normals[:, pixels] = albedo, unit
    return ShadedPixels(covered, rgb, pixel_normals)


def _interpolate_channels(table: torch.Tensor, corners: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Per-vertex channels table [C, N] at pixels whose faces have vertex ids corners [3, k] and barycentrics
    bary [k, 3]: [C, k].

    Every gather is 1-D (one channel of one corner): on the CPU that is several times faster per value than
    gathering rows of a [N, C] table.
    """
    weights = bary.T.to(table.dtype).contiguous()
    out = torch.empty(table.shape[0], corners.shape[1], dtype=table.dtype, device=table.device)
    for c in range(table.shape[0]):
        row = table[c]
        torch.mul(row.index_select(0, corners[0]), weights[0], out=out[c])
        out[c].addcmul_(row.index_select(0, corners[1]), weights[1])
        out[c].addcmul_(row.index_select(0, corners[2]), weights[2])
    return out


def shade(
    fragments: Fragments,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    vertex_colors: torch.Tensor,
    light_positions: torch.Tensor | None = None,
    *,
    lighting: PhongLighting | None = DEFAULT_LIGHTING,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Rendering:
    """Shaded images of rasterised views (`shade_pixels` scattered into images filled with `background`)."""
    shaded = shade_pixels(fragments, vertices, faces, cameras, vertex_colors, light_positions, lighting=lighting)
    rgb, covered = shaded.rgb, shaded.covered
    bg = torch.tensor(background, dtype=rgb.dtype, device=rgb.device).repeat(rgb.shape[0] // 3)
    return Rendering(fragments, covered.to_image(rgb.T, bg), covered.to_image(shaded.normals.T))


def render_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    vertex_colors: torch.Tensor,
    light_positions: torch.Tensor | None = None,
    *,
    lighting: PhongLighting | None = DEFAULT_LIGHTING,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_candidates: int = 1 << 21,
) -> Rendering:
    """Rasterises and shades one mesh (world-space vertices [N, 3], faces [F, 3]) in every camera."""
    fragments = rasterize_mesh(vertices, faces, cameras, max_candidates)
    return shade(
        fragments, vertices, faces, cameras, vertex_colors, light_positions, lighting=lighting, background=background
    )
