"""Turning API requests into pipeline inputs, with every limit and check applied before a job is queued."""

from __future__ import annotations

import binascii
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ivlm_core.errors import BadInputError
from ivlm_core.fit.place_object import PlacementOptions
from ivlm_core.mesh import TriangleMesh, validate_mesh
from ivlm_core.pipeline import array_keys
from ivlm_core.pipeline.reconstruct import check_object_label, check_photo_size
from server import arrays
from server.errors import ServerError
from server.schemas import API_SCHEMA_VERSION, ArrayData, ClientBody, ObjectMeshIn
from server.settings import ServerSettings

PHOTO_FORMATS = ("PNG", "JPEG", "MPO")
SMPLX_VERTICES = 10475
POSE_TOLERANCE = 1e-3  # a client's pose in float32 after taking out a scale is orthonormal to about 1e-6


def check_schema_version(version: str) -> None:
    if version != API_SCHEMA_VERSION:
        raise ServerError(
            "SCHEMA_MISMATCH",
            f"the request uses API schema '{version}', this server speaks '{API_SCHEMA_VERSION}'",
            "Update the Blender add-on and the server to the same release.",
        )


@dataclass(frozen=True)
class Photo:
    """A submitted photo: the file as sent, and the pixels the pipeline analyses."""

    raw: bytes  # the file's bytes (its EXIF also gives the focal length)
    pixels: np.ndarray  # uint8 [H, W, 3], upright: the EXIF orientation applied, as phones and viewers show it
    exif_orientation: int  # the EXIF Orientation tag found (1-8), 1 when absent or invalid


def decode_photo(b64: str, settings: ServerSettings) -> Photo:
    """The photo decoded and checked; the pixel count is checked before any decoding.

    PNG, JPEG and MPO (the JPEG variant many phone cameras write: its first frame is the photo) are accepted.
    The EXIF orientation is applied, so the pipeline sees the photo upright; `Photo.exif_orientation` says
    what was done, so the result can tell the client which pixels were analysed.
    """
    try:
        raw = arrays.decode_base64(b64)
    except (binascii.Error, ValueError) as exc:
        raise BadInputError(
            f"image is not valid base64 ({exc})", "Send the PNG or JPEG file's bytes in base64."
        ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(raw))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(str(exc), settings) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise BadInputError(
                f"image is not a readable PNG or JPEG file ({exc})", "Save the reference photo as PNG or JPEG."
            ) from exc
        if image.format not in PHOTO_FORMATS:
            raise BadInputError(
                f"image is a {image.format} file; PNG or JPEG expected", "Save the photo as PNG or JPEG."
            )
        width, height = image.size
        if width * height > settings.max_image_pixels:
            raise _too_many_pixels(f"the image claims {width}x{height} pixels", settings)
        orientation = exif_orientation(image)
        upright = (width, height) if orientation < 5 else (height, width)  # 5-8 turn the photo by 90 degrees
        check_photo_size(upright[1], upright[0])
        try:
            image.load()  # the first frame of an MPO file
            pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise BadInputError(
                f"the {image.format} image is truncated or damaged ({exc})",
                "Re-save the photo and send the whole file.",
            ) from exc
    return Photo(raw, pixels, orientation)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF Orientation tag (1-8); 1 when absent, unreadable or out of range."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _too_many_pixels(what: str, settings: ServerSettings) -> ServerError:
    return ServerError(
        "PAYLOAD_TOO_LARGE",
        f"{what}; the limit is {settings.max_image_pixels:,} pixels",
        "Downscale the photo (contact estimation works at 1024 px), or raise the server's --max-image-pixels.",
    )


def decode_mesh(obj: ObjectMeshIn, index: int, settings: ServerSettings) -> TriangleMesh:
    where = f"objects[{index}] ('{obj.label}')"
    n_vertices = obj.vertices.shape[0] if obj.vertices.shape else 0
    n_faces = obj.faces.shape[0] if obj.faces.shape else 0
    if n_vertices > settings.max_mesh_vertices or n_faces > settings.max_mesh_faces:
        raise ServerError(
            "PAYLOAD_TOO_LARGE",
            f"{where} has {n_vertices:,} vertices and {n_faces:,} faces; the limits are "
            f"{settings.max_mesh_vertices:,} and {settings.max_mesh_faces:,}",
            "Decimate the object in Blender (Decimate modifier) before sending it; contact needs no more detail.",
        )
    vertices = arrays.decode(obj.vertices, f"{where}.vertices", dtype="float32", shape=(None, 3), finite=False)
    faces = arrays.decode(obj.faces, f"{where}.faces", dtype="int32", shape=(None, 3))
    return validate_mesh(vertices.astype(np.float64), faces.astype(np.int64), name=where)


def check_labels(labels: list[str]) -> list[str]:
    """Each object's label by the pipeline's own rule (naming the object), and no label twice; the stripped labels."""
    stripped = [check_object_label(label, index) for index, label in enumerate(labels)]
    if len(set(stripped)) != len(stripped):
        raise BadInputError(
            f"object labels repeat: {labels}", "Give each object its own label (e.g. 'chair' and 'chair 2')."
        )
    return stripped


def placement_options(threshold_body: float, threshold_object: float, optimise_scale: bool) -> PlacementOptions:
    return PlacementOptions(
        body_threshold=threshold_body, object_threshold=threshold_object, optimise_scale=optimise_scale
    )


def client_body(body: ClientBody | None) -> tuple[dict[str, np.ndarray], dict[str, list[float]] | None]:
    """A request's options.body as a job keeps it (checked further by the pipeline): its vertices as an input array
    (float32 [10475, 3] under `array_keys.CLIENT_BODY_VERTICES`) or its SMPL-X parameters for the job's record;
    ({}, None) when there is none. Raises BadInputError when it has neither or its vertices are malformed."""
    if body is None:
        return {}, None
    if body.vertices is not None:
        vertices = arrays.decode(body.vertices, "options.body.vertices", dtype="float32", shape=(SMPLX_VERTICES, 3))
        return {array_keys.CLIENT_BODY_VERTICES: vertices}, None
    if body.params is not None:
        return {}, {k: np.asarray(v, np.float32).tolist() for k, v in body.params.items()}
    raise BadInputError(
        "options.body has neither vertices nor params", "Send the body's vertices or its SMPL-X parameters."
    )


def decode_pose(matrix: list[list[float]], what: str) -> np.ndarray:
    """A client's camera_from_object as float64 [4, 4], checked to be a rigid motion (a rotation, no mirror, scale
    or shear, and a translation): the refit places the mesh as sent, so any scale belongs in the mesh.

    Raises BadInputError saying what is wrong."""
    pose = np.asarray(matrix, np.float64) if all(len(row) == 4 for row in matrix) else np.zeros(0)
    hint = "Send the object's rotation and translation as a 4x4 matrix (column vectors, last row 0 0 0 1)."
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise BadInputError(f"{what} must be a 4x4 matrix of finite numbers", hint)
    if np.abs(pose[3] - (0.0, 0.0, 0.0, 1.0)).max() > POSE_TOLERANCE:
        raise BadInputError(f"{what} has a last row {pose[3].tolist()}, not 0 0 0 1", hint)
    rotation = pose[:3, :3]
    off = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if off > POSE_TOLERANCE or np.linalg.det(rotation) < 0.0:
        raise BadInputError(
            f"{what} is not a rotation and translation (it scales, shears or mirrors the object)",
            "Apply the object's scale in Blender (Object > Apply > Scale), or send the rotation without scale.",
        )
    return pose


def decode_contact(payload: ArrayData, what: str, length: int) -> np.ndarray:
    values = arrays.decode(payload, what, dtype="float32", shape=(length,))
    if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
        raise BadInputError(f"{what} has values outside 0-1", "Send contact weights between 0 and 1.")
    return values
