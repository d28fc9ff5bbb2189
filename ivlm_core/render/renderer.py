"""From a mesh and cameras to fragments, normals, depth and shaded pictures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.rasterize import CoveredPixels, Fragments, clip_near, rasterize
from ivlm_core.render.shading import PhongLighting, phong, vertex_normals

DEFAULT_LIGHTING = PhongLighting()  # InteractVLM's lights (frozen, so one shared default is safe)


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
    vertices: torch.Tensor, faces: torch.Tensor, cameras: PinholeCameras, max_candidates: int = 1 << 21
) -> Fragments:
    """Rasterises world-space vertices [N, 3] / faces [F, 3] in every camera of the batch.

    Faces crossing the cameras' near plane are clipped in camera space first (`clip_near`), so a floor that
    runs behind the camera is drawn up to the near plane instead of vanishing.
    """
    cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
    points = cameras.world_to_camera(vertices)
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    clipped = clip_near(points, faces, cameras.znear)
    if clipped is None:
        return rasterize(
            cameras.project(points), faces, cameras.image_size, znear=cameras.znear, max_candidates=max_candidates
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


@dataclass
class ShadedPixels:
    """Shaded covered pixels only: rgb [K, C] and unit normals [K, 3] at `covered` (see `CoveredPixels`)."""

    covered: CoveredPixels
    rgb: torch.Tensor
    normals: torch.Tensor

    def uint8_images(self, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[np.ndarray]:
        """One [B, H, W, 3] uint8 stack per colour scheme (3 channels each); the same as `to_uint8` of the
        float images, but only covered pixels are converted and the background is filled as bytes."""
        fill = torch.tensor(background).clamp(0, 1).mul(255).round().to(torch.uint8)
        values = _quantise(self.rgb)
        images = []
        for k in range(0, values.shape[-1], 3):
            image = self.covered.to_image(values[:, k : k + 3], fill.to(values.device))
            images.append(image.cpu().numpy())
        return images


def _quantise(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def shade_pixels(
    fragments: Fragments,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    cameras: PinholeCameras,
    vertex_colors: torch.Tensor,
    light_positions: torch.Tensor | None = None,
    *,
    lighting: PhongLighting | None = DEFAULT_LIGHTING,
) -> ShadedPixels:
    """Shades the covered pixels of rasterised views. vertex_colors: [N, C] or [B, N, C] albedo in [0, 1].

    C = 3, or 3k: k colour schemes shaded in one pass (Phong is affine in the albedo, so each comes out as if
    shaded alone). light_positions: [B, 3] world position of each view's point light; needed unless lighting
    is None, which gives unlit albedo (for masks and ground-truth colour codes).
    """
    faces = faces.to(device=vertices.device, dtype=torch.int64)
    covered = fragments.covered()  # only covered pixels are shaded: background is most of a render
    colors = vertex_colors.to(vertices)
    shared = [vertex_normals(vertices, faces), vertices] + ([colors] if colors.dim() == 2 else [])
    values = covered.interpolate(faces, torch.cat(shared, -1))  # one gather of the corners for all of them
    normals = torch.nn.functional.normalize(values[:, :3], dim=-1, eps=1e-6)
    rgb = values[:, 6:] if colors.dim() == 2 else covered.interpolate(faces, colors)
    if lighting is not None:
        if light_positions is None:
            raise ValueError("light_positions are required for shaded renders")
        cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
        rgb = phong(
            values[:, 3:6],
            normals,
            rgb,
            light_positions.to(vertices)[covered.view],
            cameras.camera_centers()[covered.view],
            lighting,
        )
    return ShadedPixels(covered, rgb, normals)


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
    bg = torch.tensor(background, dtype=rgb.dtype, device=rgb.device).repeat(rgb.shape[-1] // 3)
    return Rendering(fragments, covered.to_image(rgb, bg), covered.to_image(shaded.normals))


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
