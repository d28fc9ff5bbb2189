"""Where the body fit starts: canonical postures x facing directions, ranked by a cheap rigid fit.

A keypoint fit from one standing start cannot reach a sitting or crouching body (the thighs would have to swing
through the depth direction, uphill all the way), and which way a limb points along the depth is what 2D
keypoints do not say. So the fit starts from several postures (standing, sitting, crouching, kneeling, arms
raised), each turned to several facing directions about the body's own vertical axis and rolled in the image
plane to the torso's 2D direction (so a lying person starts lying), once level with the camera and once pitched
with its top towards the camera, as a camera held above the person's middle sees a body (photos are taken from
eye height: a standing person is seen from 5-20 degrees above). Every start is first placed rigidly
(rotation and translation only, the posture fixed) on all keypoints, which costs almost nothing since the
posture's keypoints are computed once; the best few go on to the full fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rodrigues

from ivlm_core.fit import levenberg_marquardt
from ivlm_core.fit.body_kinematics import BodyKinematics, KeypointLayout, PoseParams, rodrigues
from ivlm_core.fit.image_terms import project

TORSO_LENGTH_M = 0.5  # shoulders-to-hips of an average adult, to guess the first depth
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE = 0, 1, 2, 3, 4, 5, 6, 7
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 15, 16, 17, 18


def posture(name: str) -> np.ndarray:
    """Body pose [21, 3] (axis-angle) of a canonical posture."""
    pose = np.zeros((21, 3))
    pose[L_SHOULDER], pose[R_SHOULDER] = [0.0, 0.0, -1.2], [0.0, 0.0, 1.2]  # arms down
    if name == "sitting":
        pose[[L_HIP, R_HIP]] = [-1.5, 0.0, 0.0]
        pose[[L_KNEE, R_KNEE]] = [1.4, 0.0, 0.0]
        pose[L_ELBOW], pose[R_ELBOW] = [0.0, -0.5, 0.0], [0.0, 0.5, 0.0]
    elif name == "crouching":
        pose[L_HIP], pose[R_HIP] = [-2.0, 0.0, 0.25], [-2.0, 0.0, -0.25]
        pose[[L_KNEE, R_KNEE]] = [2.3, 0.0, 0.0]
        pose[[L_ANKLE, R_ANKLE]] = [-0.3, 0.0, 0.0]
        pose[SPINE1] = [0.3, 0.0, 0.0]
        pose[L_SHOULDER], pose[R_SHOULDER] = [0.0, -0.9, -0.6], [0.0, 0.9, 0.6]  # arms forward and down
    elif name == "kneeling":
        pose[[L_HIP, R_HIP]] = [-0.1, 0.0, 0.0]
        pose[[L_KNEE, R_KNEE]] = [1.5, 0.0, 0.0]
        pose[[L_ANKLE, R_ANKLE]] = [0.7, 0.0, 0.0]
        pose[SPINE1] = [0.1, 0.0, 0.0]
    elif name == "arms_up":
        pose[L_SHOULDER], pose[R_SHOULDER] = [0.0, 0.0, 1.3], [0.0, 0.0, -1.3]
    elif name != "standing":
        raise ValueError(f"unknown start posture {name!r}")
    return pose


POSTURES = ("standing", "sitting", "crouching", "kneeling", "arms_up")


@dataclass
class Starts:
    """S starts: a posture's body pose [S, 63], its global rotation [S, 3, 3] and translation [S, 3] after the
    rigid stage, that stage's data loss [S], and a name for each."""

    body_pose: torch.Tensor
    rotation: torch.Tensor
    transl: torch.Tensor
    loss: torch.Tensor
    names: list[str]

    def best(self, count: int, among: torch.Tensor | None = None) -> Starts:
        """The `count` lowest-loss starts (of those where the mask `among` [S] is true), best first."""
        candidates = torch.arange(len(self.names)) if among is None else among.nonzero()[:, 0]
        order = candidates[torch.argsort(self.loss[candidates])[:count]]
        return Starts(
            self.body_pose[order],
            self.rotation[order],
            self.transl[order],
            self.loss[order],
            [self.names[int(i)] for i in order],
        )

    def concat(self, other: Starts) -> Starts:
        return Starts(
            torch.cat([self.body_pose, other.body_pose]),
            torch.cat([self.rotation, other.rotation]),
            torch.cat([self.transl, other.transl]),
            torch.cat([self.loss, other.loss]),
            self.names + other.names,
        )


def torso_roll(points: np.ndarray, weight: np.ndarray, torso: dict[str, int]) -> float:
    """The image-plane angle (radians, about the camera's z) turning 'up' onto the 2D hips -> shoulders line."""
    shoulders = [torso[n] for n in ("left_shoulder", "right_shoulder") if weight[torso[n]] > 0]
    hips = [torso[n] for n in ("left_hip", "right_hip") if weight[torso[n]] > 0]
    if not shoulders or not hips:
        return 0.0
    axis = points[shoulders].mean(0) - points[hips].mean(0)  # image x right, y down
    return float(np.arctan2(axis[0], -axis[1]))  # 0 for an upright torso


def orientation_starts(yaws_deg: tuple[float, ...], roll: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Global rotations [Y, 3, 3]: facing the camera (BODY Y up, Z front -> CV camera), turned by each yaw about the
    body's vertical axis, pitched by `pitch_deg` about the camera's x axis (positive: the top towards the camera),
    then rolled by `roll` about the camera's optical axis."""
    facing = Rotation.from_euler("x", 180, degrees=True)
    tilted = Rotation.from_euler("z", roll) * Rotation.from_euler("x", pitch_deg, degrees=True)
    return np.stack([(tilted * facing * Rotation.from_euler("y", yaw, degrees=True)).as_matrix() for yaw in yaws_deg])


def first_translations(
    local: torch.Tensor,
    root: torch.Tensor,
    rotation: torch.Tensor,
    points: np.ndarray,
    weight: np.ndarray,
    torso: dict[str, int],
    intrinsics: np.ndarray,
) -> torch.Tensor:
    """Translations [S, 3] putting each start's torso (keypoints `local` [S, K, 3] about the root `root` [S, 1, 3],
    turned by `rotation` [S, 3, 3]) on the photo's torso: its centre on the 2D centre, at the depth where its
    shoulders-to-hips line, as turned, has the 2D line's length."""
    ids = [i for i in torso.values() if weight[i] > 0]
    shoulders = [torso[n] for n in ("left_shoulder", "right_shoulder") if weight[torso[n]] > 0]
    hips = [torso[n] for n in ("left_hip", "right_hip") if weight[torso[n]] > 0]
    turned = local @ rotation.transpose(1, 2) + root  # [S, K, 3] at the camera's origin
    if shoulders and hips:
        length_px = float(np.linalg.norm(points[shoulders].mean(0) - points[hips].mean(0)))
        line = turned[:, shoulders].mean(1) - turned[:, hips].mean(1)
        length_m = line[:, :2].norm(dim=-1).clamp_min(0.05)
    else:
        length_px, length_m = 100.0, torch.full((len(local),), TORSO_LENGTH_M)
    depth = float(intrinsics[0, 0]) * length_m / max(length_px, 1.0)
    centre = points[ids].mean(0)
    ray = torch.tensor(
        [(centre[0] - intrinsics[0, 2]) / intrinsics[0, 0], (centre[1] - intrinsics[1, 2]) / intrinsics[1, 1], 1.0]
    )
    return depth[:, None] * ray.float() - turned[:, ids].mean(1)


def rigid_starts(
    kinematics: BodyKinematics,
    layout: KeypointLayout,
    postures: tuple[str, ...],
    rotations: np.ndarray,
    keypoints: tuple[np.ndarray, np.ndarray, dict[str, int], np.ndarray],  # (points, weight, torso ids, K)
    residual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],  # (uv [S, K, 2], depth [S, K]) -> residuals [S, N]
    intrinsics: torch.Tensor,
    steps: int,
    labels: list[str] | None = None,
) -> Starts:
    """Every posture at every starting rotation [R, 3, 3], placed rigidly on the keypoints (Levenberg-Marquardt on a
    rotation offset and the translation); returns all of them with their final costs, posture-major, named
    "posture, label" (labels [R], default "turn r")."""
    labels = labels or [f"turn {r}" for r in range(len(rotations))]
    names, poses, rots = [], [], []
    for name in postures:
        for label, rotation in zip(labels, rotations, strict=True):
            names.append(f"{name}, {label}")
            poses.append(posture(name).reshape(63))
            rots.append(rotation)
    body_pose = torch.tensor(np.stack(poses), dtype=torch.float32)
    start_rot = torch.tensor(np.stack(rots), dtype=torch.float32)
    count = len(names)
    with torch.no_grad():
        params = PoseParams(
            torch.zeros(count, 3),
            body_pose,
            kinematics.relaxed_hands[0].expand(count, 45),
            kinematics.relaxed_hands[1].expand(count, 45),
            torch.zeros(count, kinematics.num_betas),
            torch.zeros(count, 3),
        )
        joints, pts = kinematics.forward(params, kinematics.points(layout.vertex_ids))
        local = layout.keypoints(joints, pts) - joints[:, :1]  # about the root joint, which global rotation keeps
        root = joints[:, :1]
    transl0 = first_translations(local, root, start_rot, *keypoints)
    theta0 = torch.cat([torch.zeros(count, 3), transl0], 1)

    def one(theta: torch.Tensor, rot0: torch.Tensor, points: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        lift = partial(levenberg_marquardt.constant, theta)  # (`solve` differentiates this in forward mode)
        rotation = lift(rot0) @ rodrigues(theta[None, :3])[0]
        uv, z = project(points @ rotation.T + lift(origin) + theta[3:], lift(intrinsics))
        return residual(uv[None], z[None])[0]

    theta, final = levenberg_marquardt.solve(one, theta0, (start_rot, local, root), steps)
    rotation = start_rot @ batch_rodrigues(theta[:, :3])
    transl = theta[:, 3:]
    return Starts(body_pose, rotation, transl, final, names)
