"""The `/v1` HTTP API's request and response bodies. FastAPI turns these into the OpenAPI schema, the contract
between the server and the Blender add-on; `API_SCHEMA_VERSION` changes whenever a field changes meaning.

Arrays travel as base64 of their little-endian, C-order bytes with dtype and shape beside them: a 10k-vertex
mesh is ~160 kB instead of megabytes of JSON numbers, and Blender's `foreach_set` reads the bytes directly.
Frames and units: the photo's CV_CAMERA frame (x right, y down, z forward), metres, camera at the origin; object
meshes in their own local frame (metres); `camera_from_object` maps local vertices into the camera frame
(4x4, column vectors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from ivlm_core.pipeline.parts import PartName, SourceName, is_part, is_source

API_SCHEMA_VERSION = "ivlm-api-1"
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"  # uuid4 hex: the only form a job id takes, so it can never name another path

FinishedState = Literal["done", "failed", "cancelled"]  # a job in one of these never changes again
JobState = Literal["queued", "running", FinishedState]
FINISHED_STATES: tuple[str, ...] = get_args(FinishedState)
JobKind = Literal["estimate", "fit"]
Stage = Literal["body", "fit"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


ArrayDtype = Literal["float32", "int32", "uint8"]
ServerState = Literal["loading", "ok", "error"]


class ArrayData(_Strict):
    """A numeric array: base64 of its little-endian C-order bytes."""

    dtype: ArrayDtype
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
    predict_contact: bool = Field(
        default=True,
        description="false: no contact model runs; the objects are put in view with no contacts, to paint and refit",
    )
    body: ClientBody | None = None
    person_box_xyxy: list[Annotated[float, Field(ge=-1e6, le=1e6)]] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="the person to use when the photo holds several: an xyxy pixel box, e.g. one of a result's "
        "people.boxes_xyxy; the detected person it overlaps, or the box itself if it overlaps none",
    )


class EstimateRequest(_Strict):
    schema_version: str = Field(description=f"must be '{API_SCHEMA_VERSION}'")
    image: str = Field(min_length=1, description="the photo: base64 of a PNG or JPEG file")
    objects: list[ObjectMeshIn] = Field(min_length=1, max_length=8)
    options: EstimateOptions = EstimateOptions()


class EditedContact(_Strict):
    label: str = Field(min_length=1, max_length=64, description="an object label of the source job")
    object_contact: ArrayData = Field(description="float32 [N] per object vertex, 0-1")
    body_contact: ArrayData = Field(description="float32 [10475] per SMPL-X vertex, 0-1")
    camera_from_object: list[list[float]] | None = Field(
        default=None,
        description="4x4, column vectors, metres, rotation and translation only: where the user left the object "
        "(the search starts from it); absent: the estimate's placement",
    )


class FitOptions(_Strict):
    body_contact_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    object_contact_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    optimise_scale: bool = False
    body: ClientBody | None = Field(
        default=None,
        description="the body as the user has it now (posed in Blender, for example), in the source job's camera frame; "
        "the objects are placed against it instead of the estimate's body",
    )


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
    result_size_bytes: int | None = Field(default=None, description="the result's size, once done")
    result_sha256: str | None = Field(
        default=None, description="hex SHA-256 of the result's bytes, once done; checked before every answer"
    )


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


class PartOut(_Strict):
    """One part of the pipeline and where it came from (ivlm_core/pipeline/parts.py)."""

    part: PartName
    title: str
    source: SourceName = Field(
        description="yours: from your model files; stand-in: generated (random weights or a synthetic body, "
        "results are DEMO); absent: not loaded (contact models only: contacts are not predicted)"
    )
    meaning: str = Field(description="what a stand-in or an absent part means for the results; empty for yours")

    @classmethod
    def from_dict(cls, entry: Mapping[str, str]) -> PartOut:
        """From `PartSource.to_dict()`'s form; raises ValueError for a part or source parts.py does not name."""
        part, source = entry["part"], entry["source"]
        if not (is_part(part) and is_source(source)):
            raise ValueError(f"unknown part or source: {part!r}, {source!r}")
        return cls(part=part, title=entry["title"], source=source, meaning=entry["meaning"])


class QueueInfo(_Strict):
    length: int = Field(description="jobs waiting, not counting the one running")
    capacity: int
    running: str | None = Field(description="the job id running now")


class ConfigurationInfo(_Strict):
    """The model configuration the memory plan chose at start, and why (pipeline/plan.py)."""

    configuration: str = Field(description="e.g. separate, joint, joint-int8, joint-nf4")
    description: str
    llm_precision: str = Field(description="native (the load dtype), int8 or nf4")
    dtype: str
    sam_batch: int = Field(description="views per SAM image-encoder call")
    need_gb: float = Field(description="the plan's peak memory for one job")
    budget_gb: float | None = Field(description="the memory budget planned for; null: unrestricted")
    budget_source: str
    reason: str


class Limits(_Strict):
    """What the server accepts (see settings.py); larger inputs are refused with a clear code."""

    max_request_bytes: int
    max_image_pixels: int
    max_mesh_vertices: int
    max_mesh_faces: int
    max_connections: int = Field(description="open connections; beyond them requests get 503")
    head_timeout_s: float = Field(description="a connection must send a complete request head within this")
    body_timeout_s: float = Field(description="a body must arrive within this, plus 1 s per MiB")
    keep_alive_s: float = Field(description="idle kept-alive connections are closed after this")


class Health(_Strict):
    status: ServerState = Field(description="loading models, ready, or models failed to load")
    server_version: str
    api_schema_version: str
    result_schema: str
    device: str
    gpu: GpuInfo | None
    demo: bool
    demo_reason: str
    parts: list[PartOut] = Field(default=[], description="each part of the pipeline and where it comes from")
    models_loaded: list[str]
    missing_model_files: list[MissingModelFile]
    load_error: ErrorBody | None = Field(default=None, description="why the models could not be loaded")
    storage_error: ErrorBody | None = Field(
        default=None, description="the data folder's disk is full: submits are refused, queued jobs wait"
    )
    runner_error: ErrorBody | None = Field(default=None, description="why the server cannot run jobs (status error)")
    queue: QueueInfo
    configuration: ConfigurationInfo | None = Field(default=None, description="the models' configuration and why")
    limits: Limits


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
    object_overlap: list[float | None] = Field(
        description="share of the area around the objects each one's mask covers"
    )
    chosen: int | None = Field(description="index of the person used; null when the client's own box was used")
    chosen_box_xyxy: list[float] | None
    reason: str = Field(description="why this person was used")


class CameraOut(_Strict):
    focal_px: float
    focal_source: str
    image_size_hw: list[int] = Field(description="the analysed (upright) photo's size")
    intrinsics: list[list[float]]
    exif_orientation: int = Field(
        default=1,
        ge=1,
        le=8,
        description="the photo's EXIF Orientation (1 when absent); the server analyses the photo with it applied",
    )


class SceneTruthOut(_Strict):
    """Which inputs of a DEMO result came from a generated demo scene's ground truth, and which stages ran."""

    scene: str
    inputs: dict[str, str] = Field(description="input (e.g. 'keypoints', 'body_contact:chair') -> its source")
    stages_ran: list[str] = Field(description="the real stages that ran on those inputs")
    stages_replaced: dict[str, str] = Field(description="stage -> what stood in for it")


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
    parts: list[PartOut] = Field(default=[], description="each part of the pipeline and where it came from")
    notes: list[str]
    timings_s: dict[str, float]
    scene_truth: SceneTruthOut | None = Field(
        default=None,
        description="DEMO only: the photo is a generated demo scene, and these inputs came from its ground truth",
    )
    upright_photo: str | None = Field(
        default=None,
        description="base64 of a JPEG (quality 95) of the photo exactly as analysed, when its EXIF orientation "
        "turned it (exif_orientation != 1); the camera's intrinsics refer to these pixels",
    )
