"""Batched z-buffer rasterisation of one triangle mesh seen by B cameras, in pure PyTorch.

Written by hand because pytorch3d and nvdiffrast cannot be installed here; it runs on CPU and CUDA alike:

1. Per (face, view): the pixel bounding box, from per-coordinate gathers of the corners in all views; back
   faces where culling is exact (below) are dropped before their corners are gathered, and pairs whose box holds
   no pixel centre (a fifth of a 1.3M-face scan's front faces at 1024^2) before any per-face setup. The kept
   pairs get screen-space barycentric plane equations (computed relative to the box corner, so float32
   evaluation stays accurate).
2. A face whose box holds one pixel centre (a third of a dense scan's kept pairs) is tested there only, in a
   set-up fused with its test (its barycentrics there are the planes' constants); boxes of at most 3 x 3
   pixels (most of the rest on a scan) are tested offset by offset on per-quantity plane rows. Larger boxes
   up to 64 x 64 are tested as dense [faces, w*h] grids by broadcasting when that is cheaper than spans:
   no per-pixel gathers, and one sort groups the pairs by grid shape; these pairs are gathered over face chunks
   and drawn together. All three evaluate the same plane expressions (the small boxes leave out terms that add
   zero or multiply by one, which changes no value), so which path a face takes never changes a result.
3. Larger faces are walked row by row: on each pixel row of its box, the three edge functions give the
   span [x_left, x_right] inside the triangle in closed form, widened by one pixel on each side against
   rounding, and only the pixels of that span are tested. The work per face is its rows plus its covered
   pixels, not its box area: a long diagonal sliver (a fanned n-gon cap, a CAD fan) used to cost its whole
   box (88 M pixel tests for 0.3 M covered pixels on a 300-section cylinder). Spans were chosen over
   tiles because a tile test still grows with the box area (1/64 of it for 8 x 8 tiles), and over
   splitting faces because spans keep one plane equation per face and need no new geometry.
   (face, row) pairs and span pixels go through in chunks of at most `max_candidates`, which bounds memory.
4. A candidate inside the triangle gets a perspective-correct depth; `(depth bits << 32) | face`
   is min-reduced per pixel, so the nearest face wins (ties go to the lower face index). Positive
   float32 bit patterns sort like the floats, which makes this one scatter.
5. Barycentrics of the winning faces are recomputed once per pixel, perspective-correct
   (PyTorch3D's default for perspective cameras).

`rasterize` takes screen-space corners and needs every drawn face in front of the near plane: a face with
a corner closer than `znear` is dropped there. Callers with camera-space points clip first: `clip_near`
cuts faces that cross `znear` (in camera space, before the perspective divide) into 1 or 2 triangles per
view, and `NearClip.restore` gives their pixels the original face id and barycentrics w.r.t. the original
triangle (`renderer.rasterize_mesh` does both).

On the CPU, compactions and comparisons go through numpy (`flat_nonzero`, `compare`): torch's, in the CPU
build this project pins, branched per element or ran unvectorised (figures in the README's benchmarks).

Pixel (row i, col j) is sampled at its centre, which is (u=j, v=i) in the OpenCV pixel convention.

Back faces: by default both windings are drawn (PyTorch3D's default), which open meshes (a sheet, a mug
without a bottom) need. `cull` (`BackFaces`) skips the faces whose plane has the camera behind it, tested in
world space on each face's plane (shared with the vertex normals) before any screen-space work, so a skipped pair
costs one 4-term dot product. `renderer.rasterize_mesh` asks for it only where it cannot change the nearest face:
a closed mesh (every directed edge matched by its reverse) whose connected parts are all wound the same way
(`mesh.closed_orientation`, worked out once per mesh), a camera outside its bounding box, and no vertex nearer
than znear (a near-plane cut would open the mesh onto its inside). From outside such a surface a ray's first
crossing enters it, through a face turned towards the camera, unless the mesh passes through itself inside out
(a twisted sweep: the demo mug's handle, where 81 of 4.2M pixels differ, within the tests' Embree agreement).
Culling halves the per-face work of a closed mesh and the pixel tests of its large faces. A face is skipped only
when the camera is behind its plane by a margin far above float32 rounding, so edge-on faces are always drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

_EMPTY = torch.iinfo(torch.int64).max
# Box widths and heights (pixels) of the dense grids. A face is tested on the smallest grid that holds its
# box when that costs no more than its spans would, or when the grid is tiny anyway. Costs are in units of
# one grid test: a span line about _ROW_COST, a span pixel _PIXEL_COST (set by timing the demo mug, whose
# 20-60 px faces sit at the boundary, and primitive cylinders on the project's CPU; results never depend on them).
_GRID_TIERS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
_ALWAYS_GRID_AREA = 64
_ROW_COST = 8
_PIXEL_COST = 1.5


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices [K] (int64) of the true elements of a bool tensor, in row-major order of its flattened elements.

    On the CPU this is numpy's flatnonzero: it does not branch per element, while torch.nonzero's cost grows with
    how mixed the mask is (measured here on 0.5M elements: 0.3 ms against 1.1 ms at 10 % true and 3.3 ms at 50 %;
    every compaction of the rasteriser goes through it). Elsewhere, torch.nonzero.
    """
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.contiguous().numpy())).to(torch.int64)
    return mask.reshape(-1).nonzero()[:, 0]


def face_rows(faces: torch.Tensor) -> torch.Tensor:
    """Faces [F, 3] as contiguous corner rows [3, F]: a view where faces already is a view of such rows (the
    canonical renders build them so), else a copy, through numpy on the CPU (torch's strided copy of a
    1.3M-face [F, 3] int64 tensor took 20 ms here, numpy's 5; renders used to make it four times)."""
    rows = faces.T
    if rows.is_contiguous():
        return rows
    if faces.device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(faces.detach().numpy().T))
    return rows.contiguous()


_COMPARISONS = {
    ">=": (np.greater_equal, torch.ge),
    ">": (np.greater, torch.gt),
    "<=": (np.less_equal, torch.le),
    "<": (np.less, torch.lt),
    "==": (np.equal, torch.eq),
    "!=": (np.not_equal, torch.ne),
}


def compare(a: torch.Tensor, op: str, b: torch.Tensor | float) -> torch.Tensor:
    """`a op b` as a bool tensor (op one of >= > <= < == !=), with torch's broadcasting.

    On the CPU through numpy: torch's comparisons into bool ran 0.56-0.82 ns per element here, numpy's
    0.07-0.12, and the rasteriser makes a few per (face, view) pair and per pixel test. Elsewhere, torch.
    """
    numpy_op, torch_op = _COMPARISONS[op]
    if a.device.type == "cpu":
        other = b.detach().numpy() if isinstance(b, torch.Tensor) else b
        return torch.from_numpy(np.asarray(numpy_op(a.detach().numpy(), other)))
    return torch_op(a, b)


@dataclass
class Fragments:
    """Per-pixel rasterisation result for B views of one mesh.

    pix_to_face: [B, H, W] int64 face index, -1 where no face covers the pixel centre.
    bary: [B, H, W, 3] perspective-correct barycentric weights of the face's 3 corners (0 on background);
        `rasterize` leaves it to be scattered from `listed` on first use (shading and the object lift read the
        covered pixels only, and at 4 x 1024^2 this image is 48 MB to fill).
    depth: [B, H, W] camera-space depth (CV_CAMERA z, metres) of the surface, +inf on background.
    """

    pix_to_face: torch.Tensor
    _bary: torch.Tensor | None
    depth: torch.Tensor
    # The covered pixels as `rasterize` found them (it has them at hand); None: listed from the images.
    listed: CoveredPixels | None = field(default=None, repr=False, compare=False)

    @property
    def bary(self) -> torch.Tensor:
        if self._bary is None:
            if self.listed is None:
                raise ValueError("fragments without barycentrics need their covered pixels listed")
            self._bary = self.listed.to_image(self.listed.bary)
        return self._bary

    @property
    def mask(self) -> torch.Tensor:
        return self.pix_to_face >= 0

    def covered(self) -> CoveredPixels:
        """The pixels a face covers, as flat lists (shading only needs these)."""
        if self.listed is not None:
            return self.listed
        flat_face = self.pix_to_face.reshape(-1)
        index = flat_nonzero(flat_face >= 0)
        views, height, width = self.pix_to_face.shape
        return CoveredPixels(  # index_select, not [index]: several times faster on the CPU
            index=index,
            view=index // (height * width),
            face=flat_face.index_select(0, index),
            bary=self.bary.reshape(-1, 3).index_select(0, index),
            shape=(views, height, width),
        )


@dataclass
class CoveredPixels:
    """Covered pixels of a [B, H, W] image stack: flat index, view, face and barycentrics, each [K, ...].

    corners: [3, K] vertex ids of each pixel's face, where the rasteriser had them at hand (else None)."""

    index: torch.Tensor
    view: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    shape: tuple[int, int, int]
    corners: torch.Tensor | None = None

    def corner_ids(self, faces_t: torch.Tensor, pixels: slice | torch.Tensor) -> torch.Tensor:
        """[3, k] vertex ids of the faces at pixels (a slice of the K, or indices [k] into them), given faces_t
        [3, F]: the resolve's, where it kept them, else gathered from faces_t."""
        # Indices: row by row, 1-D gathers (a dim-1 gather of the [3, K] table ran at a third of their speed).
        if self.corners is not None:
            if isinstance(pixels, slice):
                return self.corners[:, pixels]
            return torch.stack([row.index_select(0, pixels) for row in self.corners])
        face = self.face[pixels] if isinstance(pixels, slice) else self.face.index_select(0, pixels)
        return torch.stack([row.index_select(0, face) for row in faces_t])

    def interpolate(self, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        """Per-vertex attributes [N, C] (or per view [B, N, C]) at these pixels: [K, C]."""
        corners = faces[self.face]  # [K, 3]
        bary = self.bary.to(attributes.dtype)
        flat = attributes if attributes.dim() == 2 else attributes.reshape(-1, attributes.shape[-1])
        offset = 0 if attributes.dim() == 2 else self.view * attributes.shape[1]
        out = bary[:, :1] * flat.index_select(0, corners[:, 0] + offset)  # three row gathers: no [K, 3, C] temporary
        out.addcmul_(bary[:, 1:2], flat.index_select(0, corners[:, 1] + offset))
        return out.addcmul_(bary[:, 2:3], flat.index_select(0, corners[:, 2] + offset))

    def to_image(self, values: torch.Tensor, background: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Scatters per-pixel values [K, C] into images [B, H, W, C] filled with `background`."""
        n = self.shape[0] * self.shape[1] * self.shape[2]
        fill = torch.as_tensor(background, dtype=values.dtype, device=values.device).expand(values.shape[-1])
        if bool((fill == fill[0]).all()):  # one value (a white or black background): a plain fill
            image = torch.full((n, values.shape[-1]), fill[0].item(), dtype=values.dtype, device=values.device)
        else:
            image = fill.repeat(n, 1)
        if values.shape[-1] > 1 and values.stride(0) == 1:
            # Values given as channel rows (shading's [C, K] transposed): one 1-D copy per channel into the
            # image's strided column; a transposing copy of [K, C] first cost about twice as much here.
            for c in range(values.shape[-1]):
                image[:, c].index_copy_(0, self.index, values[:, c])
        else:
            image.index_copy_(0, self.index, values.contiguous())
        return image.view(*self.shape, values.shape[-1])


@dataclass(frozen=True)
class BackFaces:
    """The (view, face) pairs `rasterize` may skip as back faces, decided in world space before any corner is
    gathered in screen space (`renderer.back_face_culling` says where that is exact).

    planes: [4, F] per face (n, -n . p0): its normal n = (p1 - p0) x (p2 - p0), turned outwards, and first
        corner p0, so planes^T (x, 1) is |n| times the signed distance of a point x from the face's plane.
    eyes: [B, 4] per view (camera centre, 1), or zeros where the view draws both windings.
    limit: [F] a face is skipped only when eyes . planes is below this (a negative margin far above float32
        rounding), so edge-on faces are always drawn.
    """

    planes: torch.Tensor
    eyes: torch.Tensor
    limit: torch.Tensor

    @property
    def views(self) -> torch.Tensor:
        """[B] bool: which views skip back faces."""
        return self.eyes[:, 3] != 0

    def drawn(self, faces: slice) -> torch.Tensor:
        """[B, f] bool: which (view, face) pairs of the faces in `faces` (a slice of the F) to draw."""
        behind = compare(self.eyes @ self.planes[:, faces], "<", self.limit[faces])
        return ~behind  # NaN (a non-finite corner) is drawn: its box drops it as before


@dataclass
class NearClip:
    """Faces that cross the near plane, cut per view, to rasterise after the mesh's own faces.

    vertices: [B, 3T, 3] camera-space corners of the T cut triangles, 3 each; a triangle's corners sit behind
        the camera in every view but its own, so only that view draws it.
    faces: [T, 3] indices into [mesh vertices, these vertices] (the mesh has num_vertices).
    source: [T] the face each cut triangle came from; corner_bary: [T, 3, 3], row j the barycentrics of
        corner j w.r.t. that source face (cut corners lie on its edges).
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    source: torch.Tensor
    corner_bary: torch.Tensor
    num_faces: int

    def restore(self, fragments: Fragments) -> Fragments:
        """Pixels drawn by cut triangles get their source face id and barycentrics w.r.t. the source face."""
        face = fragments.pix_to_face
        cut = face >= self.num_faces
        index = face[cut] - self.num_faces
        pix_to_face = face.clone()
        pix_to_face[cut] = self.source[index]
        bary = fragments.bary.clone()
        # Barycentrics compose: the point is sum_j b_j corner_j and corner_j = sum_k C[j, k] source corner_k.
        bary[cut] = torch.einsum("kj,kjc->kc", bary[cut], self.corner_bary[index].to(bary.dtype))
        return Fragments(pix_to_face, bary, fragments.depth)


def clip_near(points: torch.Tensor, faces: torch.Tensor, znear: float) -> NearClip | None:
    """Cuts faces crossing z = znear in camera space (before the perspective divide), per view.

    points: [B, N, 3] CV_CAMERA positions (z forward); faces [F, 3]. A face with 1 corner closer than znear
    leaves a quad in front (2 triangles), one with 2 leaves a triangle; faces wholly in front or wholly
    closer are left to `rasterize` (drawn and dropped). Returns None when no face crosses in any view.
    """
    device, dtype = points.device, points.dtype
    near = points[..., 2] < znear  # [B, N]
    if not bool(near.any()):  # the usual case: no corner is near, so no face crosses (skips a [B, F, 3] gather)
        return None
    behind = near[:, faces]  # [B, F, 3]
    count = behind.sum(-1)
    view, face = ((count == 1) | (count == 2)).nonzero(as_tuple=True)
    if view.numel() == 0:
        return None
    one_behind = count[view, face] == 1
    corner_behind = behind[view, face]  # [M, 3]
    # Rotate each triangle (keeping its winding) so corner 0 is the odd one: alone behind, or alone in front.
    odd = torch.where(one_behind[:, None], corner_behind, ~corner_behind)
    order = (odd.to(torch.int64).argmax(-1, keepdim=True) + torch.arange(3, device=device)) % 3  # [M, 3]
    corner = points[view[:, None], faces[face[:, None], order]]  # [M, 3, 3]
    bary = torch.eye(3, dtype=dtype, device=device)[order]  # [M, 3, 3] rotated corners w.r.t. the face
    cut_points, cut_bary = [], []
    for k in (1, 2):  # where edges 0 -> 1 and 0 -> 2 meet the plane (corner 0 is on the other side)
        t = ((znear - corner[:, 0, 2]) / (corner[:, k, 2] - corner[:, 0, 2]))[:, None]
        point = corner[:, 0] + t * (corner[:, k] - corner[:, 0])
        cut_points.append(torch.cat([point[:, :2], torch.full_like(point[:, 2:], znear)], -1))
        cut_bary.append(bary[:, 0] + t * (bary[:, k] - bary[:, 0]))
    q1, q2, b1, b2 = cut_points[0], cut_points[1], cut_bary[0], cut_bary[1]
    p0, p1, p2 = corner.unbind(1)
    e0, e1, e2 = bary.unbind(1)
    # One behind: the quad (q1, p1, p2, q2) as (q1, p1, p2) + (q1, p2, q2). Two behind: (p0, q1, q2).
    mask = one_behind[:, None, None]
    first = torch.where(mask, torch.stack([q1, p1, p2], 1), torch.stack([p0, q1, q2], 1))
    first_bary = torch.where(mask, torch.stack([b1, e1, e2], 1), torch.stack([e0, b1, b2], 1))
    second = torch.stack([q1, p2, q2], 1)[one_behind]
    second_bary = torch.stack([b1, e2, b2], 1)[one_behind]
    tri = torch.cat([first, second])  # [T, 3, 3]
    tri_view = torch.cat([view, view[one_behind]])
    n_tri = tri.shape[0]
    vertices = torch.zeros(points.shape[0], 3 * n_tri, 3, dtype=dtype, device=device)
    vertices[..., 2] = -1.0  # behind every camera ...
    vertices.view(points.shape[0], n_tri, 3, 3)[tri_view, torch.arange(n_tri, device=device)] = tri  # ... but its own
    return NearClip(
        vertices=vertices,
        faces=points.shape[1] + torch.arange(3 * n_tri, device=device).view(n_tri, 3),
        source=torch.cat([face, face[one_behind]]),
        corner_bary=torch.cat([first_bary, second_bary]),
        num_faces=faces.shape[0],
    )


def _face_boxes(
    coords: torch.Tensor,
    faces_t: torch.Tensor,
    first: int,
    height: int,
    width: int,
    znear: float,
    any_near: bool,
    cull: BackFaces | None = None,
) -> list[_Pairs]:
    """The (view, face) pairs whose pixel box holds a pixel centre, and their corners, in four groups by the
    box's longer side: one pixel centre (most of a dense scan's, drawn by `_scatter_one_pixel` with no plane
    set-up), at most 2 x 2 and 3 x 3 (`_scatter_small`), and larger.

    coords: [3, B, N] per-coordinate rows (u, v, z) of every view's vertices; faces_t: [3, F] corner ids of the
    faces first .. first + F of the mesh. Corners come from 1-D gathers and every box quantity is an element-wise
    pass over the candidate pairs (on the CPU, gathering [N, B, 3] rows and reducing over a corner axis cost
    several times more). Candidates are all B x F pairs, or those `cull` draws (about half of a closed mesh's):
    skipped before their corners are gathered. Each group is face [P] (column of `faces_t`), view [P], corners
    [9, P] = (u_0..2, v_0..2, z_0..2) and box corners [4, P] = (x0, y0, x1, y1) as floats ([2, P] = (x0, y0) for
    the one-pixel boxes), in view-major order. On meshes of sub-pixel faces many pairs hold no pixel centre; they
    are dropped here, before any per-face setup. any_near: some vertex is closer than znear (else not tested).
    """
    n_views = coords.shape[1]
    n_faces = faces_t.shape[1]
    if cull is None:  # every pair, as [B, F] rows flattened view-major
        u, v, z = ([coords[c].index_select(1, faces_t[k]).view(-1) for k in range(3)] for c in range(3))
        candidate_face = candidate_view = None
    else:
        # View by view: its drawn faces, and their corners gathered from that view's coordinate rows (no flat
        # view-major index to split into view and face, no per-corner view offset).
        per_view = [flat_nonzero(drawn_row) for drawn_row in cull.drawn(slice(first, first + n_faces))]
        counts = [ids.shape[0] for ids in per_view]
        candidate_face = torch.cat(per_view)
        candidate_view = torch.repeat_interleave(
            torch.arange(n_views, device=coords.device), torch.tensor(counts, device=coords.device)
        )
        corner = [faces_t[k].index_select(0, candidate_face) for k in range(3)]
        gathered = torch.empty(3, 3, candidate_face.shape[0], dtype=coords.dtype, device=coords.device)
        start = 0
        for view_id, count in enumerate(counts):
            part = slice(start, start + count)
            for c in range(3):
                for k in range(3):
                    torch.index_select(coords[c, view_id], 0, corner[k][part], out=gathered[c, k, part])
            start += count
        u, v, z = ([gathered[c, k] for k in range(3)] for c in range(3))
    x0 = torch.ceil(torch.minimum(torch.minimum(u[0], u[1]), u[2])).clamp_(min=0)
    x1 = torch.floor(torch.maximum(torch.maximum(u[0], u[1]), u[2])).clamp_(max=width - 1)
    y0 = torch.ceil(torch.minimum(torch.minimum(v[0], v[1]), v[2])).clamp_(min=0)
    y1 = torch.floor(torch.maximum(torch.maximum(v[0], v[1]), v[2])).clamp_(max=height - 1)
    # NaN/inf coordinates fail these comparisons, so they are dropped here too.
    drawn = compare(x1, ">=", x0) & compare(y1, ">=", y0)
    if any_near:
        drawn &= (z[0] >= znear) & (z[1] >= znear) & (z[2] >= znear)
    last = torch.maximum(x1 - x0, y1 - y0)  # the box's longer side - 1 (where drawn)
    # The groups' members among the candidates, one after the other; each candidate row is then gathered once for
    # all of them (gathering it once per group swept it four times and cost half again as much on a dense scan).
    members = [
        flat_nonzero(drawn & in_group)
        for in_group in (compare(last, "==", 0), compare(last, "==", 1), compare(last, "==", 2), compare(last, ">", 2))
    ]
    order = torch.cat(members)  # into the candidates
    rows = u + v + z + [x0, y0, x1, y1]
    table = torch.empty(len(rows), order.shape[0], dtype=x0.dtype, device=x0.device)
    for k, row in enumerate(rows):
        torch.index_select(row, 0, order, out=table[k])
    if candidate_face is None or candidate_view is None:
        view = torch.cat([_runs(sel, n_views, n_faces) for sel in members])  # each member ascends
        face = order - view * n_faces
    else:
        face, view = candidate_face.index_select(0, order), candidate_view.index_select(0, order)
    groups, start = [], 0
    for group, sel in enumerate(members):
        part = slice(start, start + sel.shape[0])
        box_rows = table[9:11, part] if group == 0 else table[9:, part]
        groups.append((face[part], view[part], table[:9, part], box_rows))
        start += sel.shape[0]
    return groups


_Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # face, view, corners, box (`_face_boxes`)


def _inside(l0: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, inv_z: torch.Tensor, znear: float) -> torch.Tensor:
    """The one coverage test every path makes: screen barycentrics l0..2 all >= 0 and 1/depth inv_z in front of
    the near plane (0 < inv_z, inv_z * znear <= 1).

    Written as one comparison of a running minimum (two comparisons into bool instead of five, each dearer than
    a minimum). It is the same test: 1 - x >= 0 exactly when x <= 1 (a rounded difference keeps its sign), and
    NaN fails both forms."""
    low = torch.minimum(torch.minimum(l0, l1), torch.minimum(l2, 1 - inv_z * znear))
    return compare(low, ">=", 0) & compare(inv_z, ">", 0)


def _depth_keys(inv_z: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """z-buffer keys `(depth bits << 32) | face` of candidates with 1/depth inv_z (float32): positive float32 bit
    patterns sort like the floats, so a min-reduction keeps the nearest face (ties: the lower index)."""
    return ((1.0 / inv_z).view(torch.int32).to(torch.int64) << 32) | face


def _scatter_one_pixel(zbuf: torch.Tensor, pairs: _Pairs, first: int, height: int, width: int, znear: float) -> None:
    """Pairs whose box holds one pixel centre: the one test, at the box corner, fused into the set-up.

    The same arithmetic, in the same order, as `_plane_rows` then a test at that corner (where the
    barycentrics are the planes' constants c_k), without the planes' other 6 rows.
    """
    face, view, tri, corner = pairs
    u = tri[0:3] - corner[0]
    v = tri[3:6] - corner[1]
    nxt, far = [1, 2, 0], [2, 0, 1]
    c = u[nxt] * v[far] - u[far] * v[nxt]
    area = c[0] + c[1] + c[2]
    bary = (c / area).to(torch.float32)
    inv_z = (1.0 / tri[6:9]).to(torch.float32)
    inv_z = bary[0] * inv_z[0] + bary[1] * inv_z[1] + bary[2] * inv_z[2]
    # As `_plane_rows`' keep: zero area, or planes that overflow (|du|, |dv| / area; a sliver), cover nothing.
    # |x| < inf is isfinite(x) (NaN fails it), several times cheaper; zero area makes the ratio inf or NaN.
    spread = (u.abs().amax(0) + v.abs().amax(0)) * 2
    hit = _inside(bary[0], bary[1], bary[2], inv_z, znear)
    hit &= compare((spread / area).to(torch.float32).abs(), "<", float("inf"))
    hit = flat_nonzero(hit)
    pixel = (view.index_select(0, hit) * (height * width)).add_(
        (corner[1].index_select(0, hit) * width + corner[0].index_select(0, hit)).to(torch.int64)
    )
    keys = _depth_keys(inv_z.index_select(0, hit), face.index_select(0, hit) + first)
    zbuf.scatter_reduce_(0, pixel, keys, reduce="amin")


def _plane_rows(tri: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Barycentric plane equations of (face, view) pairs, one row per quantity.

    tri [9, P] corners (u_0..2, v_0..2, z_0..2), box [>=2, P] from `_face_boxes`. Returns rows [12, P] float32 =
    (a_k, b_k, c_k, 1/z_k) such that corner k's screen barycentric at pixel (x0 + dx, y0 + dy) is
    a_k dx + b_k dy + c_k, twice the signed screen area [P] in pixels, and which pairs to keep [P] (zero area,
    and slivers whose planes overflow, cover nothing).
    Every quantity is built from coordinates relative to the box corner, so float32 keeps sub-pixel accuracy.
    """
    u = tri[0:3] - box[0]
    v = tri[3:6] - box[1]
    rows = torch.empty(12, tri.shape[1], dtype=tri.dtype, device=tri.device)
    for k, (nxt, far) in enumerate(((1, 2), (2, 0), (0, 1))):  # edge k runs from corner k + 1 to corner k + 2
        torch.sub(v[nxt], v[far], out=rows[k])
        torch.sub(u[far], u[nxt], out=rows[3 + k])
        # Twice the signed area of (pixel, corner k + 1, corner k + 2).
        torch.mul(u[nxt], v[far], out=rows[6 + k]).sub_(u[far] * v[nxt])
    area = rows[6] + rows[7] + rows[8]  # twice the face's signed area
    rows[:9].div_(area)
    torch.reciprocal(tri[6:9], out=rows[9:])
    rows = rows.to(torch.float32)
    # Zero area makes the planes inf or NaN; |x| < inf is isfinite(x), several times cheaper.
    return rows, area, compare(rows.abs().amax(0), "<", float("inf"))


def _scatter_small(
    zbuf: torch.Tensor,
    rows: torch.Tensor,
    keep: torch.Tensor,
    pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    side: int,
    first: int,
    height: int,
    width: int,
    znear: float,
) -> None:
    """Pairs whose box is at most side x side pixels (side <= 3: 97 % of a dense scan's others), tested at each
    of the side^2 offsets with per-quantity rows: the same arithmetic as the dense grids of `_scatter_candidates`,
    without the planes' transposition, the sort by grid shape and its gathers. Terms whose offset is 0 are left
    out: they add a zero, which can only change the sign of a zero result, and no test or depth reads that.
    rows [12, P] and keep [P] from `_plane_rows` for these pairs; pairs: face, view, box corners [4, P]
    (`_face_boxes`)."""
    face, view, box = pairs
    base = view * (height * width) + (box[1] * width + box[0]).to(torch.int64)
    # Which pairs reach each column / row offset, worked out once rather than at every offset.
    reach_x = [keep] + [keep & compare(box[2] - box[0], ">=", dx) for dx in range(1, side)]
    reach_y = [compare(box[3] - box[1], ">=", dy) for dy in range(1, side)]  # offsets 1 .. side - 1
    a0, a1, a2, b0, b1, b2, c0, c1, c2, w0, w1, w2 = rows
    for dy in range(side):
        for dx in range(side):
            l0, l1, l2 = (_offset_value(a, b, c, dx, dy) for a, b, c in ((a0, b0, c0), (a1, b1, c1), (a2, b2, c2)))
            inv_z = l0 * w0 + l1 * w1 + l2 * w2
            inside = _inside(l0, l1, l2, inv_z, znear) & reach_x[dx]
            if dy:
                inside &= reach_y[dy - 1]
            hit = flat_nonzero(inside)
            pixel = base.index_select(0, hit) + (dx + dy * width)
            keys = _depth_keys(inv_z.index_select(0, hit), face.index_select(0, hit) + first)
            zbuf.scatter_reduce_(0, pixel, keys, reduce="amin")


def _offset_value(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """a * dx + b * dy + c for integer offsets, without the terms whose offset is 0 and without multiplying by 1
    (exact: the same value)."""
    x = a if dx == 1 else a * dx
    y = b if dy == 1 else b * dy
    if dx and dy:
        return x + y + c
    if dx:
        return x + c
    return y + c if dy else c


def _scatter_candidates(
    zbuf: torch.Tensor,
    planes: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
    valid: torch.Tensor | None,
    pixel_base: torch.Tensor,
    face: torch.Tensor,
    strides: tuple[int, int],
    znear: float,
    compact: bool = True,
) -> None:
    """Tests candidates and min-reduces their packed (depth, face) keys into zbuf.

    planes [P, 12] and pixel_base, face [P, 1] broadcast against dx, dy, valid [P, K] (or [K]; valid None: all
    candidates are in their face's box); a candidate's
    zbuf index is pixel_base + dx * strides[0] + dy * strides[1].
    compact: gather the hits before the scatter (cheaper when most candidates miss); otherwise every
    candidate is scattered, misses into zbuf's last (spare) element, which saves the gathers.
    """
    dxf, dyf = dx.to(torch.float32), dy.to(torch.float32)
    l0 = planes[:, 0:1] * dxf + planes[:, 3:4] * dyf + planes[:, 6:7]
    l1 = planes[:, 1:2] * dxf + planes[:, 4:5] * dyf + planes[:, 7:8]
    l2 = planes[:, 2:3] * dxf + planes[:, 5:6] * dyf + planes[:, 8:9]
    inv_z = l0 * planes[:, 9:10] + l1 * planes[:, 10:11] + l2 * planes[:, 11:12]
    inside = _inside(l0, l1, l2, inv_z, znear)
    if valid is not None:
        inside &= valid
    if not compact:
        pixel = torch.where(inside, pixel_base + dx * strides[0] + dy * strides[1], zbuf.numel() - 1)
        key = torch.where(inside, _depth_keys(inv_z, face), _EMPTY)
        zbuf.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), reduce="amin")
        return
    if not bool(inside.any()):
        return
    flat = flat_nonzero(inside)
    rows = torch.div(flat, inside.shape[1], rounding_mode="floor")
    cols = flat - rows * inside.shape[1]
    dx_i = dx.index_select(0, cols) if dx.dim() == 1 else dx.expand_as(inside).reshape(-1).index_select(0, flat)
    dy_i = dy.index_select(0, cols) if dy.dim() == 1 else dy.expand_as(inside).reshape(-1).index_select(0, flat)
    pixel = pixel_base[:, 0].index_select(0, rows) + dx_i * strides[0] + dy_i * strides[1]
    keys = _depth_keys(inv_z.reshape(-1).index_select(0, flat), face[:, 0].index_select(0, rows))
    zbuf.scatter_reduce_(0, pixel, keys, reduce="amin")


def _grid_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Look-up tables for `_grid_shapes`: tier index of each box side 0..65 (65: any larger side, index T), and
    each tier's side (T: a side so large, 2^30, that no grid is ever cheaper than spans, whatever the area)."""
    tiers = torch.tensor(_GRID_TIERS + (1 << 30,), device=device)
    return torch.bucketize(torch.arange(_GRID_TIERS[-1] + 2, device=device), tiers[:-1]), tiers


def _grid_shapes(box: torch.Tensor, covered: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Per (face, view) [P]: which dense grid tests it (tier index of width * T + of height), or T * T for
    row spans (too large, or a grid that would cost more than the rows and pixels the spans test)."""
    n = len(_GRID_TIERS)
    index_of, side = tables
    w, h = box[:, 2].clamp(max=index_of.shape[0] - 1), box[:, 3].clamp(max=index_of.shape[0] - 1)
    w_index, h_index = index_of[w], index_of[h]  # table look-ups: cheaper than bucketize on millions of boxes
    grid_area = side[w_index] * side[h_index]
    # The spans test at most the box's pixels: a face mostly off-screen (a clipped wall seen from inside a room)
    # has a screen area far above its box's, which once made even the sentinel tier look cheaper.
    covered = torch.minimum(covered, (box[:, 2] * box[:, 3]).to(covered.dtype))
    cheaper = grid_area <= _ALWAYS_GRID_AREA + _ROW_COST * torch.minimum(w, h) + _PIXEL_COST * covered
    return torch.where(cheaper, w_index * n + h_index, n * n)


def _rasterize_grid(zbuf, planes, box, pixel_base, face, rows, grid_w, grid_h, width, znear, max_candidates) -> None:
    """Faces rows = (start, stop) of the tables, whose boxes fit in grid_w x grid_h pixels, tested as dense
    grids (no per-pixel gathers)."""
    offsets = torch.arange(grid_w * grid_h, device=zbuf.device)
    dx, dy = offsets % grid_w, offsets // grid_w
    step = max(1, max_candidates // (grid_w * grid_h))
    for start in range(rows[0], rows[1], step):
        idx = slice(start, min(start + step, rows[1]))
        # Tiers up to 4 are exact sizes, so such a grid is the box itself.
        valid = None if max(grid_w, grid_h) <= 4 else (dx < box[idx, 2:3]) & (dy < box[idx, 3:4])
        _scatter_candidates(zbuf, planes[idx], dx, dy, valid, pixel_base[idx, None], face[idx, None], (1, width), znear)


def _chunks(counts: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges whose counts sum to at most `budget` (an item over budget goes alone)."""
    ends = torch.cumsum(counts, 0)
    ranges, start = [], 0
    while start < counts.numel():
        base = int(ends[start - 1]) if start > 0 else 0
        stop = max(int(torch.searchsorted(ends, base + budget, right=True)), start + 1)
        ranges.append((start, stop))
        start = stop
    return ranges


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts [n]: (owner, local) of sum(counts) items, item j being number `local` of its owner."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - first[owner]


def _row_spans(planes: torch.Tensor, dy: torch.Tensor, box_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (face, row) [R]: the first box column to test and how many, from the edge functions in closed form.

    planes [R, 12], dy [R] the row within the box, box_w [R]. Barycentric k on the row is a_k dx + val_k;
    it is >= 0 for dx >= -val_k / a_k when a_k > 0 and dx <= -val_k / a_k when a_k < 0. The span is
    widened by a pixel each side so rounding never loses a pixel; the exact test happens per pixel later.
    """
    a = planes[:, 0:3]
    val = planes[:, 3:6] * dy[:, None].to(planes.dtype) + planes[:, 6:9]
    flat = a == 0
    bound = -val / torch.where(flat, torch.ones_like(a), a)
    inf = torch.full_like(bound, float("inf"))
    lower = torch.where(a > 0, bound, -inf).amax(1)
    upper = torch.where(a < 0, bound, inf).amin(1)
    never = (flat & (val < 0)).any(1) | (lower > upper + 2)
    last = (box_w - 1).to(planes.dtype)
    lo = (torch.ceil(lower) - 1).clamp(min=0).minimum(last + 1)
    hi = (torch.floor(upper) + 1).clamp(max=last).maximum(lo - 1)
    count = torch.where(never, torch.zeros_like(lo), hi - lo + 1).to(torch.int64)
    return lo.to(torch.int64), count


def _rasterize_spans(zbuf, planes, box, pixel_base, face, sel, width, znear, max_candidates) -> None:
    """Faces with larger boxes, by spans along the box's longer side: one line per pixel of its shorter side.

    A tall face (a cylinder's side sliver) is walked column by column, by the same code with x and y
    swapped, so the lines a face costs are min(width, height) of its box.
    """
    tall = box[sel, 3] > box[sel, 2]
    _rasterize_lines(zbuf, planes, box, pixel_base, face, sel[~tall], (1, width), znear, max_candidates)
    swap_xy = torch.tensor([3, 4, 5, 0, 1, 2, 6, 7, 8, 9, 10, 11], device=planes.device)
    tall_sel = sel[tall]
    _rasterize_lines(
        zbuf,
        planes[tall_sel][:, swap_xy],
        box[tall_sel][:, [1, 0, 3, 2]],
        pixel_base[tall_sel],
        face[tall_sel],
        torch.arange(tall_sel.numel(), device=sel.device),
        (width, 1),
        znear,
        max_candidates,
    )


def _rasterize_lines(zbuf, planes, box, pixel_base, face, sel, strides, znear, max_candidates) -> None:
    """Per-row spans, then each span's pixels as a dense [rows, L] grid ("rows" are columns when transposed).

    Rows are grouped by span length into power-of-two widths L, so a row wastes under half its tests and
    no per-pixel gather is needed (the row's plane broadcasts along the span). Rows, and rows x L, go
    through in chunks of about max_candidates.
    """
    if sel.numel() == 0:
        return
    for start, stop in _chunks(box[sel, 3], max_candidates):
        idx = sel[start:stop]
        owner, dy = _expand(box[idx, 3])  # one item per (face, row)
        row_pair = idx.index_select(0, owner)
        row_planes = planes.index_select(0, row_pair)
        lo, count = _row_spans(row_planes, dy, box[:, 2].index_select(0, row_pair))
        lower, span = 0, 8
        while lower < int(count.max()):
            rows = flat_nonzero((count > lower) & (count <= span))
            offsets = torch.arange(span, device=zbuf.device)
            for row_start in range(0, rows.numel(), max(1, max_candidates // span)):
                r = rows[row_start : row_start + max(1, max_candidates // span)]
                pair = row_pair.index_select(0, r)
                _scatter_candidates(
                    zbuf,
                    row_planes.index_select(0, r),
                    lo.index_select(0, r)[:, None] + offsets,
                    dy.index_select(0, r)[:, None],
                    offsets < count.index_select(0, r)[:, None],
                    pixel_base.index_select(0, pair)[:, None],
                    face.index_select(0, pair)[:, None],
                    strides,
                    znear,
                    compact=False,
                )
            lower, span = span, span * 2


def _runs(flat: torch.Tensor, n_groups: int, group_size: int) -> torch.Tensor:
    """For ascending flat indices into n_groups blocks of group_size: each one's block, flat // group_size, from
    where each block's run starts (a search per block, no division per element)."""
    starts = torch.searchsorted(flat, torch.arange(1, n_groups, device=flat.device) * group_size)
    run = torch.diff(starts, prepend=starts.new_zeros(1), append=starts.new_full((1,), flat.shape[0]))
    return torch.repeat_interleave(torch.arange(n_groups, device=flat.device), run)


def _low_word(keys: torch.Tensor) -> torch.Tensor:
    """The low 32 bits of int64 keys, sign-extended (on the CPU in numpy: torch's int64 shifts ran 4x slower)."""
    if keys.device.type == "cpu":
        return torch.from_numpy((keys.numpy() << 32) >> 32)
    return (keys << 32) >> 32


def _resolve(zbuf, screen, faces_t, n_views, height, width, chunk: int = 1 << 16) -> Fragments:
    """Decodes the winning faces and computes their perspective-correct barycentrics and depth.

    Covered pixels go through in chunks with 1-D gathers of per-coordinate rows (u, v, z of every view's
    vertices): on the CPU, gathering rows of a [N, 3] table, and whole-frame [K, 3] passes, cost several
    times more. The covered pixels are kept on the result for `Fragments.covered`.
    """
    device, dtype = screen.device, screen.dtype
    n = n_views * height * width
    zbuf = zbuf[:n]
    pix = flat_nonzero(compare(zbuf, "!=", _EMPTY))
    winner = zbuf.index_select(0, pix) & 0xFFFFFFFF
    view = _runs(pix, n_views, height * width)
    bary = torch.empty(3, pix.shape[0], dtype=dtype, device=device)  # rows: shading reads them so
    depth = torch.empty(pix.shape[0], dtype=dtype, device=device)
    coords = screen.permute(2, 0, 1).reshape(3, -1)  # [3, B * N]: rows u, v, z (no copy from `project`)
    corners = torch.empty(3, pix.shape[0], dtype=torch.int64, device=device)  # kept for shading
    for first in range(0, pix.shape[0], chunk):
        part = slice(first, first + chunk)
        base = view[part] * screen.shape[1]
        corner = [torch.index_select(faces_t[k], 0, winner[part], out=corners[k, part]) + base for k in range(3)]
        u, v, z = ([row.index_select(0, c) for c in corner] for row in coords)
        image_row = pix[part] // width  # view * height + row
        # Pixel and corners relative to corner 0, so the edge functions lose no precision.
        pu = (pix[part] - image_row * width).to(dtype) - u[0]
        pv = (image_row - view[part] * height).to(dtype) - v[0]
        u1, v1 = u[1] - u[0], v[1] - v[0]
        u2, v2 = u[2] - u[0], v[2] - v[0]
        l1 = pu * v2 - pv * u2
        l2 = u1 * pv - v1 * pu
        area = u1 * v2 - v1 * u2
        # Screen barycentrics are l / area; weighting each by 1/z_k and normalising gives the perspective-
        # correct ones, and area / sum(l_k / z_k) is the depth.
        weighted = ((area - l1 - l2) / z[0], l1 / z[1], l2 / z[2])
        total = weighted[0] + weighted[1] + weighted[2]
        for k in range(3):  # assigned, not written with out=: gradients reach screen through these
            bary[k, part] = weighted[k] / total
        depth[part] = area / total
    covered = CoveredPixels(pix, view, winner, bary.T, (n_views, height, width), corners)
    # The winners' ids straight from the keys: the low 32 bits, sign-extended, are the face id (ids < 2^31)
    # and -1 where the key is empty (all ones).
    return Fragments(
        _low_word(zbuf).view(n_views, height, width),
        None,
        torch.full((n,), float("inf"), dtype=dtype, device=device)
        .index_copy_(0, pix, depth)
        .view(n_views, height, width),
        covered,
    )


def _rasterize_large(
    zbuf: torch.Tensor,
    rows: torch.Tensor,
    corners: torch.Tensor,
    area: torch.Tensor,
    face: torch.Tensor,
    view: torch.Tensor,
    tables: tuple[torch.Tensor, torch.Tensor],
    image_size: tuple[int, int],
    znear: float,
    max_candidates: int,
) -> None:
    """Pairs whose box is larger than 3 x 3 pixels: dense grids where they are cheaper, else row spans.

    rows [12, P] from `_plane_rows` (kept pairs only), box corners [4, P] (`_face_boxes`), twice the signed
    screen area [P], face ids [P] (of the whole mesh) and views [P]."""
    height, width = image_size
    n_shapes = len(_GRID_TIERS) ** 2 + 1  # the grids, then row spans
    box = torch.cat([corners[:2], corners[2:] - corners[:2] + 1]).to(torch.int64)  # [4, P]: x0, y0, w, h
    grid = _grid_shapes(box.T, area.abs() / 2, tables)
    # One sort groups the pairs by grid shape, so each shape is a contiguous slice of the tables. Reordered as
    # rows, then transposed once: gathering rows of a [P, 12] table ran 3x slower here.
    order = torch.sort(grid.to(torch.int16)).indices
    counts = torch.bincount(grid, minlength=n_shapes).tolist()
    planes, box = rows.index_select(1, order).T.contiguous(), box.index_select(1, order).T.contiguous()
    face, view = face.index_select(0, order), view.index_select(0, order)
    pixel_base = view * (height * width) + box[:, 1] * width + box[:, 0]
    start = 0
    for shape, count in enumerate(counts[: n_shapes - 1]):
        if count:
            grid_w, grid_h = _GRID_TIERS[shape // len(_GRID_TIERS)], _GRID_TIERS[shape % len(_GRID_TIERS)]
            pairs = (start, start + count)
            _rasterize_grid(zbuf, planes, box, pixel_base, face, pairs, grid_w, grid_h, width, znear, max_candidates)
        start += count
    spans = torch.arange(start, start + counts[n_shapes - 1], device=zbuf.device)
    _rasterize_spans(zbuf, planes, box, pixel_base, face, spans, width, znear, max_candidates)


def rasterize(
    screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    *,
    znear: float = 1e-3,
    max_candidates: int = 1 << 21,
    cull: BackFaces | None = None,
) -> Fragments:
    """Rasterises one mesh seen by B cameras.

    screen: [B, N, 3] per-view vertex (u, v, z): pixel coordinates (OpenCV convention) and CV_CAMERA depth.
    faces: [F, 3] vertex indices.
    image_size: (height, width).
    max_candidates: (face, pixel) tests in flight at once; bounds peak memory (roughly 100 bytes each).
    cull: back faces to skip (`BackFaces`); None draws both windings. Only exact where the caller knows a back face
        is never the nearest (`renderer.back_face_culling`).
    """
    height, width = image_size
    n_views = screen.shape[0]
    faces = faces.to(device=screen.device, dtype=torch.int64)
    zbuf = torch.full((n_views * height * width + 1,), _EMPTY, dtype=torch.int64, device=screen.device)
    # Faces go through in chunks so the per-face tables stay bounded for meshes of millions of faces; culling keeps
    # about half of a chunk's pairs, so its chunks take twice the faces (the same tables, half the fixed costs).
    face_chunk = max(1, max_candidates // ((4 if cull is None else 2) * n_views))
    faces_t = face_rows(faces)  # [3, F]; chunks are views of it
    tables = _grid_tables(screen.device)
    # [3, B, N]: rows u, v, z of every view. Which face covers which pixel is found on values without gradients
    # (written with out= into preallocated tables); the resolve computes barycentrics and depth from screen.
    coords = screen.detach().permute(2, 0, 1).contiguous()
    # NaN counts as near, as a failed comparison did (a minimum: the comparison of every depth cost 20x more)
    any_near = coords[2].numel() > 0 and not bool(coords[2].amin() >= znear)
    # Pairs with larger boxes are gathered over chunks and drawn together: their grids and spans cost a few
    # dozen small operations per shape, which a dense scan (a few thousand such pairs per chunk) paid per chunk.
    # The z-buffer's minimum does not depend on the order faces are drawn in.
    large: list[tuple[torch.Tensor, ...]] = []
    n_large = 0
    for first in range(0, faces.shape[0], face_chunk):
        chunk = faces_t[:, first : first + face_chunk]  # [3, F] (each row contiguous)
        one_pixel, *small, (face, view, tri, corners) = _face_boxes(
            coords, chunk, first, height, width, znear, any_near, cull
        )
        if one_pixel[0].numel():
            _scatter_one_pixel(zbuf, one_pixel, first, height, width, znear)
        for side, (small_face, small_view, small_tri, small_box) in zip((2, 3), small):
            if small_face.numel():
                small_rows, _, small_keep = _plane_rows(small_tri, small_box)
                small_pairs = (small_face, small_view, small_box)
                _scatter_small(zbuf, small_rows, small_keep, small_pairs, side, first, height, width, znear)
        if face.numel():
            plane_rows, area, keep = _plane_rows(tri, corners)
            sel = flat_nonzero(keep)
            large.append(
                (plane_rows, corners, area, face + first, view)
                if sel.numel() == keep.numel()
                else tuple(t.index_select(-1, sel) for t in (plane_rows, corners, area, face + first, view))
            )
            n_large += sel.numel()
        if large and (n_large >= face_chunk or first + face_chunk >= faces.shape[0]):
            rows, corners, area, face, view = (torch.cat(parts, -1) for parts in zip(*large))
            _rasterize_large(zbuf, rows, corners, area, face, view, tables, image_size, znear, max_candidates)
            large, n_large = [], 0
    return _resolve(zbuf, screen, faces_t, n_views, height, width)
