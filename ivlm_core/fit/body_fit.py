"""SMPL-X from 2D keypoints in the photo's camera frame, SMPLify-style, or a body the client supplies.

Fitting (CV_CAMERA frame, metres, the camera at the origin):
- data term: Geman-McClure robust reprojection of COCO-17 or COCO-WholeBody keypoints (body, feet, face
  landmarks, 21 points per hand), weighted by confidence, in units of the person's height in the photo (so
  the weights mean the same for a small or a large person);
- body pose: axis-angle with licence-free joint limits and a weak pull to rest (`pose_prior`), or VPoser's
  latent space when the user has its weights (`ivlm_core.body.vposer`);
- hands: every finger joint in anatomical axes (flexion, spread, twist) with joint limits (`hand_frames`), so a
  closed hand comes from the hand keypoints;
- optional silhouette term: body surface points projected outside the person mask are pulled in;
- starts: canonical postures x facing directions placed rigidly first (`body_starts`), the best few optimised as
  one batch, the lowest total loss kept, then its limbs re-seeded (`limb_search`), then a last stage from the
  chosen fit with a weaker shape prior (the basin is chosen; the keypoints then set the proportions); or one
  start from a first estimate (`BodyInit`, e.g. Multi-HMR's), whose pose and shape then centre the priors (the
  learned estimate keeps what keypoints cannot see, such as a limb's depth; the keypoints correct the rest);
- checks (`keypoint_input`): bad keypoints are refused or reported with a reason, and a face that is seen but
  ends up facing away (keypoints whose left and right contradict the photo, as after mirroring it) is retried
  with the sides swapped and reported.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial, reduce

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rodrigues

from ivlm_core.body import LoadedBodyModel
from ivlm_core.errors import BadInputError
from ivlm_core.fit import levenberg_marquardt
from ivlm_core.fit.body_init import BodyInit
from ivlm_core.fit.body_kinematics import NUM_BODY_JOINTS, BodyKinematics, KeypointLayout, PoseParams, rodrigues
from ivlm_core.fit.body_starts import POSTURES, orientation_starts, posture, rigid_starts, torso_roll
from ivlm_core.fit.hand_frames import HandFrames, hand_limits
from ivlm_core.fit.image_terms import bilinear, distance_field, project
from ivlm_core.fit.keypoint_input import PreparedKeypoints, prepare_keypoints
from ivlm_core.fit.limb_search import CHAINS as LIMB_CHAINS
from ivlm_core.fit.limb_search import limb_variants
from ivlm_core.fit.pose_prior import body_limits, limit_excess
from ivlm_core.perceive.coco import COCO_KEYPOINTS, COCO_WHOLEBODY_KEYPOINTS, WHOLEBODY_PARTS

HEAD_JOINT = 15
TORSO_INDEX = {
    name: COCO_WHOLEBODY_KEYPOINTS.index(name) for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
}
# The hand keypoints at joints that turn with the wrist alone (each finger's first joint; the thumb's lies off the
# knuckles' line, so it tells the palm from the back of the hand, which the four knuckles alone do not).
KNUCKLES = tuple(
    f"{side}_{finger}1"
    for side in ("left", "right")
    for finger in ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
)
# smplx's output joint for each COCO-17 keypoint (55-59 are its nose/eye/ear vertex joints), for callers that
# project a body's `BodyFit.joints` to COCO-17 keypoints.
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
TORSO_AND_HEAD = tuple(
    COCO_WHOLEBODY_KEYPOINTS.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", *TORSO_INDEX)
)
FACE_CHECK = tuple(COCO_WHOLEBODY_KEYPOINTS.index(n) for n in ("nose", "left_eye", "right_eye"))


@dataclass(frozen=True)
class BodyFitOptions:
    yaw_starts_deg: tuple[float, ...] = (0.0, 60.0, -60.0, 120.0, -120.0, 180.0)
    # The same starts pitched with their top towards the camera (a photo from eye height sees a body from above):
    # the best of them is searched besides the `keep_starts` level ones. Without it a level start explains the
    # pitch by swinging a leg or an arm in depth. 0: level only.
    pitch_start_deg: float = 15.0
    postures: tuple[str, ...] = POSTURES
    keep_starts: int = 6  # how many rigidly placed starts go on to the full fit
    rigid_iterations: int = 8
    iterations: int = 5  # Levenberg-Marquardt iterations of the body search (hands held)
    hand_iterations: int = 3  # then the hands alone (they go on moving in the final stage)
    # then everything together, with the final stage's weaker shape prior: it descends a long valley (kneel_bench
    # seed 0: 4.3 cm after 8, 3.3 cm after 20), and its rejected steps are cheap (they keep their Jacobian)
    final_iterations: int = 20
    confidence_threshold: float = 0.3
    robust_sigma: float = 10.0  # Geman-McClure scale, in percent of the person's height in the photo
    part_weights: tuple[tuple[str, float], ...] = (
        ("body", 1.0),
        ("feet", 0.6),
        ("face", 0.05),
        ("left_hand", 0.25),
        ("right_hand", 0.25),
    )
    w_limits: float = 300.0  # per rad^2 outside a joint's range
    w_pose: float = 0.005  # per rad^2 of body pose away from standing with arms down (weak; the limits do more)
    w_shape: float = 0.01
    # The last stage's shape prior (SMPLify-style annealing): the strong prior above keeps the search among plausible
    # bodies while it chooses the basin; from the chosen fit, a weaker one lets the keypoints set what they do
    # determine (bone lengths, proportions) instead of pulling it towards the mean shape.
    final_w_shape: float = 0.001
    w_hand: float = 0.02  # per rad^2 of hand pose away from relaxed
    w_latent: float = 0.5  # per unit^2 of VPoser latent (when VPoser is used)
    w_silhouette: float = 1.0
    silhouette_points: int = 150
    screen_iterations: int = 2  # limb variants, all of them, without the silhouette term
    keep_variants: int = 2  # the best screened variants, optimised further
    refine_iterations: int = 3
    torso_margin: float = (
        0.1  # how much lower (loss units) another fit's torso loss must be for its limbs to be searched
    )
    mirror_check: bool = True


@dataclass
class BodyFit:
    """A body in the photo's CV_CAMERA frame (metres). `source` is "fitted", "client", "demo" or "estimated" (a
    first estimate used unrefined)."""

    vertices: np.ndarray  # [10475, 3]
    joints: np.ndarray  # [J, 3] smplx output joints (55 kinematic joints first)
    params: dict[str, np.ndarray]  # betas, global_orient, body_pose, transl[, left_hand_pose, right_hand_pose]
    source: str
    losses: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    start: str = "keypoints"  # what the fit started from: "keypoints" (the posture starts) or the first estimate's
    # source (e.g. Multi-HMR)
    best_start: str = ""  # which start and limb variant won, e.g. "sitting, turn 1, left leg flipped"
    prior: str = ""  # "joint limits" or "VPoser"
    keypoint_format: str = ""  # "coco17" or "coco_wholebody"
    flags: list[str] = field(default_factory=list)  # machine-readable outcomes of the input checks


@lru_cache(maxsize=4)
def _kinematics(body: LoadedBodyModel) -> tuple[BodyKinematics, KeypointLayout, KeypointLayout, HandFrames]:
    kinematics = BodyKinematics(body)
    return kinematics, kinematics.keypoint_layout(), kinematics.smplx_joint_layout(), HandFrames(kinematics)


LEAVES = ("delta", "transl", "pose", "betas", "hands")
BODY_LEAVES = ("delta", "transl", "pose", "betas")


@dataclass
class _Batch:
    """The optimised parameters of B fits."""

    rotation0: torch.Tensor  # [B, 3, 3] fixed start rotation; the global rotation is rotation0 @ R(delta)
    delta: torch.Tensor  # [B, 3]
    transl: torch.Tensor  # [B, 3]
    pose: torch.Tensor  # [B, 63] axis-angle, or [B, latent] VPoser latent
    betas: torch.Tensor  # [B, num_betas]
    hands: torch.Tensor  # [B, 2, 15, 3] (flex, spread, twist) per finger joint, left then right
    names: list[str]

    @staticmethod
    def of(tensors: list[torch.Tensor], names: list[str]) -> _Batch:
        """A batch from its tensors in the order [rotation0, *leaves()]."""
        rotation0, delta, transl, pose, betas, hands = tensors
        return _Batch(rotation0, delta, transl, pose, betas, hands, names)

    def leaves(self) -> list[torch.Tensor]:
        return [self.delta, self.transl, self.pose, self.betas, self.hands]

    def take(self, index: int) -> _Batch:
        return _Batch.of(
            [t[index : index + 1].detach().clone() for t in [self.rotation0, *self.leaves()]], [self.names[index]]
        )

    def concat(self, other: _Batch) -> _Batch:
        tensors = [
            torch.cat([a, b]) for a, b in zip([self.rotation0, *self.leaves()], [other.rotation0, *other.leaves()])
        ]
        return _Batch.of(tensors, self.names + other.names)


class _Fitter:
    """One fit: the model pieces, the prepared keypoints and the loss."""

    def __init__(self, body, keypoints, intrinsics, person_mask, occluder_mask, options, prior) -> None:
        self.kin, self.layout, self.joint_layout, self.frames = _kinematics(body)
        self.options = options
        self.prior = prior
        self.k = torch.tensor(intrinsics, dtype=torch.float32)
        self.intrinsics = np.asarray(intrinsics, np.float64)
        self.body_limits = body_limits()
        self.hand_limits = hand_limits()
        self.relaxed = torch.stack(
            [self.frames.from_axis_angle(self.kin.relaxed_hands[i], s) for i, s in enumerate(("left", "right"))]
        )
        # The priors pull towards the first estimate when there is one (it keeps what keypoints cannot see, such as
        # a limb's depth), towards standing with arms down and the mean shape otherwise (`centre_priors`).
        self.pose_centre = torch.tensor(posture("standing").reshape(63), dtype=torch.float32)
        self.betas_centre = torch.zeros(self.kin.num_betas)
        self.centred = False  # whether a first estimate centres the priors
        self.silhouette = None
        ids = [self.layout.vertex_ids]
        if person_mask is not None and person_mask.any():
            # Pixels of something in front of the person (an object) may hide the body: no pull away from them.
            self.silhouette = distance_field(person_mask if occluder_mask is None else person_mask | occluder_mask)
            rng = np.random.default_rng(0)
            ids.append(torch.as_tensor(rng.choice(self.kin.num_vertices, options.silhouette_points, replace=False)))
        # The inner loop poses one point per keypoint (a face landmark mixes three vertices), then the silhouette's.
        combine, self.mix = self.layout.one_point_per_keypoint()
        self.num_layout = len(combine)
        if len(ids) > 1:
            combine = torch.block_diag(combine, torch.eye(len(ids[1])))
        self.points_all = self.kin.points(torch.cat(ids), correctives=False, combine=combine)
        self.points_keypoints = self.kin.points(
            ids[0], correctives=False, combine=combine[: self.num_layout, : len(ids[0])]
        )
        self.use_silhouette = self.silhouette is not None
        self.set_keypoints(keypoints)

    def centre_priors(self, init: BodyInit | None) -> None:
        """The pose and shape priors centred on the first estimate (axis-angle pose; VPoser's latent keeps 0)."""
        if init is None:
            return
        self.centred = True
        self.pose_centre = torch.tensor(np.asarray(init.body_pose).reshape(63), dtype=torch.float32)
        given = torch.tensor(np.asarray(init.betas).reshape(-1)[: self.kin.num_betas], dtype=torch.float32)
        self.betas_centre = torch.zeros(self.kin.num_betas)
        self.betas_centre[: len(given)] = given

    def set_keypoints(self, keypoints: PreparedKeypoints) -> None:
        self.keypoints = keypoints
        part = torch.zeros(len(COCO_WHOLEBODY_KEYPOINTS))
        for name, weight in self.options.part_weights:
            part[list(WHOLEBODY_PARTS[name])] = weight
        self.weight = torch.tensor(keypoints.weight, dtype=torch.float32) * part * self.layout.available
        self.target = torch.tensor(keypoints.points, dtype=torch.float32)
        self.unit_px = max(keypoints.person_px, 1.0) / 100.0  # residuals in percent of the person's height

    def hands_seen(self) -> bool:
        """Whether any finger keypoint is used (COCO-17, or whole-body with the hands hidden or dropped: none)."""
        fingers = [i for side in ("left_hand", "right_hand") for i in list(WHOLEBODY_PARTS[side])[1:]]
        return bool((self.weight[fingers] > 0).any())

    # ---- the model -------------------------------------------------------------------------------------

    def rotations(self, batch: _Batch) -> torch.Tensor:
        count = batch.pose.shape[0]
        global_rot = batch.rotation0 @ rodrigues(batch.delta)
        if self.prior is not None:
            body = self.prior.decode(batch.pose)  # [B, 21, 3, 3]
        else:
            body = rodrigues(batch.pose.reshape(-1, 3)).reshape(count, NUM_BODY_JOINTS, 3, 3)
        hands = torch.stack(
            [self.frames.to_axis_angle(batch.hands[:, i], s) for i, s in enumerate(("left", "right"))], 1
        )
        face = torch.eye(3).expand(count, 3, 3, 3)
        hand_rot = rodrigues(hands.reshape(-1, 3)).reshape(count, 30, 3, 3)
        return torch.cat([global_rot[:, None], body, face, hand_rot], 1)

    def body_pose_aa(self, batch: _Batch) -> torch.Tensor:
        """[B, 63] axis-angle body pose (decoded from the latent with VPoser)."""
        if self.prior is None:
            return batch.pose
        rot = self.prior.decode(batch.pose).detach().numpy().reshape(-1, 3, 3)
        return torch.tensor(Rotation.from_matrix(rot).as_rotvec(), dtype=torch.float32).reshape(-1, 63)

    @contextmanager
    def without_silhouette(self) -> Iterator[None]:
        """Within: no silhouette term (cheaper; for screening many variants)."""
        saved = self.use_silhouette
        self.use_silhouette = False
        try:
            yield
        finally:
            self.use_silhouette = saved

    @contextmanager
    def annealed(self) -> Iterator[None]:
        """Within: the final stage's weaker shape prior (`BodyFitOptions.final_w_shape`), unless a first estimate
        centres the prior (its shape is then what the keypoints leave open, not the mean's pull)."""
        saved = self.options
        if not self.centred:
            self.options = dataclasses.replace(saved, w_shape=saved.final_w_shape)
        try:
            yield
        finally:
            self.options = saved

    @contextmanager
    def body_only(self) -> Iterator[None]:
        """Within: the fingers' keypoints are left out (the hands are held relaxed while the body is searched), all
        but the knuckles, which turn with the wrist alone and so orient the hand."""
        fingers = torch.zeros(len(COCO_WHOLEBODY_KEYPOINTS), dtype=torch.bool)
        for side in ("left_hand", "right_hand"):
            fingers[list(WHOLEBODY_PARTS[side])[1:]] = True
        fingers[[COCO_WHOLEBODY_KEYPOINTS.index(n) for n in KNUCKLES]] = False
        saved = self.weight
        self.weight = torch.where(fingers, torch.zeros_like(saved), saved)
        try:
            yield
        finally:
            self.weight = saved

    def residuals(self, batch: _Batch, robust: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Each term's residuals [B, n] (its loss is their sum of squares). `robust` [B, K]: the data term's
        iteratively reweighted least-squares weights (None: 1)."""
        o = self.options
        # Every constant meeting the parameters is lifted (`constant`): the Jacobians are taken in forward mode.
        lift = partial(levenberg_marquardt.constant, batch.transl)
        rotations = self.rotations(batch)
        points_used = self.points_all if self.use_silhouette else self.points_keypoints
        joints, points = self.kin.pose(rotations, batch.betas, batch.transl, points_used)
        keypoints = torch.einsum("kn,bnx->bkx", self.mix, torch.cat([joints, points[:, : self.num_layout]], 1))
        k = lift(self.k)
        uv, z = project(keypoints, k)
        scale = self.weight.sqrt() if robust is None else (self.weight * robust).sqrt()
        out = {
            "keypoints": ((uv - lift(self.target)) * lift(scale[..., None] / self.unit_px)).flatten(1),
            "behind_camera": torch.relu(0.1 - z) * lift(self.layout.available * 10.0),
        }
        if self.prior is None:
            out["pose_limits"] = lift(math.sqrt(o.w_limits)) * limit_excess(
                batch.pose.reshape(-1, NUM_BODY_JOINTS, 3), lift(self.body_limits)
            )
            out["pose_prior"] = lift(math.sqrt(o.w_pose)) * (batch.pose - lift(self.pose_centre))
        else:
            out["pose_prior"] = lift(math.sqrt(o.w_latent)) * batch.pose
        out["hand_limits"] = lift(math.sqrt(o.w_limits)) * limit_excess(
            batch.hands.reshape(-1, 30, 3), lift(self.hand_limits.repeat(2, 1, 1))
        )
        out["hand_prior"] = lift(math.sqrt(o.w_hand)) * (batch.hands - lift(self.relaxed)).flatten(1)
        out["shape_prior"] = lift(math.sqrt(o.w_shape)) * (batch.betas - lift(self.betas_centre))
        if self.use_silhouette and self.silhouette is not None:  # use_silhouette is only set with a silhouette
            suv, _ = project(points[:, self.num_layout :], k)
            count = suv.shape[1]
            out["silhouette"] = bilinear(self.silhouette, suv) * lift(math.sqrt(o.w_silhouette / count) / self.unit_px)
        return out

    def losses(self, batch: _Batch) -> dict[str, torch.Tensor]:
        """Each term's loss [B]; the data term is Geman-McClure robust (what the fit minimises)."""
        with torch.no_grad():
            terms = self.residuals(batch)
            out = {name: (r**2).sum(-1) for name, r in terms.items()}
            sq = terms["keypoints"].reshape(len(out["keypoints"]), -1, 2).pow(2).sum(-1)  # weight * r^2 per keypoint
            w = self.weight.clamp_min(1e-12)
            sigma2 = self.options.robust_sigma**2
            out["keypoints"] = (w * (sq / w) * sigma2 / (sq / w + sigma2)).sum(-1)
        return out

    def robust_residual(self, uv: torch.Tensor, widen: float = 1.0) -> torch.Tensor:
        """[B, K] residuals whose squares are the Geman-McClure losses of keypoints uv [B, K, 2] (scale `widen`
        times the usual: the starts' limbs are far off, and a saturated loss would not pull their torsos)."""
        lift = partial(levenberg_marquardt.constant, uv)  # (the rigid starts differentiate this in forward mode)
        sq = (((uv - lift(self.target)) / lift(self.unit_px)) ** 2).sum(-1)
        sigma2 = lift((self.options.robust_sigma * widen) ** 2)
        return (lift(self.weight) * sq * sigma2 / (sq + sigma2) + lift(1e-9)).sqrt()

    def torso_loss(self, batch: _Batch) -> torch.Tensor:
        """[B] the Geman-McClure data loss of the torso and head keypoints alone (shoulders, hips, eyes, ears, nose)."""
        with torch.no_grad():
            r = self.residuals(batch)["keypoints"].reshape(batch.pose.shape[0], -1, 2)[:, list(TORSO_AND_HEAD)]
            sq = r.pow(2).sum(-1) / self.weight[list(TORSO_AND_HEAD)].clamp_min(1e-12)
            sigma2 = self.options.robust_sigma**2
            return (self.weight[list(TORSO_AND_HEAD)] * sq * sigma2 / (sq + sigma2)).sum(-1)

    def robust_weights(self, batch: _Batch) -> torch.Tensor:
        """Geman-McClure IRLS weights [B, K]: sigma^4 / (r^2 + sigma^2)^2 at the current residuals."""
        with torch.no_grad():
            r = self.residuals(batch)["keypoints"].reshape(batch.pose.shape[0], -1, 2)
            sq = r.pow(2).sum(-1) / self.weight.clamp_min(1e-12)
            sigma2 = self.options.robust_sigma**2
            return sigma2**2 / (sq + sigma2) ** 2

    # ---- stages ----------------------------------------------------------------------------------------

    def starts(self, init: BodyInit | None) -> tuple[_Batch, list[int]]:
        """The first estimate alone when there is one; else canonical postures x facing directions placed rigidly:
        the best `keep_starts` level ones, then the best pitched one (`pitch_start_deg`). Also returns the indices
        of the starts to search whatever their rank (the pitched one: `_search`)."""
        if init is not None:
            return self._from_init(init), []
        o = self.options
        kp = self.keypoints
        roll = torso_roll(kp.points, kp.weight, TORSO_INDEX)
        yaws = len(o.yaw_starts_deg)
        rotations = orientation_starts(o.yaw_starts_deg, roll)
        labels = [f"turn {r}" for r in range(yaws)]
        if o.pitch_start_deg:
            rotations = np.concatenate([rotations, orientation_starts(o.yaw_starts_deg, roll, o.pitch_start_deg)])
            labels += [f"turn {r}, pitched" for r in range(yaws)]
        rigid = rigid_starts(
            self.kin,
            self.layout,
            o.postures,
            rotations,
            (kp.points, kp.weight, TORSO_INDEX, self.intrinsics),
            lambda uv, z: torch.cat(
                [
                    self.robust_residual(uv, 3.0),
                    torch.relu(0.1 - z) * levenberg_marquardt.constant(z, self.layout.available * 10.0),
                ],
                -1,
            ),
            self.k,
            o.rigid_iterations,
            labels,
        )
        level = (torch.arange(len(rigid.names)) % len(rotations)) < yaws  # rigid_starts is posture-major
        best = rigid.best(o.keep_starts, level)
        always = []
        if not bool(level.all()):
            always = [len(best.names)]
            best = best.concat(rigid.best(1, ~level))
        count = len(best.names)
        pose = best.body_pose if self.prior is None else self.prior.encode(best.body_pose)
        batch = _Batch(
            best.rotation,
            torch.zeros(count, 3),
            best.transl,
            pose,
            torch.zeros(count, self.kin.num_betas),
            self.relaxed.expand(count, 2, 15, 3).clone(),
            list(best.names),
        )
        return batch, always

    def _from_init(self, init: BodyInit) -> _Batch:
        """The first estimate as a batch of one (`BodyInit` has checked its sizes and values)."""

        def t(value: np.ndarray) -> torch.Tensor:
            return torch.tensor(np.asarray(value, np.float64).reshape(-1), dtype=torch.float32)

        betas = torch.zeros(self.kin.num_betas)
        given = t(init.betas)[: self.kin.num_betas]
        betas[: len(given)] = given
        rotation = torch.tensor(Rotation.from_rotvec(np.asarray(init.global_orient)).as_matrix(), dtype=torch.float32)
        body_pose = t(init.body_pose)[None]
        hands = self.relaxed.clone()
        for i, (side, value) in enumerate((("left", init.left_hand_pose), ("right", init.right_hand_pose))):
            if value is not None:
                hands[i] = self.frames.from_axis_angle(t(value), side)
        pose = body_pose if self.prior is None else self.prior.encode(body_pose)
        names = [init.source]
        return _Batch(rotation[None], torch.zeros(1, 3), t(init.transl)[None], pose, betas[None], hands[None], names)

    def optimise(
        self,
        batch: _Batch,
        iterations: int | None = None,
        free: tuple[str, ...] = LEAVES,
        pose_select: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Levenberg-Marquardt (`levenberg_marquardt.solve`) on every fit of the batch at once, over the `free`
        parameters (the others held); the data term Geman-McClure robust by reweighting. Updates `batch`.
        `pose_select` [B, k, 63] (one-hot rows) frees only those k body-pose values of each fit.

        Least squares with damping converges in tens of iterations where first-order methods need hundreds, and
        precise convergence matters: a depth-flipped limb can differ from the truth by a fraction of a pixel."""
        iterations = self.options.iterations if iterations is None else iterations
        count = batch.pose.shape[0]
        leaves = {name: leaf.detach() for name, leaf in zip(LEAVES, batch.leaves())}
        held = tuple(name for name in LEAVES if name not in free)
        base_pose = leaves["pose"].reshape(count, -1)
        if pose_select is None:
            pose_select = torch.eye(base_pose.shape[1]).expand(count, -1, -1)
        sizes = {name: leaves[name][0].numel() for name in LEAVES} | {"pose": pose_select.shape[1]}
        shapes = {name: leaves[name].shape[1:] for name in LEAVES}
        start = {name: leaves[name].reshape(count, -1) for name in LEAVES}
        start["pose"] = (pose_select @ base_pose[..., None])[..., 0]

        def flat(names: tuple[str, ...], source: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.cat([source[n] for n in names], 1) if names else torch.zeros(count, 0)

        def values(free_flat, held_flat, base, select) -> tuple[torch.Tensor, ...]:
            """The five parameter tensors [..., n] of fits from their free and held parts."""
            out = dict(zip(free, torch.split(free_flat, [sizes[n] for n in free], -1)))
            out |= dict(zip(held, torch.split(held_flat, [leaves[n][0].numel() for n in held], -1)))
            if "pose" in free:  # the chosen entries replace the base pose's; the others stay
                kept = base - (base @ select.transpose(-1, -2)) @ select
                out["pose"] = out["pose"] @ select + levenberg_marquardt.constant(free_flat, kept)
            return tuple(out[n] for n in LEAVES)

        def as_batch(parts: tuple[torch.Tensor, ...], rot0: torch.Tensor) -> _Batch:
            shaped = [part.reshape(-1, *shapes[n]) for part, n in zip(parts, LEAVES)]
            return _Batch.of([rot0.reshape(-1, 3, 3), *shaped], batch.names)

        def residual(free_flat, held_flat, rot0, base, select, robust):
            held_flat = levenberg_marquardt.constant(free_flat, held_flat)  # every leaf lifted, as `residuals` needs
            one = as_batch(values(free_flat[None], held_flat[None], base[None], select), rot0[None])
            terms = self.residuals(one, robust[None])
            return torch.cat([t.flatten(1) for t in terms.values()], 1)[0]

        held_flat, rotation0 = flat(held, start), batch.rotation0.detach()
        all_values = torch.func.vmap(values, in_dims=(0, 0, 0, 0))

        def reweight(theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
            current = as_batch(all_values(theta, held_flat, base_pose, pose_select), rotation0)
            return held_flat, rotation0, base_pose, pose_select, self.robust_weights(current)

        theta, _ = levenberg_marquardt.solve(
            residual, flat(free, start), reweight(flat(free, start)), iterations, reweight
        )
        final = as_batch(all_values(theta, held_flat, base_pose, pose_select), rotation0)
        batch.delta, batch.transl, batch.pose, batch.betas, batch.hands = final.leaves()
        return self.losses(batch)

    def world(self, batch: _Batch, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Global rotations [55, 3, 3] and camera-frame positions [55, 3] of one fit's joints."""
        with torch.no_grad():
            rotations = self.rotations(batch)[index : index + 1]
            rest = self.kin.j_template + torch.einsum(
                "jkl,bl->bjk", self.kin.j_shapedirs, batch.betas[index : index + 1]
            )
            world = self.kin._chain(rotations, rest)[0]
        return world[:, :3, :3], world[:, :3, 3] + batch.transl[index]

    @torch.no_grad()
    def limb_variants(self, batch: _Batch, index: int) -> tuple[_Batch, torch.Tensor, list[str]]:
        """Variants of one fit with one limb re-seeded (`limb_search`), everything else as it is, the fit as it is
        first (limb ''); for each the selection [V, 9, 63] of its limb's body-pose values (what screening frees)
        and its limb's name."""
        rotations, positions = self.world(batch, index)
        local = batch_rodrigues(self.body_pose_aa(batch)[index].reshape(NUM_BODY_JOINTS, 3))
        rest = self.kin.j_template + torch.einsum("jkl,l->jk", self.kin.j_shapedirs, batch.betas[index])
        variants: list[tuple[str, torch.Tensor, tuple[int, ...], str]] = [
            ("as it was", local, LIMB_CHAINS["left arm"][:3], "")
        ]
        variants += limb_variants(local, rotations, positions, self.kin.parents, rest)
        names = [f"{batch.names[index]}, {name}" for name, _, _, _ in variants]
        pose = torch.tensor(
            np.stack([Rotation.from_matrix(v.numpy()).as_rotvec().reshape(63) for _, v, _, _ in variants]),
            dtype=torch.float32,
        )
        pose[0] = self.body_pose_aa(batch)[index]  # the fit itself, not a round trip through matrices
        select = torch.zeros(len(variants), 9, 63)
        for v, (_, _, joints, _) in enumerate(variants):
            entries = [3 * (joint - 1) + axis for joint in joints for axis in range(3)]
            select[v, torch.arange(9), torch.tensor(entries)] = 1.0
        count = len(names)
        if self.prior is not None:
            pose = self.prior.encode(pose)

        def take(t: torch.Tensor) -> torch.Tensor:
            return t[index : index + 1].detach().expand(count, *t.shape[1:]).clone()

        global_rot = take(batch.rotation0 @ batch_rodrigues(batch.delta))
        out = _Batch(
            global_rot, torch.zeros(count, 3), take(batch.transl), pose, take(batch.betas), take(batch.hands), names
        )
        return out, select, [limb for _, _, _, limb in variants]

    def facing_away(self, batch: _Batch, index: int) -> bool:
        """True when nose and both eyes are confidently seen but the fitted head faces away from the camera."""
        if not all(self.keypoints.weight[i] > 0 for i in FACE_CHECK):
            return False
        with torch.no_grad():
            rotations = self.rotations(batch)[index : index + 1]
            world = self.kin._chain(
                rotations,
                self.kin.j_template + torch.einsum("jkl,bl->bjk", self.kin.j_shapedirs, batch.betas[index : index + 1]),
            )
            forward = world[0, HEAD_JOINT, :3, :3] @ torch.tensor([0.0, 0.0, 1.0])
            head = world[0, HEAD_JOINT, :3, 3] + batch.transl[index]
        return float(forward @ (-head / head.norm())) < -0.3


def fit_body(
    body: LoadedBodyModel,
    keypoints: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    person_mask: np.ndarray | None = None,
    options: BodyFitOptions = BodyFitOptions(),
    *,
    occluder_mask: np.ndarray | None = None,
    init: BodyInit | None = None,
    prior=None,  # (a loaded VPoser, ivlm_core.body.vposer.VPoser; None: joint limits only)
) -> BodyFit:
    """Fits SMPL-X to keypoints [17 or 133, 3] (x, y, confidence; pixels, COCO or COCO-WholeBody order) seen by
    intrinsics K [3, 3]. `person_mask` [H, W] (the visible person) adds the silhouette term; `occluder_mask` [H, W]
    marks what may hide the person (the objects' masks), where the silhouette term does not pull. Raises
    BadInputError (with the reason) when the keypoints cannot give a body."""
    start = time.perf_counter()
    prepared = prepare_keypoints(
        keypoints, image_size, options.confidence_threshold, person_mask, torso_required=init is None
    )
    fitter = _Fitter(body, prepared, intrinsics, person_mask, occluder_mask, options, prior)
    fitter.centre_priors(init)
    t0 = time.perf_counter()
    batch, terms = _search(fitter, init)
    notes = list(prepared.notes)
    flags = list(prepared.flags)
    if options.mirror_check and fitter.facing_away(batch, 0):
        batch, terms = _retry_mirrored(fitter, init, batch, terms, notes, flags)
    t2 = time.perf_counter()
    result = _result(fitter, batch, terms, 0)
    result.start = init.source if init is not None else "keypoints"
    result.notes = notes
    result.flags = flags
    result.timings_s = {"prepare": t0 - start, "optimise": t2 - t0}
    return result


def refine_from(
    body: LoadedBodyModel,
    keypoints: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    start: BodyInit,
    person_mask: np.ndarray | None = None,
    options: BodyFitOptions = BodyFitOptions(),
    *,
    occluder_mask: np.ndarray | None = None,
    iterations: int = 40,
) -> BodyFit:
    """`fit_body`'s final objective (the last stage's weaker shape prior) minimised from one given body (no search,
    priors NOT centred on it): where the nearest minimum of the fit's own loss lies. Given the true body of a
    generated scene, it tells a search miss (this loss lower than the fit's) from the objective's own bias (its
    minimum away from the truth). Raises as fit_body."""
    prepared = prepare_keypoints(keypoints, image_size, options.confidence_threshold, person_mask)
    fitter = _Fitter(body, prepared, intrinsics, person_mask, occluder_mask, options, None)
    batch = fitter._from_init(start)
    with fitter.annealed():  # the objective of fit_body's final stage
        terms = fitter.optimise(batch, iterations)
    result = _result(fitter, batch, terms, 0)
    result.start = start.source
    return result


def _total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The terms' losses [B] added in order (the built-in sum would start from the int 0)."""
    return reduce(operator.add, terms.values())


def _search(fitter: _Fitter, init: BodyInit | None) -> tuple[_Batch, dict[str, torch.Tensor]]:
    """Starts, the body searched with the hands held, limbs re-seeded, then the hands, then all together: the best
    fit as a batch of one and its losses."""
    o = fitter.options
    batch, always = fitter.starts(init)
    with fitter.body_only():
        # The starts' search on the keypoints alone (the silhouette's points cost more than the keypoints' and
        # matter once the body is near), then judged with every term.
        with fitter.without_silhouette():
            fitter.optimise(batch, o.iterations, BODY_LEAVES)
        terms = fitter.losses(batch)
        # The limbs re-seeded of the best fit, of the one whose torso and head fit best among the others, and of the
        # runner-up: a start can be right in its torso and wrong in its limbs, which the re-seeding corrects (a wrong
        # limb can cost more than a wrong torso), and the basins searched besides the first find what its
        # neighbourhood lacks (a runner-up far behind here can fit best once its limbs are re-seeded). The pitched
        # start is searched too, whatever its rank: early in the search it scores far worse than a level start that
        # has swung a limb in depth to explain the pitch. (Measured effects: README, Benchmarks.)
        total = _total(terms)
        candidates = [int(total.argmin())]
        for ranking in (fitter.torso_loss(batch), total.clone()):
            ranking[candidates + always] = torch.inf
            if bool(ranking.isfinite().any()):
                candidates.append(int(ranking.argmin()))
        candidates += always
        searched = []
        for index in candidates:
            refined, refined_terms, pick = _refine_limbs(fitter, batch, terms, index)
            searched.append((float(_total(refined_terms)[pick]), refined.take(pick)))
    batch = min(searched, key=operator.itemgetter(0))[1]
    # Nothing says how the hands are without finger keypoints: they stay relaxed (the silhouette would bend them).
    hands = fitter.hands_seen()
    free = LEAVES if hands else BODY_LEAVES
    if hands:
        with fitter.without_silhouette():  # the fingers follow their keypoints; the silhouette joins at the end
            fitter.optimise(batch, o.hand_iterations, ("hands",))
    with fitter.annealed():  # the basin is chosen: the shape prior weakens (its losses are the final objective's)
        return batch, fitter.optimise(batch, o.final_iterations, free)


def _refine_limbs(fitter: _Fitter, batch: _Batch, terms, best: int):
    """The best fit's limbs re-seeded (`limb_search`), optimised briefly; the lowest total loss is kept.

    Every variant is screened (its limb and the global placement free), the fit as it is among them as the
    reference; then each limb's best variant that screened better than the reference is put into one combined
    fit, so that two or more limbs in the wrong depth branch are all corrected in one round (the limbs' keypoints
    depend on the torso and their own joints only, so their corrections hardly interact). The combined fit and
    the best few single variants are then optimised properly."""
    o = fitter.options
    variants, select, limbs = fitter.limb_variants(batch, best)
    # Screen them all cheaply (each moving only its limb and the global placement, no silhouette), then finish the
    # best few properly. (With VPoser the latent moves as a whole: no per-limb selection, no combination.)
    with fitter.without_silhouette():
        free = ("delta", "transl", "pose")
        screened = _total(
            fitter.optimise(variants, o.screen_iterations, free, select if fitter.prior is None else None)
        )
    keep = _Batch.of(
        [t[1:][torch.argsort(screened[1:])[: o.keep_variants]] for t in [variants.rotation0, *variants.leaves()]],
        [variants.names[1 + int(i)] for i in torch.argsort(screened[1:])[: o.keep_variants]],
    )
    combined = _combine_limbs(variants, select, limbs, screened) if fitter.prior is None else None
    if combined is not None:
        keep = combined.concat(keep)
    new_terms = fitter.optimise(keep, o.refine_iterations, BODY_LEAVES)
    new_best = int(_total(new_terms).argmin())
    if float(_total(new_terms)[new_best]) >= float(_total(terms)[best]):
        return batch, terms, best
    return keep, new_terms, new_best


def _combine_limbs(variants: _Batch, select: torch.Tensor, limbs: list[str], screened: torch.Tensor) -> _Batch | None:
    """One fit taking, for every limb, its best screened variant's limb pose where that beat the reference
    (variant 0, the fit as it was); None when fewer than two limbs improved (a single variant is kept anyway).
    `select` [V, 9, 63]: each variant's limb entries of the body pose; `screened` [V] their screened losses."""
    winners = []
    for limb in dict.fromkeys(limbs[1:]):
        ids = [v for v, name in enumerate(limbs) if name == limb]
        v = ids[int(screened[ids].argmin())]
        if float(screened[v]) < float(screened[0]):
            winners.append(v)
    if len(winners) < 2:
        return None
    out = variants.take(0)
    pose = out.pose[0].clone()
    for v in winners:
        entries = select[v].argmax(-1)
        pose[entries] = variants.pose[v, entries]
    out.pose = pose[None]
    out.names = [variants.names[0] + ", " + " and ".join(variants.names[v].split(", ")[-1] for v in winners)]
    return out


def _retry_mirrored(fitter, init, batch, terms, notes, flags):
    """The face is seen but the body faces away: fit the keypoints with left and right swapped and keep that when it
    faces the camera and fits at least as well."""
    original = fitter.keypoints
    fitter.set_keypoints(original.mirrored())
    swapped, swapped_terms = _search(fitter, init)
    if (
        not fitter.facing_away(swapped, 0)
        and float(swapped_terms["keypoints"][0]) <= float(terms["keypoints"][0]) * 1.05
    ):
        flags.append("mirrored_keypoints")
        notes.append(
            "the keypoints' left and right contradict the photo (the face is seen, yet they fit only a body facing "
            "away), as when a photo is mirrored after its keypoints were found: fitted with left and right swapped"
        )
        return swapped, swapped_terms
    fitter.set_keypoints(original)
    flags.append("facing_doubtful")
    notes.append("the face is seen but the fitted body faces away from the camera: check the result")
    return batch, terms


def _result(fitter: _Fitter, batch: _Batch, terms: dict[str, torch.Tensor], best: int) -> BodyFit:
    kin = fitter.kin
    with torch.no_grad():
        rotation = (batch.rotation0 @ batch_rodrigues(batch.delta))[best].numpy()
        hands = [
            fitter.frames.to_axis_angle(batch.hands[best : best + 1, i], s)[0] for i, s in enumerate(("left", "right"))
        ]
        body_pose = fitter.body_pose_aa(batch)[best]
        params = PoseParams(
            torch.tensor(Rotation.from_matrix(rotation).as_rotvec(), dtype=torch.float32)[None],
            body_pose[None],
            hands[0][None],
            hands[1][None],
            batch.betas[best : best + 1],
            batch.transl[best : best + 1],
        )
        vertices, _ = kin.vertices(params)
        joints, points = kin.forward(params, kin.points(fitter.joint_layout.vertex_ids))
        all_joints = fitter.joint_layout.keypoints(joints, points)[0]
        uv, _ = project(
            fitter.layout.keypoints(*kin.forward(params, kin.points(fitter.layout.vertex_ids)))[0], fitter.k
        )
    used = fitter.keypoints.weight > 0
    residual = ((uv.numpy() - fitter.keypoints.points) ** 2).sum(-1)
    losses = {name: float(value[best]) for name, value in terms.items()}
    losses["total"] = float(_total(terms)[best])
    losses["keypoint_rms_px"] = float(math.sqrt(residual[used].mean())) if used.any() else float("nan")
    body_used = used[: len(COCO_KEYPOINTS)]
    losses["body_keypoint_rms_px"] = float(math.sqrt(residual[: len(COCO_KEYPOINTS)][body_used].mean()))
    out_params = {
        "betas": batch.betas[best].detach().numpy().astype(np.float64),
        "global_orient": params.global_orient[0].numpy().astype(np.float64),
        "body_pose": body_pose.detach().numpy().astype(np.float64),
        "transl": batch.transl[best].detach().numpy().astype(np.float64),
        "left_hand_pose": hands[0].numpy().astype(np.float64),
        "right_hand_pose": hands[1].numpy().astype(np.float64),
    }
    return BodyFit(
        vertices=vertices[0].numpy().astype(np.float64),
        joints=all_joints.numpy().astype(np.float64),
        params=out_params,
        source="fitted",
        losses=losses,
        best_start=batch.names[best],
        prior="VPoser" if fitter.prior is not None else "joint limits",
        keypoint_format=fitter.keypoints.format,
    )


def body_from_client(
    body: LoadedBodyModel, *, vertices: np.ndarray | None = None, params: dict[str, np.ndarray] | None = None
) -> BodyFit:
    """A client's body, used as is: 10475 vertices in the CV_CAMERA frame, or SMPL-X parameters (hand poses
    optional: full axis-angle [45] in the flat-hand convention; relaxed hands when absent)."""
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
    optional = {"left_hand_pose": 45, "right_hand_pose": 45}
    tensors = {}
    for name, size in {**expected, **optional}.items():
        if name not in params:
            if name in optional:
                continue
            raise BadInputError(f"SMPL-X parameter '{name}' is missing", f"Send {', '.join(expected)}.")
        value = np.asarray(params[name], np.float32).reshape(-1)
        if (size is not None and value.size != size) or not np.isfinite(value).all():
            raise BadInputError(
                f"SMPL-X parameter '{name}' has {value.size} values (or non-finite ones)",
                f"'{name}' needs {size} finite values." if size else "betas need 1 to 10 finite values.",
            )
        tensors[name] = torch.from_numpy(value)[None]
    kin, _, joint_layout, _ = _kinematics(body)
    betas = torch.zeros(1, kin.num_betas)
    n = min(tensors["betas"].shape[1], kin.num_betas)
    betas[:, :n] = tensors["betas"][:, :n]
    hands = [tensors.get(f"{side}_hand_pose", kin.relaxed_hands[i][None]) for i, side in enumerate(("left", "right"))]
    pose = PoseParams(tensors["global_orient"], tensors["body_pose"], hands[0], hands[1], betas, tensors["transl"])
    with torch.no_grad():
        out_vertices, _ = kin.vertices(pose)
        joints, points = kin.forward(pose, kin.points(joint_layout.vertex_ids))
        all_joints = joint_layout.keypoints(joints, points)
    return BodyFit(
        out_vertices[0].numpy().astype(np.float64),
        all_joints[0].numpy().astype(np.float64),
        {name: t[0].numpy().astype(np.float64) for name, t in tensors.items()},
        "client",
    )
