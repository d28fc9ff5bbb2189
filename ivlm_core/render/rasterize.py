"""Batched z-buffer rasterisation of one triangle mesh seen by B cameras, in pure PyTorch.

Written by hand because pytorch3d and nvdiffrast cannot be installed here; the algorithm is the plain
one and runs on CPU and CUDA alike:

1. Per (view, face): the pixel bounding box and the screen-space barycentric plane equations
   (computed in float64, relative to the box corner, so float32 evaluation stays accurate).
2. Faces are grouped by bounding-box size. Small boxes (the common case for dense meshes) are tested
   as dense [faces, w*h] grids by broadcasting; larger ones are enumerated pixel by pixel. Either way
   the number of (face, pixel) candidates in flight is bounded, which bounds memory.
3. A candidate inside the triangle gets a perspective-correct depth; `(depth bits << 32) | face`
   is min-reduced per pixel, so the nearest face wins (ties go to the lower face index). Positive
   float32 bit patterns sort like the floats, which makes this one scatter.
4. Barycentrics of the winning faces are recomputed once per pixel, perspective-correct
   (PyTorch3D's default for perspective cameras).

Pixel (row i, col j) is sampled at its centre, which is (u=j, v=i) in the OpenCV pixel convention.
No back-face culling (PyTorch3D's default): both windings are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_EMPTY = torch.iinfo(torch.int64).max
# Box sizes (width and height, in pixels) handled as dense grids; larger boxes are enumerated.
_GRID_TIERS = (1, 2, 3, 4, 6, 8, 12, 16)


@dataclass
class Fragments:
    """Per-pixel rasterisation result for B views of one mesh.

    pix_to_face: [B, H, W] int64 face index, -1 where no face covers the pixel centre.
    bary: [B, H, W, 3] perspective-correct barycentric weights of the face's 3 corners (0 on background).
    depth: [B, H, W] camera-space depth (CV_CAMERA z, metres) of the surface, +inf on background.
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        return self.pix_to_face >= 0

    def covered(self) -> CoveredPixels:
        """The pixels a face covers, as flat lists (shading only needs these)."""
        flat_face = self.pix_to_face.reshape(-1)
        index = (flat_face >= 0).nonzero()[:, 0]
        height, width = self.pix_to_face.shape[1:]
        return CoveredPixels(
            index=index,
            view=index // (height * width),
            face=flat_face[index],
            bary=self.bary.reshape(-1, 3)[index],
            shape=tuple(self.pix_to_face.shape),
        )


@dataclass
class CoveredPixels:
    """Covered pixels of a [B, H, W] image stack: flat index, view, face and barycentrics, each [K, ...]."""

    index: torch.Tensor
    view: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    shape: tuple[int, int, int]

    def interpolate(self, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        """Per-vertex attributes [N, C] (or per view [B, N, C]) at these pixels: [K, C]."""
        corners = faces[self.face]  # [K, 3]
        values = attributes[corners] if attributes.dim() == 2 else attributes[self.view[:, None], corners]
        return (self.bary.to(attributes.dtype)[..., None] * values).sum(-2)

    def to_image(self, values: torch.Tensor, background: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Scatters per-pixel values [K, C] into images [B, H, W, C] filled with `background`."""
        n = self.shape[0] * self.shape[1] * self.shape[2]
        image = torch.empty(n, values.shape[-1], dtype=values.dtype, device=values.device)
        image[:] = torch.as_tensor(background, dtype=values.dtype, device=values.device)
        image[self.index] = values
        return image.view(*self.shape, values.shape[-1])


def _face_planes(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int, znear: float):
    """Per (view, face) pixel boxes and barycentric planes, flattened to [B * F, ...].

    Returns planes [B*F, 12] = (a_k, b_k, c_k, 1/z_k) such that corner k's screen barycentric at pixel
    (x0 + dx, y0 + dy) is a_k dx + b_k dy + c_k, and box [B*F, 4] = (x0, y0, w, h), with w = h = 0 for
    faces that cannot be drawn (behind the camera, off screen, zero area, non-finite).
    Every quantity is built from coordinate differences, so float32 keeps sub-pixel accuracy.
    """
    tri = screen[:, faces]  # [B, F, 3 corners, (u, v, z)]
    u, v, z = tri[..., 0], tri[..., 1], tri[..., 2]
    x0 = torch.ceil(u.amin(-1)).clamp(min=0)
    x1 = torch.floor(u.amax(-1)).clamp(max=width - 1)
    y0 = torch.ceil(v.amin(-1)).clamp(min=0)
    y1 = torch.floor(v.amax(-1)).clamp(max=height - 1)
    nxt, prv = [1, 2, 0], [2, 0, 1]
    du = u[..., prv] - u[..., nxt]  # the edge opposite each corner
    dv = v[..., prv] - v[..., nxt]
    area = du[..., 0] * (v[..., 0] - v[..., 1]) - dv[..., 0] * (u[..., 0] - u[..., 1])  # signed double area
    # NaN/inf coordinates fail these comparisons, so they are dropped here too.
    usable = (z > znear).all(-1) & (area != 0) & torch.isfinite(area) & (x1 >= x0) & (y1 >= y0)
    inv_area = 1.0 / torch.where(usable, area, torch.ones_like(area))
    a = -dv * inv_area[..., None]
    b = du * inv_area[..., None]
    c = (du * (y0[..., None] - v[..., nxt]) - dv * (x0[..., None] - u[..., nxt])) * inv_area[..., None]
    planes = torch.cat([a, b, c, 1.0 / z], dim=-1).reshape(-1, 12).to(torch.float32)
    zero = torch.zeros_like(x0)
    box = torch.stack(
        [
            torch.where(usable, x0, zero),
            torch.where(usable, y0, zero),
            torch.where(usable, x1 - x0 + 1, zero),
            torch.where(usable, y1 - y0 + 1, zero),
        ],
        dim=-1,
    )
    return planes, box.reshape(-1, 4).to(torch.int64)


def _scatter_candidates(
    zbuf: torch.Tensor,
    planes: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
    valid: torch.Tensor,
    pixel_base: torch.Tensor,
    face: torch.Tensor,
    width: int,
    znear: float,
) -> None:
    """Tests candidates and min-reduces their packed (depth, face) keys into zbuf.

    planes [P, 12] and pixel_base, face [P, 1] broadcast against dx, dy, valid [P, K] (or [K]).
    """
    dxf, dyf = dx.to(torch.float32), dy.to(torch.float32)
    l0 = planes[:, 0:1] * dxf + planes[:, 3:4] * dyf + planes[:, 6:7]
    l1 = planes[:, 1:2] * dxf + planes[:, 4:5] * dyf + planes[:, 7:8]
    l2 = planes[:, 2:3] * dxf + planes[:, 5:6] * dyf + planes[:, 8:9]
    inv_z = l0 * planes[:, 9:10] + l1 * planes[:, 10:11] + l2 * planes[:, 11:12]
    inside = valid & (l0 >= 0) & (l1 >= 0) & (l2 >= 0) & (inv_z * znear < 1) & (inv_z > 0)
    if not bool(inside.any()):
        return
    rows, cols = inside.nonzero(as_tuple=True)
    dx_i = dx.expand_as(inside)[rows, cols]
    dy_i = dy.expand_as(inside)[rows, cols]
    pixel = pixel_base[rows, 0] + dy_i * width + dx_i
    depth_bits = (1.0 / inv_z[rows, cols]).view(torch.int32).to(torch.int64)
    zbuf.scatter_reduce_(0, pixel, (depth_bits << 32) | face[rows, 0], reduce="amin")


def _rasterize_small(zbuf, planes, box, pixel_base, face, sel, tier, width, znear, max_candidates) -> None:
    """Faces whose box fits in tier x tier pixels, tested as dense grids (no per-pixel gathers)."""
    offsets = torch.arange(tier * tier, device=zbuf.device)
    dx, dy = offsets % tier, offsets // tier
    step = max(1, max_candidates // (tier * tier))
    for start in range(0, sel.numel(), step):
        idx = sel[start : start + step]
        valid = (dx < box[idx, 2:3]) & (dy < box[idx, 3:4])
        _scatter_candidates(zbuf, planes[idx], dx, dy, valid, pixel_base[idx, None], face[idx, None], width, znear)


def _rasterize_large(zbuf, planes, box, pixel_base, face, sel, width, znear, max_candidates) -> None:
    """Faces with larger boxes: every box pixel enumerated, in chunks of about max_candidates."""
    if sel.numel() == 0:
        return
    counts = box[sel, 2] * box[sel, 3]
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < sel.numel():
        base = int(ends[start - 1]) if start > 0 else 0
        stop = int(torch.searchsorted(ends, base + max_candidates, right=True))
        stop = max(stop, start + 1)  # one face bigger than the budget still goes through alone
        idx = sel[start:stop]
        n = counts[start:stop]
        owner = torch.repeat_interleave(torch.arange(idx.numel(), device=zbuf.device), n)
        first = torch.cumsum(n, 0) - n
        local = torch.arange(owner.numel(), device=zbuf.device) - first[owner]
        box_w = box[idx, 2][owner]
        dx, dy = local % box_w, local // box_w
        ones = torch.ones_like(dx, dtype=torch.bool)
        _scatter_candidates(
            zbuf,
            planes[idx][owner],
            dx[:, None],
            dy[:, None],
            ones[:, None],
            pixel_base[idx][owner][:, None],
            face[idx][owner][:, None],
            width,
            znear,
        )
        start = stop


def _resolve(zbuf, screen, faces, n_views, height, width) -> Fragments:
    """Decodes the winning faces and computes their perspective-correct barycentrics and depth."""
    device = screen.device
    hit = zbuf != _EMPTY
    face = torch.where(hit, zbuf & 0xFFFFFFFF, torch.full_like(zbuf, -1))
    bary = torch.zeros(n_views * height * width, 3, dtype=screen.dtype, device=device)
    depth = torch.full((n_views * height * width,), float("inf"), dtype=screen.dtype, device=device)
    pix = hit.nonzero()[:, 0]
    if pix.numel():
        view = pix // (height * width)
        corners = screen[view[:, None], faces[face[pix]]]  # [K, 3 corners, (u, v, z)]
        # Pixel and corners relative to corner 0, so the edge functions lose no precision.
        pu = (pix % width).to(screen.dtype) - corners[:, 0, 0]
        pv = ((pix // width) % height).to(screen.dtype) - corners[:, 0, 1]
        u1, v1 = corners[:, 1, 0] - corners[:, 0, 0], corners[:, 1, 1] - corners[:, 0, 1]
        u2, v2 = corners[:, 2, 0] - corners[:, 0, 0], corners[:, 2, 1] - corners[:, 0, 1]
        l1 = pu * v2 - pv * u2
        l2 = u1 * pv - v1 * pu
        area = u1 * v2 - v1 * u2
        screen_bary = torch.stack([area - l1 - l2, l1, l2], dim=-1) / area[:, None]
        weighted = screen_bary / corners[..., 2]
        total = weighted.sum(-1, keepdim=True)
        bary[pix] = weighted / total
        depth[pix] = 1.0 / total[:, 0]
    return Fragments(
        face.view(n_views, height, width),
        bary.view(n_views, height, width, 3),
        depth.view(n_views, height, width),
    )


def rasterize(
    screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    *,
    znear: float = 1e-3,
    max_candidates: int = 1 << 21,
) -> Fragments:
    """Rasterises one mesh seen by B cameras.

    screen: [B, N, 3] per-view vertex (u, v, z): pixel coordinates (OpenCV convention) and CV_CAMERA depth.
    faces: [F, 3] vertex indices.
    image_size: (height, width).
    max_candidates: (face, pixel) tests in flight at once; bounds peak memory (roughly 100 bytes each).
    """
    height, width = image_size
    n_views = screen.shape[0]
    faces = faces.to(device=screen.device, dtype=torch.int64)
    zbuf = torch.full((n_views * height * width,), _EMPTY, dtype=torch.int64, device=screen.device)
    # Faces go through in chunks so the per-face tables stay bounded for meshes of millions of faces.
    face_chunk = max(1, max_candidates // (4 * n_views))
    for first in range(0, faces.shape[0], face_chunk):
        chunk = faces[first : first + face_chunk]
        planes, box = _face_planes(screen, chunk, height, width, znear)
        pair = torch.arange(box.shape[0], device=screen.device)
        face = pair % chunk.shape[0] + first
        pixel_base = (pair // chunk.shape[0]) * (height * width) + box[:, 1] * width + box[:, 0]
        size = torch.maximum(box[:, 2], box[:, 3])
        lower = 0
        for tier in _GRID_TIERS:
            sel = ((size > lower) & (size <= tier)).nonzero()[:, 0]
            if sel.numel():
                _rasterize_small(zbuf, planes, box, pixel_base, face, sel, tier, width, znear, max_candidates)
            lower = tier
        large = (size > lower).nonzero()[:, 0]
        _rasterize_large(zbuf, planes, box, pixel_base, face, large, width, znear, max_candidates)
    return _resolve(zbuf, screen, faces, n_views, height, width)
