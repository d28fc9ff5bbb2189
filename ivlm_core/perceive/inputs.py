"""Checks on what callers hand the Perceive stage, so bad input fails early with a clear message."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ivlm_core.errors import BadInputError
from ivlm_core.localize.prompts import check_label

ImageLike = Image.Image | np.ndarray


def as_rgb_array(image: ImageLike) -> np.ndarray:
    """The image as a C-contiguous uint8 [H, W, 3] array; PIL images must be mode RGB (no silent conversion)."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise BadInputError(
                f"The image is a PIL image in mode {image.mode!r}, not RGB.",
                "Convert it first, e.g. image.convert('RGB') (this drops alpha / expands grey or palette images).",
            )
        array = np.asarray(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise BadInputError(
            f"The image is a {type(image).__name__}, not a PIL image or numpy array.",
            "Pass a PIL RGB image or a uint8 numpy array of shape [H, W, 3].",
        )
    if array.ndim != 3 or array.shape[2] != 3:
        raise BadInputError(
            f"The image has shape {tuple(array.shape)}; an RGB image of shape [H, W, 3] is needed.",
            "Drop the alpha channel or stack grey images to three channels before perceiving.",
        )
    if array.dtype != np.uint8:
        raise BadInputError(
            f"The image has dtype {array.dtype}; uint8 (0-255) is needed.",
            "Convert with np.clip(image * 255, 0, 255).astype(np.uint8) if it holds floats in [0, 1].",
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise BadInputError(f"The image is empty (shape {tuple(array.shape)}).", "Pass a photo with pixels in it.")
    return np.ascontiguousarray(array)


def check_labels(labels: Sequence[str]) -> list[str]:
    """Labels stripped of surrounding spaces, each checked by the pipeline's one label rule (`check_label`)."""
    if isinstance(labels, str):
        raise BadInputError(
            f"Labels must be a list of strings, got the single string {labels!r}.", f"Pass [{labels!r}] instead."
        )
    return [check_label(label) for label in labels]


def prompt_phrase(label: str) -> str:
    """The detector's phrase for a label: lower case, underscores as spaces, single spaces (COCO-style names)."""
    return " ".join(label.replace("_", " ").lower().split())


def check_boxes(boxes: np.ndarray | Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Boxes as float32 [N, 4] xyxy pixels clipped to the image; each must be finite with positive area."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4 or not np.isfinite(array).all():
        raise BadInputError(
            f"Boxes must be finite [N, 4] (x0, y0, x1, y1) pixel arrays; got shape {tuple(array.shape)}.",
            "Pass boxes as returned by the detector (xyxy, pixels).",
        )
    clipped = array.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    bad = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if bad.any():
        raise BadInputError(
            f"Box {array[int(np.flatnonzero(bad)[0])].tolist()} has no area inside the {width}x{height} image.",
            "Boxes are (x0, y0, x1, y1) in pixels with x0 < x1 and y0 < y1, overlapping the image.",
        )
    return clipped.astype(np.float32)
