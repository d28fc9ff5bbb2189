"""The photo's camera for fitting: intrinsics in the CV_CAMERA convention (see `ivlm_core.frames`).

Focal length, in order of preference: given by the client, read from the photo's EXIF (35 mm
equivalent focal length), else a default field of view. Fitting happens in the camera frame, so the
camera itself sits at the origin looking down +Z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ivlm_core.errors import BadInputError

DEFAULT_FOV_DEG = 55.0  # diagonal field of view when nothing better is known (a typical phone's main camera)
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
EXIF_FOCAL_35MM = 0xA405  # FocalLengthIn35mmFilm (in the Exif IFD)
EXIF_IFD = 0x8769


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics for an image of (height, width) pixels, and where the focal length came from."""

    focal_px: float
    image_size: tuple[int, int]  # (height, width)
    source: str  # "client", "exif" or "default"

    @property
    def matrix(self) -> np.ndarray:
        """OpenCV K [3, 3]; pixel (row i, col j) centred at (u=j, v=i), so the centre is (w-1)/2, (h-1)/2."""
        h, w = self.image_size
        return np.array([[self.focal_px, 0.0, (w - 1) / 2], [0.0, self.focal_px, (h - 1) / 2], [0.0, 0.0, 1.0]])


def focal_from_exif(image: Image.Image) -> float | None:
    """Focal length in pixels from the 35 mm equivalent focal length in EXIF, or None."""
    try:
        exif = image.getexif()
        value = exif.get_ifd(EXIF_IFD).get(EXIF_FOCAL_35MM) or exif.get(EXIF_FOCAL_35MM)
    except Exception:
        return None
    if not value:
        return None
    focal_mm = float(value)
    if not 1.0 <= focal_mm <= 2000.0:
        return None
    w, h = image.size
    # The 35 mm equivalent is defined on the diagonal: f_px / diag_px = f_mm / diag_mm.
    return focal_mm / FULL_FRAME_DIAGONAL_MM * math.hypot(w, h)


def default_focal(image_size: tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    h, w = image_size
    return math.hypot(w, h) / 2.0 / math.tan(math.radians(fov_deg) / 2.0)


def camera_for_image(
    image_size: tuple[int, int], focal_px: float | None = None, pil_image: Image.Image | None = None
) -> CameraIntrinsics:
    """Intrinsics for the photo: the client's focal length, else EXIF, else the default field of view."""
    if focal_px is not None:
        if not (math.isfinite(focal_px) and focal_px > 0):
            raise BadInputError(
                f"focal length {focal_px!r} px is not a positive number",
                "Send the focal length in pixels of the photo (e.g. 1.2 x its width), or leave it out.",
            )
        return CameraIntrinsics(float(focal_px), image_size, "client")
    if pil_image is not None:
        exif_focal = focal_from_exif(pil_image)
        if exif_focal is not None:
            return CameraIntrinsics(exif_focal, image_size, "exif")
    return CameraIntrinsics(default_focal(image_size), image_size, "default")
