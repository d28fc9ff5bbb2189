"""InteractVLM's fixed view sets and object normalisation (spec §3.2, §3.3).

The view order is the channel order of everything downstream: SAM input stack, camera vectors,
the camera encoder's per-view transforms and the pixel maps. Never reorder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ivlm_core.errors import MeshError
from ivlm_core.render.cameras import PinholeCameras, look_at_view_transform

CANONICAL_IMAGE_SIZE = 1024
FOV_DEGREES = 60.0


@dataclass(frozen=True)
class View:
    """One canonical view: PyTorch3D look-at parameters plus the view-space shift and light."""

    name: str
    dist: float
    elev: float
    azim: float
    x_shift: float = 0.0  # added to PyTorch3D's T[0] (view +X is left)
    y_shift: float = 0.0  # added to PyTorch3D's T[1] (view +Y is up)
    light: tuple[float, float, float] = (0.0, 0.0, 3.0)  # world position of the point light


@dataclass(frozen=True)
class ViewSet:
    """An ordered set of views; `camera_vectors` is what InteractVLM's camera encoder is fed."""

    name: str
    views: tuple[View, ...]
    encoder_dist: float  # the distance written into the camera vector (see spec pitfall P11)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.views]

    def __len__(self) -> int:
        return len(self.views)

    def cameras(self, image_size: int = CANONICAL_IMAGE_SIZE, dtype: torch.dtype = torch.float64) -> PinholeCameras:
        rotation, translation = look_at_view_transform(
            [v.dist for v in self.views], [v.elev for v in self.views], [v.azim for v in self.views], dtype=dtype
        )
        translation = translation + torch.tensor([[v.x_shift, v.y_shift, 0.0] for v in self.views], dtype=dtype)
        return PinholeCameras.from_pytorch3d(rotation, translation, image_size, FOV_DEGREES)

    def light_positions(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """World positions of each view's point light, [V, 3]."""
        return torch.tensor([v.light for v in self.views], dtype=dtype)

    def camera_vectors(self) -> np.ndarray:
        """Normalised camera vectors [V, 5]: (dist/10, elev/360, azim/360, (x+1)/2, (y+1)/2)."""
        return np.array(
            [
                [self.encoder_dist / 10.0, v.elev / 360.0, v.azim / 360.0, (v.x_shift + 1) / 2, (v.y_shift + 1) / 2]
                for v in self.views
            ],
            dtype=np.float32,
        )


# Human: the canonical Vitruvian body, distance 2 (spec §3.2).
HUMAN_VIEWS = ViewSet(
    name="human",
    views=(
        View("topfront", 2.0, 45.0, 315.0, light=(0.0, 0.0, 3.0)),
        View("bottomfront", 2.0, 315.0, 315.0, y_shift=0.3, light=(0.0, 0.0, -3.0)),
        View("topback", 2.0, 45.0, 135.0, light=(0.0, 0.0, -3.0)),
        View("bottomback", 2.0, 315.0, 135.0, y_shift=0.3, light=(0.0, 0.0, 3.0)),
    ),
    encoder_dist=2.0,
)

# Objects: rendered at distance 1.5, but the camera encoder is fed distance 2 at inference (spec §3.3, P11).
OBJECT_VIEWS = ViewSet(
    name="object",
    views=(
        View("frontleft", 1.5, 45.0, 315.0, light=(0.0, 0.0, 3.0)),
        View("frontright", 1.5, 45.0, 45.0, light=(0.0, 0.0, 3.0)),
        View("backleft", 1.5, 330.0, 135.0, light=(0.0, 0.0, -3.0)),
        View("backright", 1.5, 330.0, 225.0, light=(0.0, 0.0, -3.0)),
    ),
    encoder_dist=2.0,
)

# InteractVLM's config names for the human view set. All share one geometry; `_mv2` only changed how
# training masks were made, and `_wScene` was renamed `_FootGround` upstream (spec P12).
HUMAN_VIEW_TYPE_ALIASES = ("4MV-Z_Vitru", "4MV-Z_Vitru_mv2", "4MV-Z_Vitru_wScene", "4MV-Z_Vitru_FootGround")
OBJECT_VIEW_TYPE_ALIASES = ("4MV-Z_HM", "4MV-Z_HM_BM")


def normalize_object_vertices(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """InteractVLM's object normalisation: subtract the vertex mean, divide by the longest bbox side.

    Returns (normalised vertices, the mean that was subtracted, the scale divided by), so that
    `original = normalised * scale + mean`.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    columns = np.ascontiguousarray(vertices.T)  # reductions along contiguous rows: several times faster than axis 0
    mean = columns.mean(axis=1)
    extent = float((columns.max(axis=1) - columns.min(axis=1)).max())
    if not extent > 0:
        raise MeshError("cannot normalise a mesh whose vertices all coincide.", "Send a mesh with some extent.")
    # Computed as coordinate rows and returned as their [N, 3] view: the renderer reads them row by row.
    return ((columns - mean[:, None]) / extent).T, mean, extent
