"""Building a job's result (`schemas.JobResult`) and the state a later fit-only job needs."""

from __future__ import annotations

import numpy as np

from ivlm_core.body.skeleton import Skeleton
from ivlm_core.fit.body_fit import BodyFit
from ivlm_core.fit.camera import CameraIntrinsics
from ivlm_core.pipeline import array_keys
from ivlm_core.pipeline.outputs import RESULT_SCHEMA, result_to_dict
from ivlm_core.pipeline.reconstruct import ReconstructResult
from server import arrays
from server.schemas import (
    API_SCHEMA_VERSION,
    BodyOut,
    CameraOut,
    JobKind,
    JobResult,
    ObjectOut,
    PartOut,
    PeopleOut,
    SceneTruthOut,
    SkeletonOut,
)


def job_result(
    result: ReconstructResult,
    *,
    job_id: str,
    kind: JobKind,
    body_faces: np.ndarray,
    skeleton: Skeleton | None = None,
    server_version: str,
    models: dict[str, str],
    thresholds: dict[str, float],
    source_job_id: str | None = None,
    exif_orientation: int = 1,
    upright_photo: str | None = None,
    parts: list[dict[str, str]] | None = None,
) -> JobResult:
    """The pipeline's result with its per-vertex arrays attached (the JSON fields come from `result_to_dict`)."""
    plain = result_to_dict(result)
    body = None
    if result.body is not None:
        body = BodyOut(
            source=result.body.source,
            vertices=arrays.encode(result.body.vertices),
            faces=arrays.encode(body_faces, "int32"),
            joints=arrays.encode(result.body.joints),
            params={k: [float(x) for x in np.asarray(v).reshape(-1)] for k, v in result.body.params.items()},
            losses=result.body.losses,
            start=result.body.start,
            skeleton=None if skeleton is None else skeleton_out(skeleton, result.body.joints),
        )
    objects = []
    for outcome, fields in zip(result.objects, plain["objects"], strict=True):
        objects.append(
            ObjectOut(
                label=fields["label"],
                status=fields["status"],
                reason=fields["reason"],
                camera_from_object=fields["camera_from_object"],
                scale=fields["scale"],
                object_contact=None if outcome.object_contact is None else arrays.encode(outcome.object_contact),
                body_contact=None if outcome.body_contact is None else arrays.encode(outcome.body_contact),
                losses=fields["losses"],
                detection_box_xyxy=fields["detection_box_xyxy"],
                detection_score=fields["detection_score"],
                notes=fields["notes"],
            )
        )
    return JobResult(
        schema_version=API_SCHEMA_VERSION,
        result_schema=RESULT_SCHEMA,
        job_id=job_id,
        kind=kind,
        source_job_id=source_job_id,
        demo=result.demo,
        server_version=server_version,
        models=models,
        thresholds=thresholds,
        frame=plain["frame"],
        camera=CameraOut(**plain["camera"], exif_orientation=exif_orientation),
        body=body,
        objects=objects,
        people_count=plain["people_count"],
        people=None if plain["people"] is None else PeopleOut(**plain["people"]),
        parts=[PartOut.from_dict(part) for part in parts or []],
        notes=plain["notes"],
        timings_s=plain["timings_s"],
        scene_truth=None if plain["scene_truth"] is None else SceneTruthOut(**plain["scene_truth"]),
        upright_photo=upright_photo,
    )


def skeleton_out(skeleton: Skeleton, body_joints: np.ndarray) -> SkeletonOut:
    """The skeleton with this body's posed kinematic joints (the first J of the model's output joints)."""
    count = len(skeleton.parents)
    return SkeletonOut(
        joint_names=skeleton.joint_names,
        parents=arrays.encode(skeleton.parents, "int32"),
        joints=arrays.encode(np.asarray(body_joints)[:count]),
        weight_vertex=arrays.encode(skeleton.weight_vertex, "int32"),
        weight_joint=arrays.encode(skeleton.weight_joint, "int32"),
        weight_value=arrays.encode(skeleton.weight_value),
    )


def refit_state(result: ReconstructResult) -> dict[str, np.ndarray]:
    """What a fit-only job reuses from an estimate job: the body, the camera, the masks and the placements (the
    pose the user sees, where a refit's search starts)."""
    state: dict[str, np.ndarray] = {
        "camera_focal_px": np.array(result.camera.focal_px),
        "camera_image_size": np.array(result.camera.image_size),
        "camera_source": np.array(result.camera.source),
    }
    if result.body is not None:
        state["body_vertices"] = result.body.vertices
        state["body_joints"] = result.body.joints
        state["body_source"] = np.array(result.body.source)
        state["body_start"] = np.array(result.body.start)
        for name, value in result.body.params.items():
            state[array_keys.key(array_keys.BODY_PARAM, name)] = np.asarray(value)
    if result.person_mask is not None:
        state["person_mask"] = result.person_mask.astype(bool)
    for index, outcome in enumerate(result.objects):
        if outcome.detection_mask is not None:
            state[array_keys.key(array_keys.OBJECT_MASK, index)] = outcome.detection_mask.astype(bool)
        if outcome.placement.camera_from_object is not None:
            pose = np.asarray(outcome.placement.camera_from_object, np.float64)
            state[array_keys.key(array_keys.OBJECT_POSE, index)] = pose
    return state


def camera_from_state(state: dict[str, np.ndarray]) -> CameraIntrinsics:
    height, width = (int(v) for v in state["camera_image_size"])
    return CameraIntrinsics(float(state["camera_focal_px"]), (height, width), str(state["camera_source"]))


def body_from_state(state: dict[str, np.ndarray]) -> BodyFit | None:
    if "body_vertices" not in state:
        return None
    params = array_keys.entries(state, array_keys.BODY_PARAM)
    start = str(state["body_start"]) if "body_start" in state else "keypoints"  # jobs stored before it was kept
    return BodyFit(state["body_vertices"], state["body_joints"], params, str(state["body_source"]), start=start)
