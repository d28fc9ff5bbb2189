"""What model files the full pipeline needs, which are present, and where to get and put the missing ones.

`ivlm doctor` prints this; the server reports it in health and falls back to DEMO mode when anything is missing.
Each check calls the same file checks the loaders use (cheap ones: no weights are read), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ivlm_core import paths
from ivlm_core.errors import IVLMError

INTERACTVLM_SITE = "https://interactvlm.is.tue.mpg.de"


@dataclass(frozen=True)
class ModelFileStatus:
    name: str
    path: str  # where the project looks
    present: bool
    source: str  # where to get it (registration site or hub repository) and its licence
    problem: str = ""  # what is wrong when not present
    hint: str = ""  # how to fix it
    optional: bool = False  # the pipeline runs without it (a lesser fallback is used); never a reason for DEMO mode

    def to_dict(self) -> dict[str, str | bool]:
        return asdict(self)


@dataclass(frozen=True)
class _Check:
    name: str
    path: Callable[[Path], Path]
    source: str
    run: Callable[[Path], object]  # raises IVLMError when the files are not usable
    optional: bool = False


def _body_file(model_type: str) -> Callable[[Path], object]:
    def run(root: Path) -> object:
        from ivlm_core.body.model_files import find_model_file

        return find_model_file(model_type, "neutral", paths.body_models_dir(root))

    return run


def _canonical_views(root: Path) -> object:
    from ivlm_core.body.model_files import find_model_file
    from ivlm_core.lift.canonical_body import BODY_DATA_FOLDERS, has_canonical_views

    data = paths.interactvlm_data_dir(root)
    if any(has_canonical_views(data / name) for name in BODY_DATA_FOLDERS):
        return data
    return find_model_file("smplh", "neutral", paths.body_models_dir(root))  # they can be regenerated from SMPL-H


def _mapping(root: Path) -> object:
    from ivlm_core.errors import ModelFilesMissingError
    from ivlm_core.lift.smplx_conversion import MAPPING_FILENAME

    path = paths.interactvlm_data_dir(root) / MAPPING_FILENAME
    if not path.is_file():
        raise ModelFilesMissingError(
            f"{path.name} not found in {path.parent}.",
            f"It is in InteractVLM's data.zip (registration at {INTERACTVLM_SITE}): unzip it into {path.parent.parent}.",
        )
    return path


def _release(name: str) -> Callable[[Path], object]:
    def run(root: Path) -> object:
        from ivlm_core.localize.checkpoint import release_shard_files
        from ivlm_core.localize.config import load_release_config

        folder = paths.interactvlm_release_dir(name, root)
        load_release_config(folder)
        return release_shard_files(folder)

    return run


def _clip(root: Path) -> object:
    from ivlm_core.localize.checkpoint import clip_vision_config

    return clip_vision_config(paths.clip_dir(root))


def _perception(name: str) -> Callable[[Path], object]:
    def run(root: Path) -> object:
        from ivlm_core.perceive.folders import check_folder

        if name == "vitpose":  # COCO-17 is only the fallback: not needed when the whole-body model is there
            try:
                return check_folder("vitpose-wholebody", root=root)
            except IVLMError:
                pass
        return check_folder(name, root=root)

    return run


def _vposer(root: Path) -> object:
    from ivlm_core.body.vposer import find_snapshot, vposer_dir

    return find_snapshot(vposer_dir(root))


def _checks() -> list[_Check]:
    from ivlm_core.body.vposer import vposer_dir
    from ivlm_core.perceive.folders import SPECS
    from ivlm_core.perceive.vitpose_release import REPOSITORY
    from ivlm_core.pipeline.reconstruct import HUMAN_RELEASE, OBJECT_RELEASE

    registration = f"registration at {INTERACTVLM_SITE} (MPI non-commercial research licence)"
    checks = [
        _Check(
            "SMPL-X body model",
            lambda r: paths.body_models_dir(r) / "smplx" / "SMPLX_NEUTRAL.npz",
            "registration at https://smpl-x.is.tue.mpg.de (SMPL-X licence)",
            _body_file("smplx"),
        ),
        _Check(
            "canonical body views (InteractVLM data.zip, or SMPL-H to regenerate them)",
            lambda r: paths.interactvlm_data_dir(r) / "hcontact_vitruvian",
            registration,
            _canonical_views,
        ),
        _Check(
            "SMPL -> SMPL-X contact mapping",
            lambda r: paths.interactvlm_data_dir(r) / "smpl_to_smplx.pkl",
            registration,
            _mapping,
        ),
    ]
    for release in (HUMAN_RELEASE, OBJECT_RELEASE):
        checks.append(
            _Check(
                f"InteractVLM release {release}",
                lambda r, n=release: paths.interactvlm_release_dir(n, r),
                registration,
                _release(release),
            )
        )
    checks.append(
        _Check(
            "CLIP ViT-L/14 vision tower", paths.clip_dir, "Hugging Face hub: openai/clip-vit-large-patch14 (MIT)", _clip
        )
    )
    for name, spec in SPECS.items():
        wholebody = name == "vitpose-wholebody"
        source = (
            f"ViTPose++ release vitpose+_base.pth from {REPOSITORY} (README, OneDrive; {spec.licence}); optional: "
            "without it COCO-17 keypoints are used (no hands or feet)"
            if wholebody
            else f"Hugging Face hub: {spec.hub_name} ({spec.licence})"
        )
        checks.append(
            _Check(
                f"{spec.role} ({name})",
                lambda r, n=name: paths.perception_dir(n, r),
                source,
                _perception(name),
                optional=wholebody,
            )
        )
    checks.append(
        _Check(
            "VPoser v2.0 pose prior (optional)",
            vposer_dir,
            "registration at https://smpl-x.is.tue.mpg.de (VPoser v2.0; SMPL-X licence); optional: without "
            "it the body fit uses licence-free joint limits",
            _vposer,
            optional=True,
        )
    )
    return checks  # fmt: skip


def check_model_files(root: Path | None = None) -> list[ModelFileStatus]:
    """One status per required item, in pipeline order."""
    root = Path(root) if root is not None else paths.models_dir()
    out = []
    for check in _checks():
        try:
            check.run(root)
            out.append(ModelFileStatus(check.name, str(check.path(root)), True, check.source, optional=check.optional))
        except IVLMError as exc:
            out.append(
                ModelFileStatus(
                    check.name, str(check.path(root)), False, check.source, exc.message, exc.hint, check.optional
                )
            )
    return out


def format_report(statuses: list[ModelFileStatus], root: Path) -> str:
    """The text `ivlm doctor` prints."""
    lines = [f"Models folder: {root}  (set IVLM_MODELS_DIR or --models to change it)", ""]
    for s in statuses:
        lines.append(f"[{'ok' if s.present else 'absent' if s.optional else 'MISSING'}] {s.name}")
        lines.append(f"      {s.path}")
        if not s.present:
            lines.append(f"      problem: {s.problem}")
            lines.append(f"      get it:  {s.source}")
            if s.hint:
                lines.append(f"      fix:     {s.hint}")
    missing = sum(not s.present and not s.optional for s in statuses)
    lines.append("")
    lines.append(
        "All model files are present: the server runs the real pipeline."
        if not missing
        else f"{missing} item(s) missing: the server starts in DEMO mode on generated assets (results not meaningful). "
        "Public models can be fetched with `ivlm fetch-public-models` (needs internet); licensed ones need registration."
    )
    return "\n".join(lines)


NOT_ON_HUB = {  # folder -> where the user gets it by hand (fetch-public-models prints this)
    "perception/vitpose-wholebody": "vitpose+_base.pth (ViTPose++, Apache-2.0) from the ViTPose README, "
    "https://github.com/ViTAE-Transformer/ViTPose (OneDrive link in the 'ViTPose++' table); not on the hub",
}
PUBLIC_MODELS = {  # folder (relative to the models folder) -> hub repository; never used by tests
    "clip-vit-large-patch14": "openai/clip-vit-large-patch14",
    "perception/grounding-dino": "IDEA-Research/grounding-dino-tiny",
    "perception/sam": "facebook/sam-vit-base",
    "perception/vitpose": "usyd-community/vitpose-base-simple",
}


def fetch_public_models(root: Path | None = None) -> list[Path]:
    """Downloads the public (non-licensed) models into their folders with huggingface_hub. Needs internet."""
    from huggingface_hub import snapshot_download

    root = Path(root) if root is not None else paths.models_dir()
    written = []
    for folder, repo in PUBLIC_MODELS.items():
        target = root / folder
        snapshot_download(repo, local_dir=target, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
        written.append(target)
    return written
