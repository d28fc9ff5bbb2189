"""The two rest meshes of the synthetic body, with exactly the vertex and face counts of the real ones.

SMPL-H (and SMPL): one closed genus-0 surface, 6890 vertices, 13776 faces (F = 2V - 4).
SMPL-X: the same surface, finer (especially the face, as in SMPL-X), with two eye openings of 17 edges,
plus two eyeball spheres of 162 vertices: 10475 vertices, 20908 faces.
Both are in the BODY frame, metres, with vertices ordered so smplx's keypoint vertex ids sit at the
right anatomical spots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ivlm_core.demo.body_shape import body_sdf, grid_axes, target_edge_length
from ivlm_core.demo.face import HOLE_EDGES, cut_eye_openings, eyeball
from ivlm_core.demo.keypoints import keypoint_vertices, reorder_for_keypoints
from ivlm_core.demo.remesh import (
    compact,
    decimate,
    flip_pass,
    marching_cubes_surface,
    remesh_to_count,
    split_to_count,
)
from ivlm_core.demo.sdf import Shape
from ivlm_core.demo.skeleton import EYEBALL_RADIUS, designed_points
from ivlm_core.demo.topology import edges_of, inspect_surface

SMPLX_COUNTS = (10475, 20908)
SMPLH_COUNTS = (6890, 13776)
_BALL_V, _BALL_F = 162, 320


@dataclass
class RestMesh:
    """A rest-pose mesh; `eyeballs` maps 'left'/'right' to the vertex indices of each eyeball."""

    vertices: np.ndarray
    faces: np.ndarray
    eyeballs: dict[str, np.ndarray] = field(default_factory=dict)

    def permuted(self, order: np.ndarray) -> RestMesh:
        """The same mesh with new vertex i = old vertex order[i]."""
        new_index = np.empty_like(order)
        new_index[order] = np.arange(len(order))
        return RestMesh(
            self.vertices[order], new_index[self.faces], {k: new_index[v] for k, v in self.eyeballs.items()}
        )


def build_rest_meshes() -> tuple[RestMesh, RestMesh]:
    """(SMPL-H mesh, SMPL-X mesh), both checked and keypoint-ordered."""
    shape = body_sdf()
    fine_v, fine_f = marching_cubes_surface(shape, grid_axes(0.010, 0.0025, 0.005))
    smplh = _closed_body(shape, *decimate(fine_v, fine_f, int(1.1 * SMPLH_COUNTS[1])))
    smplx = _body_with_eyes(shape, *decimate(fine_v, fine_f, int(1.1 * SMPLX_COUNTS[1])))
    return smplh, smplx


def _sizing(body: float, hands: float, face: float) -> Callable[[np.ndarray], np.ndarray]:
    def sizing(p: np.ndarray) -> np.ndarray:
        return target_edge_length(p, body, hands, face)

    return sizing


def _closed_body(shape: Shape, v: np.ndarray, f: np.ndarray) -> RestMesh:
    n_v, n_f = SMPLH_COUNTS
    v, f = remesh_to_count(v, f, shape, _sizing(0.019, 0.0075, 0.011), n_v)
    check_counts(v, f, n_v, n_f, components=1, boundary_loops=0)
    mesh = RestMesh(v, f)
    return mesh.permuted(reorder_for_keypoints(v, keypoint_vertices(v), "smplh"))


def _body_with_eyes(shape: Shape, v: np.ndarray, f: np.ndarray) -> RestMesh:
    n_v, n_f = SMPLX_COUNTS
    body_v = n_v - 2 * _BALL_V
    sizing = _sizing(0.0165, 0.0062, 0.0072)
    v, f = remesh_to_count(v, f, shape, sizing, body_v - 48)
    pts = designed_points()
    centres = np.stack([pts["left_eye_smplhf"], pts["right_eye_smplhf"]])
    v, f = compact(v, cut_eye_openings(v, f, centres, EYEBALL_RADIUS))
    for centre in centres:  # grow each opening to exactly HOLE_EDGES boundary edges

        def on_this_rim(a: np.ndarray, b: np.ndarray, n_faces: int, c: np.ndarray = centre) -> bool:
            return n_faces == 1 and bool(np.linalg.norm((a + b) / 2 - c) < 2 * EYEBALL_RADIUS)

        rim = _rim_length(v, f, centre)
        if rim > HOLE_EDGES:
            raise RuntimeError(f"eye opening has {rim} > {HOLE_EDGES} edges; refine the face")
        v, f = split_to_count(v, f, shape, sizing, len(v) + HOLE_EDGES - rim, eligible=on_this_rim)
    v, f = split_to_count(v, f, shape, sizing, body_v, eligible=lambda a, b, n_faces: n_faces == 2)
    for _ in range(2):
        f, _ = flip_pass(v, f, "delaunay")
    eyeballs: dict[str, np.ndarray] = {}
    parts_v, parts_f = [v], [f]
    offset = len(v)
    for side, centre in zip(("left", "right"), centres):
        bv, bf = eyeball(centre, EYEBALL_RADIUS)
        eyeballs[side] = offset + np.arange(len(bv))
        parts_v.append(bv)
        parts_f.append(bf + offset)
        offset += len(bv)
    v, f = np.concatenate(parts_v), np.concatenate(parts_f)
    check_counts(v, f, n_v, n_f, components=3, boundary_loops=2)
    mesh = RestMesh(v, f, eyeballs)
    return mesh.permuted(reorder_for_keypoints(v, keypoint_vertices(v, eyeballs), "smplx"))


def _rim_length(v: np.ndarray, f: np.ndarray, centre: np.ndarray) -> int:
    e = edges_of(f)
    rim = e.vertices[e.half[:, 1] < 0]
    return int((np.linalg.norm(v[rim].mean(axis=1) - centre, axis=1) < 2 * EYEBALL_RADIUS).sum())


def check_counts(v: np.ndarray, f: np.ndarray, n_v: int, n_f: int, components: int, boundary_loops: int) -> None:
    """Raises if the mesh is not a 2-manifold of genus 0 pieces with the expected counts."""
    report = inspect_surface(f, len(v))
    problems = []
    if (len(v), len(f)) != (n_v, n_f):
        problems.append(f"{len(v)} vertices / {len(f)} faces, expected {n_v} / {n_f}")
    if not report.is_manifold or report.unused_vertices:
        problems.append(f"not a clean 2-manifold: {report}")
    if report.n_components != components or report.n_boundary_loops != boundary_loops:
        problems.append(f"{report.n_components} pieces and {report.n_boundary_loops} openings")
    if report.genus_total() != 0:
        problems.append(f"genus {report.genus_total()}")
    if problems:
        raise RuntimeError("synthetic body mesh is broken: " + "; ".join(problems))
