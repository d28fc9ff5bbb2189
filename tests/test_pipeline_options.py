"""Pipeline options and the DEMO stand-in body."""

from __future__ import annotations

import numpy as np
import pytest

from ivlm_core.errors import BadInputError
from ivlm_core.fit.camera import CameraIntrinsics
from ivlm_core.pipeline.reconstruct import RunOptions, standing_body


def test_unknown_stage_is_refused() -> None:
    assert RunOptions(stages=frozenset()).stages == frozenset()
    with pytest.raises(BadInputError, match="unknown stage"):
        RunOptions(stages=frozenset({"body", "render"}))


def test_standing_body_faces_the_camera_upright_and_fills_the_frame(synthetic_body_files) -> None:
    from ivlm_core import paths
    from ivlm_core.body import load_body_model

    body = load_body_model("smplx", folder=paths.body_models_dir(synthetic_body_files.root), num_betas=10)
    camera = CameraIntrinsics(500.0, (640, 480), "default")
    fit = standing_body(body, camera, height_fraction=0.8)
    assert fit.source == "demo" and fit.notes and fit.notes[0].startswith("DEMO")
    projected = fit.vertices @ camera.matrix.T
    pixels = projected[:, :2] / projected[:, 2:]
    assert np.ptp(pixels[:, 1]) == pytest.approx(0.8 * 640, rel=0.05)  # about 80 % of the image height
    # centred (the 3D box centre is on the optical axis; perspective moves the 2D box a few pixels)
    assert (pixels.max(0) + pixels.min(0)) / 2 == pytest.approx([240, 320], abs=16)
    head, pelvis, nose = fit.joints[15], fit.joints[0], fit.joints[55]  # SMPL-X head, pelvis, nose joints
    assert head[1] < pelvis[1]  # upright in the camera frame: y points down, so the head has the smaller y
    assert nose[2] < head[2]  # facing the camera: the nose is nearer than the head's centre
    assert (fit.vertices[:, 2] > 0).all()
