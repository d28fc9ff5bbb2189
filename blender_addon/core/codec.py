"""Arrays on the wire: `{dtype, shape, data}` with data the base64 of little-endian C-order bytes.

`array.array` is used (not numpy) so the core stays standard-library only; Blender's `foreach_set` and
`foreach_get` take these buffers directly.
"""

from __future__ import annotations

import array
import base64
import sys

_TYPECODES = {"float32": "f", "int32": "i", "uint8": "B"}


def encode(values: array.array, dtype: str, shape: list[int]) -> dict:
    if values.typecode != _TYPECODES[dtype]:
        raise ValueError(f"array typecode {values.typecode!r} does not match dtype {dtype}")
    count = 1
    for size in shape:
        count *= size
    if len(values) != count:
        raise ValueError(f"{len(values)} values do not fill shape {shape}")
    data = values
    if sys.byteorder == "big":
        data = array.array(values.typecode, values)
        data.byteswap()
    return {"dtype": dtype, "shape": list(shape), "data": base64.b64encode(data.tobytes()).decode("ascii")}


def decode(payload: dict) -> tuple[array.array, list[int]]:
    """The flat values and the shape; ValueError when the payload is inconsistent."""
    dtype, shape = payload["dtype"], list(payload["shape"])
    values = array.array(_TYPECODES[dtype])
    values.frombytes(base64.b64decode(payload["data"]))
    if sys.byteorder == "big":
        values.byteswap()
    count = 1
    for size in shape:
        count *= size
    if len(values) != count:
        raise ValueError(f"array of shape {shape} has {len(values)} values")
    return values, shape
