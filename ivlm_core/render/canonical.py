"""InteractVLM's 4-view renders of a surface: the images SAM sees, flat overlays, and the fragments to lift with.

Human (spec §3.2): the canonical Vitruvian SMPL-H body, coloured by (normal + 1) / 2, Phong-shaded.
Object (spec §3.3): the user's mesh normalised (vertex mean, longest side 1), coloured by position.
Both use the view sets of `views.py` at 1024 x 1024 on a white background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.mesh import TriangleMesh
from ivlm_core.render.rasterize import Fragments, face_rows
from ivlm_core.render.renderer import rasterize_mesh, shade_pixels
from ivlm_core.render.shading import (
    BODY_OVERLAY_BLUE,
    OBJECT_OVERLAY_YELLOW,
    face_planes,
    flat_colors,
    normal_colors,
    position_colors,
    vertex_normals,
)
from ivlm_core.render.views import CANONICAL_IMAGE_SIZE, HUMAN_VIEWS, OBJECT_VIEWS, ViewSet, normalize_object_vertices


@dataclass
class ViewRenders:
    """One surface in one view set. Images are uint8 [V, S, S, 3] in view order."""

    view_set: ViewSet
    sam_images: np.ndarray  # what SAM is shown
    overlay_images: np.ndarray  # a flat-coloured version, to draw predicted masks on
    fragments: Fragments
    faces: torch.Tensor
    num_vertices: int


@dataclass
class ObjectViewRenders(ViewRenders):
    """Object renders plus the normalisation that was applied: original = normalised * scale + center."""

    center: np.ndarray
    scale: float


def _render_two_ways(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    view_set: ViewSet,
    sam_colors: Callable[[torch.Tensor], torch.Tensor],
    overlay: tuple,
    size: int,
    orientation: int | None = None,
) -> tuple[np.ndarray, np.ndarray, Fragments]:
    """The SAM and overlay renders of one mesh in a view set, and its fragments. sam_colors: the SAM render's vertex
    colours [N, 3] from the vertex normals [N, 3] (which the shading computes anyway)."""
    cameras = view_set.cameras(size, dtype=vertices.dtype)
    lights = view_set.light_positions(dtype=vertices.dtype)
    planes = face_planes(vertices, faces)  # shared by back-face culling and the shading's vertex normals
    normals = vertex_normals(vertices, faces, planes)
    fragments = rasterize_mesh(vertices, faces, cameras, orientation=orientation, planes=planes)
    # [N, 6] as a view of channel rows: shading reads and checks colours channel by channel.
    both = torch.cat([sam_colors(normals).T, flat_colors(len(vertices), overlay, vertices).T]).T
    shaded = shade_pixels(fragments, vertices, faces, cameras, both, lights, normals=normals)
    sam, flat = shaded.uint8_images()  # one pass
    return sam, flat, fragments


def render_body_views(
    vertices: np.ndarray,
    faces: np.ndarray,
    image_size: int = CANONICAL_IMAGE_SIZE,
    device: torch.device | str = "cpu",
) -> ViewRenders:
    """Renders the canonical body (vertices [N, 3] in the BODY frame, metres) from the 4 human views."""
    v = torch.as_tensor(vertices, dtype=torch.float32, device=device)
    f = torch.as_tensor(faces, dtype=torch.int64, device=device)
    sam, overlay, fragments = _render_two_ways(v, f, HUMAN_VIEWS, normal_colors, BODY_OVERLAY_BLUE, image_size)
    return ViewRenders(HUMAN_VIEWS, sam, overlay, fragments, f, len(vertices))


def render_object_views(
    mesh: TriangleMesh, image_size: int = CANONICAL_IMAGE_SIZE, device: torch.device | str = "cpu"
) -> ObjectViewRenders:
    """Normalises an object mesh as InteractVLM does and renders it from the 4 object views."""
    normalised, center, scale = normalize_object_vertices(mesh.vertices)
    # [N, 3] as a view of coordinate rows [3, N] (as normalised): bounds, normals and shading read rows.
    v = torch.as_tensor(np.ascontiguousarray(normalised.T), dtype=torch.float32, device=device).T
    # [F, 3] as a view of corner rows [3, F]: the renderer reads faces row by row (`face_rows` is then free).
    f = face_rows(torch.as_tensor(mesh.faces, dtype=torch.int64)).to(device).T
    colors = position_colors(v)
    sam, overlay, fragments = _render_two_ways(
        v, f, OBJECT_VIEWS, lambda _normals: colors, OBJECT_OVERLAY_YELLOW, image_size, mesh.orientation
    )
    return ObjectViewRenders(OBJECT_VIEWS, sam, overlay, fragments, f, mesh.num_vertices, center, scale)
