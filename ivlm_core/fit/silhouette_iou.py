"""A soft silhouette IoU between the placed object and its mask, cheap enough to optimise many hypotheses.

Why: the distance-field silhouette term only asks that projected points lie inside the mask and that every
mask pixel has a point nearby. A mug turned 30 degrees about its axis, or tilted 10 degrees, satisfies both
almost as well as the true pose, so that term's minimum can sit off the truth; the area overlap (IoU) of the
drawn silhouette with the mask is 1.0 only at the truth. This module draws the silhouette with the compiled
soft rasteriser (`soft_silhouette_kernel`, PyTorch3D's formula) under three economies that keep it cheap:
the object is decimated to a few thousand faces (the silhouette of a 25k-face mug covering 35 px does not
need them), only a window around the mask is drawn, and a large mask is compared at a reduced resolution
(block averages), so the cost is bounded whatever the object's size in the photo.

The mask shows only the visible object, so the silhouette drawn is the visible one too: a face reaches a
pixel only where it lies in front of the fitted body's depth map (the hand wrapped round a mug hides part of
it; the torso behind it does not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.fit.soft_silhouette_kernel import soft_silhouette_fast

SIGMOID_CUTOFF = float(np.log(1.0 / 1e-4 - 1.0))  # where a face's contribution drops to 1e-4 (the kernel's radius)


@dataclass(frozen=True)
class MaskWindow:
    """The part of the photo the IoU is computed on, at `factor` image pixels per window pixel."""

    origin: tuple[int, int]  # (col, row) of the window's first image pixel
    factor: int  # image pixels per window pixel (block size)
    target: torch.Tensor  # [h, w] share of each window pixel covered by the object mask
    occluder_depth: torch.Tensor  # [h, w] nearest body depth in each window pixel, inf where there is none

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.target.shape)  # type: ignore[return-value]


def mask_window(
    object_mask: np.ndarray, body_depth: torch.Tensor, margin: float = 0.6, max_side: int = 128
) -> MaskWindow:
    """A window around the object mask, widened by `margin` times its size on each side, at most `max_side` px."""
    rows, cols = np.nonzero(object_mask)
    height, width = object_mask.shape
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    pad = int(np.ceil(margin * extent)) + 2
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, height)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, width)
    factor = max(1, int(np.ceil(max(r1 - r0, c1 - c0) / max_side)))
    h, w = -(-(r1 - r0) // factor), -(-(c1 - c0) // factor)

    def blocks(image: np.ndarray, fill: float) -> np.ndarray:
        padded = np.full((h * factor, w * factor), fill, np.float32)
        crop = image[r0:r1, c0:c1]
        padded[: crop.shape[0], : crop.shape[1]] = crop
        return padded.reshape(h, factor, w, factor)

    target = torch.from_numpy(blocks(object_mask, 0.0).mean((1, 3)))
    depth = torch.from_numpy(blocks(body_depth.numpy(), np.inf).min((1, 3)))
    return MaskWindow((int(c0), int(r0)), factor, target, depth)


def decimated_faces(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh reduced to about `max_faces` faces by quadric decimation (unchanged when already small)."""
    if len(faces) <= max_faces:
        return np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    import fast_simplification

    v, f = fast_simplification.simplify(
        np.asarray(vertices, np.float32), np.asarray(faces, np.int32), target_count=max_faces
    )
    return np.asarray(v, np.float64), np.asarray(f, np.int64)


def soft_iou_loss(
    uv: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, window: MaskWindow, blur_px: float = 1.5
) -> torch.Tensor:
    """1 - soft IoU [B] of the visible silhouettes of vertices at image pixels uv [B, N, 2], depths z [B, N].

    `blur_px` is how far (in window pixels) outside a face its soft edge reaches.
    """
    col0, row0 = window.origin
    f = window.factor
    offset = torch.tensor([col0 + (f - 1) / 2, row0 + (f - 1) / 2], dtype=uv.dtype)
    local = (uv - offset) / f
    h, w = window.size
    sigma = (blur_px * 2.0 / min(h, w)) ** 2 / SIGMOID_CUTOFF
    face_z = z.detach()[:, faces].mean(-1).float()  # which side of the body a face is on: no gradient
    silhouette = soft_silhouette_fast(local.float(), faces, (h, w), sigma, face_z, window.occluder_depth)
    target = window.target.to(uv.dtype)
    silhouette = silhouette.to(uv.dtype)  # [B, h, w]
    inter = (silhouette * target).sum((-1, -2))
    union = (silhouette + target - silhouette * target).sum((-1, -2))
    return 1.0 - inter / union.clamp_min(1e-6)
