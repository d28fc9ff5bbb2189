"""The canonical body's four views: InteractVLM's shipped renders and pixel maps, or our regeneration.

InteractVLM's `data.zip` ships `data/hcontact_vitruvian/` (and an identical-geometry `_mv2` copy, spec
P12): the normal-coloured renders SAM sees, blue overlay renders, and the pixel maps the human lifter
uses. When the user has them we use them as they are. Otherwise we render the same views from an SMPL-H
model (the user's, or the synthetic demo body) and cache the result in the same layout, keyed by the
body file's hash and the renderer version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ivlm_core import paths
from ivlm_core.body import canonical_body, find_model_file
from ivlm_core.errors import ModelFileError, ModelFilesMissingError
from ivlm_core.fileio import atomic_path, file_sha256
from ivlm_core.lift.operator import LiftOperator
from ivlm_core.lift.pixel_maps import PixelMaps, bary_map_filename, vertex_map_filename
from ivlm_core.render.canonical import render_body_views
from ivlm_core.render.views import CANONICAL_IMAGE_SIZE, HUMAN_VIEWS

BODY_DATA_FOLDERS = ("hcontact_vitruvian", "hcontact_vitruvian_mv2")
SAM_RENDER = "body_render_norm_{}.png"
OVERLAY_RENDER = "smplh_body_render_blue_{}.png"
SOURCE_FILE = "ivlm_source.json"
SMPLH_VERTICES = 6890
# Bump when anything that changes regenerated renders or maps changes (cameras, shading, rasteriser).
RENDER_VERSION = 1


@dataclass
class CanonicalBodyViews:
    """Images [4, 1024, 1024, 3] uint8 in HUMAN_VIEWS order, their pixel maps, and where they came from."""

    sam_images: np.ndarray
    overlay_images: np.ndarray
    maps: PixelMaps
    folder: Path
    origin: str  # "interactvlm-data" (shipped files) or "regenerated"
    synthetic_version: str | None = None  # set when regenerated from the synthetic demo body
    _lifters: dict[str, LiftOperator] = field(default_factory=dict, repr=False)

    @property
    def is_demo(self) -> bool:
        return self.synthetic_version is not None

    def lift_operator(self, device: torch.device | str = "cpu") -> LiftOperator:
        """The human lifter for these maps, built once per device."""
        key = str(torch.device(device))
        if key not in self._lifters:
            self._lifters[key] = LiftOperator(self.maps, device)
        return self._lifters[key]


def has_canonical_views(folder: Path) -> bool:
    size = CANONICAL_IMAGE_SIZE
    files = [vertex_map_filename(size), bary_map_filename(size)] + [SAM_RENDER.format(n) for n in HUMAN_VIEWS.names]
    return all((folder / name).is_file() for name in files)


def _read_images(folder: Path, pattern: str, required: bool) -> np.ndarray | None:
    images = []
    for name in HUMAN_VIEWS.names:
        path = folder / pattern.format(name)
        if not path.is_file():
            if required:
                raise ModelFileError(f"missing canonical render {path}.", "Re-extract InteractVLM's data.zip.")
            return None
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except OSError as exc:
            raise ModelFileError(
                f"{path} cannot be read as an image ({exc}).", "Re-extract InteractVLM's data.zip."
            ) from exc
        if array.shape != (CANONICAL_IMAGE_SIZE, CANONICAL_IMAGE_SIZE, 3):
            raise ModelFileError(
                f"{path} is {array.shape[1]}x{array.shape[0]}, expected {CANONICAL_IMAGE_SIZE}x{CANONICAL_IMAGE_SIZE}.",
                "Re-extract InteractVLM's data.zip.",
            )
        images.append(array)
    return np.stack(images)


def _read_folder(folder: Path, origin: str) -> CanonicalBodyViews:
    maps = PixelMaps.load(folder, HUMAN_VIEWS.names, SMPLH_VERTICES, CANONICAL_IMAGE_SIZE)
    sam = _read_images(folder, SAM_RENDER, required=True)
    overlay = _read_images(folder, OVERLAY_RENDER, required=False)
    synthetic = None
    if (folder / SOURCE_FILE).is_file():
        synthetic = json.loads((folder / SOURCE_FILE).read_text()).get("synthetic_version")
    return CanonicalBodyViews(sam, sam if overlay is None else overlay, maps, folder, origin, synthetic)


def _write_folder(folder: Path, views: CanonicalBodyViews, source: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    views.maps.save(folder)
    for images, pattern in ((views.sam_images, SAM_RENDER), (views.overlay_images, OVERLAY_RENDER)):
        for name, image in zip(HUMAN_VIEWS.names, images):
            with atomic_path(folder / pattern.format(name)) as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
    with atomic_path(folder / SOURCE_FILE) as tmp:  # written last: its presence marks a complete folder
        tmp.write_text(json.dumps(source, indent=2))


def regenerate_canonical_body_views(
    body_models: Path | None = None, *, smplh_path: Path | None = None, device: torch.device | str = "cpu"
) -> CanonicalBodyViews:
    """Renders the canonical views and maps from an SMPL-H model (no cache involved)."""
    body = canonical_body(body_models, path=smplh_path)
    renders = render_body_views(body.vertices, body.faces, device=device)
    maps = PixelMaps.from_fragments(renders.fragments, renders.faces, len(body.vertices), HUMAN_VIEWS.names)
    return CanonicalBodyViews(
        renders.sam_images, renders.overlay_images, maps, Path(), "regenerated", body.synthetic_version
    )


def load_canonical_body_views(
    data_dir: Path | None = None,
    body_models: Path | None = None,
    *,
    cache: Path | None = None,
    device: torch.device | str = "cpu",
) -> CanonicalBodyViews:
    """InteractVLM's shipped canonical views if present under `data_dir`, else regenerated (and cached).

    data_dir: InteractVLM's unzipped `data/` folder (default: `paths.interactvlm_data_dir()`).
    body_models: the body-models folder with smplh/SMPLH_NEUTRAL.* (default: `paths.body_models_dir()`).
    """
    data_dir = Path(data_dir) if data_dir is not None else paths.interactvlm_data_dir()
    for name in BODY_DATA_FOLDERS:
        if has_canonical_views(data_dir / name):
            return _read_folder(data_dir / name, "interactvlm-data")
    try:
        smplh = find_model_file("smplh", "neutral", body_models)
    except ModelFilesMissingError as exc:
        raise ModelFilesMissingError(
            f"The canonical body views are missing: no {data_dir / BODY_DATA_FOLDERS[0]} with InteractVLM's renders "
            f"and pixel maps, and no SMPL-H model to regenerate them from ({exc.message})",
            f"Either unzip InteractVLM's data.zip so that {data_dir / BODY_DATA_FOLDERS[0]} exists, or {exc.hint}",
        ) from exc
    digest = file_sha256(smplh)[:24]
    folder = (cache or paths.cache_dir()) / "canonical_body" / f"v{RENDER_VERSION}-{digest}" / BODY_DATA_FOLDERS[0]
    if (folder / SOURCE_FILE).is_file() and has_canonical_views(folder):
        return _read_folder(folder, "regenerated")
    views = regenerate_canonical_body_views(smplh_path=smplh, device=device)
    source = {
        "body_model": str(smplh),
        "body_model_sha256": digest,
        "render_version": RENDER_VERSION,
        "synthetic_version": views.synthetic_version,
    }
    _write_folder(folder, views, source)
    views.folder = folder
    return views
