"""The `/v1` HTTP API's request and response bodies. FastAPI turns these into the OpenAPI schema, the contract
between the server and the Blender add-on; `API_SCHEMA_VERSION` changes whenever a field changes meaning.

Arrays travel as base64 of their little-endian, C-order bytes with dtype and shape beside them: a 10k-vertex
mesh is ~160 kB instead of megabytes of JSON numbers, and Blender's `foreach_set` reads the bytes directly.
Frames and units: the photo's CV_CAMERA frame (x right, y down, z forward), metres, camera at the origin; object
meshes in their own local frame (metres); `camera_from_object` maps local vertices into the camera frame
(4x4, column vectors).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

API_SCHEMA_VERSION = "ivlm-api-1"
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"  # uuid4 hex: the only form a job id takes, so it can never name another path

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JobKind = Literal["estimate", "fit"]
Stage = Literal["body", "fit"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArrayData(_Strict):
    """A numeric array: base64 of its little-endian C-order bytes."""

    dtype: Literal["float32", "int32", "uint8"]
    shape: list[Annotated[int, Field(ge=0, le=100_000_000)]] = Field(min_length=1, max_length=2)
    data: str = Field(description="base64 (standard alphabet) of the array's bytes")


class ErrorBody(_Strict):
    code: str = Field(description="stable machine-readable code, e.g. BAD_INPUT, SERVER_BUSY, GPU_OOM")
    message: str = Field(description="what went wrong")
    hint: str = Field(default="", description="how to fix it")


class ObjectMeshIn(_Strict):
    label: str = Field(min_length=1, max_length=64, description="what the object is, e.g. 'chair' or 'cup'")
    vertices: ArrayData = Field(description="float32 [N, 3], the object's local frame, metres")
    faces: ArrayData = Field(description="int32 [F, 3] triangle vertex indices")


class ClientBody(_Strict):
    """A body the client already has, used as is instead of fitting one (CV_CAMERA frame, metres)."""

    vertices: ArrayData | None = Field(default=None, description="float32 [10475, 3] SMPL-X vertices")
    params: dict[Literal["betas", "global_orient", "body_pose", "transl"], list[float]] | None = Field(
        default=None, description="SMPL-X parameters (axis-angle): betas 1-10, global_orient 3, body_pose 63, transl 3"
    )


class EstimateOptions(_Strict):
    stages: list[Stage] = Field(
        default=["body", "fit"],
        description="optional stages to run; perceive and contact always run. Without 'fit' objects are not placed.",
    )
    body_contact_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="body contact above this counts")
    object_contact_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    focal_px: float | None = Field(default=None, gt=0.0, le=1e6, description="the photo's focal length in pixels")
    optimise_scale: bool = Field(default=False, description="also fit a uniform scale of each object")
    body: ClientBody | None = None
    person_box_xyxy: list[Annotated[float, Field(ge=-1e6, le=1e6)]] | None = Field(
        default=None, min_length=4, max_length=4,
        description="the person to use when the photo holds several: an xyxy pixel box, e.g. one of a result's "
        "people.boxes_xyxy; the detected person it overlaps, or the box itself if it overlaps none",
    )  # fmt: skip


class EstimateRequest(_Strict):
    schema_version: str = Field(description=f"must be '{API_SCHEMA_VERSION}'")
    image: str = Field(min_length=1, description="the photo: base64 of a PNG or JPEG file")
    objects: list[ObjectMeshIn] = Field(min_length=1, max_length=8)
    options: EstimateOptions = EstimateOptions()


class EditedContact(_Strict):
    label: str = Field(min_length=1, max_length=64, description="an object label of the source job")
    object_contact: ArrayData = Field(description="float32 [N] per object vertex, 0-1")
    body_contact: ArrayData = Field(description="float32 [10475] per SMPL-X vertex, 0-1")


class FitOptions(_Strict):
    body_contact_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    object_contact_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    optimise_scale: bool = False


class FitRequest(_Strict):
    """Re-place objects of a finished estimate job from contacts the user edited; no language model runs."""

    schema_version: str
    source_job_id: str = Field(pattern=JOB_ID_PATTERN)
    objects: list[EditedContact] = Field(min_length=1, max_length=8)
    options: FitOptions = FitOptions()


class JobStatus(_Strict):
    job_id: str
    kind: JobKind
    state: JobState
    stage: str = Field(description="the stage running or last run")
    progress: float = Field(ge=0.0, le=1.0)
    message: str
    error: ErrorBody | None = None
    demo: bool
    created_at: float = Field(description="seconds since the epoch")
    updated_at: float
    queue_position: int | None = Field(default=None, description="jobs ahead of this one while queued")


class GpuInfo(_Strict):
    name: str
    free_bytes: int
    total_bytes: int


class MissingModelFile(_Strict):
    name: str
    path: str
    problem: str
    source: str
    hint: str


class QueueInfo(_Strict):
    length: int = Field(description="jobs waiting, not counting the one running")
    capacity: int
    running: str | None = Field(description="the job id running now")


class Health(_Strict):
    status: Literal["loading", "ok", "error"] = Field(description="loading models, ready, or models failed to load")
    server_version: str
    api_schema_version: str
    result_schema: str
    device: str
    gpu: GpuInfo | None
    demo: bool
    demo_reason: str
    models_loaded: list[str]
    missing_model_files: list[MissingModelFile]
    load_error: ErrorBody | None = Field(default=None, description="why the models could not be loaded")
    queue: QueueInfo


class SkeletonOut(_Strict):
    """For rigging the body: an armature whose rest pose is this body, skinned with the model's weights."""

    joint_names: list[str] = Field(description="the J kinematic joints, smplx's names and order")
    parents: ArrayData = Field(description="int32 [J]: each joint's parent index, -1 for the root")
    joints: ArrayData = Field(description="float32 [J, 3]: the joints of this (posed) body, same frame as vertices")
    weight_vertex: ArrayData = Field(description="int32 [K]: skinning weights as (vertex, joint, weight) triples")
    weight_joint: ArrayData = Field(description="int32 [K]")
    weight_value: ArrayData = Field(description="float32 [K]; a vertex's weights sum to 1")


class BodyOut(_Strict):
    source: str = Field(description="fitted, client, estimated (a learned estimate used unrefined) or demo")
    start: str = Field(default="keypoints", description="what the fit started from: keypoints, or e.g. Multi-HMR")
    vertices: ArrayData = Field(description="float32 [10475, 3]")
    faces: ArrayData = Field(description="int32 [20908, 3]")
    joints: ArrayData = Field(description="float32 [J, 3] SMPL-X joints")
    params: dict[str, list[float]]
    losses: dict[str, float]
    skeleton: SkeletonOut | None = Field(default=None, description="joints, tree and skinning weights for rigging")


class ObjectOut(_Strict):
    label: str
    status: Literal["placed", "skipped"]
    reason: str
    camera_from_object: list[list[float]] | None = Field(description="4x4, column vectors, metres")
    scale: float
    object_contact: ArrayData | None = Field(description="float32 [N] per vertex of the object as sent")
    body_contact: ArrayData | None = Field(description="float32 [10475] per SMPL-X vertex")
    losses: dict[str, float]
    detection_box_xyxy: list[float] | None
    detection_score: float | None
    notes: list[str]


class PeopleOut(_Strict):
    """Every person detected, so a client can offer another choice (send its box as options.person_box_xyxy)."""

    boxes_xyxy: list[list[float]] = Field(description="each person's box in photo pixels, highest detector score first")
    scores: list[float]
    object_overlap: list[float | None] = Field(description="share of the area around the objects each one's mask covers")
    chosen: int | None = Field(description="index of the person used; null when the client's own box was used")
    chosen_box_xyxy: list[float] | None
    reason: str = Field(description="why this person was used")


class CameraOut(_Strict):
    focal_px: float
    focal_source: str
    image_size_hw: list[int]
    intrinsics: list[list[float]]


class JobResult(_Strict):
    schema_version: str
    result_schema: str
    job_id: str
    kind: JobKind
    source_job_id: str | None = None
    demo: bool
    server_version: str
    models: dict[str, str]
    thresholds: dict[str, float]
    frame: str
    camera: CameraOut
    body: BodyOut | None
    objects: list[ObjectOut]
    people_count: int
    people: PeopleOut | None = None
    notes: list[str]
    timings_s: dict[str, float]
