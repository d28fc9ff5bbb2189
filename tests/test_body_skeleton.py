"""The skeleton sent for rigging: SMPL-X's tree and weights, and the claim the add-on's armature rests on.

The add-on's armature rests in the fitted pose and turns a bone's part of the mesh rigidly about its joint. For
SMPL-X (pose correctives aside) that is exact for vertices skinned only inside the turned subtree or only outside
it; checked here against smplx itself.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ivlm_core.body import load_body_model
from ivlm_core.body.skeleton import body_skeleton
from server.arrays import value
from server.results import skeleton_out


def _subtree(parents: np.ndarray, root: int) -> set[int]:
    inside = {root}
    for joint in range(root + 1, len(parents)):
        if parents[joint] in inside:
            inside.add(joint)
    return inside


def test_skeleton_matches_the_model_and_posing_it_matches_smplx(synthetic_body_files) -> None:
    body = load_body_model("smplx", path=synthetic_body_files.smplx, num_betas=10)
    skeleton = body_skeleton(body)
    dense = np.zeros((10475, 55), np.float32)
    dense[skeleton.weight_vertex, skeleton.weight_joint] = skeleton.weight_value
    assert np.allclose(dense, body.model.lbs_weights.numpy(), atol=1e-6)
    assert np.allclose(dense.sum(1), 1.0, atol=1e-5)
    assert skeleton.joint_names[:3] == ["pelvis", "left_hip", "right_hip"] and skeleton.parents[0] == -1
    assert skeleton.joint_names[18] == "left_elbow" and skeleton.parents[18] == 16  # left_shoulder

    model = body.model
    model.posedirs.zero_()  # pose correctives are baked into the rig's rest mesh; compare the skinning alone
    rng = np.random.default_rng(0)
    pose = (rng.normal(0, 0.2, 63)).astype(np.float32)
    with torch.no_grad():
        fitted = model(body_pose=torch.from_numpy(pose)[None])
    vertices, joints = fitted.vertices[0].numpy(), fitted.joints[0].numpy()

    # Turn the left elbow's subtree by Q about the posed elbow, in the world: the new local elbow rotation is
    # parent_world^T Q parent_world R_local.
    elbow, parents = 18, skeleton.parents
    local = [Rotation.identity()] + [Rotation.from_rotvec(pose[3 * i : 3 * i + 3]) for i in range(21)]
    world = [local[0]]
    for joint in range(1, 22):
        world.append(world[parents[joint]] * local[joint])
    turn = Rotation.from_rotvec([0.0, 0.0, 0.8])
    parent_world = world[parents[elbow]]
    turned = pose.copy()
    turned[3 * (elbow - 1) : 3 * elbow] = (parent_world.inv() * turn * parent_world * local[elbow]).as_rotvec()
    with torch.no_grad():
        moved = model(body_pose=torch.from_numpy(turned)[None]).vertices[0].numpy()

    subtree = sorted(_subtree(parents, elbow))
    share = dense[:, subtree].sum(1)
    inside, outside = share > 0.999, share < 1e-6
    assert inside.sum() > 100 and outside.sum() > 5000
    expected = (vertices[inside] - joints[elbow]) @ turn.as_matrix().T + joints[elbow]
    assert np.abs(moved[inside] - expected).max() < 1e-5
    assert np.abs(moved[outside] - vertices[outside]).max() < 1e-6

    out = skeleton_out(skeleton, joints)
    assert np.array_equal(value(out.model_dump()["joints"]), joints[:55].astype(np.float32))
    assert value(out.model_dump()["parents"]).tolist() == parents.tolist()
