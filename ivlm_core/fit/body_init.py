"""A first estimate of the body that the keypoint fit starts from (e.g. Multi-HMR's regression).

Parameters are smplx's own (axis-angle, metres) in the photo's CV_CAMERA frame: the model posed by
`global_orient` about its pelvis, then moved by `transl`, lands where the estimator saw the person. Whoever
produces one converts into this convention, so the fit needs to know nothing about the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.body import LoadedBodyModel
from ivlm_core.errors import BadInputError

SIZES = {"betas": 10, "global_orient": 3, "body_pose": 63, "transl": 3}
OPTIONAL_SIZES = {"left_hand_pose": 45, "right_hand_pose": 45, "jaw_pose": 3, "expression": 10}


@dataclass(frozen=True)
class BodyInit:
    """SMPL-X parameters [float64] for the fit's start, and where they came from."""

    betas: np.ndarray  # [10]
    global_orient: np.ndarray  # [3] axis-angle, camera frame
    body_pose: np.ndarray  # [63] 21 joints, axis-angle
    transl: np.ndarray  # [3] metres, smplx's transl (added after posing about the pelvis)
    source: str  # who made it, for notes and results, e.g. "Multi-HMR (multiHMR_896_L.pt)"
    left_hand_pose: np.ndarray | None = None  # [45] 15 joints, axis-angle relative to a flat hand
    right_hand_pose: np.ndarray | None = None  # [45] (smplx flat_hand_mean=True convention)
    jaw_pose: np.ndarray | None = None  # [3]
    expression: np.ndarray | None = None  # [10]
    score: float | None = None  # the estimator's confidence in this person, if it has one

    def __post_init__(self) -> None:
        for name, size in {**SIZES, **OPTIONAL_SIZES}.items():
            value = getattr(self, name)
            if value is None and name in OPTIONAL_SIZES:
                continue
            array = np.asarray(value, np.float64).reshape(-1)
            if array.size != size or not np.isfinite(array).all():
                raise BadInputError(
                    f"the first body estimate's '{name}' has {array.size} values (or non-finite ones); expected {size}",
                    "The body estimator returned an unusable body; fit from keypoints alone.",
                )
            object.__setattr__(self, name, array)

    def params(self) -> dict[str, np.ndarray]:
        """The four parameters every SMPL-X fit has (betas, global_orient, body_pose, transl)."""
        return {name: getattr(self, name) for name in SIZES}


def rest_pelvis(body: LoadedBodyModel, betas: np.ndarray) -> np.ndarray:
    """The unposed pelvis joint [3] of this shape: the point smplx rotates `global_orient` about."""
    model = body.model
    coefficients = torch.zeros(model.num_betas)
    given = torch.as_tensor(np.asarray(betas, np.float32).reshape(-1)[: model.num_betas])
    coefficients[: len(given)] = given
    with torch.no_grad():
        shaped = model.v_template + torch.einsum("l,vkl->vk", coefficients, model.shapedirs[..., : model.num_betas])
        return (model.J_regressor[0] @ shaped).numpy().astype(np.float64)


def transform_params(
    body: LoadedBodyModel, params: dict[str, np.ndarray], new_from_old: np.ndarray
) -> dict[str, np.ndarray]:
    """SMPL-X parameters moved by a rigid [4, 4] transform: the same body, seen in another frame.

    smplx poses about the rest pelvis J0 and then adds transl (v' = R (v - J0) + J0 + t), so moving by (A, b)
    gives global orientation A R and transl A (J0 + t) + b - J0."""
    from scipy.spatial.transform import Rotation

    rotation, shift = np.asarray(new_from_old)[:3, :3], np.asarray(new_from_old)[:3, 3]
    pelvis = rest_pelvis(body, params["betas"])
    out = {name: np.asarray(value, np.float64).copy() for name, value in params.items()}
    out["global_orient"] = (Rotation.from_matrix(rotation) * Rotation.from_rotvec(params["global_orient"])).as_rotvec()
    out["transl"] = rotation @ (pelvis + np.asarray(params["transl"], np.float64)) + shift - pelvis
    return out
