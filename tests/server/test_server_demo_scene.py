"""A generated demo scene's photo through the real DEMO server: recognised from the PNG's own tag (the bytes the
add-on sends), its ground truth used and said so in `scene_truth` and the notes; the same pixels untagged are not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from server.client import estimate_request

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chair_scene(synthetic_body_files):
    from ivlm_core.demo.scene_truth import tagged_png
    from ivlm_core.demo.scenes import make_scene

    scene = make_scene("sit_chair", 0)
    return scene, tagged_png(scene)


def test_the_demo_server_uses_a_generated_scenes_truth_and_says_so(server, chair_scene):
    scene, png = chair_scene
    client = server.client()
    objects = [(scene.label, scene.object_mesh.vertices, scene.object_mesh.faces)]
    result = client.wait(client.submit(estimate_request(png, objects, stages=[]))["job_id"])
    truth = result["scene_truth"]
    assert result["demo"] and truth["scene"] == scene.name
    assert {"keypoints", "person_mask", "object_mask:chair", "body_contact:chair", "object_contact:chair"} <= set(
        truth["inputs"]
    )
    assert truth["stages_ran"] == []  # no body or fit stage was asked for
    assert result["camera"]["focal_source"] == "scene ground truth"
    assert any(note.startswith(f"DEMO scene '{scene.name}'") for note in result["notes"])

    untagged = io.BytesIO()
    Image.fromarray(np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))).save(untagged, "PNG")
    plain = client.wait(client.submit(estimate_request(untagged.getvalue(), objects, stages=[]))["job_id"])
    assert plain["demo"] and plain["scene_truth"] is None
    assert not any("ground truth" in note for note in plain["notes"])
