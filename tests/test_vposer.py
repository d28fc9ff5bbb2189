"""VPoser without its research code: the release layout, a safe and strict loader, the published design step by
step on tiny random weights, and the fit using it."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch.nn import functional as F

from ivlm_core.body.vposer import UPSTREAM_NAMES, find_snapshot, load_vposer
from ivlm_core.demo.tiny_vposer import SNAPSHOT, tiny_vposer_state, write_tiny_vposer
from ivlm_core.errors import ModelFileError, ModelFilesMissingError


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_vposer(tmp_path_factory.mktemp("vposer") / "V02_05")


def test_release_layout_loads_and_is_flagged_demo(release) -> None:
    assert (release / "V02_05.yaml").is_file() and (release / "snapshots" / SNAPSHOT).is_file()
    vposer = load_vposer(release)
    assert vposer.is_demo and vposer.latent_dim == 8 and vposer.source.name == SNAPSHOT
    # Every upstream weight landed on the network unchanged.
    state = tiny_vposer_state()
    ours = vposer.net.state_dict()
    for key, value in state.items():
        module, _, leaf = key.removeprefix("vp_model.").rpartition(".")
        assert torch.equal(ours[f"{UPSTREAM_NAMES[module]}.{leaf}"], value)


def test_the_newest_snapshot_is_used(release, tmp_path) -> None:
    folder = shutil.copytree(release, tmp_path / "V02_05")
    shutil.copy(folder / "snapshots" / SNAPSHOT, folder / "snapshots" / "V02_05_epoch=08_val_loss=0.03.ckpt")
    assert find_snapshot(folder).name == SNAPSHOT  # epoch 13 over epoch 8, whatever the file dates say


def test_decoder_and_encoder_follow_the_published_design(release) -> None:
    """The decoder: Linear, LeakyReLU, Linear, LeakyReLU, Linear to 6 numbers per joint read as a 3x2 matrix whose
    columns are Gram-Schmidt-ed, the third column their cross product. The encoder: BatchNorm, Linear, LeakyReLU,
    BatchNorm, two Linears, the mean head. Recomputed here from the raw weights."""
    vposer = load_vposer(release)
    w = {k: v for k, v in tiny_vposer_state().items()}
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return x @ w[f"vp_model.{name}.weight"].T + w[f"vp_model.{name}.bias"]

    x = F.leaky_relu(linear(z, "decoder_net.0"))
    x = F.leaky_relu(linear(x, "decoder_net.3"))
    six = linear(x, "decoder_net.5").reshape(4, 21, 3, 2)
    a, b = six[..., 0], six[..., 1]
    b1 = a / a.norm(dim=-1, keepdim=True)
    b2 = b - (b1 * b).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True)
    expected = torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-1)
    decoded = vposer.decode(z)
    assert torch.allclose(decoded, expected, atol=1e-5)
    assert torch.allclose(decoded.transpose(-1, -2) @ decoded, torch.eye(3).expand(4, 21, 3, 3), atol=1e-5)

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        mean, var = w[f"vp_model.{name}.running_mean"], w[f"vp_model.{name}.running_var"]
        return (x - mean) / torch.sqrt(var + 1e-5) * w[f"vp_model.{name}.weight"] + w[f"vp_model.{name}.bias"]

    pose = 0.3 * torch.randn(4, 63, generator=torch.Generator().manual_seed(2))
    h = norm(F.leaky_relu(linear(norm(pose, "encoder_net.1"), "encoder_net.2")), "encoder_net.4")
    mean = linear(linear(linear(h, "encoder_net.6"), "encoder_net.7"), "encoder_net.8.mu")
    assert torch.allclose(vposer.encode(pose), mean, atol=1e-5)


def test_missing_damaged_foreign_and_unsafe_files_are_named(release, tmp_path) -> None:
    with pytest.raises(ModelFilesMissingError, match="no VPoser checkpoint") as info:
        load_vposer(tmp_path / "nothing")
    assert "smpl-x.is.tue.mpg.de" in info.value.hint
    folder = shutil.copytree(release, tmp_path / "damaged")
    snapshot = folder / "snapshots" / SNAPSHOT
    snapshot.write_bytes(snapshot.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        load_vposer(folder)
    # Weights of another model in the same layout: every unknown key is an error that names one.
    foreign = shutil.copytree(release, tmp_path / "foreign")
    torch.save(
        {"state_dict": {"vp_model.encoder_net.2.weight": torch.zeros(4, 63), "model.head.weight": torch.zeros(2)}},
        foreign / "snapshots" / SNAPSHOT,
    )
    with pytest.raises(ModelFileError, match="model.head.weight"):
        load_vposer(foreign)
    # A pickled object that is not a plain container is refused before anything runs.
    unsafe = shutil.copytree(release, tmp_path / "unsafe")
    torch.save({"state_dict": tiny_vposer_state(), "callback": torch.optim.SGD}, unsafe / "snapshots" / SNAPSHOT)
    with pytest.raises(ModelFileError, match="other than weights and plain containers"):
        load_vposer(unsafe)


def test_fit_with_vposer_says_so(release, synthetic_body_files) -> None:
    """With VPoser the body pose lives in its latent space (the tiny one's priors mean nothing; this checks wiring)."""
    import numpy as np

    from ivlm_core import paths
    from ivlm_core.body import load_body_model
    from ivlm_core.fit.body_fit import BodyFitOptions, body_from_client, fit_body
    from ivlm_core.fit.body_kinematics import BodyKinematics

    body = load_body_model("smplx", folder=paths.body_models_dir(synthetic_body_files.root), num_betas=10)
    standing = body_from_client(
        body,
        params={
            "betas": np.zeros(10),
            "global_orient": np.array([np.pi, 0, 0]),
            "body_pose": np.zeros(63),
            "transl": np.array([0, 0, 3.0]),
        },
    )
    kinematics = BodyKinematics(body)
    layout = kinematics.keypoint_layout()
    from smplx.joint_names import JOINT_NAMES

    from ivlm_core.fit.body_kinematics import smplx_source

    points = np.array(
        [
            standing.joints[JOINT_NAMES.index(smplx_source(n))] if ok else [0, 0, 3.0]
            for n, ok in zip(layout.names, layout.available)
        ]
    )
    k = np.array([[600.0, 0, 239.5], [0, 600.0, 319.5], [0, 0, 1]])
    uv = points[:, :2] / points[:, 2:] * 600.0 + [239.5, 319.5]
    keypoints = np.concatenate([uv, layout.available.numpy()[:, None].astype(float)], 1)
    options = BodyFitOptions(
        yaw_starts_deg=(0.0,),
        postures=("standing",),
        keep_starts=1,
        keep_variants=1,
        iterations=2,
        screen_iterations=1,
        refine_iterations=1,
        hand_iterations=1,
        final_iterations=1,
    )
    fit = fit_body(body, keypoints, k, (640, 480), options=options, prior=load_vposer(release))
    assert fit.prior == "VPoser" and np.isfinite(fit.vertices).all() and fit.params["body_pose"].shape == (63,)
