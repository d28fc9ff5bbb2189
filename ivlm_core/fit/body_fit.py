"""SMPL-X from 2D keypoints in the photo's camera frame, SMPLify-style, or a body the client supplies.

Fitting (CV_CAMERA frame, metres, the camera at the origin):
- data term: Geman-McClure robust reprojection of the COCO-17 keypoints, weighted by confidence;
- priors that need no licensed files: an L2 pull of pose and shape towards the mean, and SMPLify's
  knee/elbow rule (they do not bend backwards) as a hinge;
- optional silhouette term: body surface points projected outside the person mask are pulled in;
- several starts (facing the camera, turned either way, facing away; arms down) optimised as one batch,
  the lowest loss kept. First the global rotation and translation on the torso, then everything.
- or one start from a first estimate (`BodyInit`, e.g. Multi-HMR's), whose pose and shape then centre the
  priors: the learned estimate keeps what keypoints cannot see (depth), the keypoints correct the rest.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ivlm_core.body import LoadedBodyModel
from ivlm_core.errors import BadInputError
from ivlm_core.fit.body_init import BodyInit
from ivlm_core.fit.image_terms import distance_field, project, sample_image
from ivlm_core.perceive.coco import COCO_KEYPOINTS, NUM_COCO_KEYPOINTS

# SMPL-X output joint for each COCO keypoint (55-59 are smplx's nose/eye/ear vertex joints).
SMPLX_JOINT_FOR_COCO = {
    "nose": 55,
    "left_eye": 57,
    "right_eye": 56,
    "left_ear": 59,
    "right_ear": 58,
    "left_shoulder": 16,
    "right_shoulder": 17,
    "left_elbow": 18,
    "right_elbow": 19,
    "left_wrist": 20,
    "right_wrist": 21,
    "left_hip": 1,
    "right_hip": 2,
    "left_knee": 4,
    "right_knee": 5,
    "left_ankle": 7,
    "right_ankle": 8,
}
COCO_TO_SMPLX = torch.tensor([SMPLX_JOINT_FOR_COCO[name] for name in COCO_KEYPOINTS])
TORSO = [COCO_KEYPOINTS.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
# body_pose slots (joint - 1) and the sign of a forward bend about the joint's axis.
KNEES = ((3, 0, 1.0), (4, 0, 1.0))  # left/right knee bend about +X
ELBOWS = ((17, 1, -1.0), (18, 1, 1.0))  # left elbow bends about -Y, right about +Y
MIN_KEYPOINTS = 6
TORSO_LENGTH_M = 0.5  # shoulders-to-hips of an average adult, to guess the first depth


@dataclass(frozen=True)
class BodyFitOptions:
    yaw_starts_deg: tuple[float, ...] = (0.0, 45.0, -45.0, 180.0)
    camera_steps: int = 40
    full_steps: int = 100
    lr: float = 0.03
    confidence_threshold: float = 0.3
    robust_sigma_px: float = 100.0
    w_pose: float = 2e-3  # per radian^2, summed over pose parameters; keypoint terms are in pixels^2/100
    w_shape: float = 5e-3
    w_bend: float = 1.0
    w_silhouette: float = 1.0
    silhouette_points: int = 800


@dataclass
class BodyFit:
    """A body in the photo's CV_CAMERA frame (metres). `source` is "fitted", "client" or "estimated" (a first
    estimate used unrefined); `start` says what it started from: "keypoints" (the standing starts) or the first
    estimate's source (e.g. Multi-HMR)."""

    vertices: np.ndarray  # [10475, 3]
    joints: np.ndarray  # [J, 3] smplx output joints
    params: dict[str, np.ndarray]  # betas [10], global_orient [3], body_pose [63], transl [3] (axis-angle)
    source: str
    losses: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    start: str = "keypoints"


def _axis_angle(rotation: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rotation).as_rotvec()


def _starts(options: BodyFitOptions) -> torch.Tensor:
    """Global orientations (axis-angle) of the starts: the body's +Z front towards the camera, then turned."""
    from scipy.spatial.transform import Rotation

    facing = Rotation.from_euler("x", 180, degrees=True)  # BODY (Y up, Z front) -> CV camera, facing it
    return torch.tensor(
        np.stack(
            [(facing * Rotation.from_euler("y", yaw, degrees=True)).as_rotvec() for yaw in options.yaw_starts_deg]
        ),
        dtype=torch.float32,
    )


def _arms_down(batch: int) -> torch.Tensor:
    pose = torch.zeros(batch, 21, 3)
    pose[:, 15, 2] = -1.2  # left shoulder: arm from T towards the side (about -Z for the left arm)
    pose[:, 16, 2] = 1.2
    return pose.reshape(batch, 63)


def fit_body(
    body: LoadedBodyModel,
    keypoints: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    person_mask: np.ndarray | None = None,
    options: BodyFitOptions = BodyFitOptions(),
    init: BodyInit | None = None,
) -> BodyFit:
    """Fits SMPL-X to COCO-17 keypoints [17, 3] (x, y, confidence; pixels) seen by intrinsics K.

    Without `init`, `body` must have batch size len(options.yaw_starts_deg); with it, batch size 1."""
    start = time.perf_counter()
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.shape != (NUM_COCO_KEYPOINTS, 3) or not np.isfinite(keypoints).all():
        raise BadInputError(
            f"keypoints have shape {keypoints.shape}; expected ({NUM_COCO_KEYPOINTS}, 3) finite (x, y, confidence)",
            "Pass COCO-17 keypoints in pixels, in the order of ivlm_core.perceive.COCO_KEYPOINTS.",
        )
    confident = keypoints[:, 2] >= options.confidence_threshold
    if confident.sum() < MIN_KEYPOINTS or not confident[TORSO].all():
        raise BadInputError(
            f"only {int(confident.sum())} keypoints are confident (>= {options.confidence_threshold}), torso "
            f"{'complete' if confident[TORSO].all() else 'incomplete'}: too little to fit a body",
            "Use a photo where the person's shoulders and hips are visible, or supply the body.",
        )
    batch = 1 if init is not None else len(options.yaw_starts_deg)
    model = body.model
    if model.batch_size != batch:
        raise ValueError(f"the body model has batch size {model.batch_size}; this fit runs {batch} start(s)")
    k = torch.tensor(intrinsics, dtype=torch.float32)
    target = torch.tensor(keypoints[:, :2])
    weight = torch.tensor(np.where(confident, keypoints[:, 2], 0.0), dtype=torch.float32)

    # First depth from the torso's size in pixels, x/y from its centre.
    torso_px = np.linalg.norm(keypoints[TORSO[:2], :2].mean(0) - keypoints[TORSO[2:], :2].mean(0))
    depth = float(intrinsics[0, 0]) * TORSO_LENGTH_M / max(torso_px, 1.0)
    centre = keypoints[TORSO, :2].mean(0)
    transl0 = torch.tensor(
        [
            (centre[0] - intrinsics[0, 2]) * depth / intrinsics[0, 0],
            (centre[1] - intrinsics[1, 2]) * depth / intrinsics[1, 1],
            depth,
        ],
        dtype=torch.float32,
    )
    if init is None:
        global_orient = _starts(options).requires_grad_(True)
        body_pose = _arms_down(batch).requires_grad_(True)
        betas = torch.zeros(batch, 10, requires_grad=True)
        transl = transl0.expand(batch, 3).clone().requires_grad_(True)
    else:
        start_params = {name: torch.tensor(v[None], dtype=torch.float32) for name, v in init.params().items()}
        global_orient, body_pose, betas, transl = (
            start_params[name].requires_grad_(True) for name in ("global_orient", "body_pose", "betas", "transl")
        )
    # The priors pull towards the first estimate when there is one, towards the mean body otherwise.
    pose_centre = body_pose.detach().clone() if init is not None else torch.zeros_like(body_pose)
    betas_centre = betas.detach().clone() if init is not None else torch.zeros_like(betas)

    silhouette = None
    if person_mask is not None and person_mask.any():
        silhouette = distance_field(person_mask)
        faces_sample = np.random.default_rng(0).choice(model.get_num_verts(), options.silhouette_points, replace=False)

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        # The model's root sits at the pelvis, not the origin: pose about it, then add transl in the camera frame.
        out = model(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl, return_verts=True)
        return out.vertices, out.joints

    def losses(use: list[int] | None) -> dict[str, torch.Tensor]:
        vertices, joints = forward()
        uv, z = project(joints[:, COCO_TO_SMPLX], k)
        sq = ((uv - target) ** 2).sum(-1)
        rho = sq * options.robust_sigma_px**2 / (sq + options.robust_sigma_px**2)
        w = weight if use is None else weight * torch.isin(torch.arange(NUM_COCO_KEYPOINTS), torch.tensor(use))
        out = {"keypoints": (w * rho).sum(-1) / w.sum() / 100.0}
        out["behind_camera"] = torch.relu(0.1 - z).sum(-1) * 100.0
        if use is None:
            pose = body_pose.reshape(-1, 21, 3)
            bend = sum(torch.relu(-sign * pose[:, slot, axis]) ** 2 for slot, axis, sign in (*KNEES, *ELBOWS))
            out["pose_prior"] = options.w_pose * ((body_pose - pose_centre) ** 2).sum(-1)
            out["shape_prior"] = options.w_shape * ((betas - betas_centre) ** 2).sum(-1)
            out["bend_prior"] = options.w_bend * bend
            if silhouette is not None:
                suv, sz = project(vertices[:, faces_sample], k)
                metres_per_px = sz.detach().mean(-1, keepdim=True) / float(intrinsics[0, 0])
                out["silhouette"] = (
                    options.w_silhouette * (sample_image(silhouette, suv) * metres_per_px).mean(-1) * 100
                )
        return out

    def run(params: list[torch.Tensor], steps: int, use: list[int] | None) -> dict[str, torch.Tensor]:
        optimiser = torch.optim.Adam(params, lr=options.lr)
        for _ in range(steps):
            optimiser.zero_grad()
            total = sum(losses(use).values())
            total.sum().backward()
            optimiser.step()
        with torch.no_grad():
            return losses(use)

    t0 = time.perf_counter()
    run([global_orient, transl], options.camera_steps, TORSO)
    terms = run([global_orient, transl, body_pose, betas], options.full_steps, None)
    total = sum(terms.values())
    best = int(total.argmin())
    with torch.no_grad():
        vertices, joints = forward()
    params = {
        "betas": betas.detach()[best].numpy().astype(np.float64),
        "global_orient": global_orient.detach()[best].numpy().astype(np.float64),
        "body_pose": body_pose.detach()[best].numpy().astype(np.float64),
        "transl": transl.detach()[best].numpy().astype(np.float64),
    }
    result_losses = {name: float(v[best]) for name, v in terms.items()}
    result_losses["total"] = float(total[best])
    rms_px = float(
        math.sqrt(
            (((project(joints[best : best + 1, COCO_TO_SMPLX], k)[0][0] - target) ** 2).sum(-1) * (weight > 0)).sum()
            / (weight > 0).sum()
        )
    )
    result_losses["keypoint_rms_px"] = rms_px
    return BodyFit(
        vertices=vertices[best].numpy().astype(np.float64),
        joints=joints[best].numpy().astype(np.float64),
        params=params,
        source="fitted",
        losses=result_losses,
        timings_s={"prepare": t0 - start, "optimise": time.perf_counter() - t0},
        start=init.source if init is not None else "keypoints",
    )


def body_from_client(
    body: LoadedBodyModel, *, vertices: np.ndarray | None = None, params: dict[str, np.ndarray] | None = None
) -> BodyFit:
    """A client's body, used as is: 10475 vertices in the CV_CAMERA frame, or SMPL-X parameters."""
    num_verts = body.model.get_num_verts()
    if vertices is not None:
        vertices = np.asarray(vertices, np.float64)
        if vertices.shape != (num_verts, 3) or not np.isfinite(vertices).all():
            raise BadInputError(
                f"the supplied body has vertices of shape {vertices.shape}; expected ({num_verts}, 3) finite values",
                "Send the SMPL-X mesh's vertices in model order, in the photo's camera frame (metres).",
            )
        regressor = body.model.J_regressor.detach().numpy()
        return BodyFit(vertices, regressor @ vertices, {}, "client")
    if params is None:
        raise BadInputError("no body was supplied", "Send either vertices or SMPL-X parameters.")
    expected = {"betas": None, "global_orient": 3, "body_pose": 63, "transl": 3}
    tensors = {}
    for name, size in expected.items():
        if name not in params:
            raise BadInputError(f"SMPL-X parameter '{name}' is missing", f"Send {', '.join(expected)}.")
        value = np.asarray(params[name], np.float32).reshape(-1)
        if (size is not None and value.size != size) or not np.isfinite(value).all():
            raise BadInputError(
                f"SMPL-X parameter '{name}' has {value.size} values (or non-finite ones)",
                f"'{name}' needs {size} finite values." if size else "betas need 1 to 10 finite values.",
            )
        tensors[name] = torch.from_numpy(value)[None]
    betas = torch.zeros(1, body.model.num_betas)
    n = min(tensors["betas"].shape[1], body.model.num_betas)
    betas[:, :n] = tensors["betas"][:, :n]
    with torch.no_grad():
        out = body.model(
            betas=betas,
            body_pose=tensors["body_pose"],
            global_orient=tensors["global_orient"],
            transl=tensors["transl"],
        )
    return BodyFit(
        out.vertices[0].numpy().astype(np.float64),
        out.joints[0].numpy().astype(np.float64),
        {name: t[0].numpy().astype(np.float64) for name, t in tensors.items()},
        "client",
    )
