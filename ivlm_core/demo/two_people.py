"""A synthetic photo of two people: a scene's person using its object, and a bystander standing beside and
behind them, facing the camera. DEMO data with exact ground truth, for choosing who interacts with the object.

The bystander's feet are on the scene's floor (the lowest point of the first body). The camera keeps the
scene's viewing direction and is moved until both people and the object fill the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.body import LoadedBodyModel
from ivlm_core.demo.scenes import FILL, IMAGE_SIZE, OBJECT_COLOR, SCENE_OBJECT, SKIN, SyntheticScene, make_scene
from ivlm_core.fit.body_fit import body_from_client
from ivlm_core.frames import invert_rigid, transform_points
from ivlm_core.render.cameras import PinholeCameras
from ivlm_core.render.renderer import rasterize_mesh, shade
from ivlm_core.render.shading import PhongLighting

BYSTANDER_SIDE_M = 0.8  # to the camera's right of the first person
BYSTANDER_BEHIND_M = 1.0  # further from the camera
SHIRT = (0.35, 0.45, 0.7)  # the bystander's colour, so the photo tells them apart


@dataclass
class TwoPeopleScene:
    """Index 0 is the person using the object (the scene's), 1 the bystander. World frame as `scene`."""

    scene: SyntheticScene  # the first person, the object and their contacts (its own photo shows one person)
    image: np.ndarray  # [H, W, 3] uint8: both people and the object
    intrinsics: np.ndarray  # [3, 3]
    cv_camera_from_world: np.ndarray  # [4, 4] this photo's camera
    person_masks: np.ndarray  # [2, H, W] bool, each person's visible pixels
    object_mask: np.ndarray  # [H, W] bool
    body_params: list[dict[str, np.ndarray]]  # world frame, smplx convention
    body_vertices: list[np.ndarray]  # world frame [10475, 3] each

    def box(self, index: int) -> np.ndarray:
        """The visible xyxy box of person `index` (pixel edges), float32."""
        rows, cols = np.nonzero(self.person_masks[index])
        return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)

    def object_box(self) -> np.ndarray:
        rows, cols = np.nonzero(self.object_mask)
        return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


def _bystander(
    body: LoadedBodyModel, scene: SyntheticScene, rng: np.random.Generator, side_m: float, behind_m: float
) -> dict[str, np.ndarray]:
    """A standing, arms-down body facing the camera, beside and behind the first person, feet on the floor."""
    world_from_camera = invert_rigid(scene.cv_camera_from_world)
    first = scene.body_vertices
    pelvis = body_from_client(body, params=scene.body_params).joints[0]
    to_camera = world_from_camera[:3, 3] - pelvis
    to_camera[1] = 0.0
    to_camera /= np.linalg.norm(to_camera)
    right = world_from_camera[:3, 0].copy()
    right[1] = 0.0
    right /= np.linalg.norm(right)
    pose = np.zeros(63)
    pose[15 * 3 + 2], pose[16 * 3 + 2] = -1.2, 1.2  # shoulders: arms from T towards the sides
    params = {
        "betas": np.clip(rng.normal(0.0, 0.6, 10), -1.5, 1.5),
        "global_orient": np.array([0.0, np.arctan2(to_camera[0], to_camera[2]), 0.0]),  # body +Z towards the camera
        "body_pose": pose,
        "transl": np.zeros(3),
    }
    placed = body_from_client(body, params=params)
    target = pelvis + side_m * right - behind_m * to_camera
    shift = target - placed.joints[0]
    shift[1] = first[:, 1].min() - placed.vertices[:, 1].min()
    params["transl"] = shift
    return params


def _frame_all(cam_from_world: np.ndarray, k: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The camera moved (not turned) so the points are centred and fill FILL of the image's tighter axis."""
    height, width = IMAGE_SIZE
    cam = cam_from_world.copy()
    for _ in range(30):
        p = transform_points(cam, points)
        u, v = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
        depth = float(np.median(p[:, 2]))
        spread = max((u.max() - u.min()) / 2 * k[0, 0] / (width / 2), (v.max() - v.min()) / 2 * k[1, 1] / (height / 2))
        cam[:3, 3] += [-(u.max() + u.min()) / 2 * depth, -(v.max() + v.min()) / 2 * depth, depth * (spread / FILL - 1)]
    return cam


def _render(
    meshes: list[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]], cam_from_world: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shaded photo of (vertices, faces, colour) meshes and each mesh's visible mask [M, H, W]."""
    vertices = torch.tensor(np.concatenate([m[0] for m in meshes]), dtype=torch.float32)
    offsets = np.cumsum([0] + [len(m[0]) for m in meshes])
    faces = torch.tensor(np.concatenate([m[1] + offsets[i] for i, m in enumerate(meshes)]))
    colors = torch.cat([torch.tensor(m[2]).expand(len(m[0]), 3) for m in meshes]).float()
    cameras = PinholeCameras(torch.tensor(cam_from_world)[None], torch.tensor(k)[None], IMAGE_SIZE)
    fragments = rasterize_mesh(vertices, faces, cameras)
    light = (cameras.camera_centers()[0].float() + torch.tensor([0.8, 1.5, 0.3]))[None]
    rendering = shade(
        fragments, vertices, faces, cameras, colors, light, lighting=PhongLighting(0.35, 0.65, 0.12, 32.0)
    )
    height, width = IMAGE_SIZE
    backdrop = torch.linspace(0.82, 0.58, height)[:, None, None].expand(height, width, 3)
    rgb = torch.where(rendering.mask[0][..., None], rendering.rgb[0].float(), backdrop)
    face = fragments.pix_to_face[0].numpy()
    face_ends = np.cumsum([0] + [len(m[1]) for m in meshes])
    masks = np.stack([(face >= face_ends[i]) & (face < face_ends[i + 1]) for i in range(len(meshes))])
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), masks


def make_two_people_scene(
    kind: str,
    seed: int,
    body: LoadedBodyModel,
    side_m: float = BYSTANDER_SIDE_M,
    behind_m: float = BYSTANDER_BEHIND_M,
) -> TwoPeopleScene:
    """The scene (kind, seed) with a bystander `side_m` to the camera's right of the first person and `behind_m`
    further away (deterministic); `body` a batch-1 SMPL-X model."""
    scene = make_scene(kind, seed, body=body)
    rng = np.random.default_rng(50_000 + seed)
    bystander = _bystander(body, scene, rng, side_m, behind_m)
    second = body_from_client(body, params=bystander).vertices
    obj = scene.object_vertices_world()
    cam = _frame_all(scene.cv_camera_from_world, scene.intrinsics, np.concatenate([scene.body_vertices, second, obj]))
    image, masks = _render(
        [
            (scene.body_vertices, scene.body_faces, SKIN),
            (second, scene.body_faces, SHIRT),
            (obj, scene.object_mesh.faces, OBJECT_COLOR[SCENE_OBJECT[kind]]),
        ],
        cam,
        scene.intrinsics,
    )
    return TwoPeopleScene(
        scene=scene,
        image=image,
        intrinsics=scene.intrinsics,
        cv_camera_from_world=cam,
        person_masks=masks[:2],
        object_mask=masks[2],
        body_params=[scene.body_params, bystander],
        body_vertices=[scene.body_vertices, second],
    )
