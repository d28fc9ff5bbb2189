"""Finding, safely reading, checking and sanitising SMPL-X / SMPL-H model files.

smplx reads model files with `pickle.load` / `np.load(allow_pickle=True)`, which runs code a crafted file
names. So we read the file ourselves (npz without pickles, object members and .pkl files through the
restricted unpickler of `safe_pickle`), check every array smplx will use, and hand smplx a sanitised
numeric-only npz from the cache (keyed by the source file's hash), never the user's file.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ivlm_core import paths
from ivlm_core.body.safe_pickle import ChumpyStandIn, JoblibPickleError, UnsafePickleError, safe_load, safe_loads
from ivlm_core.errors import ModelFileError, ModelFilesMissingError
from ivlm_core.fileio import file_sha256, save_npz_atomic

SYNTHETIC_MARKER_KEY = "ivlm_synthetic_demo"  # written by ivlm_core.demo into generated bodies
_SANITISER_VERSION = "1"


@dataclass(frozen=True)
class BodyModelSpec:
    """What a model type's file must contain: counts and the keys smplx reads."""

    model_type: str
    file_stem: str  # SMPLX / SMPLH
    n_vertices: int
    n_faces: int
    n_joints: int
    min_shape_components: int
    landmarks: bool
    download: str


SPECS: dict[str, BodyModelSpec] = {
    "smplx": BodyModelSpec(
        "smplx",
        "SMPLX",
        10475,
        20908,
        55,
        20,
        True,
        "Register at https://smpl-x.is.tue.mpg.de and download the SMPL-X model (npz or pkl)",
    ),
    "smplh": BodyModelSpec(
        "smplh",
        "SMPLH",
        6890,
        13776,
        52,
        10,
        False,
        'Register at https://mano.is.tue.mpg.de and download "Extended SMPL+H model" (the archive has '
        "neutral/model.npz: copy it under this name)",
    ),
}
GENDERS = ("neutral", "male", "female")


def candidate_files(model_type: str, gender: str, folder: Path) -> list[Path]:
    """Where a model file may be, best first: <folder>/<type>/<TYPE>_<GENDER>.npz or .pkl."""
    spec = _spec(model_type)
    if gender not in GENDERS:
        raise ValueError(f"unknown gender {gender!r}; use one of {', '.join(GENDERS)}")
    sub = folder / model_type
    names = [f"{spec.file_stem}_{gender.upper()}.npz", f"{spec.file_stem}_{gender.upper()}.pkl"]
    out = [sub / n for n in names]
    if model_type == "smplh":
        out.append(sub / gender / "model.npz")  # the layout of the "Extended SMPL+H" archive
    return out


def find_model_file(model_type: str, gender: str = "neutral", folder: Path | None = None) -> Path:
    """The user's model file, or ModelFilesMissingError saying which file, where, and how to get it."""
    folder = Path(folder) if folder is not None else paths.body_models_dir()
    candidates = candidate_files(model_type, gender, folder)
    for path in candidates:
        if path.is_file():
            return path
    spec = _spec(model_type)
    wanted = candidates[0]
    raise ModelFilesMissingError(
        f"{spec.file_stem} body model file {wanted.name} (or {candidates[1].name}) not found in {wanted.parent}.",
        f"{spec.download}, and put {wanted.name} into {wanted.parent} (models folder: IVLM_MODELS_DIR). "
        "Licensed model files are never downloaded automatically.",
    )


def _spec(model_type: str) -> BodyModelSpec:
    if model_type not in SPECS:
        raise ValueError(f"unknown body model type {model_type!r}; use one of {', '.join(SPECS)}")
    return SPECS[model_type]


# ---- reading ----------------------------------------------------------------------------------------


def read_model_file(path: Path) -> dict[str, Any]:
    """All entries of an .npz or .pkl model file, read without running code from it.

    Raises ModelFileError for unreadable, truncated or unsafe files.
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            return _read_npz(path)
        with open(path, "rb") as fh:
            data = safe_load(fh)
    except ModelFileError:
        raise
    except (UnsafePickleError, JoblibPickleError) as exc:
        raise unsafe_file_error(path, exc) from exc
    except READ_ERRORS as exc:
        raise ModelFileError(f"{path} is not a readable model file: {_describe(exc)}.", BROKEN_FILE_HINT) from exc
    if not isinstance(data, dict):
        raise ModelFileError(
            f"{path} does not hold a dictionary of arrays (found {type(data).__name__}).", BROKEN_FILE_HINT
        )
    return data


# what reading a damaged pickle or archive can raise
READ_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    MemoryError,
    OSError,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    zlib.error,
)


def unsafe_file_error(path: Path, exc: Exception) -> ModelFileError:
    """The error for a file that asks the unpickler for code (refused before anything ran)."""
    if isinstance(exc, JoblibPickleError):
        return ModelFileError(f"{path} was written by joblib and cannot be read safely ({exc}).", _JOBLIB_HINT)
    return ModelFileError(
        f"Refused to load {path}: {exc}. Loading it could run code, so nothing from it was used.",
        "Use the file from the official download; if it is, report this with the file's origin.",
    )


def _read_npz(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    out[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    out[key] = _read_object_member(path, key)
    except ModelFileError:
        raise
    except (UnsafePickleError, JoblibPickleError) as exc:
        raise unsafe_file_error(path, exc) from exc
    except READ_ERRORS as exc:
        raise ModelFileError(f"{path} is not a readable npz model file: {_describe(exc)}.", BROKEN_FILE_HINT) from exc
    return out


def _read_object_member(path: Path, key: str) -> Any:
    """An object array inside an npz (real SMPL-X files keep two dicts so), via the safe unpickler."""
    with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version} for {key}")
        value = safe_loads(fh.read())
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        return value.item()
    return value


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


BROKEN_FILE_HINT = "The file may be incomplete or damaged: download it again from the official site."
_JOBLIB_HINT = (
    "Convert it once with the tool that wrote it, in a trusted Python: "
    "`python -c \"import joblib, pickle, sys; pickle.dump(joblib.load(sys.argv[1]), open(sys.argv[2], 'wb'))\" "
    "IN OUT`, then use OUT."
)


# ---- checking and sanitising ------------------------------------------------------------------------


def model_arrays(raw: dict[str, Any], model_type: str, source: Path) -> dict[str, np.ndarray]:
    """The numeric arrays smplx needs for `model_type`, checked; raises ModelFileError naming the problem."""
    spec = _spec(model_type)
    v, j, f = spec.n_vertices, spec.n_joints, spec.n_faces
    out: dict[str, np.ndarray] = {}

    def get(key: str, required: bool = True) -> np.ndarray | None:
        if key not in raw:
            if required:
                raise ModelFileError(
                    f"{source} has no {key!r} entry: not a {spec.file_stem} model file.", BROKEN_FILE_HINT
                )
            return None
        value = raw[key]
        if isinstance(value, ChumpyStandIn):
            raise ModelFileError(f"{source}: {key!r} is a chumpy expression, not stored numbers.", BROKEN_FILE_HINT)
        if sp.issparse(value):
            value = value.toarray()
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{source}: {key!r} is not an array ({_describe(exc)}).", BROKEN_FILE_HINT) from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ModelFileError(f"{source}: {key!r} is not numeric (dtype {arr.dtype}).", BROKEN_FILE_HINT)
        return arr

    def check(key: str, arr: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise ModelFileError(f"{source}: {key!r} has shape {arr.shape}, expected {want}.", BROKEN_FILE_HINT)
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ModelFileError(f"{source}: {key!r} contains NaN or infinite values.", BROKEN_FILE_HINT)
        return arr

    out["v_template"] = check("v_template", get("v_template"), (v, 3)).astype(np.float64)
    faces = check("f", get("f"), (f, 3))
    if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= v:
        raise ModelFileError(f"{source}: 'f' does not index the {v} vertices.", BROKEN_FILE_HINT)
    out["f"] = faces.astype(np.int64)
    shapedirs = check("shapedirs", get("shapedirs"), (v, 3, None))
    if shapedirs.shape[2] < spec.min_shape_components:
        raise ModelFileError(
            f"{source}: 'shapedirs' has {shapedirs.shape[2]} components, at least {spec.min_shape_components} needed.",
            BROKEN_FILE_HINT,
        )
    out["shapedirs"] = shapedirs.astype(np.float32)
    out["posedirs"] = check("posedirs", get("posedirs"), (v, 3, 9 * (j - 1))).astype(np.float32)
    out["J_regressor"] = check("J_regressor", get("J_regressor"), (j, v)).astype(np.float64)
    out["weights"] = check("weights", get("weights"), (v, j)).astype(np.float64)
    kintree = check("kintree_table", get("kintree_table"), (2, j)).astype(np.int64)
    parents = kintree[0, 1:]
    if (parents < 0).any() or (parents >= np.arange(1, j)).any():
        raise ModelFileError(f"{source}: 'kintree_table' is not a tree whose parents come first.", BROKEN_FILE_HINT)
    out["kintree_table"] = kintree
    for side in ("l", "r"):
        comps = get(f"hands_components{side}", required=spec.landmarks)
        mean = get(f"hands_mean{side}", required=spec.landmarks)
        # some SMPL-H downloads ship without the hand PCA; a full basis and a flat mean are equivalent
        # for the layers (axis-angle hands), which is how this project poses hands
        out[f"hands_components{side}"] = (
            np.eye(45) if comps is None else check(f"hands_components{side}", comps, (None, 45))
        )
        out[f"hands_mean{side}"] = np.zeros(45) if mean is None else check(f"hands_mean{side}", mean, (45,))
    if spec.landmarks:
        lmk = check("lmk_faces_idx", get("lmk_faces_idx"), (None,)).astype(np.int64)
        out["lmk_faces_idx"] = lmk
        out["lmk_bary_coords"] = check("lmk_bary_coords", get("lmk_bary_coords"), (len(lmk), 3)).astype(np.float64)
        dyn = get("dynamic_lmk_faces_idx", required=False)
        if dyn is not None:
            out["dynamic_lmk_faces_idx"] = check("dynamic_lmk_faces_idx", dyn, (79, 17)).astype(np.int64)
            bary = check("dynamic_lmk_bary_coords", get("dynamic_lmk_bary_coords"), (79, 17, 3))
            out["dynamic_lmk_bary_coords"] = bary.astype(np.float64)
        for key in ("lmk_faces_idx", "dynamic_lmk_faces_idx"):
            if key in out and (out[key].min() < 0 or out[key].max() >= f):
                raise ModelFileError(f"{source}: {key!r} does not index the {f} faces.", BROKEN_FILE_HINT)
    marker = raw.get(SYNTHETIC_MARKER_KEY)
    if marker is not None:
        out[SYNTHETIC_MARKER_KEY] = np.array(str(np.asarray(marker)))
    return out


@dataclass(frozen=True)
class SanitisedModel:
    """A checked, numeric-only copy of a model file, ready for smplx."""

    path: Path  # the sanitised npz in the cache
    source: Path  # the user's file
    model_type: str
    synthetic_version: str | None  # generator version if this is the project's synthetic demo body

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic_version is not None


def sanitise_model_file(source: Path, model_type: str, cache: Path | None = None) -> SanitisedModel:
    """Reads, checks and copies a model file to <cache>/body_models/<type>-<hash>/<TYPE>_MODEL.npz.

    The copy is keyed by the source's SHA-256, so an edited or replaced file is checked again.
    """
    source = Path(source)
    spec = _spec(model_type)
    digest = _sha256(source)
    folder = (cache or paths.cache_dir()) / "body_models" / f"{model_type}-v{_SANITISER_VERSION}-{digest[:24]}"
    target = folder / f"{spec.file_stem}_MODEL.npz"
    if not target.is_file():
        arrays = model_arrays(read_model_file(source), model_type, source)
        folder.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(target, arrays, compressed=False)
    with np.load(target, allow_pickle=False) as npz:
        marker = str(npz[SYNTHETIC_MARKER_KEY]) if SYNTHETIC_MARKER_KEY in npz.files else None
    return SanitisedModel(path=target, source=source, model_type=model_type, synthetic_version=marker)


def _sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read: {_describe(exc)}.", "Check the file's permissions.") from exc
