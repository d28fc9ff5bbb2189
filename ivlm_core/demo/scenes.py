"""Synthetic photos of the demo body using a demo object, with exact ground truth. DEMO data.

A scene poses the SMPL-X demo body (sitting on a chair, holding a mug with a closed hand, a foot on a ball;
and for the body benchmark also kneeling at a bench, reaching up with a ball, lying on a bench, crouching
over a ball), places the object so that it just touches the body (3 mm gap at the closest point), and
renders a photo with an OpenCV camera. Saved with it: both visible masks, the object pose, the camera, the
body parameters (hands included), the true COCO-WholeBody keypoints (the body's own keypoint positions
projected, with a visibility flag) and per-vertex contacts on body and object (vertices within
CONTACT_DISTANCE of the other surface).

`ASSET_SCENE_KINDS` (issue 14) are two of those actions with meshes as artists bring them
(`ivlm_core.demo.primitives`): a low-poly chair of long boxes, and Blender's 32-section cylinder as the cup.
Their faces are large (a seat is 2 triangles), so a contact patch often holds no vertex: there a vertex is
in contact when a face around it touches the body, which is what lifting a contact mask gives on such faces
(a pixel's contact reaches its face's three corners).

World frame: the BODY frame of the posed SMPL-X output (Y up, metres). Seeds vary body shape, pose
and camera, so many distinct scenes come from one kind (later benchmarks use 50+).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ivlm_core import paths
from ivlm_core.body import LoadedBodyModel, load_body_model
from ivlm_core.demo import primitives
from ivlm_core.demo.body_model import ensure_synthetic_body_models
from ivlm_core.demo.objects import DEMO_OBJECTS, DemoObject
from ivlm_core.fileio import atomic_path, save_npz_atomic
from ivlm_core.fit.body_fit import BodyFit, refine_from
from ivlm_core.fit.body_init import BodyInit, transform_params
from ivlm_core.fit.body_kinematics import BodyKinematics, PoseParams
from ivlm_core.fit.hand_frames import FINGER_ORDER, FIRST_HAND_JOINT, HandFrames
from ivlm_core.frames import invert_rigid, make_transform, transform_points
from ivlm_core.mesh import TriangleMesh
from ivlm_core.render.cameras import PinholeCameras, cv_look_at
from ivlm_core.render.renderer import rasterize_mesh, shade
from ivlm_core.render.shading import PhongLighting

SCENE_KINDS = ("sit_chair", "hold_mug", "foot_on_ball")  # the placement benchmark's kinds (and `ivlm assets`)
BODY_POSE_KINDS = ("kneel_bench", "reach_ball", "lie_bench", "crouch_ball")  # more poses, for the body benchmark
ALL_SCENE_KINDS = SCENE_KINDS + BODY_POSE_KINDS
# The placement benchmark's artist-style meshes: each is posed and placed as the demo kind it names.
ASSET_SCENE_KINDS = ("sit_lowpoly_chair", "hold_cylinder")
ASSET_SCENE_ACTION = {"sit_lowpoly_chair": "sit_chair", "hold_cylinder": "hold_mug"}
SCENE_OBJECT = {
    "sit_chair": "chair",
    "hold_mug": "mug",
    "foot_on_ball": "ball",
    "kneel_bench": "bench",
    "reach_ball": "ball",
    "lie_bench": "bench",
    "crouch_ball": "ball",
    "sit_lowpoly_chair": "lowpoly_chair",
    "hold_cylinder": "cylinder_cup",
}
CONTACT_DISTANCE = 0.015  # metres: a vertex closer than this to the other surface is in contact
TOUCH_GAP = 0.003  # metres between the surfaces at their closest point
IMAGE_SIZE = (640, 480)  # (height, width): portrait, people are tall
FOCAL_PX = 600.0
FILL = 0.85  # the scene spans this share of the image along its tighter axis
SKIN = (0.86, 0.68, 0.56)
OBJECT_COLOR = {
    "chair": (0.55, 0.36, 0.22),
    "mug": (0.92, 0.92, 0.96),
    "ball": (0.95, 0.95, 0.92),
    "bench": (0.45, 0.32, 0.2),
    "lowpoly_chair": (0.55, 0.36, 0.22),
    "cylinder_cup": (0.92, 0.92, 0.96),
}
GENERATOR_VERSION = "ivlm-synthetic-scene-3"
SCENE_TAG_KEY = "ivlm-demo-scene"  # PNG text chunk of a generated photo (see ivlm_core/demo/scene_truth.py)

# SMPL-X body_pose joint slots (joint index - 1).
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = 0, 1, 2, 3, 4, 5, 6, 7, 8
NECK, HEAD = 11, 14
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 15, 16, 17, 18, 19, 20
L_WRIST_JOINT, R_WRIST_JOINT, R_ANKLE_JOINT, R_FOOT_JOINT = 20, 21, 8, 11
# Keypoint visibility: the surface seen at a keypoint's pixel must belong to its own part (its joint, the
# parent or a child) and lie at most this far in front of it (metres).
VISIBLE_DEPTH = 0.25


@dataclass
class SyntheticScene:
    """A rendered photo and its ground truth. Arrays in the world frame unless they say otherwise."""

    kind: str
    seed: int
    label: str
    image: np.ndarray  # [H, W, 3] uint8
    person_mask: np.ndarray  # [H, W] bool, visible person pixels
    object_mask: np.ndarray  # [H, W] bool, visible object pixels
    intrinsics: np.ndarray  # [3, 3] OpenCV K (pixel centres at integers)
    cv_camera_from_world: np.ndarray  # [4, 4]
    body_params: dict[str, np.ndarray]  # betas [10], global_orient [3], body_pose [63], transl [3], left_hand_pose
    # [45], right_hand_pose [45] (axis-angle; hands full and absolute: smplx's use_pca=False, flat_hand_mean=True)
    body_vertices: np.ndarray  # [10475, 3]
    body_joints: np.ndarray  # [55, 3]
    body_faces: np.ndarray  # [20908, 3]
    object_mesh: TriangleMesh  # in the object's own local frame (as a client would send it)
    world_from_object: np.ndarray  # [4, 4]
    body_contact: np.ndarray  # [10475] float, 1 where in contact
    object_contact: np.ndarray  # [N_object] float, 1 where in contact
    keypoints: (
        np.ndarray
    )  # [133, 3] COCO-WholeBody (x, y in pixels, 1 = visible / 0 = hidden, outside or no SMPL-X point)
    keypoints_camera: np.ndarray  # [133, 3] the same keypoints in the CV_CAMERA frame (metres)

    @property
    def name(self) -> str:
        return f"{self.label}__demo_{self.kind}_{self.seed:03d}"

    def object_vertices_world(self) -> np.ndarray:
        return transform_points(self.world_from_object, self.object_mesh.vertices)


def true_body_init(scene: SyntheticScene, body: LoadedBodyModel) -> BodyInit:
    """The scene's true body as a first estimate in its camera's frame (for checks of the fit's objective)."""
    params = transform_params(body, scene.body_params, scene.cv_camera_from_world)
    return BodyInit(
        betas=params["betas"],
        global_orient=params["global_orient"],
        body_pose=params["body_pose"],
        transl=params["transl"],
        source="truth",
        left_hand_pose=params["left_hand_pose"],
        right_hand_pose=params["right_hand_pose"],
    )


def refine_from_truth(scene: SyntheticScene, body: LoadedBodyModel, keypoints: np.ndarray) -> BodyFit:
    """The body fit's objective minimised from the scene's true body (`refine_from`), on `keypoints` [K, 3] and
    the scene's masks: where the objective's own minimum lies near the truth."""
    start = true_body_init(scene, body)
    mask = scene.person_mask
    return refine_from(
        body, keypoints, scene.intrinsics, scene.image.shape[:2], start, mask, occluder_mask=scene.object_mask
    )


def _aim(rest: np.ndarray, target: np.ndarray) -> Rotation:
    """The smallest rotation turning direction `rest` into direction `target`."""
    rest, target = rest / np.linalg.norm(rest), target / np.linalg.norm(target)
    axis = np.cross(rest, target)
    angle = np.arctan2(np.linalg.norm(axis), np.dot(rest, target))
    return Rotation.from_rotvec(axis / max(np.linalg.norm(axis), 1e-12) * angle)


def _arm(pose: np.ndarray, shoulder: int, elbow: int, upper_dir, fore_dir, rng: np.random.Generator) -> Rotation:
    """Aims an arm as a body can: the upper arm along `upper_dir`, the forearm along `fore_dir` (BODY frame,
    jittered), the elbow a hinge. Returns the forearm's rotation (shoulder times elbow).

    The elbow only flexes about its own flexion axis (-y on the left, +y on the right in SMPL-X's rest frame), so
    the shoulder also turns the upper arm about its length until the forearm's direction lies in the flexion
    plane; aiming each segment by its smallest rotation instead puts a sideways bend into the elbow that no
    elbow makes (and that the fit's joint limits rightly rule out)."""
    side = 1.0 if shoulder == L_SHOULDER else -1.0
    upper = np.asarray(upper_dir, float) + rng.normal(0, 0.05, 3)
    fore = np.asarray(fore_dir, float) + rng.normal(0, 0.05, 3)
    upper, fore = upper / np.linalg.norm(upper), fore / np.linalg.norm(fore)
    across = fore - (fore @ upper) * upper  # the forearm's direction across the upper arm
    if np.linalg.norm(across) < 1e-3:  # a straight arm: no flexion plane to choose
        turn = _aim(np.array([side, 0.0, 0.0]), upper)
        pose[shoulder], pose[elbow] = turn.as_rotvec(), np.zeros(3)
        return turn
    across /= np.linalg.norm(across)
    # Columns: where the upper arm's rest axes go. Rest x runs along the arm (+X left, -X right) and the elbow
    # folds the forearm towards rest +Z (forward in T-pose), so rest +Z must go to `across`.
    x_axis = side * upper
    turn = Rotation.from_matrix(np.stack([x_axis, np.cross(across, x_axis), across], 1))
    flexion = np.arctan2(np.linalg.norm(np.cross(upper, fore)), upper @ fore)
    pose[shoulder] = turn.as_rotvec()
    pose[elbow] = [0.0, -side * flexion, 0.0]
    return turn * Rotation.from_rotvec(pose[elbow])


def _pose(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient [3], body pose [21, 3]) axis-angle for a scene kind, with a little seeded variation."""
    pose = np.zeros((21, 3))
    global_orient = np.zeros(3)

    def jitter(scale: float = 0.08) -> np.ndarray:
        return rng.normal(0.0, scale, 3)

    down = np.array([0.0, -1.0, 0.0])
    # Arms: T-pose rest directions are +X (left) and -X (right); hang them down by default.
    pose[L_SHOULDER] = _aim(np.array([1.0, 0, 0]), down + [0.35, 0, 0.05]).as_rotvec() + jitter()
    pose[R_SHOULDER] = _aim(np.array([-1.0, 0, 0]), down + [-0.35, 0, 0.05]).as_rotvec() + jitter()
    pose[SPINE1] = jitter(0.05)
    if kind == "sit_chair":
        for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
            pose[hip] = [-np.pi / 2 + rng.normal(0, 0.08), rng.normal(0, 0.05), rng.normal(0, 0.05)]
            # Knees a little open (75 deg) so the shins slope forward, clear of the seat's front edge.
            pose[knee] = [np.radians(75.0) + rng.normal(0, 0.06), 0.0, 0.0]
        pose[L_ELBOW] = [0.0, -0.4, 0.0] + jitter()
        pose[R_ELBOW] = [0.0, 0.4, 0.0] + jitter()
    elif kind == "hold_mug":
        fore = _arm(pose, R_SHOULDER, R_ELBOW, (-0.25, -0.8, 0.45), (0.3, 0.15, 0.95), rng)
        # Turn the palm (rest normal -Y) to face the body's left (+X), as when gripping a mug's side.
        direction = fore.apply([-1.0, 0, 0])
        palm = fore.apply([0.0, -1.0, 0])
        wanted = np.array([1.0, 0, 0]) - direction[0] * direction
        twist = np.arctan2(np.dot(np.cross(palm, wanted), direction), np.dot(palm, wanted))
        pose[R_WRIST] = (fore.inv() * Rotation.from_rotvec(direction * twist) * fore).as_rotvec()
    elif kind == "foot_on_ball":
        pose[R_HIP] = [-0.55 + rng.normal(0, 0.06), 0.0, -0.1]
        pose[R_KNEE] = [0.45 + rng.normal(0, 0.06), 0.0, 0.0]
    elif kind == "kneel_bench":  # upright thighs, shins on the floor behind, hands on a bench in front
        for hip, knee, ankle, side in ((L_HIP, L_KNEE, L_ANKLE, 1.0), (R_HIP, R_KNEE, R_ANKLE, -1.0)):
            pose[hip] = [-0.15 + rng.normal(0, 0.08), rng.normal(0, 0.04), side * 0.05 + rng.normal(0, 0.03)]
            pose[knee] = [1.5 + rng.normal(0, 0.08), 0.0, 0.0]
            pose[ankle] = [0.8 + rng.normal(0, 0.1), 0.0, 0.0]
        pose[SPINE1] += [0.12, 0.0, 0.0]
        _arm(pose, L_SHOULDER, L_ELBOW, (0.25, -0.75, 0.6), (0.1, -0.55, 0.85), rng)
        _arm(pose, R_SHOULDER, R_ELBOW, (-0.25, -0.75, 0.6), (-0.1, -0.55, 0.85), rng)
    elif kind == "reach_ball":  # standing, the right arm up holding a ball, looking up
        _arm(pose, R_SHOULDER, R_ELBOW, (-0.15, 1.0, 0.15), (-0.05, 1.0, 0.35), rng)
        pose[SPINE3] = [0.0, 0.0, 0.08] + jitter(0.04)
        pose[NECK] = [-0.25, 0.0, 0.0] + jitter(0.05)
    elif kind == "lie_bench":  # on the back, head towards -Z, front up
        global_orient = (Rotation.from_rotvec([-np.pi / 2, 0.0, 0.0]) * Rotation.from_rotvec(jitter(0.05))).as_rotvec()
        for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
            pose[hip] = jitter(0.05)
            pose[knee] = [0.15 + rng.normal(0, 0.05), 0.0, 0.0]
    else:  # crouch_ball: a deep squat, knees apart, both hands on a ball in front
        for hip, knee, ankle, side in ((L_HIP, L_KNEE, L_ANKLE, 1.0), (R_HIP, R_KNEE, R_ANKLE, -1.0)):
            pose[hip] = [-1.9 + rng.normal(0, 0.08), side * 0.1, side * 0.3 + rng.normal(0, 0.05)]
            pose[knee] = [2.2 + rng.normal(0, 0.06), 0.0, 0.0]
            pose[ankle] = [-0.3 + rng.normal(0, 0.05), 0.0, 0.0]
        pose[SPINE1] += [0.35, 0.0, 0.0]
        pose[SPINE2] = [0.1, 0.0, 0.0] + jitter(0.03)
        # The elbows bend as elbows do: the forearms rise from the upper arms towards the ball.
        _arm(pose, L_SHOULDER, L_ELBOW, (0.15, -0.75, 0.65), (0.0, -0.55, 0.8), rng)
        _arm(pose, R_SHOULDER, R_ELBOW, (-0.15, -0.75, 0.65), (0.0, -0.55, 0.8), rng)
    return global_orient, pose


def _surface_tree(vertices: np.ndarray, faces: np.ndarray, seed: int, count: int = 120_000) -> cKDTree:
    """A KD-tree over dense surface samples (plus the vertices), for point-to-surface distances."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    samples, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return cKDTree(np.concatenate([samples, vertices]))


def _touch(moving: np.ndarray, fixed_tree: cKDTree, direction: np.ndarray, max_travel: float = 1.0) -> np.ndarray:
    """Translation along `direction` that brings `moving` to TOUCH_GAP from the fixed surface.

    Sphere tracing: each step advances by the current clearance, which can never pass through the
    surface; a 1 mm floor on the step keeps grazing approaches from stalling.
    """
    direction = direction / np.linalg.norm(direction)
    travel = 0.0
    for _ in range(400):
        gap = fixed_tree.query(moving + travel * direction)[0].min()
        if gap - TOUCH_GAP < 2e-4 or travel > max_travel:
            break
        travel += max(gap - TOUCH_GAP, 1e-3)
    return travel * direction


def _joint_region(body: LoadedBodyModel, joints: tuple[int, ...], threshold: float = 0.5) -> np.ndarray:
    """Vertices mostly skinned to the given joints."""
    weights = body.model.lbs_weights.detach().numpy()
    return np.flatnonzero(weights[:, list(joints)].sum(1) > threshold)


def _place_object(
    kind: str, obj: DemoObject, body: LoadedBodyModel, vertices: np.ndarray, joints: np.ndarray, seed: int
):
    """World-from-object transform putting the object against the body for this scene kind."""
    body_tree = _surface_tree(vertices, np.asarray(body.model.faces, np.int64), seed)
    local = obj.mesh.vertices
    if kind == "sit_chair":
        pelvis = joints[0]
        # The backrest's front face (local z = -0.19) goes just behind the hips and lower back; the seat
        # top (local y = 0.45, 0.46 m square) goes just under the lowest body point above its footprint.
        hips = vertices[
            (np.abs(vertices[:, 0] - pelvis[0]) < 0.25) & (np.abs(vertices[:, 1] - pelvis[1] - 0.05) < 0.25)
        ]
        centre_z = hips[:, 2].min() - 0.02 + 0.19
        above_seat = (np.abs(vertices[:, 0] - pelvis[0]) < 0.23) & (np.abs(vertices[:, 2] - centre_z) < 0.23)
        seat_y = vertices[above_seat, 1].min() - TOUCH_GAP
        transform = make_transform(np.eye(3), np.array([pelvis[0], seat_y - 0.45, centre_z]))
        return transform, body_tree
    if kind == "hold_mug":
        # Centred on the palm (between the wrist and the knuckles), so the fingers can close around its front.
        centre = joints[[R_WRIST_JOINT, 40, 43, 46, 49]].mean(axis=0)
        toward_left = np.array([1.0, 0.0, 0.0])
        rotation = Rotation.from_rotvec([0.0, -np.pi / 2, 0.0]).as_matrix()  # handle (+X) turned to face +Z
        offset = centre + toward_left * 0.09 - np.array([0.0, 0.05, 0.0])
        transform = make_transform(rotation, offset)
        approach = -toward_left  # slide the mug towards the palm
    elif kind == "foot_on_ball":
        foot = vertices[_joint_region(body, (R_ANKLE_JOINT, R_FOOT_JOINT))]
        sole = foot[foot[:, 1] < foot[:, 1].min() + 0.02].mean(axis=0)
        transform = make_transform(np.eye(3), sole - np.array([0.0, 0.16, 0.0]))
        approach = np.array([0.0, 1.0, 0.0])  # raise the ball until it meets the sole
    elif kind in ("kneel_bench", "crouch_ball"):  # under both hands, raised until it meets them
        hands = vertices[_joint_region(body, (L_WRIST_JOINT, R_WRIST_JOINT, *range(25, 55)))]
        centre = hands.mean(axis=0)
        drop = 0.65 if kind == "kneel_bench" else 0.35  # below the lowest hand point: clear of the body
        transform = make_transform(np.eye(3), np.array([centre[0], hands[:, 1].min() - drop, centre[2]]))
        approach = np.array([0.0, 1.0, 0.0])
    elif kind == "reach_ball":  # above the raised right hand, lowered until it meets it
        hand = vertices[_joint_region(body, (R_WRIST_JOINT, *range(40, 55)))]
        top = hand[np.argmax(hand[:, 1])]
        transform = make_transform(np.eye(3), top + np.array([0.0, 0.3, 0.0]))
        approach = np.array([0.0, -1.0, 0.0])
    else:  # lie_bench: the bench along the body, under the back, raised until it meets it
        back = vertices[_joint_region(body, (0, 3, 6, 9))]
        centre = back.mean(axis=0)
        rotation = Rotation.from_rotvec([0.0, np.pi / 2, 0.0]).as_matrix()  # the bench's length (X) along Z
        transform = make_transform(rotation, np.array([centre[0], vertices[:, 1].min() - 0.6, centre[2]]))
        approach = np.array([0.0, 1.0, 0.0])
    world = transform_points(transform, local)
    transform[:3, 3] += _touch(world, body_tree, approach)
    return transform, body_tree


def _scene_object(name: str) -> DemoObject:
    """A scene's object: a demo object, or an artist-style mesh (`primitives`) in the frame of the demo one it stands for."""
    if name == "lowpoly_chair":  # already in the demo chair's frame (faces +Z, origin on the floor)
        return DemoObject("lowpoly_chair", "chair", primitives.lowpoly_chair())
    if name == "cylinder_cup":  # Blender's cylinder at the demo mug's size, standing on the origin like the mug
        mesh = primitives.cylinder(32, radius=0.042, height=0.10)
        return DemoObject("cylinder_cup", "cup", TriangleMesh(mesh.vertices + [0.0, 0.05, 0.0], mesh.faces, name))
    return DEMO_OBJECTS[name]()


def _object_contact(mesh: TriangleMesh, world: np.ndarray, body_tree: cKDTree, by_face: bool, seed: int) -> np.ndarray:
    """[N_object] 1.0 where the object is in contact: vertices near the body, and with `by_face` also the
    corners of every face with a surface point near the body (a large face often has no vertex near the patch)."""
    near = body_tree.query(world)[0] < CONTACT_DISTANCE
    if by_face:
        samples, face_index = trimesh.sample.sample_surface(
            trimesh.Trimesh(world, mesh.faces, process=False), 50_000, seed=seed
        )
        touched = face_index[body_tree.query(samples)[0] < CONTACT_DISTANCE]
        near[np.asarray(mesh.faces)[np.unique(touched)].reshape(-1)] = True
    return near.astype(np.float32)


def make_scene(kind: str, seed: int = 0, body: LoadedBodyModel | None = None) -> SyntheticScene:
    """Builds one synthetic scene (deterministic for a given kind and seed)."""
    known = ALL_SCENE_KINDS + ASSET_SCENE_KINDS
    if kind not in known:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(known)}")
    rng = np.random.default_rng(seed * 7919 + known.index(kind))
    action = ASSET_SCENE_ACTION.get(kind, kind)  # how the body is posed and the object put against it
    if body is None:
        body = load_body_model("smplx", folder=paths.body_models_dir(ensure_synthetic_body_models().root), num_betas=10)
    kinematics = BodyKinematics(body)
    betas = np.clip(rng.normal(0.0, 0.6, 10), -1.5, 1.5)
    global_orient, pose = _pose(action, rng)
    hands = kinematics.relaxed_hands.numpy().astype(np.float64)  # [2, 45] left, right
    params = {"betas": betas, "global_orient": global_orient, "body_pose": pose.reshape(-1), "transl": np.zeros(3)}
    vertices, joints = _posed(kinematics, params, hands)
    faces = np.asarray(body.model.faces, np.int64)
    obj = _scene_object(SCENE_OBJECT[kind])
    world_from_object, body_tree = _place_object(action, obj, body, vertices, joints, seed)
    object_world = transform_points(world_from_object, obj.mesh.vertices)
    object_tree = _surface_tree(object_world, obj.mesh.faces, seed + 1)
    if action == "hold_mug":  # close the right hand around the mug, then re-pose
        hands[1] = _grip(kinematics, params, hands, object_tree, side="right")
        vertices, joints = _posed(kinematics, params, hands)
        body_tree = _surface_tree(vertices, faces, seed)
    params |= {"left_hand_pose": hands[0], "right_hand_pose": hands[1]}
    body_contact = (object_tree.query(vertices)[0] < CONTACT_DISTANCE).astype(np.float32)
    object_contact = _object_contact(obj.mesh, object_world, body_tree, kind in ASSET_SCENE_KINDS, seed + 2)

    cam_from_world, k = _camera(action, rng, np.concatenate([vertices, object_world]))
    color = OBJECT_COLOR[SCENE_OBJECT[kind]]
    image, person, obj_mask, face, depth = _render_photo(
        vertices, faces, object_world, obj.mesh.faces, color, cam_from_world, k
    )
    keypoints, keypoints_camera = _true_keypoints(kinematics, params, cam_from_world, k, face, depth, faces)
    return SyntheticScene(
        kind=kind,
        seed=seed,
        label=obj.label,
        image=image,
        person_mask=person,
        object_mask=obj_mask,
        intrinsics=k,
        cv_camera_from_world=cam_from_world,
        body_params=params,
        body_vertices=vertices,
        body_joints=joints,
        body_faces=faces,
        object_mesh=obj.mesh,
        world_from_object=world_from_object,
        body_contact=body_contact,
        object_contact=object_contact,
        keypoints=keypoints,
        keypoints_camera=keypoints_camera,
    )


def _pose_params(params: dict[str, np.ndarray], hands: np.ndarray) -> PoseParams:
    def t(v: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(v, np.float32).reshape(1, -1))

    return PoseParams(
        t(params["global_orient"]),
        t(params["body_pose"]),
        t(hands[0]),
        t(hands[1]),
        t(params["betas"]),
        t(params["transl"]),
    )


def _posed(
    kinematics: BodyKinematics, params: dict[str, np.ndarray], hands: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World vertices [V, 3] and joints [55, 3] of the body with these parameters (hands full, absolute)."""
    with torch.no_grad():
        vertices, joints = kinematics.vertices(_pose_params(params, hands))
    return vertices[0].numpy().astype(np.float64), joints[0].numpy().astype(np.float64)


def _grip(
    kinematics: BodyKinematics, params: dict[str, np.ndarray], hands: np.ndarray, obj: cKDTree, side: str
) -> np.ndarray:
    """The hand pose [45] of fingers closed around the object, joint by joint from the knuckles out.

    Each finger starts flat; its first joint flexes until the finger comes within TOUCH_GAP of the object's
    surface, then its second joint, then its third (the thumb at 0.8 of the rate). All candidate flexions of
    a stage are posed in one batch."""
    frames = HandFrames(kinematics)
    angles = np.linspace(0.0, 1.6, 33)
    weights = kinematics.lbs_weights.numpy()
    first = FIRST_HAND_JOINT[side]
    regions = [np.flatnonzero(weights[:, first + 3 * f : first + 3 * f + 3].sum(1) > 0.5) for f in range(5)]
    coefficients = torch.zeros(15, 3)
    base = _pose_params(params, hands)
    batch = len(angles)
    for joint in range(3):
        trial = coefficients.expand(batch, 15, 3).clone()
        for f, finger in enumerate(FINGER_ORDER):
            trial[:, 3 * f + joint, 0] += torch.tensor(angles, dtype=torch.float32) * (
                0.8 if finger == "thumb" else 1.0
            )
        pose = frames.to_axis_angle(trial, side)
        grid = PoseParams(
            base.global_orient.expand(batch, 3),
            base.body_pose.expand(batch, 63),
            pose if side == "left" else base.left_hand_pose.expand(batch, 45),
            pose if side == "right" else base.right_hand_pose.expand(batch, 45),
            base.betas.expand(batch, 10),
            base.transl.expand(batch, 3),
        )
        with torch.no_grad():
            vertices = kinematics.vertices(grid)[0].numpy()
        for f in range(5):
            gaps = np.array([obj.query(vertices[i, regions[f]])[0].min() for i in range(batch)])
            touching = np.flatnonzero(gaps < TOUCH_GAP)
            last = max(touching[0] - 1, 0) if len(touching) else batch - 1
            coefficients[3 * f + joint] = trial[last, 3 * f + joint]
    return frames.to_axis_angle(coefficients, side).numpy().astype(np.float64)


def _true_keypoints(
    kinematics: BodyKinematics,
    params: dict[str, np.ndarray],
    cam_from_world: np.ndarray,
    k: np.ndarray,
    face: np.ndarray,
    depth: np.ndarray,
    body_faces: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO-WholeBody keypoints [133, 3] (x, y, visible) and their camera-frame positions [133, 3].

    A keypoint is visible when it projects into the image and the surface drawn at its pixel is the body's,
    belongs to the keypoint's own part (the dominant skinning joint of the drawn face is the keypoint's joint,
    its parent or one of its children) and lies at most VISIBLE_DEPTH in front of it; so a hand hidden behind
    the torso, or behind the object, is not visible. Keypoints without an SMPL-X point (the jaw contour) are
    zero and hidden."""
    layout = kinematics.keypoint_layout()
    hands = np.stack([params["left_hand_pose"], params["right_hand_pose"]])
    with torch.no_grad():
        joints, points = kinematics.forward(_pose_params(params, hands), kinematics.points(layout.vertex_ids))
        world = layout.keypoints(joints, points)[0].numpy().astype(np.float64)
    camera = transform_points(cam_from_world, world)
    uv = camera[:, :2] / camera[:, 2:] * [k[0, 0], k[1, 1]] + k[:2, 2]
    weights = kinematics.lbs_weights.numpy()
    owner_of_face = weights[body_faces].sum(1).argmax(1)
    parents = kinematics.parents.numpy()
    # The joint each keypoint belongs to: its own joint, or the dominant joint of the vertices it mixes.
    mix = layout.mix.numpy()
    owner = np.where(
        mix[:, :55].max(1) > 0,
        mix[:, :55].argmax(1),
        weights[layout.vertex_ids.numpy()][np.maximum(mix[:, 55:].argmax(1), 0)].argmax(1),
    )
    h, w = face.shape
    visible = np.zeros(len(world), bool)
    for i, (u, v) in enumerate(uv):
        col, row = round(u), round(v)
        if not layout.available[i] or not (0 <= col < w and 0 <= row < h):
            continue
        drawn = face[row, col]
        if drawn < 0 or drawn >= len(body_faces) or camera[i, 2] - depth[row, col] > VISIBLE_DEPTH:
            continue
        part = owner_of_face[drawn]
        family = {owner[i], parents[owner[i]], *np.flatnonzero(parents == owner[i])}
        visible[i] = part in family
    keypoints = np.concatenate([uv, visible[:, None].astype(np.float64)], 1)
    keypoints[~layout.available.numpy()] = 0.0
    camera[~layout.available.numpy()] = 0.0
    return keypoints, camera


def _camera(kind: str, rng: np.random.Generator, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A camera in front of the scene, seeded azimuth/elevation, framing every point."""
    base_azimuth = {
        "sit_chair": 25.0,
        "hold_mug": 30.0,
        "foot_on_ball": 15.0,
        "kneel_bench": 30.0,
        "reach_ball": 20.0,
        "lie_bench": 75.0,
        "crouch_ball": 30.0,
    }[kind]
    azimuth = np.radians(base_azimuth + rng.uniform(-15.0, 15.0))
    low, high = (25.0, 40.0) if kind == "lie_bench" else (5.0, 20.0)  # a lying body is seen from above
    elevation = np.radians(rng.uniform(low, high))
    centre = (points.min(0) + points.max(0)) / 2
    direction = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    height, width = IMAGE_SIZE
    k = np.array([[FOCAL_PX, 0.0, (width - 1) / 2], [0.0, FOCAL_PX, (height - 1) / 2], [0.0, 0.0, 1.0]])
    distance = 4.0
    for _ in range(3):  # scale the distance until the projected scene fills FILL of the image
        cam_from_world = cv_look_at(tuple(centre + distance * direction), tuple(centre)).numpy()
        p = transform_points(cam_from_world, points)
        spread = max(
            np.abs(p[:, 0] / p[:, 2]).max() * FOCAL_PX / (width / 2),
            np.abs(p[:, 1] / p[:, 2]).max() * FOCAL_PX / (height / 2),
        )
        distance *= spread / FILL
    cam_from_world = cv_look_at(tuple(centre + distance * direction), tuple(centre)).numpy()
    return cam_from_world, k


def _render_photo(body_vertices, body_faces, object_vertices, object_faces, color, cam_from_world, k):
    """Shaded photo of body and object together, a soft grey backdrop, each one's visible mask, and the face
    index [H, W] (body faces first, then the object's; -1 on background) and depth [H, W] at each pixel."""
    vertices = torch.tensor(np.concatenate([body_vertices, object_vertices]), dtype=torch.float32)
    faces = torch.tensor(np.concatenate([body_faces, object_faces + len(body_vertices)]))
    colors = torch.cat(
        [
            torch.tensor(SKIN).expand(len(body_vertices), 3),
            torch.tensor(color).expand(len(object_vertices), 3),
        ]
    )
    cameras = PinholeCameras(torch.tensor(cam_from_world)[None], torch.tensor(k)[None], IMAGE_SIZE)
    fragments = rasterize_mesh(vertices, faces, cameras)
    eye = cameras.camera_centers()[0].float()
    light = (eye + torch.tensor([0.8, 1.5, 0.3]))[None]
    rendering = shade(
        fragments, vertices, faces, cameras, colors, light, lighting=PhongLighting(0.35, 0.65, 0.12, 32.0)
    )
    height, width = IMAGE_SIZE
    backdrop = torch.linspace(0.82, 0.58, height)[:, None, None].expand(height, width, 3)
    rgb = torch.where(rendering.mask[0][..., None], rendering.rgb[0].float(), backdrop)
    image = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    face = fragments.pix_to_face[0].numpy()
    depth = fragments.depth[0].numpy()
    return image, (face >= 0) & (face < len(body_faces)), face >= len(body_faces), face, depth


def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of a uint8 [H, W, 3] photo's shape and pixel bytes."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    digest = hashlib.sha256(f"{pixels.shape}".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def scene_tag(scene: SyntheticScene) -> PngInfo:
    """The PNG text chunk that marks a photo as this generated scene (see the module docstring)."""
    info = PngInfo()
    tag = {"generator": GENERATOR_VERSION, "kind": scene.kind, "seed": scene.seed, "pixels_sha256": ""}
    tag["pixels_sha256"] = pixels_sha256(scene.image)
    info.add_text(SCENE_TAG_KEY, json.dumps(tag, sort_keys=True))
    return info


def save_scene(scene: SyntheticScene, out_dir: Path) -> Path:
    """Writes the scene to out_dir/<name>/ (photo named like InteractVLM's samples: <label>__<id>.png)."""
    folder = Path(out_dir) / scene.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, array, info in (
        (f"{scene.name}.png", scene.image, scene_tag(scene)),
        ("person_mask.png", scene.person_mask.astype(np.uint8) * 255, None),
        ("object_mask.png", scene.object_mask.astype(np.uint8) * 255, None),
    ):
        with atomic_path(folder / name) as tmp:
            Image.fromarray(array).save(tmp, format="PNG", pnginfo=info)
    with atomic_path(folder / "object_mesh.obj") as tmp:
        trimesh.Trimesh(scene.object_mesh.vertices, scene.object_mesh.faces, process=False).export(tmp, file_type="obj")
    save_npz_atomic(
        folder / "ground_truth.npz",
        {
            "body_contact_smplx": scene.body_contact,
            "object_contact": scene.object_contact,
            "body_vertices": scene.body_vertices.astype(np.float32),
            "body_joints": scene.body_joints.astype(np.float32),
            "keypoints_coco_wholebody": scene.keypoints.astype(np.float32),
            "keypoints_camera": scene.keypoints_camera.astype(np.float32),
            **{f"body_{k}": v for k, v in scene.body_params.items()},
        },
    )
    meta = {
        "demo": True,
        "note": "Synthetic DEMO scene generated by the project; not a real photo.",
        "generator": GENERATOR_VERSION,
        "kind": scene.kind,
        "seed": scene.seed,
        "label": scene.label,
        "image_size_hw": list(IMAGE_SIZE),
        "world_frame": "BODY frame of the posed SMPL-X output: Y up, metres",
        "intrinsics": scene.intrinsics.tolist(),
        "cv_camera_from_world": scene.cv_camera_from_world.tolist(),
        "world_from_object": scene.world_from_object.tolist(),
        "world_from_cv_camera": invert_rigid(scene.cv_camera_from_world).tolist(),
        "contact_distance_m": CONTACT_DISTANCE,
        "body_contact_vertices": int(scene.body_contact.sum()),
        "object_contact_vertices": int(scene.object_contact.sum()),
    }
    with atomic_path(folder / "scene.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return folder
