"""Lift: per-view 2D mask logits -> per-vertex contact, each variant one sparse product.

Both of InteractVLM's lifters (spec §4.2, §4.4) are barycentric-weighted means of pixel probabilities,
so for a fixed view set they are linear in the pixels once the pixel selection is known:

* human (soft, post-FIX): p = sigmoid(clamp(logit, -20, 20)) over every pixel showing the body;
  per view, s_v[i] = sum(w p) / sum(w) over the (pixel, corner) pairs whose corner is vertex i;
  c[i] = mean of s_v[i] over the views where vertex i is visible (sum(w) > 0); 0 if never visible.
  Everything but p is constant, so c = L p with one precomputed sparse L [N, V*H*W].
* object (thresholded): only pixels with sigmoid(logit) > 0.3 count, in numerator and denominator;
  c[i] = mean over the views where vertex i received selected weight. One sparse product of the
  block matrix W [V*N, V*H*W] with the two columns (p * selected, selected) gives both sums.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ivlm_core.lift.pixel_maps import PixelMaps
from ivlm_core.render.rasterize import Fragments, compare, face_rows, flat_nonzero

HUMAN_LOGIT_CLAMP = 20.0
OBJECT_PIXEL_THRESHOLD = 0.3  # on probabilities, as upstream's object lifter (spec §4.4)


def _csr(indices: np.ndarray, values: np.ndarray, shape: tuple[int, int], device) -> torch.Tensor:
    """A float32 CSR matrix; duplicate entries (degenerate faces repeat a vertex) are summed."""
    coo = torch.sparse_coo_tensor(
        torch.from_numpy(indices), torch.from_numpy(values.astype(np.float32)), shape, check_invariants=False
    ).coalesce()
    with warnings.catch_warnings():  # torch flags CSR as beta; the product we use is long-standing
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr().to(device)


class LiftOperator:
    """Precomputed sparse lifting for one mesh and view set (build once, lift many masks)."""

    def __init__(self, maps: PixelMaps, device: torch.device | str = "cpu") -> None:
        self.view_names = maps.view_names
        self.num_vertices = n = maps.num_vertices
        self.num_views = v = len(maps.view_names)
        self.image_size = maps.image_size
        pixels = self.image_size[0] * self.image_size[1]
        valid = maps.valid().reshape(v, pixels)
        view_idx, pixel_idx = np.nonzero(valid)
        ids = maps.vertex_ids.reshape(v, pixels, 3)[view_idx, pixel_idx]  # [K, 3]
        weights = maps.bary.reshape(v, pixels, 3)[view_idx, pixel_idx]
        rows = (view_idx[:, None] * n + ids).reshape(-1)
        cols = np.repeat(view_idx * pixels + pixel_idx, 3)
        vals = weights.reshape(-1).astype(np.float64)
        # Per (view, vertex) weight sums: the human lifter's denominators and the visibility test.
        den = np.bincount(rows, weights=vals, minlength=v * n).reshape(v, n)
        self.visible_views = torch.from_numpy((den > 0).sum(0))
        self._blocks = _csr(np.stack([rows, cols]), vals, (v * n, v * pixels), device)
        count = np.maximum((den > 0).sum(0), 1)
        scale = 1.0 / np.where(den > 0, den, 1.0) / count[None, :]  # [V, N]
        human_vals = vals * scale.reshape(-1)[rows]
        self._human = _csr(np.stack([rows % n, cols]), human_vals, (n, v * pixels), device)
        self.device = torch.device(device)

    def _flatten(self, logits: torch.Tensor) -> torch.Tensor:
        expected = (self.num_views, *self.image_size)
        if tuple(logits.shape) != expected:
            raise ValueError(f"expected logits of shape {expected} (views, height, width), got {tuple(logits.shape)}")
        return logits.to(device=self.device, dtype=torch.float32).reshape(-1)

    def visible(self) -> torch.Tensor:
        """Vertices seen in at least one view, [N] bool."""
        return self.visible_views > 0

    def human(self, logits: torch.Tensor) -> torch.Tensor:
        """InteractVLM's soft human lifter: logits [V, H, W] -> contact [N] in [0, 1]."""
        prob = torch.sigmoid(self._flatten(logits).clamp(-HUMAN_LOGIT_CLAMP, HUMAN_LOGIT_CLAMP))
        return (self._human @ prob[:, None])[:, 0].clamp(0.0, 1.0)

    def object(self, logits: torch.Tensor, threshold: float = OBJECT_PIXEL_THRESHOLD) -> torch.Tensor:
        """InteractVLM's object-mesh lifter: logits [V, H, W] -> contact [N], 0 or in (threshold, 1]."""
        prob = torch.sigmoid(self._flatten(logits))
        selected = (prob > threshold).to(prob.dtype)
        sums = (self._blocks @ torch.stack([prob * selected, selected], dim=1)).reshape(
            self.num_views, self.num_vertices, 2
        )
        return _mean_over_views(sums[..., 0], sums[..., 1])


def _mean_over_views(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """The object lifter's last step: per (view, vertex) sums [V, N] -> the mean over views that saw it, [N]."""
    hit = compare(den, ">", 0)
    # num / den where hit, else 0, by arithmetic (torch.where ran 4.5 ns per element here, a fifth of a 1.3M-vertex
    # object's lift): where den is 0 so is num (its weights are den's), and dividing by den + 1 there gives 0.
    per_view = (num / (den + ~hit)) * hit
    return per_view.sum(0) / hit.sum(0).clamp(min=1)  # 0 where no view saw the vertex


def lift_object_once(
    fragments: Fragments,
    faces: torch.Tensor,
    num_vertices: int,
    logits: torch.Tensor,
    threshold: float = OBJECT_PIXEL_THRESHOLD,
) -> torch.Tensor:
    """`LiftOperator(PixelMaps.from_fragments(...)).object(logits)` for one mask set: contact [N].

    The operator's sparse matrices pay off when many masks go through one mesh (the canonical body). A
    user's object is lifted once per request, and building them for 4 x 1024^2 pixels took longer than
    the rest of its Contact stage; this visits only the pixels above the threshold, with the same sums.
    fragments: the object's 4 views [V, H, W]; logits [V, H, W].
    """
    device = logits.device
    face = fragments.pix_to_face.to(device)
    if tuple(logits.shape) != tuple(face.shape):
        raise ValueError(
            f"expected logits of shape {tuple(face.shape)} (views, height, width), got {tuple(logits.shape)}"
        )
    # The covered pixels as the rasteriser listed them (ascending flat index, as a scan of the images would
    # give), then those above the threshold; flat 1-D index_select: several times faster on the CPU than
    # [view, row, col] indexing, and no pass over the background.
    covered = fragments.covered()
    covered_logits = logits.reshape(-1).index_select(0, covered.index.to(device))
    covered_prob = torch.sigmoid(covered_logits.to(torch.float32))
    above = flat_nonzero(compare(covered_prob, ">", threshold))
    # Corner by corner, with 1-D gathers: the resolve keeps barycentrics as rows, and gathering [K, 3] rows of that
    # transposed view, with the arithmetic on them, took 0.36 s of a cube's 2.4M covered pixels (now 0.13 s). The
    # sums add in another order than the lift operator's: float-level differences, tested with a tolerance.
    above_there = above.to(covered.face.device)  # the fragments' device
    corners = covered.corner_ids(face_rows(faces), above_there).to(device)
    offset = covered.view.to(device).index_select(0, above) * num_vertices
    prob = covered_prob.index_select(0, above)
    sums = torch.zeros(2, face.shape[0] * num_vertices, dtype=torch.float32, device=device)
    for corner, row in zip(corners, covered.bary.T):
        index = corner + offset
        weights = row.index_select(0, above_there).to(device, torch.float32)
        sums[0].scatter_add_(0, index, weights * prob)
        sums[1].scatter_add_(0, index, weights)
    sums = sums.view(2, face.shape[0], num_vertices)
    return _mean_over_views(sums[0], sums[1])
