"""Arrays in and out of the API (see `schemas.ArrayData`): base64 little-endian bytes with dtype and shape."""

from __future__ import annotations

import base64
import binascii

import numpy as np

from ivlm_core.errors import BadInputError
from server.schemas import ArrayData

DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "uint8": np.dtype("u1")}
BASE64_STEP = 1 << 20  # characters decoded per call; a multiple of 4, so every step ends on a quantum boundary


def decode_base64(text: str) -> bytes:
    """Strict standard base64 (as `base64.b64decode(text, validate=True)`), decoded a megabyte at a time.

    By hand because one call on a 48 MB upload holds the GIL for ~70 ms, and the event loop (health) waits that
    long; between steps other threads get the GIL. Raises binascii.Error or ValueError like b64decode.
    """
    steps = []
    for start in range(0, len(text), BASE64_STEP):
        step = text[start : start + BASE64_STEP]
        if step.endswith("=") and start + BASE64_STEP < len(text):
            raise binascii.Error("Excess data after padding")
        steps.append(binascii.a2b_base64(step, strict_mode=True))
    return b"".join(steps)


def encode(array: np.ndarray, dtype: str = "float32") -> ArrayData:
    arr = np.ascontiguousarray(np.asarray(array), dtype=DTYPES[dtype])
    return ArrayData(dtype=dtype, shape=list(arr.shape), data=base64.b64encode(arr.tobytes()).decode("ascii"))


def value(payload: dict) -> np.ndarray:
    """An answer's array as numpy, unchecked (for clients reading results the server wrote)."""
    raw = base64.b64decode(payload["data"])
    return np.frombuffer(raw, dtype=DTYPES[payload["dtype"]]).reshape(payload["shape"])


def decode(
    payload: ArrayData, what: str, *, dtype: str, shape: tuple[int | None, ...], finite: bool = True
) -> np.ndarray:
    """The array, after checking dtype, shape (None = any length), byte count and finiteness.

    `what` names the field in error messages, e.g. "objects[0].vertices". finite=False leaves NaN checks to the
    caller (mesh validation names the first bad vertex).
    """
    if payload.dtype != dtype:
        raise BadInputError(f"{what} has dtype {payload.dtype}; expected {dtype}", f"Send {what} as {dtype}.")
    got = tuple(payload.shape)
    if len(got) != len(shape) or any(want is not None and g != want for g, want in zip(got, shape, strict=False)):
        wanted = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise BadInputError(f"{what} has shape {list(got)}; expected {wanted}", f"Send {what} with shape {wanted}.")
    try:
        raw = decode_base64(payload.data)
    except (binascii.Error, ValueError) as exc:
        raise BadInputError(
            f"{what}.data is not valid base64 ({exc})", "Encode the array bytes with standard base64."
        ) from exc
    np_dtype = DTYPES[dtype]
    expected = int(np.prod(got, dtype=np.int64)) * np_dtype.itemsize
    if len(raw) != expected:
        raise BadInputError(
            f"{what}.data holds {len(raw)} bytes; shape {list(got)} of {dtype} needs {expected}",
            "Send the array's raw little-endian bytes in C order, matching its shape.",
        )
    arr = np.frombuffer(raw, dtype=np_dtype).reshape(got)
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise BadInputError(
            f"{what} has {bad} NaN or infinite values", f"Remove or fix the non-finite values in {what}."
        )
    return arr
