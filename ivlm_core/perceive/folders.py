"""Where the Perceive models live and how a bad folder is reported.

Each model is a folder in the layout `save_pretrained` writes (what `hf download <repo> --local-dir <folder>`
gives): `<models>/perception/<name>/`. It is loaded with `local_files_only=True`; a missing or broken
folder is an error that names the folder, the file and the hub repository, and the hub is never contacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from safetensors import SafetensorError

from ivlm_core import paths
from ivlm_core.errors import IVLMError, ModelFileError, ModelFilesMissingError
from ivlm_core.perceive.vitpose_release import RELEASE_FILES
from ivlm_core.perceive.vitpose_release import download_hint as wholebody_hint

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

Model = TypeVar("Model", bound="PreTrainedModel")

DEMO_MARKER_KEY = "ivlm_tiny_demo"  # set in config.json of the project's tiny random-weight folders


@dataclass(frozen=True)
class PerceptionModelSpec:
    """What one Perceive folder must hold. `required`: one entry per file, naming the accepted alternatives."""

    name: str
    role: str
    model_type: str
    hub_names: tuple[str, ...]
    licence: str
    required: tuple[tuple[str, ...], ...]

    @property
    def hub_name(self) -> str:
        """The default hub repository (the first of `hub_names`)."""
        return self.hub_names[0]


_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_IMAGE_PROCESSOR = ("preprocessor_config.json", "processor_config.json")

SPECS: dict[str, PerceptionModelSpec] = {
    "grounding-dino": PerceptionModelSpec(
        name="grounding-dino",
        role="the Grounding DINO open-vocabulary detector",
        model_type="grounding-dino",
        hub_names=("IDEA-Research/grounding-dino-tiny", "IDEA-Research/grounding-dino-base"),
        licence="Apache-2.0",
        required=(
            ("config.json",),
            _WEIGHTS,
            _IMAGE_PROCESSOR,
            ("tokenizer_config.json",),
            ("vocab.txt", "tokenizer.json"),
        ),
    ),
    "sam": PerceptionModelSpec(
        name="sam",
        role="the SAM box-to-mask segmenter",
        model_type="sam",
        hub_names=("facebook/sam-vit-base", "facebook/sam-vit-large", "facebook/sam-vit-huge"),
        licence="Apache-2.0",
        required=(("config.json",), _WEIGHTS, _IMAGE_PROCESSOR),
    ),
    "vitpose": PerceptionModelSpec(
        name="vitpose",
        role="the ViTPose COCO-17 keypoint estimator",
        model_type="vitpose",
        hub_names=("usyd-community/vitpose-base-simple",),
        licence="Apache-2.0",
        required=(("config.json",), _WEIGHTS, _IMAGE_PROCESSOR),
    ),
    # Not on the hub: the original ViTPose++ release file (see ivlm_core.perceive.vitpose_release), or a
    # Hugging Face-format folder of one's own conversion (config.json with 133 labels).
    "vitpose-wholebody": PerceptionModelSpec(
        name="vitpose-wholebody",
        role="the ViTPose whole-body (COCO-WholeBody 133) keypoint estimator",
        model_type="vitpose",
        hub_names=(),
        licence="Apache-2.0",
        required=(("config.json", *RELEASE_FILES),),
    ),
}
KEYPOINT_MODELS = ("vitpose-wholebody", "vitpose")  # preferred first; one of them is needed

# What transformers and safetensors raise for unreadable or inconsistent files (JSON errors are ValueErrors).
_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, SafetensorError)


def download_hint(spec: PerceptionModelSpec, folder: Path) -> str:
    """How to put the model in place: the hub repository, the folder and a one-line command."""
    if not spec.hub_names:
        return wholebody_hint(folder)
    others = f" ({', '.join(spec.hub_names[1:])} also work)" if len(spec.hub_names) > 1 else ""
    return (
        f"Download {spec.hub_name}{others} from the Hugging Face hub ({spec.licence}) into {folder}, e.g. "
        f"`hf download {spec.hub_name} --local-dir {folder}`. Set IVLM_MODELS_DIR if your models are elsewhere."
    )


def check_folder(name: str, folder: Path | None = None, root: Path | None = None) -> Path:
    """The folder of model `name` (default `<models>/perception/<name>`) after checking its files are there."""
    spec = SPECS[name]
    folder = Path(folder) if folder is not None else paths.perception_dir(name, root)
    missing = missing_files(name, folder)
    if missing:
        raise ModelFilesMissingError(_missing_message(spec, folder, missing), download_hint(spec, folder))
    return folder


def missing_files(name: str, folder: Path) -> list[str]:
    """The required files absent from `folder` ('a or b' for alternatives); all of them if it does not exist."""
    return [
        " or ".join(options) for options in SPECS[name].required if not any((folder / f).is_file() for f in options)
    ]


def check_folders(root: Path | None = None) -> dict[str, Path]:
    """The detector, segmenter and keypoint folders under `root` (keys "grounding-dino", "sam" and "keypoints": the
    whole-body folder when it is complete, else the COCO-17 one); one error listing every missing folder or file,
    so one download round fixes all."""
    problems, hints, folders = [], [], {}
    keypoints = next((n for n in KEYPOINT_MODELS if not missing_files(n, paths.perception_dir(n, root))), "vitpose")
    for name in ("grounding-dino", "sam", keypoints):
        spec = SPECS[name]
        folder = paths.perception_dir(name, root)
        missing = missing_files(name, folder)
        if missing:
            problems.append(_missing_message(spec, folder, missing))
            hints.append(download_hint(spec, folder))
        folders["keypoints" if name == keypoints else name] = folder
    if problems:
        raise ModelFilesMissingError(" ".join(problems), " ".join(hints))
    return folders


def _missing_message(spec: PerceptionModelSpec, folder: Path, missing: list[str]) -> str:
    if not folder.is_dir():
        return f"The folder for {spec.role} does not exist: {folder}."
    return f"{spec.role[0].upper()}{spec.role[1:]} folder {folder} is incomplete: missing {', '.join(missing)}."


def read_config(name: str, folder: Path) -> dict[str, Any]:
    """config.json as a dict, checked to describe the expected kind of model (a swapped folder is a common slip)."""
    spec = SPECS[name]
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not readable JSON ({exc}).", download_hint(spec, folder)) from exc
    if not isinstance(config, dict) or config.get("model_type") != spec.model_type:
        found = config.get("model_type") if isinstance(config, dict) else None
        raise ModelFileError(
            f"{path} describes a {found!r} model, but {folder} should hold {spec.role} (model_type {spec.model_type!r}).",
            f"Check which folder holds which model; {download_hint(spec, folder)}",
        )
    return config


def is_demo_config(config: dict[str, Any] | Any) -> bool:
    """True for the project's tiny random-weight folders (their config.json carries DEMO_MARKER_KEY)."""
    if isinstance(config, dict):
        return bool(config.get(DEMO_MARKER_KEY))
    return bool(getattr(config, DEMO_MARKER_KEY, None))


def weights_file(folder: Path) -> Path:
    """The weights file a folder holds (single file or shard index), for naming it in errors."""
    for name in _WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    return folder / _WEIGHTS[0]


@contextmanager
def loading(name: str, folder: Path, file: Path | str) -> Iterator[None]:
    """Turns a failure while reading `file` into a ModelFileError that names it and says how to fix it."""
    spec = SPECS[name]
    try:
        yield
    except IVLMError:
        raise
    except _LOAD_ERRORS as exc:
        shown = file if isinstance(file, str) else str(file)
        raise ModelFileError(
            f"Could not load {shown} of {spec.role} in {folder} ({type(exc).__name__}: {exc}).",
            f"The file is damaged or from another model. {download_hint(spec, folder)}",
        ) from exc


def pretrained_with_info(model_class: type[Model], folder: Path, dtype: torch.dtype) -> tuple[Model, dict[str, Any]]:
    """`model_class.from_pretrained(folder)` offline, with transformers' loading info (see check_loading_info)."""
    loaded = model_class.from_pretrained(folder, local_files_only=True, dtype=dtype, output_loading_info=True)
    # transformers types from_pretrained as returning the model alone; output_loading_info=True adds the info
    return cast("tuple[Model, dict[str, Any]]", loaded)


def check_loading_info(name: str, folder: Path, info: dict[str, Any]) -> None:
    """Rejects weights that leave parameters missing or mis-shaped (transformers would silently randomise them)."""
    problems = []
    for key in ("missing_keys", "mismatched_keys"):
        entries = list(info.get(key) or [])
        if entries:
            shown = ", ".join(str(e if isinstance(e, str) else e[0]) for e in entries[:5])
            problems.append(f"{len(entries)} {key.replace('_', ' ')} (e.g. {shown})")
    if problems:
        spec = SPECS[name]
        raise ModelFileError(
            f"{weights_file(folder)} does not match {folder / 'config.json'}: {'; '.join(problems)}.",
            f"The weights are incomplete or belong to another model size. {download_hint(spec, folder)}",
        )
