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
from pathlib import Path

import numpy as np

from ivlm_core.errors import MeshError

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


def _degenerate_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    doubled_area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    return repeated | (doubled_area <= 1e-20)


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
        if not np.issubdtype(group.dtype, np.integer):
            if (
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
            for line_no, line in enumerate(handle, start=1):
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
        loaded = trimesh.load(path, process=False, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise MeshError(f"{path.stem}: cannot read {path.name} ({exc}).", "Use OBJ, PLY, STL, OFF or GLB.") from exc
    return validate_mesh(np.asarray(loaded.vertices), np.asarray(loaded.faces), name=path.stem, max_faces=max_faces)
