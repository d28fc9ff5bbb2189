"""Meshing a signed-distance shape into an evenly sized triangle mesh with an exact vertex count.

Marching cubes gives a closed, fine, badly shaped mesh; quadric decimation brings it down; isotropic
remeshing (split long edges, collapse short ones, flip towards valence 6, relax tangentially, project
back onto the exact surface) makes the triangles even, sized by a target edge-length field. Skinning
needs that: a limb whose triangles run its whole length cannot bend at the knee. Finally single edge
splits reach the exact vertex count: on a closed surface each adds one vertex and two faces.

Each pass works on an independent set of edges chosen by local priority maxima, so it is vectorised
and no two changes in one pass touch the same faces.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from ivlm_core.demo.sdf import Shape, Union, project_along, project_to_surface, sample_grid
from ivlm_core.demo.topology import adjacency, edges_of

Sizing = Callable[[np.ndarray], np.ndarray]


def marching_cubes_surface(
    shape: Union, axes: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of `shape` sampled on the tensor grid `axes` (fine and unevenly shaped)."""
    import mcubes

    volume = sample_grid(shape, *axes)
    grid_v, faces = mcubes.marching_cubes(-volume, 0.0)  # mcubes wants the inside positive
    vertices = np.stack([np.interp(grid_v[:, i], np.arange(len(ax)), ax) for i, ax in enumerate(axes)], axis=1)
    faces = faces.astype(np.int64)
    if _signed_volume(vertices, faces) < 0:
        faces = faces[:, ::-1].copy()
    return vertices, faces


def decimate(v: np.ndarray, f: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error decimation (fast, keeps the shape; the triangles are uneven afterwards)."""
    import fast_simplification

    v, f = fast_simplification.simplify(v, f, target_count=target_faces)
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def _signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0)


def face_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Unnormalised face normals (length = twice the area)."""
    return np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = face_normals(v, f)
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, f[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-20)


def _opposite(f: np.ndarray, half: np.ndarray) -> np.ndarray:
    """The vertex facing half-edge `half` in its face."""
    return f[half // 3, (half % 3 + 2) % 3]


def _tiebreak(n: int) -> np.ndarray:
    """Tiny distinct offsets so that priorities are unique (deterministic, no randomness needed)."""
    return (np.arange(n) % 9973) * 1e-12 + np.arange(n) * 1e-15


def split_pass(v: np.ndarray, f: np.ndarray, sizing: Sizing, shape: Shape) -> tuple[np.ndarray, np.ndarray, int]:
    """Splits edges longer than 4/3 of their target, at most one per face, new vertices on the surface."""
    e = edges_of(f)
    a, b = e.vertices.T
    mid = 0.5 * (v[a] + v[b])
    ratio = np.linalg.norm(v[a] - v[b], axis=1) / sizing(mid)
    cand = ratio > 4.0 / 3.0
    if not cand.any():
        return v, f, 0
    prio = np.where(cand, ratio + _tiebreak(len(ratio)), -np.inf)
    has1 = e.half[:, 1] >= 0
    best = np.full(len(f), -np.inf)
    np.maximum.at(best, e.half[:, 0] // 3, prio)
    np.maximum.at(best, e.half[has1, 1] // 3, prio[has1])
    other_best = np.where(has1, best[np.maximum(e.half[:, 1], 0) // 3], prio)
    sel = np.flatnonzero(cand & (prio == best[e.half[:, 0] // 3]) & (prio == other_best))
    new_ids = len(v) + np.arange(len(sel))
    new_v = project_to_surface(shape, mid[sel])
    two = has1[sel]
    halves = np.r_[e.half[sel, 0], e.half[sel[two], 1]]
    mids = np.r_[new_ids, new_ids[two]]
    face, corner = halves // 3, halves % 3
    frm, to, opp = f[face, corner], f[face, (corner + 1) % 3], f[face, (corner + 2) % 3]
    f = f.copy()
    f[face] = np.stack([frm, mids, opp], axis=1)
    f = np.concatenate([f, np.stack([mids, to, opp], axis=1)])
    return np.concatenate([v, new_v]), f, len(sel)


def _ragged(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row r in `rows` (position i), its entries: returns (i repeated, entry) pairs."""
    counts = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    starts = np.repeat(indptr[rows], counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, indices[starts + offsets]


def collapse_pass(
    v: np.ndarray,
    f: np.ndarray,
    sizing: Sizing,
    shape: Shape,
    max_ratio: float = 0.8,
    limit: int | None = None,
    max_valence: int = 9,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Collapses edges shorter than `max_ratio` of their target into their (projected) midpoint, where
    safe: the link condition holds, no face flips, no new edge gets too long and valences stay sane.
    `limit` caps how many collapse (the relatively shortest first)."""
    import scipy.sparse as sp

    n = len(v)
    e = edges_of(f)
    a, b = e.vertices.T
    mid = 0.5 * (v[a] + v[b])
    target = sizing(mid)
    ratio = np.linalg.norm(v[a] - v[b], axis=1) / target
    interior = e.half[:, 1] >= 0
    adj = adjacency(f, n)
    val = np.diff(adj.indptr)
    cand = np.flatnonzero((ratio < max_ratio) & interior)
    if len(cand) == 0:
        return v, f, 0
    c, d = _opposite(f, e.half[cand, 0]), _opposite(f, e.half[cand, 1])
    cand = cand[(val[c] > 3) & (val[d] > 3) & (val[a[cand]] + val[b[cand]] - 4 <= max_valence)]
    if len(cand) == 0:
        return v, f, 0
    ca, cb = a[cand], b[cand]
    common = np.asarray(adj[ca].multiply(adj[cb]).sum(axis=1)).ravel()
    keep = common == 2
    cand, ca, cb = cand[keep], ca[keep], cb[keep]
    if len(cand) == 0:
        return v, f, 0
    p = mid[cand]  # checked at the midpoint; only the winners are moved onto the surface
    bad = np.zeros(len(cand), dtype=bool)
    # no edge from the merged vertex may become longer than 4/3 of the target
    for ends in (ca, cb):
        owner, nbr = _ragged(adj.indptr, adj.indices, ends)
        too_long = np.linalg.norm(p[owner] - v[nbr], axis=1) > (4.0 / 3.0) * target[cand][owner]
        bad[owner[too_long]] = True
    # no surviving face around a or b may flip or become degenerate
    vf = sp.csr_matrix((np.ones(3 * len(f)), (f.ravel(), np.repeat(np.arange(len(f)), 3))), shape=(n, len(f)))
    normals = face_normals(v, f)
    for ends in (ca, cb):
        owner, face = _ragged(vf.indptr, vf.indices, ends)
        tri = f[face]
        survives = ~((tri == ca[owner, None]).any(axis=1) & (tri == cb[owner, None]).any(axis=1))
        owner, face, tri = owner[survives], face[survives], tri[survives]
        pos = v[tri]
        moved = (tri == ca[owner, None]) | (tri == cb[owner, None])
        pos[moved] = np.repeat(p[owner], moved.sum(axis=1), axis=0)
        new_n = np.cross(pos[:, 1] - pos[:, 0], pos[:, 2] - pos[:, 0])
        old_n = normals[face]
        cos = np.einsum("ij,ij->i", new_n, old_n) / np.maximum(
            np.linalg.norm(new_n, axis=1) * np.linalg.norm(old_n, axis=1), 1e-30
        )
        bad[owner[cos < 0.5]] = True
    good = ~bad
    cand, ca, cb, p = cand[good], ca[good], cb[good], p[good]
    if len(cand) == 0:
        return v, f, 0
    # independent set: no chosen edge may have an end next to another chosen edge's end. Rounds of
    # local minima (shortest relative length first), each excluding the neighbourhoods already taken.
    prio = -ratio[cand] + _tiebreak(len(cand))
    coo = adj.tocoo()
    blocked = np.zeros(n, dtype=bool)
    open_ = np.ones(len(cand), dtype=bool)
    win = np.zeros(len(cand), dtype=bool)
    while True:
        open_ &= ~blocked[ca] & ~blocked[cb]
        if not open_.any():
            break
        vmax = np.full(n, -np.inf)
        np.maximum.at(vmax, ca[open_], prio[open_])
        np.maximum.at(vmax, cb[open_], prio[open_])
        ring = vmax.copy()
        np.maximum.at(ring, coo.row, vmax[coo.col])
        new = open_ & (prio == ring[ca]) & (prio == ring[cb])
        win |= new
        ends = np.zeros(n, dtype=bool)
        ends[ca[new]] = ends[cb[new]] = True
        blocked |= ends | (adj @ ends.astype(np.float64) > 0)
        open_ &= ~new
    win = np.flatnonzero(win)
    if limit is not None:
        win = win[np.argsort(-prio[win])[:limit]]
    ca, cb, p = ca[win], cb[win], p[win]
    v = v.copy()
    v[ca] = project_to_surface(shape, p)
    remap = np.arange(n)
    remap[cb] = ca
    f = remap[f]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    v, f = compact(v, f)
    return v, f, len(ca)


def compact(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drops vertices no face uses, keeping the order of the others."""
    used = np.zeros(len(v), dtype=bool)
    used[f.ravel()] = True
    new_index = np.cumsum(used) - 1
    return v[used], new_index[f]


def flip_pass(v: np.ndarray, f: np.ndarray, mode: str = "valence") -> tuple[np.ndarray, int]:
    """Flips interior edges that bring valences closer to 6 (`valence`) or that are not locally
    Delaunay (`delaunay`), where the two new faces keep the orientation of the old ones."""
    e = edges_of(f)
    inner = np.flatnonzero(e.half[:, 1] >= 0)
    h0, h1 = e.half[inner, 0], e.half[inner, 1]
    # orient each edge as it runs in its first face: a -> b there, c opposite, d opposite in the other
    a, b = f[h0 // 3, h0 % 3], f[h0 // 3, (h0 % 3 + 1) % 3]
    c, d = _opposite(f, h0), _opposite(f, h1)
    val = np.bincount(e.vertices.ravel(), minlength=len(v))
    if mode == "valence":
        before = (val[a] - 6) ** 2 + (val[b] - 6) ** 2 + (val[c] - 6) ** 2 + (val[d] - 6) ** 2
        after = (val[a] - 7) ** 2 + (val[b] - 7) ** 2 + (val[c] - 5) ** 2 + (val[d] - 5) ** 2
        gain = (before - after).astype(float)
    else:
        gain = _angle(v, c, a, b) + _angle(v, d, a, b) - np.pi  # > 0: the opposite angles sum over pi
    cand = (gain > 1e-9) & (val[a] > 4) & (val[b] > 4) & (c != d)
    n = len(v)
    existing = np.sort(e.vertices[:, 0] * n + e.vertices[:, 1])
    cd = np.minimum(c, d) * n + np.maximum(c, d)
    pos = np.clip(np.searchsorted(existing, cd), 0, len(existing) - 1)
    cand &= existing[pos] != cd
    old = face_normals(v, f[h0 // 3]) + face_normals(v, f[h1 // 3])
    for tri in ((a, d, c), (d, b, c)):
        new = np.cross(v[tri[1]] - v[tri[0]], v[tri[2]] - v[tri[0]])
        cos = np.einsum("ij,ij->i", new, old) / np.maximum(
            np.linalg.norm(new, axis=1) * np.linalg.norm(old, axis=1), 1e-30
        )
        cand &= cos > 0.5
    idx = np.flatnonzero(cand)
    if len(idx) == 0:
        return f, 0
    prio = gain[idx] + _tiebreak(len(idx))
    vmax = np.full(n, -np.inf)
    for w in (a, b, c, d):
        np.maximum.at(vmax, w[idx], prio)
    win = np.ones(len(idx), dtype=bool)
    for w in (a, b, c, d):
        win &= prio == vmax[w[idx]]
    idx = idx[win]
    f = f.copy()
    f[h0[idx] // 3] = np.stack([a[idx], d[idx], c[idx]], axis=1)
    f[h1[idx] // 3] = np.stack([d[idx], b[idx], c[idx]], axis=1)
    return f, len(idx)


def _angle(v: np.ndarray, at: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    u, w = v[p] - v[at], v[q] - v[at]
    cos = np.einsum("ij,ij->i", u, w) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1), 1e-30)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def relax(v: np.ndarray, f: np.ndarray, shape: Shape, amount: float = 0.5) -> np.ndarray:
    """Moves each vertex part-way to its neighbours' centroid within its tangent plane, then back onto
    the surface: evens out triangle sizes without changing the shape."""
    adj = adjacency(f, len(v))
    deg = np.asarray(adj.sum(axis=1)).ravel()
    step = adj @ v / deg[:, None] - v
    n = vertex_normals(v, f)
    step -= np.einsum("ij,ij->i", step, n)[:, None] * n
    return project_along(shape, v + amount * step, n)


def isotropic_remesh(
    v: np.ndarray, f: np.ndarray, shape: Shape, sizing: Sizing, iterations: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Botsch-Kobbelt style remeshing of a closed surface towards edge lengths `sizing(p)`."""
    for _ in range(iterations):
        for _ in range(8):
            v, f, n_split = split_pass(v, f, sizing, shape)
            if n_split <= len(v) // 200:
                break
        for _ in range(8):
            v, f, n_collapsed = collapse_pass(v, f, sizing, shape)
            if n_collapsed <= len(v) // 200:
                break
        for _ in range(2):
            f, _ = flip_pass(v, f, "valence")
        v = relax(v, f, shape)
        v = relax(v, f, shape)
    return v, f


def remesh_to_count(
    v: np.ndarray, f: np.ndarray, shape: Shape, sizing: Sizing, n_vertices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remeshes a closed surface with the sizing field scaled so that it lands near `n_vertices`,
    then collapses the shortest or splits the longest edges until the count is exact."""
    normals = face_normals(v, f)
    area = 0.5 * np.linalg.norm(normals, axis=1)
    # an even mesh with edge length L has about 2 / (sqrt(3) L^2) vertices per unit area; three rounds of
    # remeshing land about 1 % under that, so aim 1 % over and trim
    expected = (area / sizing(v[f].mean(axis=1)) ** 2).sum() * 2.0 / np.sqrt(3.0)
    scale = np.sqrt(expected / n_vertices)

    def scaled(p: np.ndarray) -> np.ndarray:
        return scale * sizing(p)

    v, f = isotropic_remesh(v, f, shape, scaled, iterations=3)
    if abs(len(v) / n_vertices - 1.0) > 0.04:  # far off: one more round with a corrected scale
        scale *= np.sqrt(len(v) / n_vertices)
        v, f = isotropic_remesh(v, f, shape, scaled, iterations=2)
    while len(v) > n_vertices:
        v, f, done = collapse_pass(v, f, scaled, shape, max_ratio=np.inf, limit=len(v) - n_vertices)
        if done == 0:
            raise RuntimeError("no edge can be collapsed safely")
    v, f = split_to_count(v, f, shape, scaled, n_vertices)
    f, _ = flip_pass(v, f, "valence")
    v = relax(v, f, shape)
    for _ in range(2):
        f, _ = flip_pass(v, f, "delaunay")
    return v, f


def split_to_count(
    v: np.ndarray,
    f: np.ndarray,
    shape: Shape | None,
    sizing: Sizing,
    n_vertices: int,
    eligible: Callable[[np.ndarray, np.ndarray, int], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits the longest edge (relative to its target) one at a time until there are `n_vertices`.

    An interior split adds 1 vertex and 2 faces, a boundary split 1 vertex and 1 face. `eligible(a, b,
    n_faces)` limits which edges may be split (by end positions and number of faces).
    """
    if len(v) > n_vertices:
        raise ValueError(f"mesh already has {len(v)} > {n_vertices} vertices")
    v_list = list(v)
    faces = [list(t) for t in f]
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for fi, t in enumerate(faces):
        for k in range(3):
            edge_faces.setdefault(_key(t[k], t[(k + 1) % 3]), []).append(fi)

    def allowed(key: tuple[int, int]) -> bool:
        return eligible is None or eligible(v_list[key[0]], v_list[key[1]], len(edge_faces[key]))

    keys = [key for key in edge_faces if allowed(key)]
    ends = np.array(keys).reshape(-1, 2)
    rel = np.linalg.norm(v[ends[:, 0]] - v[ends[:, 1]], axis=1) / sizing(0.5 * (v[ends[:, 0]] + v[ends[:, 1]]))
    heap = [(-r, key) for r, key in zip(rel.tolist(), keys)]
    heapq.heapify(heap)
    first_new = len(v_list)
    while len(v_list) < n_vertices:
        if not heap:
            raise RuntimeError("no edge left to split")
        _, key = heapq.heappop(heap)
        if key not in edge_faces:
            continue  # already split
        for new_key in _split_edge(v_list, faces, edge_faces, key):
            if allowed(new_key):
                heapq.heappush(heap, (-_rel_length(v_list, new_key, sizing), new_key))
    v_out = np.array(v_list).reshape(-1, 3)
    if shape is not None and len(v_out) > first_new:  # new vertices go onto the surface in one batch
        v_out[first_new:] = project_to_surface(shape, v_out[first_new:])
    return v_out, np.array(faces, dtype=np.int64)


def _key(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i < j else (j, i)


def _rel_length(v: list[np.ndarray], key: tuple[int, int], sizing: Sizing) -> float:
    a, b = v[key[0]], v[key[1]]
    return float(np.linalg.norm(a - b) / sizing(((a + b) / 2)[None])[0])


def _split_edge(
    v: list[np.ndarray],
    faces: list[list[int]],
    edge_faces: dict[tuple[int, int], list[int]],
    key: tuple[int, int],
) -> set[tuple[int, int]]:
    """Splits one edge at its midpoint; returns the edges that are new."""
    m = len(v)
    v.append((v[key[0]] + v[key[1]]) / 2)
    touched: set[tuple[int, int]] = set()
    for fi in edge_faces.pop(key):
        t = faces[fi]
        k = next(i for i in range(3) if _key(t[i], t[(i + 1) % 3]) == key)
        frm, to, opp = t[k], t[(k + 1) % 3], t[(k + 2) % 3]
        faces[fi] = [frm, m, opp]
        new_fi = len(faces)
        faces.append([m, to, opp])
        edge_faces[_key(to, opp)].remove(fi)
        edge_faces[_key(to, opp)].append(new_fi)
        edge_faces.setdefault(_key(frm, m), []).append(fi)
        edge_faces.setdefault(_key(m, to), []).append(new_fi)
        edge_faces.setdefault(_key(m, opp), []).extend([fi, new_fi])
        touched.update({_key(frm, m), _key(m, to), _key(m, opp)})
    return touched
