"""Several people through the API: the request option that names a person by box, and the result's people."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from server.client import ApiError, estimate_request
from server.schemas import EstimateOptions


def test_person_box_option_is_four_bounded_numbers():
    assert EstimateOptions(person_box_xyxy=[10, 20, 200, 400]).person_box_xyxy == [10.0, 20.0, 200.0, 400.0]
    assert EstimateOptions().person_box_xyxy is None
    for bad in ([10, 20, 200], [10, 20, 200, 400, 5], [10, 20, 200, 1e9]):
        with pytest.raises(ValidationError):
            EstimateOptions(person_box_xyxy=bad)


def test_result_lists_every_person_and_the_body_start(synthetic_body_files):
    from ivlm_core.fit.body_fit import BodyFit
    from ivlm_core.fit.camera import CameraIntrinsics
    from ivlm_core.perceive.people import PeopleChoice, PersonCandidate
    from ivlm_core.pipeline.reconstruct import ReconstructResult
    from server.results import body_from_state, job_result, refit_state

    people = PeopleChoice(
        [
            PersonCandidate(np.array([1, 2, 30, 40], np.float32), 0.9, 0.0),
            PersonCandidate(np.array([50, 2, 90, 40], np.float32), 0.6, 0.4),
        ],
        1,
        np.array([50, 2, 90, 40], np.float32),
        "2 people detected; chose person 2 of 2, ...",
    )
    body = BodyFit(np.zeros((10475, 3)), np.zeros((127, 3)), {}, "fitted", start="Multi-HMR (x)")
    result = ReconstructResult(False, CameraIntrinsics(500.0, (100, 120), "client"), body, [], [], {}, 2, None, people)
    out = job_result(
        result,
        job_id="0" * 32,
        kind="estimate",
        body_faces=np.zeros((1, 3), np.int32),
        server_version="t",
        models={},
        thresholds={},
    )
    assert out.people.chosen == 1 and out.people.boxes_xyxy[0] == [1.0, 2.0, 30.0, 40.0]
    assert out.people.scores == [pytest.approx(0.9), pytest.approx(0.6)] and out.people.object_overlap == [0.0, 0.4]
    assert out.body.start == "Multi-HMR (x)" and out.people.reason.startswith("2 people detected")
    assert body_from_state(refit_state(result)).start == "Multi-HMR (x)"  # a later fit-only job keeps it


@pytest.mark.slow
def test_a_client_box_reaches_the_pipeline(server, demo_scene):
    client = server.client()
    box = [60.0, 80.0, 300.0, 560.0]
    request = estimate_request(
        demo_scene.png, [(demo_scene.label, demo_scene.vertices, demo_scene.faces)], stages=[], person_box_xyxy=box
    )
    result = client.wait(client.submit(request)["job_id"])
    people = result["people"]
    assert people is not None and ("named by box" in people["reason"] or "used as given" in people["reason"])
    if people["chosen"] is None:
        assert people["chosen_box_xyxy"] == box
    assert any(note.startswith("person: ") for note in result["notes"])
    outside = estimate_request(
        demo_scene.png,
        [(demo_scene.label, demo_scene.vertices, demo_scene.faces)],
        stages=[],
        person_box_xyxy=[700.0, 10.0, 800.0, 50.0],
    )
    with pytest.raises(ApiError) as info:
        client.wait(client.submit(outside)["job_id"])
    assert info.value.code == "BAD_INPUT" and "no area inside the 480x640 image" in info.value.body["message"]
