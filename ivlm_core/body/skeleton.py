"""The body model's skeleton for rigging a result: joint names, the kinematic tree and sparse skinning weights.

Clients (the Blender add-on) build an armature whose rest pose is the fitted body: bones at the posed joints,
vertex groups with the model's linear-blend-skinning weights. Posing that armature then deforms the mesh with
the same maths as SMPL-X's own skinning, without its pose-corrective shapes (those are baked into the rest mesh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivlm_core.body.models import LoadedBodyModel

SMPLX_KINEMATIC_JOINTS = 55  # smplx's first 55 joints are the kinematic tree; the rest are surface landmarks
WEIGHT_EPSILON = 1e-6  # skinning weights below this are dropped from the sparse list (they move nothing visible)


@dataclass(frozen=True)
class Skeleton:
    joint_names: list[str]
    parents: np.ndarray  # int32 [J]; -1 for the root
    weight_vertex: np.ndarray  # int32 [nnz]: (vertex, joint, weight) triples of the skinning weights
    weight_joint: np.ndarray  # int32 [nnz]
    weight_value: np.ndarray  # float32 [nnz]


def body_skeleton(body: LoadedBodyModel) -> Skeleton:
    """The skeleton of an smplx SMPL-X module (real or the synthetic demo body)."""
    from smplx.joint_names import JOINT_NAMES

    parents = body.model.parents.detach().cpu().numpy().astype(np.int32)
    count = len(parents)
    if body.model_type != "smplx" or count != SMPLX_KINEMATIC_JOINTS:
        raise ValueError(
            f"rigging needs an SMPL-X model with {SMPLX_KINEMATIC_JOINTS} joints; got {body.model_type} with {count}"
        )
    weights = body.model.lbs_weights.detach().cpu().numpy()
    vertex, joint = np.nonzero(weights > WEIGHT_EPSILON)
    return Skeleton(
        joint_names=list(JOINT_NAMES[:count]),
        parents=parents,
        weight_vertex=vertex.astype(np.int32),
        weight_joint=joint.astype(np.int32),
        weight_value=weights[vertex, joint].astype(np.float32),
    )
