"""Rigid alignment of object contact points onto body contact points.

`weighted_procrustes` is the closed-form (Umeyama) fit for known correspondences; `contact_icp`
re-finds the correspondences (nearest body contact point) at every iteration. InteractVLM's ICP built
its correspondences once and never updated them, so it was a single Procrustes step (spec P18); a real
ICP is what lets a rough start slide into place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def weighted_procrustes(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """R [B, 3, 3], t [B, 3] minimising sum_i w_i |R s_i + t - t_i|^2 (batched, no scale, det R = +1).

    source, target: [B, N, 3]; weights: [B, N] (non-negative, not all zero).
    """
    w = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    mu_s = (w[..., None] * source).sum(-2)
    mu_t = (w[..., None] * target).sum(-2)
    cov = ((target - mu_t[:, None]) * w[..., None]).transpose(-1, -2) @ (source - mu_s[:, None])
    u, _, vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1))
    rotation = u @ fix @ vh
    translation = mu_t - (rotation @ mu_s[..., None])[..., 0]
    return rotation, translation


@dataclass
class IcpResult:
    rotation: torch.Tensor  # [B, 3, 3]
    translation: torch.Tensor  # [B, 3]
    rms: torch.Tensor  # [B] weighted RMS distance to the matched body contact points, metres
    iterations: int


def contact_icp(
    object_points: torch.Tensor,
    object_weights: torch.Tensor,
    body_points: torch.Tensor,
    body_weights: torch.Tensor,
    rotation: torch.Tensor,
    translation: torch.Tensor,
    iterations: int = 30,
    tolerance: float = 1e-6,
    share: float = 1.0,
) -> IcpResult:
    """ICP of weighted object contact points [M, 3] onto body contact points [K, 3] from B starts.

    Each match is weighted by both contact probabilities, so confident regions dominate. With `share` < 1 it is a
    trimmed ICP (Chetverikov et al. 2002): each iteration fits only the `share` of object points nearest to their
    matches, for an object contact label larger than the area that really touches.
    """
    batch = rotation.shape[0]
    src = object_points.expand(batch, -1, -1)
    rms_prev = torch.full((batch,), float("inf"), dtype=object_points.dtype, device=object_points.device)
    for step in range(1, iterations + 1):
        moved = src @ rotation.transpose(-1, -2) + translation[:, None]
        nearest = torch.cdist(moved, body_points[None].expand(batch, -1, -1)).argmin(-1)  # [B, M]
        matched = body_points[nearest]
        w = trimmed_weights(object_weights[None] * body_weights[nearest], (moved - matched).norm(dim=-1), share)
        rotation, translation = weighted_procrustes(src, matched, w)
        moved = src @ rotation.transpose(-1, -2) + translation[:, None]
        sq = ((moved - matched) ** 2).sum(-1)
        rms = ((w * sq).sum(-1) / w.sum(-1).clamp_min(1e-12)).sqrt()
        if bool(((rms_prev - rms).abs() < tolerance).all()):
            return IcpResult(rotation, translation, rms, step)
        rms_prev = rms
    return IcpResult(rotation, translation, rms_prev, iterations)


def trimmed_weights(weights: torch.Tensor, distances: torch.Tensor, share: float) -> torch.Tensor:
    """`weights` [B, M] with all but the `share` of matches of smallest `distances` [B, M] (per row) set to zero."""
    if share >= 1.0:
        return weights
    count = max(1, int(math.ceil(share * distances.shape[-1])))
    keep = torch.zeros_like(weights).scatter_(-1, distances.topk(count, dim=-1, largest=False).indices, 1.0)
    return weights * keep
