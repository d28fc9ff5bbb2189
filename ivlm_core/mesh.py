"""Triangle meshes from users: validation with specific errors, and loading with a stable vertex order.

Contacts are per-vertex arrays, so a mesh's vertex order is part of its identity: nothing here merges,
drops or reorders vertices. Documented behaviour for awkward but usable input:

* quads and other polygons are fan-triangulated ((a, b, c, d) -> (a, b, c), (a, c, d));
* degenerate faces (a repeated corner or zero area) are kept, so face indices stay valid, but they
  cover no pixel and so never receive or pass on contact;
* vertices used by no face are kept and simply never receive contact.

Everything else (no vertices, no faces, non-finite coordinates, indices out of range, only degenerate
faces, more faces than the limit) raises `MeshError` saying what, why, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ivlm_core.errors import MeshError

if TYPE_CHECKING:
    import scipy.sparse as sp

# Far beyond any object a user means to place (a scanned chair is ~100k faces), but within what the
# rasteriser renders in bounded memory. Larger meshes should be decimated first.
MAX_FACES = 5_000_000
MAX_VERTICES = 5_000_000


@dataclass(frozen=True)
class TriangleMesh:
    """A validated triangle mesh. vertices [N, 3] float64 (metres, the caller's frame); faces [F, 3] int64."""

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "mesh"

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def degenerate_face_mask(self) -> np.ndarray:
        """Faces with a repeated corner or zero area: kept, but never drawn."""
        return _degenerate_faces(self.vertices, self.faces)

    @cached_property
    def orientation(self) -> int:
        """`closed_orientation` of this mesh, worked out once (the rasteriser culls back faces by it)."""
        return closed_orientation(self.vertices, self.faces)


def closed_orientation(vertices: np.ndarray, faces: np.ndarray) -> int:
    """+1: the mesh is closed and every connected part is wound outwards; -1: closed, every part inwards; else 0.

    Closed: every directed edge is matched by its reverse (a cycle: the winding number is defined off the
    surface). Each edge-connected part's signed volume gives its winding; a part of (near) zero volume, or
    parts that disagree, give 0. A closed mesh of one sign never has a negative (for -1: positive) winding
    number unless it passes through itself inside out, so a ray from a point outside it first meets a face
    turned towards it: the rasteriser may then skip the other faces (see `render.rasterize`).
    vertices [N, 3], faces [F, 3]. One sparse matrix of the edges serves both the matching and the parts.
    """
    import scipy.sparse as sp  # here: the API process rarely needs scipy
    from scipy.sparse.csgraph import connected_components

    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return 0
    balance = _edge_balance(faces, len(vertices))
    if balance.count_nonzero():
        return 0
    # Every undirected edge, as the balance's structure (its entries are all zero here).
    edges = sp.csr_matrix((np.ones(len(balance.indices), np.int8), balance.indices, balance.indptr), balance.shape)
    count, label = connected_components(edges, directed=False)
    # Coordinate rows [3, N] and corner rows [3, F]: 1-D gathers and element-wise passes, several times faster
    # than gathering [F, 3] rows and np.cross.
    columns = np.ascontiguousarray(np.asarray(vertices, dtype=np.float64).T)
    points = columns - columns.mean(axis=1, keepdims=True)
    a, b, c = ([row.take(corner) for row in points] for corner in np.ascontiguousarray(faces.T))
    triple = (
        a[0] * (b[1] * c[2] - b[2] * c[1]) + a[1] * (b[2] * c[0] - b[0] * c[2]) + a[2] * (b[0] * c[1] - b[1] * c[0])
    )
    part = label[faces[:, 0]]
    volume = np.bincount(part, triple, minlength=count)[np.bincount(part, minlength=count) > 0]
    scale = (points.max(axis=1) - points.min(axis=1)).max() ** 3 if points.shape[1] else 0.0
    if (volume > 1e-9 * scale).all():
        return 1
    return -1 if (volume < -1e-9 * scale).all() else 0


def _edge_balance(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """[n, n] sparse matrix, one entry per undirected edge {i < j} of faces [F, 3]: how many faces run i -> j minus
    how many run j -> i. All zero exactly when every directed edge is matched by its reverse, as multisets.

    One matrix with signed entries instead of the directed edges and their transpose: half the sparse work (the
    check runs on every new mesh the renderer culls for; 1.3M faces took 165 ms the other way)."""
    import scipy.sparse as sp  # here: the API process validates meshes and needs it only for an inside-out mesh

    tail = faces.ravel()
    head = np.roll(faces, -1, axis=1).ravel()
    direction = np.sign(head - tail).astype(np.int32)  # a repeated corner's edge (i -> i) matches itself: 0
    return sp.csr_matrix((direction, (np.minimum(tail, head), np.maximum(tail, head))), shape=(n, n))


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area [F] of each triangle (squared units of `vertices` [N, 3]; faces [F, 3])."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def _degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    return repeated | (2.0 * face_areas(vertices, faces) <= 1e-20)


def _triangulate(faces: np.ndarray | Sequence[Sequence[int]], name: str) -> np.ndarray:
    """[F, k] arrays or ragged polygon lists -> [T, 3] triangles by fanning around each first corner."""
    if isinstance(faces, np.ndarray) and faces.dtype != object:
        if faces.ndim != 2:
            raise MeshError(
                f"{name}: faces must be a 2-D array [F, 3] of vertex indices, got shape {faces.shape}.",
                "Pass one row of vertex indices per face.",
            )
        if faces.shape[1] < 3:
            raise MeshError(
                f"{name}: faces have {faces.shape[1]} corners; a face needs at least 3.",
                "Pass triangles (or polygons) as rows of vertex indices; edges and points cannot be drawn.",
            )
        polygons = [faces]
    else:
        rows = [np.asarray(p) for p in faces]
        short = [i for i, p in enumerate(rows) if p.ndim != 1 or p.shape[0] < 3]
        if short:
            raise MeshError(
                f"{name}: face {short[0]} has fewer than 3 corners ({len(short)} such faces).",
                "Remove loose edges and points from the mesh before sending it.",
            )
        by_size: dict[int, list[np.ndarray]] = {}
        for p in rows:
            by_size.setdefault(p.shape[0], []).append(p)
        polygons = [np.stack(group) for group in by_size.values()]
    triangles = []
    for group in polygons:
        if not np.issubdtype(group.dtype, np.integer) and (
            not np.issubdtype(group.dtype, np.floating)
            or not np.all(np.isfinite(group))
            or np.any(group != np.round(group))
        ):
            raise MeshError(
                f"{name}: face indices must be whole numbers, got dtype {group.dtype}.",
                "Send faces as integer vertex indices.",
            )
        group = group.astype(np.int64)
        for k in range(1, group.shape[1] - 1):
            triangles.append(group[:, [0, k, k + 1]])
    return np.concatenate(triangles, axis=0) if triangles else np.zeros((0, 3), np.int64)


def validate_mesh(
    vertices: np.ndarray | Sequence[Sequence[float]],
    faces: np.ndarray | Sequence[Sequence[int]],
    *,
    name: str = "mesh",
    max_faces: int = MAX_FACES,
    max_vertices: int = MAX_VERTICES,
) -> TriangleMesh:
    """Checks a mesh and returns it as triangles, or raises MeshError naming the problem and the fix."""
    try:
        verts = np.asarray(vertices, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MeshError(
            f"{name}: vertices are not a numeric [N, 3] array ({exc}).", "Send vertex positions as [N, 3] floats."
        ) from exc
    if verts.size == 0:
        raise MeshError(f"{name}: the mesh has no vertices.", "Select a mesh object with geometry.")
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise MeshError(
            f"{name}: vertices must have shape [N, 3], got {verts.shape}.", "Send one (x, y, z) row per vertex."
        )
    if verts.shape[0] > max_vertices:
        raise MeshError(
            f"{name}: {verts.shape[0]:,} vertices is more than the limit of {max_vertices:,}.",
            "Decimate the mesh first (in Blender: Decimate modifier); contact needs far fewer vertices.",
        )
    bad = ~np.isfinite(verts).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MeshError(
            f"{name}: {int(bad.sum())} vertices have NaN or infinite coordinates (first: vertex {first}).",
            "Fix or delete those vertices (in Blender: Mesh > Clean Up) and send the mesh again.",
        )
    if faces is None or len(faces) == 0:
        raise MeshError(
            f"{name}: the mesh has no faces, so it has no surface to render.",
            "Send a mesh with faces, not a point cloud.",
        )
    tris = _triangulate(faces, name)
    if tris.shape[0] > max_faces:
        raise MeshError(
            f"{name}: {tris.shape[0]:,} triangles is more than the limit of {max_faces:,}.",
            "Decimate the mesh first (in Blender: Decimate modifier); contact needs far fewer faces.",
        )
    out_of_range = (tris < 0) | (tris >= verts.shape[0])
    if out_of_range.any():
        first = int(np.flatnonzero(out_of_range.any(axis=1))[0])
        raise MeshError(
            f"{name}: face {first} refers to vertex {int(tris[first][out_of_range[first]][0])}, "
            f"but the mesh has {verts.shape[0]} vertices (indices 0 to {verts.shape[0] - 1}).",
            "Faces must index into this mesh's own vertex list (0-based).",
        )
    if _degenerate_faces(verts, tris).all():
        raise MeshError(
            f"{name}: every face has zero area, so nothing can be rendered.",
            "Check the mesh is not flattened to a line or point (e.g. a scale of 0 on two axes).",
        )
    return TriangleMesh(verts, tris, name)


def read_obj(path: str | Path, *, name: str | None = None, max_faces: int = MAX_FACES) -> TriangleMesh:
    """Reads an OBJ's `v` and `f` records in file order.

    Hand-written because general loaders split vertices at UV or normal seams (spec pitfall P17);
    InteractVLM's contacts refer to the file's own `v` order, which this keeps.
    """
    path = Path(path)
    label = name or path.stem
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, start=1):  # noqa: B007 (read by the ValueError message)
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "v":
                    vertices.append([float(x) for x in parts[1:4]])
                elif parts[0] == "f":
                    corners = []
                    for token in parts[1:]:
                        index = int(token.split("/")[0])
                        # OBJ indices are 1-based; negative ones count back from the latest vertex.
                        corners.append(index - 1 if index > 0 else len(vertices) + index)
                    faces.append(corners)
    except FileNotFoundError as exc:
        raise MeshError(f"{label}: file not found: {path}", "Check the path to the mesh file.") from exc
    except ValueError as exc:
        raise MeshError(
            f"{label}: {path.name} line {line_no} is not valid OBJ ({exc}).", "Re-export the mesh as OBJ."
        ) from exc
    if any(len(v) != 3 for v in vertices):
        raise MeshError(f"{label}: {path.name} has a vertex line without 3 coordinates.", "Re-export the mesh as OBJ.")
    return validate_mesh(np.array(vertices).reshape(-1, 3), faces, name=label, max_faces=max_faces)


def load_mesh(path: str | Path, *, max_faces: int = MAX_FACES) -> TriangleMesh:
    """Loads OBJ with `read_obj`, other formats (PLY, STL, GLB, OFF) with trimesh without processing."""
    path = Path(path)
    if path.suffix.lower() == ".obj":
        return read_obj(path, max_faces=max_faces)
    import trimesh

    try:
        loaded = trimesh.load_mesh(path, process=False)
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise MeshError(f"{path.stem}: cannot read {path.name} ({exc}).", "Use OBJ, PLY, STL, OFF or GLB.") from exc
    return validate_mesh(np.asarray(loaded.vertices), np.asarray(loaded.faces), name=path.stem, max_faces=max_faces)


# Objects people handle, carry or sit on (what InteractVLM places) span a few mm to a few metres. Outside this the
# mesh is almost surely in the wrong unit (a 12 cm mug modelled in centimetres arrives as a 12 m "mug") or is not
# such an object (a 10 m floor): it cannot be placed against a body, though its contacts can still be computed.
MIN_OBJECT_EXTENT_M = 0.005
MAX_OBJECT_EXTENT_M = 5.0
_POINT_EXTENT_M = 1e-4  # below this the object is a point, not a shape
_COARSE_EDGE_SHARE = 0.15  # a face with an edge longer than this share of the object is coarse for contact
_ZERO_AREA_SHARE = 0.01


@dataclass(frozen=True)
class ObjectMeshReview:
    """What the object path makes of a user's mesh beyond validity.

    mesh: the mesh to render, lift and place: the user's own, with each face re-wound if the closed mesh was
        inside out (vertex order unchanged, so contacts still index the user's vertices).
    notes: awkward but handled input, each saying what, why it matters and what to do.
    placement_blocker: why the object cannot be placed as sent, and how to fix it (contacts still work,
        since rendering normalises the object's size), or None.
    """

    mesh: TriangleMesh
    notes: tuple[str, ...]
    placement_blocker: str | None


def review_object_mesh(mesh: TriangleMesh, label: str) -> ObjectMeshReview:
    """Checks a valid object mesh for wrong units, inside-out normals, coarse or zero-area faces.

    Raises MeshError when the object is a point (nothing to render).
    """
    name = f"object '{label}'"
    extent = float(np.ptp(mesh.vertices, axis=0).max())
    if extent < _POINT_EXTENT_M:
        raise MeshError(
            f"{name}: all vertices lie within {extent:.1e} m (a point, not a shape).",
            "Apply the object's scale in Blender (Ctrl+A) and send it in metres.",
        )
    notes: list[str] = []
    blocker = None
    if not MIN_OBJECT_EXTENT_M <= extent <= MAX_OBJECT_EXTENT_M:
        unit = "centimetres or millimetres" if extent > MAX_OBJECT_EXTENT_M else "kilometres, or scaled down"
        blocker = (
            f"{name} is {extent:.3g} m across, outside the {MIN_OBJECT_EXTENT_M * 1000:g} mm to {MAX_OBJECT_EXTENT_M:g} m "
            f"of objects people handle or sit on, so it was not placed against the body (its contacts are still "
            f"computed). Most likely it was modelled in {unit}: apply the object's scale (in Blender: Ctrl+A > Scale) "
            "and set the scene's unit scale so it is sent in metres, then run again."
        )
    a, b, c = (mesh.vertices[mesh.faces[:, k]] for k in range(3))
    doubled = np.cross(b - a, c - a)  # face normal times twice its area
    faces = mesh.faces
    if _inside_out(mesh, doubled, (a + b + c) / 3):
        faces = faces[:, ::-1].copy()
        notes.append(
            f"{name}: its normals point inwards (the closed mesh is inside out), which would shade its renders "
            "dark and turn its surface the wrong way for placement; its faces were re-wound for this run (vertex "
            "order, and so contact, unchanged). Fix it in Blender: Edit Mode > Mesh > Normals > Recalculate Outside."
        )
    area = np.linalg.norm(doubled, axis=1)
    zero = mesh.degenerate_face_mask()
    if zero.mean() >= _ZERO_AREA_SHARE:
        notes.append(
            f"{name}: {int(zero.sum()):,} of {mesh.num_faces:,} faces have zero area; they cover no pixel, so "
            "they neither receive nor pass on contact. Remove them in Blender: Mesh > Clean Up > Degenerate Dissolve."
        )
    longest = np.maximum.reduce(
        [np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1)]
    )
    coarse = area[longest > _COARSE_EDGE_SHARE * extent].sum() / max(area.sum(), 1e-30)
    if coarse >= 0.5:
        notes.append(
            f"{name}: {100 * coarse:.0f} % of its surface is in faces longer than {100 * _COARSE_EDGE_SHARE:.0f} % of its size "
            f"({mesh.num_vertices:,} vertices in all). Contact is per vertex, so a contact region can only be as fine "
            "as the vertices around it. For finer contact, subdivide it (in Blender: Subdivide, or a Remesh modifier)."
        )
    return ObjectMeshReview(TriangleMesh(mesh.vertices, faces, mesh.name), tuple(notes), blocker)


def _inside_out(mesh: TriangleMesh, doubled_normals: np.ndarray, centroids: np.ndarray) -> bool:
    """True for a closed mesh wound inside out: its signed volume, sum((centroid - centre) . n 2A) / 6, is negative.

    The volume sign means nothing for an open mesh (a sheet, a tube, a mug without a bottom), which is left as
    sent: closed means every directed edge is matched by its reverse. That test builds a matrix of all edges, so
    it runs only when the cheap signs (area vectors summing to zero, a negative volume) already point to inside out.
    """
    total = np.linalg.norm(doubled_normals, axis=1).sum()
    if total == 0 or np.linalg.norm(doubled_normals.sum(0)) > 1e-6 * total:
        return False
    flux = np.einsum("ij,ij->i", centroids - mesh.vertices.mean(0), doubled_normals)
    if not flux.sum() < -0.05 * np.abs(flux).sum():
        return False
    return not _edge_balance(np.asarray(mesh.faces, dtype=np.int64), mesh.num_vertices).count_nonzero()
