"""One call from a mesh and cameras to fragments, normals, depth and a shaded picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.rasterize import Fragments, rasterize
from ivlm_core.render.shading import PhongLighting, phong, vertex_normals


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
        """8-bit images, rounded to nearest, [B, H, W, 3]."""
        return (self.rgb.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def render_mesh(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    vertex_colors: torch.Tensor,
    light_positions: torch.Tensor | None = None,
    *,
    lighting: PhongLighting | None = PhongLighting(),
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_candidates: int = 1 << 21,
) -> Rendering:
    """Renders one mesh in every camera of the batch.

    vertices: [N, 3] world coordinates (metres); faces: [F, 3]; vertex_colors: [N, 3] or [B, N, 3] albedo.
    light_positions: [B, 3] world position of each view's point light (PyTorch3D PointLights);
        required unless lighting is None, which gives unlit albedo (for masks and flat overlays).
    """
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
    screen = cameras.project(cameras.world_to_camera(vertices))
    fragments = rasterize(screen, faces, cameras.image_size, znear=cameras.znear, max_candidates=max_candidates)
    covered = fragments.covered()  # shade only covered pixels: background is most of a render
    normals = covered.interpolate(faces, vertex_normals(vertices, faces))
    normals = torch.nn.functional.normalize(normals, dim=-1, eps=1e-6)
    rgb = covered.interpolate(faces, vertex_colors.to(vertices.dtype))
    if lighting is not None:
        if light_positions is None:
            raise ValueError("light_positions are required for shaded renders")
        rgb = phong(
            covered.interpolate(faces, vertices),
            normals,
            rgb,
            light_positions.to(vertices)[covered.view],
            cameras.camera_centers().to(vertices)[covered.view],
            lighting,
        )
    bg = torch.tensor(background, dtype=rgb.dtype, device=rgb.device)
    rgb = covered.to_image(rgb, bg)
    normals = covered.to_image(normals)
    return Rendering(fragments, rgb, normals)
