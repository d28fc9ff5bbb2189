"""SMPL-X posed joints and a chosen few surface points, without posing all 10,475 vertices.

A keypoint fit needs the 55 joints and about 200 surface points (toes, fingertips, face landmarks, silhouette
samples), not the whole mesh, and smplx's forward skins every vertex and chains the 55 joint transforms one
joint at a time. Here the joints are linear in the shape (precomputed), the transforms are chained one tree
level at a time (about 12 batched products instead of 54 sequential ones) and only the requested vertices are
skinned. Same maths as smplx's `lbs` (shape blend shapes, pose correctives, linear blend skinning, `transl`
added last; hand poses are full axis-angle, i.e. smplx with use_pca=False and flat_hand_mean=True); the tests
compare it with smplx's output.

Frames: whatever frame `global_orient` and `transl` are given in (the fit uses the photo's CV_CAMERA frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES
from smplx.lbs import batch_rodrigues
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from ivlm_core.body import LoadedBodyModel
from ivlm_core.fit.levenberg_marquardt import constant
from ivlm_core.perceive.coco import COCO_WHOLEBODY_KEYPOINTS

NUM_JOINTS = 55
NUM_BODY_JOINTS = 21
NUM_HAND_JOINTS = 15
FIRST_LANDMARK = 76  # smplx's output: 55 joints, 21 vertex keypoints, then the 51 static face landmarks
HAND_FINGERS = {
    "thumb": "thumb",
    "forefinger": "index",
    "middle_finger": "middle",
    "ring_finger": "ring",
    "pinky_finger": "pinky",
}


@dataclass(frozen=True)
class PoseParams:
    """Batched SMPL-X parameters (axis-angle). Hands are full 15-joint poses (no PCA, flat-hand convention)."""

    global_orient: torch.Tensor  # [B, 3]
    body_pose: torch.Tensor  # [B, 63]
    left_hand_pose: torch.Tensor  # [B, 45]
    right_hand_pose: torch.Tensor  # [B, 45]
    betas: torch.Tensor  # [B, num_betas]
    transl: torch.Tensor  # [B, 3]


def smplx_source(name: str) -> str:
    """The smplx output joint (by smplx's JOINT_NAMES) that a COCO-WholeBody keypoint corresponds to, or ''.

    The jaw contour (face-0 .. face-16) has none: SMPL-X moves it with the head's yaw (dynamic landmarks)."""
    if name.startswith("face-"):
        index = int(name[5:])
        return "" if index < 17 else JOINT_NAMES[FIRST_LANDMARK + index - 17]
    if name.endswith("_hand_root"):
        return name.replace("_hand_root", "_wrist")
    for side in ("left", "right"):
        for finger, smplx_finger in HAND_FINGERS.items():
            prefix = f"{side}_{finger}"
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                k = int(name[len(prefix) :])
                return f"{side}_{smplx_finger}" if k == 4 else f"{side}_{smplx_finger}{k}"
    return name  # body and feet keypoints carry smplx's own names


class BodyKinematics:
    """The arrays of one SMPL-X model, laid out for fast batched posing of joints and selected points."""

    def __init__(self, body: LoadedBodyModel, num_betas: int = 10) -> None:
        model = body.model
        if body.model_type != "smplx":
            raise ValueError(f"body kinematics needs an SMPL-X model, got {body.model_type}")
        dtype = torch.float32
        self.num_betas = min(num_betas, int(model.shapedirs.shape[-1]))
        self.v_template = model.v_template.detach().to(dtype)
        self.shapedirs = model.shapedirs.detach()[..., : self.num_betas].to(dtype)
        self.posedirs = model.posedirs.detach().to(dtype).reshape(-1, len(self.v_template), 3)  # [486, V, 3]
        self.lbs_weights = model.lbs_weights.detach().to(dtype)
        self.parents = model.parents.detach().long()
        regressor = model.J_regressor.detach().to(dtype)
        self.j_template = regressor @ self.v_template  # joints are linear in the shape
        self.j_shapedirs = torch.einsum("jv,vkl->jkl", regressor, self.shapedirs)
        self.faces = torch.as_tensor(np.asarray(model.faces, np.int64))
        self.levels = _tree_levels(self.parents)
        flat = bool(getattr(model, "flat_hand_mean", False))
        self.relaxed_hands = (
            torch.zeros(2, 45)
            if flat
            else torch.stack(
                [model.left_hand_mean.detach().reshape(45), model.right_hand_mean.detach().reshape(45)]
            ).to(dtype)
        )
        self.landmark_faces = model.lmk_faces_idx.detach().long()
        self.landmark_bary = model.lmk_bary_coords.detach().to(dtype)

    @property
    def num_vertices(self) -> int:
        return len(self.v_template)

    # ---- which points a set of keypoints needs --------------------------------------------------------

    def keypoint_layout(self, names: tuple[str, ...] = COCO_WHOLEBODY_KEYPOINTS) -> KeypointLayout:
        """How each named COCO(-WholeBody) keypoint is computed: a joint, a surface vertex, or a face landmark."""
        return self.joint_layout(tuple(smplx_source(name) for name in names), names)

    def smplx_joint_layout(self) -> KeypointLayout:
        """smplx's own output joints without the face contour: 55 joints, 21 vertex keypoints, 51 landmarks."""
        sources = tuple(JOINT_NAMES[: FIRST_LANDMARK + 51])
        return self.joint_layout(sources, sources)

    def joint_layout(self, sources: tuple[str, ...], names: tuple[str, ...]) -> KeypointLayout:
        """A layout for smplx output joint names (`sources`, '' where there is none), reported under `names`."""
        ids = SMPLX_VERTEX_IDS["smplx"]
        vertex_for = {  # smplx's vertex keypoints (its VertexJointSelector), by output joint name
            "nose": ids["nose"],
            "right_eye": ids["reye"],
            "left_eye": ids["leye"],
            "right_ear": ids["rear"],
            "left_ear": ids["lear"],
            "left_big_toe": ids["LBigToe"],
            "left_small_toe": ids["LSmallToe"],
            "left_heel": ids["LHeel"],
            "right_big_toe": ids["RBigToe"],
            "right_small_toe": ids["RSmallToe"],
            "right_heel": ids["RHeel"],
            **{
                f"{s}_{f}": ids[f"{s[0]}{f}"]
                for s in ("left", "right")
                for f in ("thumb", "index", "middle", "ring", "pinky")
            },
        }
        vertices: list[int] = []
        rows: list[list[tuple[str, int, float]]] = []  # per keypoint: (kind, index, weight)
        for source in sources:
            if not source:
                rows.append([])
            elif source in vertex_for:
                vertices.append(int(vertex_for[source]))
                rows.append([("v", len(vertices) - 1, 1.0)])
            elif JOINT_NAMES.index(source) < NUM_JOINTS:
                rows.append([("j", JOINT_NAMES.index(source), 1.0)])
            else:
                landmark = JOINT_NAMES.index(source) - FIRST_LANDMARK
                face = self.faces[self.landmark_faces[landmark]]
                row = []
                for corner in range(3):
                    vertices.append(int(face[corner]))
                    row.append(("v", len(vertices) - 1, float(self.landmark_bary[landmark, corner])))
                rows.append(row)
        mix = torch.zeros(len(names), NUM_JOINTS + len(vertices))
        for k, row in enumerate(rows):
            for kind, index, weight in row:
                mix[k, index if kind == "j" else NUM_JOINTS + index] += weight
        available = torch.tensor([bool(row) for row in rows])
        return KeypointLayout(names, torch.tensor(vertices, dtype=torch.long), mix, available)

    # ---- posing ----------------------------------------------------------------------------------------

    def rotations(self, params: PoseParams) -> torch.Tensor:
        """[B, 55, 3, 3] joint rotations: global, body, jaw and eyes at rest, then the hands."""
        batch = params.body_pose.shape[0]
        eye = torch.zeros(batch, 3, 3, dtype=params.body_pose.dtype)
        aa = torch.cat(
            [
                params.global_orient.reshape(batch, 1, 3),
                params.body_pose.reshape(batch, NUM_BODY_JOINTS, 3),
                eye,
                params.left_hand_pose.reshape(batch, NUM_HAND_JOINTS, 3),
                params.right_hand_pose.reshape(batch, NUM_HAND_JOINTS, 3),
            ],
            1,
        )
        return batch_rodrigues(aa.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)

    def points(
        self, vertex_ids: torch.Tensor, correctives: bool = True, combine: torch.Tensor | None = None
    ) -> SkinnedPoints:
        """The arrays needed to pose the vertices `vertex_ids`, gathered once (posing then runs on contiguous data).

        correctives=False leaves out the pose-corrective blend shapes (millimetres on these points, and most of
        the cost of posing them): for the fit's inner loop, never for a result. `combine` [P, M] (rows summing to
        1): pose P points that each mix these vertices' rest positions and skinning weights instead (a face
        landmark, a mix of three close vertices, then costs one point: the same up to the weights' variation
        across its triangle, a fraction of a millimetre; for the inner loop too)."""
        # Every vertex in order (a result's whole mesh): views, not gathers; the pose correctives alone are 60 MB.
        every = len(vertex_ids) == self.num_vertices and bool((vertex_ids == torch.arange(self.num_vertices)).all())
        take = slice(None) if every else vertex_ids
        weights = self.lbs_weights[take]
        template = self.v_template[take]
        shapedirs = self.shapedirs[take]
        posedirs = self.posedirs[:, take] if correctives else None
        if combine is not None:
            weights, template = combine @ weights, combine @ template
            shapedirs = torch.einsum("pm,mkl->pkl", combine, shapedirs)
            posedirs = None if posedirs is None else torch.einsum("pm,fmk->fpk", combine, posedirs)
        count = len(template)
        # Each vertex follows only a few joints: blend just those (exactly; k = the most any of these vertices has).
        k = max(int((weights > 0).sum(1).max()), 1)
        top, joints = weights.topk(k, dim=1)
        return SkinnedPoints(
            vertex_ids=vertex_ids,
            template=template.reshape(1, count * 3),
            shapedirs=shapedirs.permute(2, 0, 1).reshape(self.num_betas, count * 3).contiguous(),
            posedirs=None if posedirs is None else posedirs.reshape(-1, count * 3).contiguous(),
            weights=top.contiguous(),
            joints=joints.contiguous(),
        )

    @overload
    def pose(
        self, rotations: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, points: SkinnedPoints
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    @overload
    def pose(
        self, rotations: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, points: None
    ) -> tuple[torch.Tensor, None]: ...

    def pose(
        self, rotations: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, points: SkinnedPoints | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posed joints [B, 55, 3] and the posed `points` [B, M, 3] (None: no points)."""
        batch = rotations.shape[0]
        # The constants lifted (`constant`): the body fit differentiates this in forward mode.
        joints = constant(betas, self.j_template) + torch.einsum("jkl,bl->bjk", self.j_shapedirs, betas)
        world = self._chain(rotations, joints)
        posed_joints = world[:, :, :3, 3] + transl[:, None]
        if points is None:
            return posed_joints, None
        # Skinning transforms relative to the rest pose, [R | t - R J] per joint, blended per point.
        rot = world[:, :, :3, :3]
        offset = world[:, :, :3, 3] - (rot @ joints[..., None])[..., 0]
        transforms = torch.cat([rot, offset[..., None]], -1).reshape(batch, NUM_JOINTS, 12)
        # (the weights are not lifted: for a product this large the slow path's fixed cost is the smaller one)
        blended = (points.weights[..., None] * transforms[:, points.joints]).sum(-2).reshape(batch, -1, 3, 4)
        rest = constant(betas, points.template) + betas @ points.shapedirs
        if points.posedirs is not None:
            pose_feature = (rotations[:, 1:] - torch.eye(3, dtype=rotations.dtype)).reshape(batch, -1)
            rest = rest + pose_feature @ points.posedirs
        rest = rest.reshape(batch, -1, 1, 3)
        posed = (blended[..., :3] * rest).sum(-1) + blended[..., 3] + transl[:, None]
        return posed_joints, posed

    def _chain(self, rotations: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """World transforms [B, 55, 4, 4] of each joint, one tree level at a time."""
        batch = rotations.shape[0]
        relative = joints.clone()
        relative[:, 1:] = joints[:, 1:] - joints[:, self.parents[1:]]
        local = torch.cat(
            [
                torch.cat([rotations, relative[..., None]], -1),
                torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=rotations.dtype).expand(batch, NUM_JOINTS, 1, 4),
            ],
            -2,
        )
        world = local
        for level in self.levels[1:]:
            world = world.index_copy(1, level, world[:, self.parents[level]] @ local[:, level])
        return world

    def forward(self, params: PoseParams, points: SkinnedPoints | None = None):
        """`pose` from parameters: (joints [B, 55, 3], points [B, M, 3] or None)."""
        return self.pose(self.rotations(params), params.betas, params.transl, points)

    def vertices(self, params: PoseParams) -> tuple[torch.Tensor, torch.Tensor]:
        """All vertices [B, V, 3] and joints [B, 55, 3] (for results, not for the optimisation loop)."""
        joints, points = self.forward(params, self.points(torch.arange(self.num_vertices)))
        return points, joints


@dataclass(frozen=True)
class SkinnedPoints:
    """Model arrays of a vertex subset, flattened for matrix products (see `BodyKinematics.points`)."""

    vertex_ids: torch.Tensor  # [M]
    template: torch.Tensor  # [1, M*3]
    shapedirs: torch.Tensor  # [num_betas, M*3]
    posedirs: torch.Tensor | None  # [486, M*3]; None: no pose correctives
    weights: torch.Tensor  # [M, k] the k largest skinning weights of each vertex
    joints: torch.Tensor  # [M, k] their joints


@dataclass(frozen=True)
class KeypointLayout:
    """Keypoints as mixes of the 55 posed joints and a few posed vertices: keypoints = mix @ [joints; vertices]."""

    names: tuple[str, ...]
    vertex_ids: torch.Tensor  # [M] the vertices to pose
    mix: torch.Tensor  # [K, 55 + M]
    available: torch.Tensor  # [K] bool: False where SMPL-X has no counterpart (the jaw contour)

    def keypoints(self, joints: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """[B, K, 3] from posed joints [B, 55, 3] and the layout's posed vertices [B, M, 3]."""
        return torch.einsum("kn,bnx->bkx", self.mix, torch.cat([joints, points], 1))

    def one_point_per_keypoint(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The layout with one posed point per vertex-based keypoint: (combine [P, M] for `BodyKinematics.points`,
        mix [K, 55 + P] for the keypoints from the joints and those P points)."""
        vertex_mix = self.mix[:, NUM_JOINTS:]
        uses = torch.nonzero(vertex_mix.abs().sum(1) > 0)[:, 0]
        combine = vertex_mix[uses] / vertex_mix[uses].sum(1, keepdim=True)
        mix = torch.zeros(len(self.names), NUM_JOINTS + len(uses))
        mix[:, :NUM_JOINTS] = self.mix[:, :NUM_JOINTS]
        mix[uses, NUM_JOINTS + torch.arange(len(uses))] = vertex_mix[uses].sum(1)
        return combine, mix


def rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] of axis-angle vectors [N, 3]: smplx's `batch_rodrigues` (the same maths and
    epsilon), with its constants lifted (`constant`) for the body fit's forward-mode Jacobians."""
    angle = torch.norm(rot_vecs + constant(rot_vecs, 1e-8), dim=1, keepdim=True)
    direction = rot_vecs / angle
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    rx, ry, rz = torch.split(direction, 1, dim=1)
    zeros = torch.zeros_like(rx)
    cross = torch.cat([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(-1, 3, 3)
    return constant(rot_vecs, torch.eye(3))[None] + sin * cross + (1 - cos) * torch.bmm(cross, cross)


def _tree_levels(parents: torch.Tensor) -> list[torch.Tensor]:
    """Joint indices grouped by depth in the kinematic tree (the root alone first)."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[int(parents[j])] + 1
    return [torch.tensor([j for j in range(len(parents)) if depth[j] == d]) for d in range(max(depth) + 1)]
