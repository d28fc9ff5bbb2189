"""Image-space pieces of the fit: projection, mask distance fields, and a soft silhouette.

Our placement compares the projected object with its mask through a distance field (cheap,
differentiable through bilinear sampling). The soft silhouette reproduces PyTorch3D's
SoftSilhouetteShader (sigmoid of the squared NDC distance to each face, combined over faces) for the
re-implemented InteractVLM schedule; pytorch3d itself cannot be installed here.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from ivlm_core.fit.levenberg_marquardt import constant


def project(points: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CV_CAMERA points [..., N, 3] -> pixel coordinates (u=col, v=row) [..., N, 2] and depth z [..., N]."""
    z = points[..., 2]
    safe_z = torch.where(z.abs() < 1e-6, torch.full_like(z, 1e-6), z)
    u = intrinsics[0, 0] * points[..., 0] / safe_z + intrinsics[0, 2]
    v = intrinsics[1, 1] * points[..., 1] / safe_z + intrinsics[1, 2]
    return torch.stack([u, v], -1), z


def distance_field(mask: np.ndarray) -> torch.Tensor:
    """Distance in pixels from every pixel to the nearest True pixel of `mask` [H, W] (0 inside)."""
    return torch.from_numpy(distance_transform_edt(~mask.astype(bool)).astype(np.float32))


def sample_image(image: torch.Tensor, uv: torch.Tensor, padding_value: float | None = None) -> torch.Tensor:
    """Bilinear samples of a [H, W] map at pixel coordinates uv [..., 2] (differentiable in uv): [...]; of C maps
    [C, H, W] at once (one pass over the points): [C, ...].

    Outside the image the border value is used, plus the distance beyond the border when padding_value is
    None (so a distance field keeps growing off-image and still pulls points back).
    """
    h, w = image.shape[-2:]
    channels = image.shape[:-2]
    flat = uv.reshape(1, -1, 1, 2)
    grid = torch.stack([flat[..., 0] / max(w - 1, 1) * 2 - 1, flat[..., 1] / max(h - 1, 1) * 2 - 1], -1)
    values = torch.nn.functional.grid_sample(
        image.reshape(1, -1, h, w).to(uv.dtype), grid, mode="bilinear", padding_mode="border", align_corners=True
    ).reshape(*channels, *uv.shape[:-1])
    if padding_value is None:
        over_u = (uv[..., 0] - (w - 1)).clamp_min(0) + (-uv[..., 0]).clamp_min(0)
        over_v = (uv[..., 1] - (h - 1)).clamp_min(0) + (-uv[..., 1]).clamp_min(0)
        return values + over_u + over_v
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
    return torch.where(inside, values, torch.full_like(values, padding_value))


def bilinear(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a distance field [H, W] at pixel coordinates uv [..., 2], growing with the distance
    beyond the border outside the image (like `sample_image` with no padding value).

    Written with gathers rather than grid_sample so forward-mode autodiff (the body fit's Jacobians) works."""
    h, w = image.shape
    u = uv[..., 0].clamp(0, w - 1)
    v = uv[..., 1].clamp(0, h - 1)
    u0 = u.detach().floor().clamp(0, max(w - 2, 0))
    v0 = v.detach().floor().clamp(0, max(h - 2, 0))
    flat = image.reshape(-1)
    i0 = (v0 * w + u0).long()
    corners = [flat[i0], flat[(i0 + 1).clamp(max=h * w - 1)], flat[(i0 + w).clamp(max=h * w - 1)]]
    corners.append(flat[(i0 + w + 1).clamp(max=h * w - 1)])
    # The samples and cell corners lifted (`levenberg_marquardt.constant`): the body fit's Jacobians are forward-mode.
    c00, c01, c10, c11, u0, v0 = constant(u, torch.stack([*corners, u0, v0]))
    fu, fv = u - u0, v - v0
    values = (1 - fv) * ((1 - fu) * c00 + fu * c01) + fv * ((1 - fu) * c10 + fu * c11)
    # (a scalar minus a tensor keeps the fast path; a tensor minus a scalar does not)
    over_u = (-((w - 1) - uv[..., 0])).clamp_min(0) + (-uv[..., 0]).clamp_min(0)
    over_v = (-((h - 1) - uv[..., 1])).clamp_min(0) + (-uv[..., 1]).clamp_min(0)
    return values + over_u + over_v


def _point_segment_sq(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    return ((a + t[..., None] * ab - p) ** 2).sum(-1)


def _edge(p0: torch.Tensor, p1: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Which side of the line p0 -> p1 each point p lies on (the sign of the 2D cross product)."""
    return (p1[:, 0] - p0[:, 0]) * (p[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (p[:, 0] - p0[:, 0])


def occlusion_depths(
    face_depth: torch.Tensor | None, occluder_depth: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(face_depth [B, F], occluder_depth [H, W]) when occlusion is asked for (an occluder depth), else None.

    Raises ValueError for an occluder depth without the faces' depths."""
    if occluder_depth is None:
        return None
    if face_depth is None:
        raise ValueError("occluder_depth needs face_depth, the depth of each face")
    return face_depth, occluder_depth


def soft_silhouette(
    uv: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    sigma: float = 1e-4,
    face_depth: torch.Tensor | None = None,
    occluder_depth: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft silhouettes [B, H, W] of a mesh whose vertices project to uv [B, N, 2] (pixels).

    With face_depth [B, F] and occluder_depth [H, W] (inf where nothing occludes), a face only reaches the
    pixels where it lies in front of the occluder: the visible silhouette, as a photo's object mask shows it.

    Like PyTorch3D's SoftSilhouetteShader: each face near a pixel contributes sigmoid(-d/sigma), d being
    the squared distance in NDC units (negative inside the face), and the face contributions combine as
    1 - prod(1 - p). A face only reaches pixels within its blur radius (where p > 1e-4), which keeps the
    work proportional to the covered area instead of pixels x faces.
    """
    h, w = image_size
    occlusion = occlusion_depths(face_depth, occluder_depth)
    ndc_per_px = 2.0 / min(h, w)
    radius_px = float(np.sqrt(np.log(1.0 / 1e-4 - 1.0) * sigma)) / ndc_per_px
    batch = uv.shape[0]
    out = []
    for b in range(batch):
        tri = uv[b][faces]  # [F, 3, 2]
        with torch.no_grad():
            lo = (tri.min(1).values - radius_px).ceil().clamp_min(0)
            hi = (tri.max(1).values + radius_px).floor()
            hi = torch.minimum(hi, torch.tensor([w - 1, h - 1], dtype=hi.dtype))
            size = (hi - lo + 1).clamp_min(0).long()  # [F, 2] columns, rows
            count = size[:, 0] * size[:, 1]
            face_id = torch.repeat_interleave(torch.arange(len(faces)), count)
            start = torch.cumsum(count, 0) - count
            local = torch.arange(int(count.sum())) - start[face_id]
            cols = lo[face_id, 0].long() + local % size[face_id, 0].clamp_min(1)
            rows = lo[face_id, 1].long() + local // size[face_id, 0].clamp_min(1)
        if len(face_id) == 0:
            out.append(uv.new_zeros(h, w))
            continue
        p = torch.stack([cols, rows], -1).to(uv.dtype)
        a, bb, c = tri[face_id, 0], tri[face_id, 1], tri[face_id, 2]
        d2 = torch.minimum(
            torch.minimum(_point_segment_sq(p, a, bb), _point_segment_sq(p, bb, c)), _point_segment_sq(p, c, a)
        )

        e0, e1, e2 = _edge(a, bb, p), _edge(bb, c, p), _edge(c, a, p)
        inside = ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
        signed = torch.where(inside, -d2, d2) * ndc_per_px**2
        prob = torch.sigmoid(-signed / sigma)
        if occlusion is not None:
            faces_z, occluder_z = occlusion
            prob = torch.where(faces_z[b][face_id] < occluder_z[rows, cols], prob, torch.zeros_like(prob))
        log_miss = torch.log((1.0 - prob).clamp_min(1e-7))
        total = uv.new_zeros(h * w).index_add(0, rows * w + cols, log_miss)
        out.append((1.0 - torch.exp(total)).reshape(h, w))
    return torch.stack(out)
