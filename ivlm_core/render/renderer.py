"""From a mesh and cameras to fragments, normals, depth and shaded pictures."""

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
        return to_uint8(self.rgb)


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """Float images in [0, 1] -> 8-bit, rounded to nearest, [B, H, W, 3]."""
    return (rgb.clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def rasterize_mesh(
    vertices: torch.Tensor, faces: torch.Tensor, cameras: PinholeCameras, max_candidates: int = 1 << 21
) -> Fragments:
    """Rasterises world-space vertices [N, 3] / faces [F, 3] in every camera of the batch."""
    cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
    screen = cameras.project(cameras.world_to_camera(vertices))
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    return rasterize(screen, faces, cameras.image_size, znear=cameras.znear, max_candidates=max_candidates)


def shade(
    fragments: Fragments,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    vertex_colors: torch.Tensor,
    light_positions: torch.Tensor | None = None,
    *,
    lighting: PhongLighting | None = PhongLighting(),
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Rendering:
    """Shades rasterised views. vertex_colors: [N, 3] or [B, N, 3] albedo in [0, 1].

    light_positions: [B, 3] world position of each view's point light; needed unless lighting is None,
    which gives unlit albedo (for masks and ground-truth colour codes).
    """
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    covered = fragments.covered()  # only covered pixels are shaded: background is most of a render
    normals = torch.nn.functional.normalize(
        covered.interpolate(faces, vertex_normals(vertices, faces)), dim=-1, eps=1e-6
    )
    rgb = covered.interpolate(faces, vertex_colors.to(vertices))
    if lighting is not None:
        if light_positions is None:
            raise ValueError("light_positions are required for shaded renders")
        cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
        rgb = phong(
            covered.interpolate(faces, vertices),
            normals,
            rgb,
            light_positions.to(vertices)[covered.view],
            cameras.camera_centers()[covered.view],
            lighting,
        )
    bg = torch.tensor(background, dtype=rgb.dtype, device=rgb.device)
    return Rendering(fragments, covered.to_image(rgb, bg), covered.to_image(normals))


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
    """Rasterises and shades one mesh (world-space vertices [N, 3], faces [F, 3]) in every camera."""
    fragments = rasterize_mesh(vertices, faces, cameras, max_candidates)
    return shade(
        fragments, vertices, faces, cameras, vertex_colors, light_positions, lighting=lighting, background=background
    )
