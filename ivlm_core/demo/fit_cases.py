"""Object-placement cases with known answers, made from the synthetic scenes. DEMO data.

A case is a scene seen from its camera: the body in CV_CAMERA coordinates, the visible masks, the true
contacts, and the object handed over in a randomly perturbed local frame (as if the user's mesh came in
any orientation), with the true camera_from_object for that frame. Used by tests and benchmarks/bench_fit.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivlm_core.demo.scenes import ALL_SCENE_KINDS, ASSET_SCENE_KINDS, SCENE_OBJECT, SyntheticScene, make_scene
from ivlm_core.fit.place_object import PlacementInputs
from ivlm_core.fit.rotations import random_rotations, rotation_angle_deg
from ivlm_core.frames import invert_rigid, make_transform, transform_points
from ivlm_core.mesh import TriangleMesh

# Objects whose orientation the photo cannot pin down fully: the rotation error is not counted for them.
ROTATION_SYMMETRIC = {"sports_ball"}
# Scene objects symmetric about an axis (their local frame's): the rotation error is the angle between the true
# and placed axes, as the spin about it and the flip end for end change nothing (a plain cylinder).
AXIS_SYMMETRIC = {"cylinder_cup": (0.0, 1.0, 0.0)}
SUCCESS_ROTATION_DEG = 10.0
SUCCESS_TRANSLATION_SHARE = 0.05  # of the body's height


@dataclass
class FitCase:
    scene: SyntheticScene
    inputs: PlacementInputs
    true_camera_from_object: np.ndarray  # [4, 4] for the perturbed local frame
    perturbation_deg: float
    body_height: float
    symmetry_axis: np.ndarray | None = None  # [3] unit, in the handed-over local frame (axis-symmetric objects)


def make_fit_case(kind: str, seed: int, max_perturbation_deg: float = 60.0) -> FitCase:
    scene = make_scene(kind, seed)
    rng = np.random.default_rng(10_000 + seed * 31 + (ALL_SCENE_KINDS + ASSET_SCENE_KINDS).index(kind))
    perturb = random_rotations(1, max_perturbation_deg, rng)[0]
    shift = rng.uniform(-0.5, 0.5, 3)
    # The mesh as the client has it: local = P @ true_local + shift, so true_local = P^T (local - shift).
    true_local_from_given = invert_rigid(make_transform(perturb, shift))
    given = transform_points(make_transform(perturb, shift), scene.object_mesh.vertices)
    camera_from_world = scene.cv_camera_from_world
    truth = camera_from_world @ scene.world_from_object @ true_local_from_given
    body_cam = transform_points(camera_from_world, scene.body_vertices)
    inputs = PlacementInputs(
        body_vertices=body_cam,
        body_faces=scene.body_faces,
        body_contact=scene.body_contact,
        object_mesh=TriangleMesh(given, scene.object_mesh.faces, scene.label),
        object_contact=scene.object_contact,
        intrinsics=scene.intrinsics,
        image_size=scene.image.shape[:2],
        object_mask=scene.object_mask,
        person_mask=scene.person_mask,
    )
    height = float(np.ptp(scene.body_vertices[:, 1]))
    axis = AXIS_SYMMETRIC.get(SCENE_OBJECT[kind])
    symmetry_axis = None if axis is None else perturb @ np.asarray(axis)
    return FitCase(scene, inputs, truth, rotation_angle_deg(np.eye(3), perturb), height, symmetry_axis)


@dataclass(frozen=True)
class PlacementError:
    rotation_deg: float | None  # None for rotation-symmetric objects, the axis angle for axis-symmetric ones
    translation_m: float  # distance between the true and placed object centroids
    translation_share: float  # of the body height
    success: bool


def placement_error(case: FitCase, camera_from_object: np.ndarray | None) -> PlacementError:
    if camera_from_object is None:
        return PlacementError(None, float("inf"), float("inf"), False)
    local = case.inputs.object_mesh.vertices
    true_c = transform_points(case.true_camera_from_object, local).mean(0)
    placed_c = transform_points(camera_from_object, local).mean(0)
    t_err = float(np.linalg.norm(true_c - placed_c))
    rot = camera_from_object[:3, :3] / np.cbrt(np.linalg.det(camera_from_object[:3, :3]))
    true_rot = case.true_camera_from_object[:3, :3]
    if case.scene.label in ROTATION_SYMMETRIC:
        r_err = None
    elif case.symmetry_axis is not None:
        cos = abs(float((true_rot @ case.symmetry_axis) @ (rot @ case.symmetry_axis)))
        r_err = float(np.degrees(np.arccos(min(cos, 1.0))))
    else:
        r_err = rotation_angle_deg(true_rot, rot)
    share = t_err / case.body_height
    ok = share <= SUCCESS_TRANSLATION_SHARE and (r_err is None or r_err <= SUCCESS_ROTATION_DEG)
    return PlacementError(r_err, t_err, share, ok)
