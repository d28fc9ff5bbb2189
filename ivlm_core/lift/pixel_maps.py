"""Pixel -> vertex maps: for each view and pixel, the visible triangle's 3 vertices and barycentrics.

Stored like InteractVLM's shipped `data/hcontact_vitruvian/` files (spec §3.2, §4.1): two npz files
keyed by view name, `pixel_to_vertex_map_<S>.npz` ([S, S, 3] vertex ids, -1 on background) and
`bary_coords_map_<S>.npz` ([S, S, 3] weights).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ivlm_core.errors import ModelFileError
from ivlm_core.fileio import save_npz_atomic
from ivlm_core.render.rasterize import Fragments


def vertex_map_filename(image_size: int) -> str:
    return f"pixel_to_vertex_map_{image_size}.npz"


def bary_map_filename(image_size: int) -> str:
    return f"bary_coords_map_{image_size}.npz"


@dataclass(frozen=True)
class PixelMaps:
    """vertex_ids [V, H, W, 3] int64 (-1 where no surface) and bary [V, H, W, 3] float32, in view order."""

    view_names: tuple[str, ...]
    vertex_ids: np.ndarray
    bary: np.ndarray
    num_vertices: int

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.vertex_ids.shape[1]), int(self.vertex_ids.shape[2])

    def valid(self) -> np.ndarray:
        """Pixels showing the mesh: all three vertex ids in range (the rule InteractVLM lifts with)."""
        return ((self.vertex_ids >= 0) & (self.vertex_ids < self.num_vertices)).all(-1)

    @classmethod
    def from_fragments(
        cls, fragments: Fragments, faces: torch.Tensor, num_vertices: int, view_names: Sequence[str]
    ) -> PixelMaps:
        face = fragments.pix_to_face
        ids = faces.to(face.device)[face.clamp(min=0)]
        ids = torch.where(face[..., None] >= 0, ids, torch.full_like(ids, -1))
        bary = torch.where(face[..., None] >= 0, fragments.bary, torch.zeros_like(fragments.bary))
        return cls(
            tuple(view_names),
            ids.cpu().numpy().astype(np.int64),
            bary.cpu().numpy().astype(np.float32),
            int(num_vertices),
        )

    def save(self, folder: Path) -> None:
        """Writes the two npz files (atomically) in the shipped layout."""
        folder.mkdir(parents=True, exist_ok=True)
        size = self.image_size[0]
        save_npz_atomic(
            folder / vertex_map_filename(size), {n: self.vertex_ids[i] for i, n in enumerate(self.view_names)}
        )
        save_npz_atomic(folder / bary_map_filename(size), {n: self.bary[i] for i, n in enumerate(self.view_names)})

    @classmethod
    def load(cls, folder: Path, view_names: Sequence[str], num_vertices: int, image_size: int = 1024) -> PixelMaps:
        """Reads shipped or cached maps, checking every view is there with the right shape."""
        ids = _load_views(folder / vertex_map_filename(image_size), view_names, image_size)
        bary = _load_views(folder / bary_map_filename(image_size), view_names, image_size)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ModelFileError(
                f"{folder / vertex_map_filename(image_size)}: vertex ids have dtype {ids.dtype}, expected integers.",
                "Re-extract InteractVLM's data.zip, or delete the folder so the maps are regenerated.",
            )
        ids = ids.astype(np.int64)
        if ids.max() >= num_vertices:
            raise ModelFileError(
                f"{folder / vertex_map_filename(image_size)}: refers to vertex {int(ids.max())}, "
                f"but the body has {num_vertices} vertices.",
                "These maps belong to another body topology; use InteractVLM's SMPL-H (6890-vertex) maps.",
            )
        return cls(tuple(view_names), ids, bary.astype(np.float32), int(num_vertices))


def _load_views(path: Path, view_names: Sequence[str], image_size: int) -> np.ndarray:
    if not path.is_file():
        raise ModelFileError(
            f"missing pixel map file {path}.", "Re-extract InteractVLM's data.zip into the models folder."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in view_names if n not in data.files]
            if missing:
                raise ModelFileError(
                    f"{path}: no map for view(s) {', '.join(missing)} (found: {', '.join(data.files)}).",
                    "Re-extract InteractVLM's data.zip; the maps must be keyed by view name.",
                )
            arrays = [data[n] for n in view_names]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(
            f"{path}: cannot be read ({exc}).", "The file is damaged; re-extract InteractVLM's data.zip."
        ) from exc
    for name, array in zip(view_names, arrays):
        if array.shape != (image_size, image_size, 3):
            raise ModelFileError(
                f"{path}: view {name} has shape {array.shape}, expected ({image_size}, {image_size}, 3).",
                "Re-extract InteractVLM's data.zip; these maps do not match the 1024x1024 renders.",
            )
    return np.stack(arrays)
