"""What model files the full pipeline needs, which are present, and where to get and put the missing ones.

`ivlm doctor` prints this, grouped by what the missing files unlock; the server reports it in health and loads
each pipeline part (pipeline/parts.py) from the user's files when they are present, its generated stand-in when
they are not, and no contact model at all when its release is missing (`planned_sources`). Each check calls the
same file checks the loaders use (cheap ones: no weights are read), so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from ivlm_core import paths
from ivlm_core.errors import IVLMError
from ivlm_core.pipeline import parts

INTERACTVLM_SITE = "https://interactvlm.is.tue.mpg.de"
MANO_SITE = "https://mano.is.tue.mpg.de"  # SMPL-H ("Extended SMPL+H model")


@dataclass(frozen=True)
class ModelFileStatus:
    name: str
    path: str  # where the project looks
    present: bool
    source: str  # where to get it (registration site or hub repository) and its licence
    problem: str = ""  # what is wrong when not present
    hint: str = ""  # how to fix it
    parts: tuple[str, ...] = ()  # the pipeline parts (pipeline/parts.py) that need this item

    def to_dict(self) -> dict[str, str | bool]:
        return asdict(self)


@dataclass(frozen=True)
class _Check:
    name: str
    path: Callable[[Path], Path]
    source: str
    run: Callable[[Path], object]  # raises IVLMError when the files are not usable
    parts: tuple[str, ...] = ()


def _body_file(model_type: str) -> Callable[[Path], object]:
    def run(root: Path) -> object:
        from ivlm_core.body.model_files import find_model_file

        return find_model_file(model_type, "neutral", paths.body_models_dir(root))

    return run


def _canonical_views(root: Path) -> object:
    """The views from InteractVLM's data.zip, or the SMPL-H file they are regenerated from: either will do."""
    from ivlm_core.body.model_files import find_model_file
    from ivlm_core.errors import ModelFilesMissingError
    from ivlm_core.lift.canonical_body import BODY_DATA_FOLDERS, has_canonical_views

    data = paths.interactvlm_data_dir(root)
    if any(has_canonical_views(data / name) for name in BODY_DATA_FOLDERS):
        return data
    try:
        return find_model_file("smplh", "neutral", paths.body_models_dir(root))
    except ModelFilesMissingError as exc:
        raise ModelFilesMissingError(
            f"Neither the canonical body views ({' or '.join(BODY_DATA_FOLDERS)} in {data}) nor the SMPL-H body "
            f"model to regenerate them were found ({exc.message.rstrip('.')})",
            f"Either unzip InteractVLM's data.zip (registration at {INTERACTVLM_SITE}) into {data.parent}, or, to "
            f"regenerate the views: {exc.hint}",
        ) from exc


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
    from ivlm_core.perceive.folders import SPECS
    from ivlm_core.pipeline.reconstruct import HUMAN_RELEASE, OBJECT_RELEASE

    registration = f"registration at {INTERACTVLM_SITE} (MPI non-commercial research licence)"
    checks = [
        _Check(
            "SMPL-X body model",
            lambda r: paths.body_models_dir(r) / "smplx" / "SMPLX_NEUTRAL.npz",
            "registration at https://smpl-x.is.tue.mpg.de (SMPL-X licence)",
            _body_file("smplx"),
            (parts.BODY_MODEL,),
        ),
        _Check(
            "canonical body views (InteractVLM data.zip, or SMPL-H to regenerate them)",
            lambda r: paths.interactvlm_data_dir(r) / "hcontact_vitruvian",
            f"InteractVLM's data.zip: {registration}; or SMPL-H to regenerate them: registration at {MANO_SITE} "
            "(MANO / SMPL+H licence)",
            _canonical_views,
            (parts.CANONICAL_VIEWS,),
        ),
        _Check(
            "SMPL -> SMPL-X contact mapping",
            lambda r: paths.interactvlm_data_dir(r) / "smpl_to_smplx.pkl",
            registration,
            _mapping,
            (parts.CANONICAL_VIEWS,),
        ),
    ]
    for release, part in ((HUMAN_RELEASE, parts.HUMAN_CONTACT), (OBJECT_RELEASE, parts.OBJECT_CONTACT)):
        checks.append(
            _Check(
                f"InteractVLM release {release}",
                partial(paths.interactvlm_release_dir, release),
                registration,
                _release(release),
                (part,),
            )
        )
    checks.append(
        _Check(
            "CLIP ViT-L/14 vision tower",
            paths.clip_dir,
            "Hugging Face hub: openai/clip-vit-large-patch14 (MIT)",
            _clip,
            (parts.HUMAN_CONTACT, parts.OBJECT_CONTACT),
        )
    )
    for name, spec in SPECS.items():
        if name == "vitpose-wholebody":  # optional (`_optional_checks`): COCO-17 is the fallback
            continue
        checks.append(
            _Check(
                f"{spec.role} ({name})",
                partial(paths.perception_dir, name),
                f"Hugging Face hub: {spec.hub_name} ({spec.licence})",
                _perception(name),
                (parts.PERCEPTION,),
            )
        )
    return checks


def _multihmr(root: Path) -> object:
    """Reads the release's pickle (memory-mapped: no weights are read) and checks it is Multi-HMR for SMPL-X."""
    from ivlm_core.perceive.multihmr.convert_multihmr import config_from_release, read_release

    return config_from_release(read_release(paths.multihmr_checkpoint(root)))


def _optional_checks() -> list[_Check]:
    from ivlm_core.body.vposer import vposer_dir
    from ivlm_core.perceive.folders import SPECS
    from ivlm_core.perceive.multihmr.convert_multihmr import RELEASE_PAGE
    from ivlm_core.perceive.vitpose_release import REPOSITORY

    wholebody = SPECS["vitpose-wholebody"]
    return [
        _Check(
            f"{wholebody.role} (vitpose-wholebody)",
            lambda r: paths.perception_dir("vitpose-wholebody", r),
            f"ViTPose++ release vitpose+_base.pth from {REPOSITORY} (README, OneDrive; {wholebody.licence}); without "
            "it COCO-17 keypoints are used (no hands or feet)",
            _perception("vitpose-wholebody"),
        ),
        _Check(
            "VPoser v2.0 pose prior",
            vposer_dir,
            "registration at https://smpl-x.is.tue.mpg.de (VPoser v2.0; SMPL-X licence); without it the body fit "
            "uses licence-free joint limits",
            _vposer,
        ),
        _Check(
            "Multi-HMR (learned first body estimate; without it the body is fitted from keypoints alone)",
            paths.multihmr_checkpoint,
            RELEASE_PAGE,
            _multihmr,
        ),
    ]


def check_model_files(root: Path | None = None) -> list[ModelFileStatus]:
    """One status per required item, in pipeline order."""
    return _run_checks(_checks(), root)


def check_optional_model_files(root: Path | None = None) -> list[ModelFileStatus]:
    """One status per optional item: the pipeline runs without them (and says so in its results)."""
    return _run_checks(_optional_checks(), root)


def _run_checks(checks: list[_Check], root: Path | None) -> list[ModelFileStatus]:
    root = Path(root) if root is not None else paths.models_dir()
    out = []
    for check in checks:
        try:
            check.run(root)
            out.append(ModelFileStatus(check.name, str(check.path(root)), True, check.source, parts=check.parts))
        except IVLMError as exc:
            out.append(
                ModelFileStatus(
                    check.name, str(check.path(root)), False, check.source, exc.message, exc.hint, check.parts
                )
            )
    return out


def joint_release_status(root: Path | None = None) -> ModelFileStatus:
    """The joint human+object release: an alternative to the two separate releases (one language model for both)."""
    from ivlm_core.pipeline.plan import JOINT_RELEASE

    root = Path(root) if root is not None else paths.models_dir()
    registration = f"registration at {INTERACTVLM_SITE} (MPI non-commercial research licence)"
    check = _Check(
        f"InteractVLM joint release {JOINT_RELEASE} (alternative to the two releases)",
        lambda r: paths.interactvlm_release_dir(JOINT_RELEASE, r),
        registration,
        _release(JOINT_RELEASE),
    )
    try:
        check.run(root)
        return ModelFileStatus(check.name, str(check.path(root)), True, check.source)
    except IVLMError as exc:
        return ModelFileStatus(check.name, str(check.path(root)), False, check.source, exc.message, exc.hint)


def required_missing(statuses: list[ModelFileStatus], root: Path | None = None) -> list[ModelFileStatus]:
    """The missing items that keep the real pipeline from running: the two separate releases are not needed when
    the joint release is complete (a 'joint' configuration then runs, see pipeline/plan.py)."""
    missing = [s for s in statuses if not s.present]
    if any(s.name.startswith("InteractVLM release") for s in missing) and joint_release_status(root).present:
        missing = [s for s in missing if not s.name.startswith("InteractVLM release")]
    return missing


def part_availability(statuses: list[ModelFileStatus], root: Path | None = None) -> dict[str, bool]:
    """Per pipeline part (parts.PARTS): whether all its items are present. A complete joint release stands in
    for both separate releases (with CLIP, which it needs too)."""
    available: dict[str, bool] = {part: all(s.present for s in statuses if part in s.parts) for part in parts.PARTS}
    clip = all(s.present for s in statuses if set(s.parts) == {parts.HUMAN_CONTACT, parts.OBJECT_CONTACT})
    if clip and not (available[parts.HUMAN_CONTACT] and available[parts.OBJECT_CONTACT]):
        if joint_release_status(root).present:
            available[parts.HUMAN_CONTACT] = available[parts.OBJECT_CONTACT] = True
    return available


def planned_sources(
    statuses: list[ModelFileStatus],
    root: Path | None = None,
    *,
    demo: bool | None = None,
    contact_model: bool = True,
) -> dict[str, str]:
    """Where the server loads each part from (parts.SOURCES): the user's files when present, else the generated
    stand-in, except the contact models, which are absent (contacts painted by the user) when their release is
    missing, or when `contact_model` is False.

    `demo` True, or None with none of the user's parts present, loads the stand-ins for every part (the contact
    models too, unless `contact_model` is False): the whole DEMO, as on a first start.
    """
    available = part_availability(statuses, root)
    everything = demo is True or (demo is None and not any(available.values()))
    sources: dict[str, str] = {}
    for part in parts.PARTS:
        if everything:
            sources[part] = parts.STAND_IN
        elif part in parts.CONTACT_PARTS and part != parts.CANONICAL_VIEWS:
            sources[part] = parts.YOURS if available[part] else parts.ABSENT
        else:
            sources[part] = parts.YOURS if available[part] else parts.STAND_IN
    if not contact_model:
        sources[parts.HUMAN_CONTACT] = sources[parts.OBJECT_CONTACT] = parts.ABSENT
    if sources[parts.HUMAN_CONTACT] == parts.ABSENT:
        sources[parts.CANONICAL_VIEWS] = parts.ABSENT  # the views serve the human-contact model only
    return sources


UNLOCKS = (  # (what the user gets, the parts it needs, the items in words)
    (
        "body fit from your photo",
        (parts.BODY_MODEL, parts.PERCEPTION),
        "SMPL-X + the perception models (`ivlm fetch-public-models`)",
    ),
    (
        "predicted contacts",
        (parts.HUMAN_CONTACT, parts.OBJECT_CONTACT, parts.CANONICAL_VIEWS),
        "an InteractVLM release (the two separate ones or the joint one) + CLIP + the canonical views",
    ),
)


def unlock_lines(statuses: list[ModelFileStatus], root: Path | None = None) -> list[str]:
    """Lines saying, per capability, whether it is ready or what it still needs (the missing items by name)."""
    available = part_availability(statuses, root)
    lines = ["What the files give you:"]
    for title, needed, words in UNLOCKS:
        if all(available[part] for part in needed):
            lines.append(f"  [ready]   {title}")
            continue
        missing = [s.name for s in statuses if not s.present and any(p in needed and not available[p] for p in s.parts)]
        lines.append(f"  [missing] {title}: needs {words}")
        lines += [f"              missing: {name}" for name in missing]
    if not all(available[part] for part in UNLOCKS[1][1]):
        lines.append(f"  Without them, {parts.CONTACT_NOT_PREDICTED}.")
    return lines


def _status_lines(s: ModelFileStatus, tag: str, problem_label: str = "problem") -> list[str]:
    lines = [f"[{tag}] {s.name}", f"      {s.path}"]
    if not s.present:
        lines += [f"      {problem_label}: {s.problem}", f"      get it:  {s.source}"]
        if s.hint:
            lines.append(f"      fix:     {s.hint}")
    return lines


def format_report(statuses: list[ModelFileStatus], root: Path, optional: list[ModelFileStatus] | None = None) -> str:
    """The text `ivlm doctor` prints."""
    lines = [f"Models folder: {root}  (set IVLM_MODELS_DIR or --models to change it)", ""]
    for s in statuses:
        lines += _status_lines(s, "ok" if s.present else "MISSING")
    joint = joint_release_status(root)
    lines.append(f"[{'ok' if joint.present else 'optional'}] {joint.name}")
    lines.append(f"      {joint.path}")
    missing = len(required_missing(statuses, root))
    if optional:
        lines += ["", "Optional:"]
    for s in optional or []:
        absent = not Path(s.path).exists()  # not there is fine; there but unusable is a problem
        tag = "ok" if s.present else "absent" if absent else "PROBLEM"
        lines += _status_lines(s, tag, "note" if absent else "problem")
    lines += ["", *unlock_lines(statuses, root), ""]
    sources = planned_sources(statuses, root)
    stand_ins = [parts.TITLES[p] for p, source in sources.items() if source == parts.STAND_IN]
    if not missing:
        lines.append("All model files are present: the server runs the real pipeline.")
    else:
        said = (
            f"generated stand-ins for: {'; '.join(stand_ins)} (DEMO mode: results not meaningful)" if stand_ins else ""
        )
        if sources[parts.HUMAN_CONTACT] == parts.ABSENT:
            said = "; ".join(x for x in (said, "no contact model (contacts are painted)") if x)
        lines.append(
            f"{missing} item(s) missing: the server uses your files where present and {said}. Public models can be "
            "fetched with `ivlm fetch-public-models` (needs internet); licensed ones need registration."
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
