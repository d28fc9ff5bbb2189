"""The whole pipeline: Perceive -> Render -> Localize -> Lift -> Fit, from a photo, object meshes and labels.

`ContactPipeline.run` returns a body, per-object contacts (on the body and on the object) and placements,
with per-stage timings and plain-language notes. It reports progress and can be cancelled between stages.
`ContactPipeline.refit` is the fit-only entry: user-edited contacts in, new placements out, no language model.

Frames and units of every result: the photo's CV_CAMERA frame (x right, y down, z forward, metres, camera at
the origin; see `ivlm_core.frames`); `camera_from_object` maps the object's own local vertices into it.
Nothing the user could cause crashes the run: a missing person, a label not in the photo, a degenerate mesh
or empty contacts each leave a reason in `notes` / the object's outcome, and the rest is still returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ivlm_core import paths
from ivlm_core.body import LoadedBodyModel, load_body_model
from ivlm_core.body.vposer import VPoser, load_vposer, vposer_dir
from ivlm_core.errors import BadInputError, IVLMError, MeshError, ModelFilesMissingError
from ivlm_core.fit.body_fit import BodyFit, BodyFitOptions, body_from_client, fit_body
from ivlm_core.fit.body_init import BodyInit
from ivlm_core.fit.camera import CameraIntrinsics, camera_for_image
from ivlm_core.fit.place_object import ObjectPlacement, PlacementInputs, PlacementOptions, place_object
from ivlm_core.lift.canonical_body import CanonicalBodyViews, load_canonical_body_views
from ivlm_core.lift.smplx_conversion import load_mapping
from ivlm_core.localize.localizer import Localizer
from ivlm_core.localize.prompts import check_label
from ivlm_core.mesh import TriangleMesh, review_object_mesh, validate_mesh
from ivlm_core.perceive.multihmr.estimator import MultiHMREstimator, match_person
from ivlm_core.perceive.people import PeopleChoice
from ivlm_core.perceive.perceiver import Perceiver, Perception
from ivlm_core.pipeline.contact import estimate_human_contact, estimate_object_contact
from ivlm_core.pipeline.plan import CONFIGURATIONS, HUMAN_RELEASE, JOINT_RELEASE, OBJECT_RELEASE, Configuration

log = logging.getLogger(__name__)

STAGES = ("perceive", "body", "contact", "fit")  # contact = Render -> Localize -> Lift for body and objects
OPTIONAL_STAGES = ("body", "fit")  # a caller may leave these out; perceive and contact always run
DEMO_NOTE = "DEMO: generated assets and random-weight models; results are not meaningful"
DEMO_BODY_NOTE = (
    "DEMO: the random-weight keypoint model cannot fit a body, so a standing SMPL-X body was put in front of the camera"
)
__all__ = ["HUMAN_RELEASE", "JOINT_RELEASE", "OBJECT_RELEASE"]  # re-exported: the names live in plan.py
MIN_PHOTO_SIDE = 16  # px, on each side of the photo and of its smallest resize
SMALLEST_LONG_SIDE = 320  # px: the smallest long side a resize in the pipeline gives (the DEMO detector's)
ProgressCallback = Callable[[str, float, str], None]  # (stage, fraction 0-1 of the whole run, message)


class CancelledError(IVLMError):
    """The caller asked to stop; raised between stages, nothing half-written."""

    code = "CANCELLED"


@dataclass
class ObjectInput:
    """A user's object: its mesh in its own local frame (metres), its label, and optionally edited contacts."""

    label: str
    mesh: TriangleMesh
    object_contact: np.ndarray | None = None  # [N] user-edited contact (fit-only)
    body_contact: np.ndarray | None = None  # [10475] user-edited body contact for this object (fit-only)


@dataclass
class ObjectOutcome:
    label: str
    placement: ObjectPlacement
    object_contact: np.ndarray | None  # [N] per vertex of the user's mesh
    body_contact: np.ndarray | None  # [10475] SMPL-X body contact with this object
    detection_box: list[float] | None = None  # xyxy pixels
    detection_score: float | None = None
    detection_mask: np.ndarray | None = None  # [H, W] bool, kept so a later refit can use the silhouette
    notes: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # the language model's generated text per mode


@dataclass
class ReconstructResult:
    demo: bool
    camera: CameraIntrinsics
    body: BodyFit | None
    objects: list[ObjectOutcome]
    notes: list[str]
    timings_s: dict[str, float]
    people_count: int = 0
    person_mask: np.ndarray | None = None  # [H, W] bool
    people: PeopleChoice | None = None  # every person's box, which one was used and why
    frame: str = "CV_CAMERA: x right, y down, z forward; metres; camera at the origin"


@dataclass(frozen=True)
class RunOptions:
    focal_px: float | None = None
    body_vertices: np.ndarray | None = None  # a client body, used as is (camera frame)
    body_params: dict[str, np.ndarray] | None = None
    body_fit: BodyFitOptions = field(default_factory=BodyFitOptions)
    placement: PlacementOptions = field(default_factory=PlacementOptions)
    stages: frozenset[str] = frozenset(OPTIONAL_STAGES)  # which optional stages run
    person_box: tuple[float, float, float, float] | None = None  # xyxy pixels: the person the client means

    def __post_init__(self) -> None:
        unknown = set(self.stages) - set(OPTIONAL_STAGES)
        if unknown:
            raise BadInputError(
                f"unknown stage(s) {sorted(unknown)}", f"Optional stages are {', '.join(OPTIONAL_STAGES)}."
            )


@dataclass
class _CheckedObject:
    """An object after the mesh checks: `obj` carries the mesh the object path uses (see `review_object_mesh`)."""

    obj: ObjectInput
    reason: str | None = None  # unusable: why (nothing is computed for it)
    notes: tuple[str, ...] = ()  # usable, with these remarks for the user
    placement_blocker: str | None = None  # contacts are computed, but it is not placed: why and what to do


def _check_objects(objects: list[ObjectInput]) -> list[_CheckedObject]:
    """Each object with its usable mesh and remarks, or the reason it cannot be used (its mesh is unusable)."""
    if not objects:
        raise BadInputError("no objects were given", "Send at least one object mesh with its label.")
    for index, obj in enumerate(objects):
        check_object_label(obj.label, index)
    checked = []
    for obj in objects:
        try:
            mesh = validate_mesh(obj.mesh.vertices, obj.mesh.faces, name=f"object '{obj.label}'")
            review = review_object_mesh(mesh, obj.label)
        except MeshError as exc:
            checked.append(_CheckedObject(obj, str(exc)))
            continue
        usable = ObjectInput(obj.label, review.mesh, obj.object_contact, obj.body_contact)
        checked.append(_CheckedObject(usable, None, review.notes, review.placement_blocker))
    return checked


def check_object_label(label: str, index: int) -> str:
    """Object `index`'s label by the pipeline's label rule (`check_label`), the error naming the object.

    Checked for every object before any work, so one unusable label never fails a run halfway (the server
    applies this same function when a job is submitted).
    """
    try:
        return check_label(label)
    except BadInputError as exc:
        raise BadInputError(f"objects[{index}]: {exc.message}", exc.hint) from exc


class ContactPipeline:
    """Models loaded once; `run` and `refit` many times."""

    def __init__(
        self,
        perceiver: Perceiver,
        body: LoadedBodyModel,
        human_localizer: Localizer,
        object_localizer: Localizer,
        body_views: CanonicalBodyViews,
        mapping,  # scipy.sparse matrix SMPL-H -> SMPL-X
        *,
        device: str = "cpu",
        demo: bool = False,
        configuration: Configuration = CONFIGURATIONS[0],
        body_estimator: MultiHMREstimator | None = None,
        body_estimator_note: str = "",
        pose_prior: VPoser | None = None,
    ) -> None:
        self.pose_prior = pose_prior  # VPoser when the user has it; None: the fit's licence-free joint limits
        self.configuration = configuration
        # The joint release is asked the object question in its ocontact mode (spec P9: never "hcontact-ocontact").
        self.object_mode = "ocontact" if configuration.joint else "oafford"
        self.body_estimator = body_estimator  # optional learned first body estimate (Multi-HMR)
        self.body_estimator_note = body_estimator_note  # why there is none, said in every result
        self.perceiver = perceiver
        self.body = body
        self.human_localizer = human_localizer
        self.object_localizer = object_localizer
        self.body_views = body_views
        self.mapping = mapping
        self.device = device
        self.demo = demo or bool(self.demo_parts())

    def demo_parts(self) -> list[str]:
        """The loaded parts that are the project's generated DEMO stand-ins (synthetic body, random weights).

        Checked on what was loaded, not on where it came from, so DEMO assets copied into a real models folder
        are still flagged wherever a user sees a result.
        """
        parts = [
            ("synthetic SMPL-X body", self.body.is_synthetic),
            ("random-weight perception models", perceiver_is_demo(self.perceiver)),
            ("random-weight human-contact release", getattr(self.human_localizer, "is_demo", False)),
            ("random-weight object-contact release", getattr(self.object_localizer, "is_demo", False)),
            ("canonical views from the synthetic SMPL-H body", getattr(self.body_views, "is_demo", False)),
            ("random-weight Multi-HMR", self.body_estimator is not None and self.body_estimator.demo),
            ("random-weight VPoser", getattr(self.pose_prior, "is_demo", False)),
        ]
        return [name for name, generated in parts if generated]

    @classmethod
    def from_models_dir(
        cls,
        root: Path | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        configuration: Configuration = CONFIGURATIONS[0],
        sam_batch: int = 4,
    ) -> ContactPipeline:
        """The user's model files (see `ivlm_core.paths` for the layout) in `configuration` (plan.py): the two
        releases or the joint one, the language model in the load dtype, int8 or nf4."""
        dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
        body = load_body_model("smplx", folder=paths.body_models_dir(root), num_betas=10)
        release_dirs = [paths.interactvlm_release_dir(name, root) for name in configuration.releases]
        human, target = _localizers(configuration, release_dirs, paths.clip_dir(root), device, dtype, sam_batch)
        hmr_dtype = torch.float16 if str(device).startswith("cuda") else torch.float32  # upstream ran fp16 on GPUs
        estimator, estimator_note = MultiHMREstimator.optional(root, device, hmr_dtype)
        return cls(
            Perceiver.from_models_dir(root, device=device),
            body,
            human,
            target,
            load_canonical_body_views(paths.interactvlm_data_dir(root), paths.body_models_dir(root), device=device),
            load_mapping(paths.interactvlm_data_dir(root)),
            device=device,
            configuration=configuration,
            body_estimator=estimator,
            body_estimator_note=estimator_note,
            pose_prior=optional_vposer(root),
        )

    @classmethod
    def demo_pipeline(
        cls, device: str = "cpu", configuration: Configuration = CONFIGURATIONS[0], sam_batch: int = 4
    ) -> ContactPipeline:
        """Generated DEMO assets only: synthetic body, tiny random-weight perception and InteractVLM releases, loaded
        in `configuration` like real ones (the tiny joint release, the tiny language models quantised)."""
        from ivlm_core.demo.body_model import ensure_synthetic_body_models
        from ivlm_core.demo.tiny_perception import ensure_tiny_perception
        from ivlm_core.demo.tiny_release import ensure_tiny_models

        models = ensure_synthetic_body_models()
        tiny = ensure_tiny_models()
        perception_root = ensure_tiny_perception()
        release_dirs = [tiny.releases[name] for name in configuration.releases]
        human, target = _localizers(configuration, release_dirs, tiny.clip, device, torch.float32, sam_batch)
        return cls(
            Perceiver.from_models_dir(next(iter(perception_root.values())).parent.parent, device=device),
            load_body_model("smplx", folder=paths.body_models_dir(models.root), num_betas=10),
            human,
            target,
            load_canonical_body_views(
                paths.interactvlm_data_dir(models.root), paths.body_models_dir(models.root), device=device
            ),
            load_mapping(models.smpl_to_smplx.parent),
            device=device,
            demo=True,
            configuration=configuration,
        )

    def model_provenance(self) -> dict[str, str]:
        """The models and precisions a result came from (for result files and the server's results)."""
        report = self.human_localizer.report
        precision = (
            report.llm_precision if report.llm_precision != "native" else str(report.dtype).replace("torch.", "")
        )
        return {
            "configuration": self.configuration.name,
            "language_model_precision": precision,
            "dtype": str(report.dtype).replace("torch.", ""),
            "human_contact": self.configuration.releases[0],
            "object_contact": self.configuration.releases[-1],
        }

    # -- the full run ---------------------------------------------------------------------------------

    def run(
        self,
        image: np.ndarray,
        objects: list[ObjectInput],
        options: RunOptions = RunOptions(),
        *,
        progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None,
        pil_image=None,  # PIL.Image, for EXIF focal length
    ) -> ReconstructResult:
        image = _check_photo(image)
        checked = _check_objects(objects)
        timings: dict[str, float] = {}
        notes: list[str] = [DEMO_NOTE] if self.demo else []

        def stage(name: str, fraction: float, message: str) -> float:
            if cancel is not None and cancel():
                raise CancelledError(f"cancelled before the {name} stage", "Submit the job again to run it.")
            if progress is not None:
                progress(name, fraction, message)
            return time.perf_counter()

        height, width = image.shape[:2]
        camera = camera_for_image((height, width), options.focal_px, pil_image)
        usable = [item.obj for item in checked if item.reason is None]

        t = stage("perceive", 0.0, "finding the person and the objects")
        labels = [obj.label for obj in usable]
        perception = self.perceiver.perceive(image, labels, person_box=options.person_box) if usable else None
        timings["perceive"] = time.perf_counter() - t
        if perception is not None:
            notes += perception.notes

        t = stage("body", 0.2, "fitting the SMPL-X body")
        body = self._body(image, perception, camera, options, notes)
        timings["body"] = time.perf_counter() - t

        outcomes: list[ObjectOutcome] = []
        t = stage("contact", 0.4, "rendering, localizing and lifting contact")
        contacts = {}
        for obj in usable:
            contacts[obj.label] = self._contact(image, obj)
        timings["contact"] = time.perf_counter() - t

        t = stage("fit", 0.8, "placing the objects")
        for item in checked:
            obj = item.obj
            if item.reason is not None:
                outcomes.append(_unusable(item))
                continue
            body_contact, object_contact, answers, contact_notes = contacts[obj.label]
            detection = perception.objects.get(obj.label) if perception is not None else None
            outcome = ObjectOutcome(
                obj.label, ObjectPlacement("skipped", ""), object_contact, body_contact, answers=answers
            )
            outcome.notes += [*item.notes, *contact_notes]
            if detection is not None:
                outcome.detection_box = [float(v) for v in detection.box]
                outcome.detection_score = float(detection.score)
                outcome.detection_mask = detection.mask
            if "fit" not in options.stages:
                outcome.placement = ObjectPlacement("skipped", "the fit stage was not requested")
                outcomes.append(outcome)
                continue
            outcome.placement = self._place(
                body,
                item,
                body_contact,
                object_contact,
                camera,
                detection.mask if detection else None,
                perception.person.mask if perception is not None and perception.person is not None else None,
                options,
            )
            outcomes.append(outcome)
        timings["fit"] = time.perf_counter() - t
        if progress is not None:
            progress("done", 1.0, "finished")
        person = perception.person if perception is not None else None
        return ReconstructResult(
            self.demo,
            camera,
            body,
            outcomes,
            notes,
            timings,
            perception.people_count if perception else 0,
            person.mask if person is not None else None,
            perception.people if perception is not None else None,
        )

    def _body(
        self,
        image: np.ndarray,
        perception: Perception | None,
        camera: CameraIntrinsics,
        options: RunOptions,
        notes: list[str],
    ) -> BodyFit | None:
        if options.body_vertices is not None or options.body_params is not None:
            notes.append("body supplied by the client, used as is")
            return body_from_client(self.body, vertices=options.body_vertices, params=options.body_params)
        if "body" not in options.stages:
            notes.append("the body stage was not requested: no body, so no object was placed")
            return None
        if perception is None or perception.person is None:
            notes.append("no person found in the photo: no body was fitted, so no object could be placed")
            return None
        init = self._first_estimate(image, perception, camera, notes)
        if init is None and perceiver_is_demo(self.perceiver):  # random-weight keypoints: fitting them means nothing
            notes.append(DEMO_BODY_NOTE)
            return standing_body(self.body, camera)
        occluders = [d.mask for d in perception.objects.values() if d is not None]
        try:
            fit = fit_body(
                self.body,
                perception.person.keypoints,
                camera.matrix,
                camera.image_size,
                perception.person.mask,
                options.body_fit,
                occluder_mask=np.any(occluders, axis=0) if occluders else None,
                init=init,
                prior=self.pose_prior,
            )
        except BadInputError as exc:
            if init is not None:  # the learned estimate needs no keypoints: use it as it is, and say so
                notes.append(f"body not refined ({exc.message}): it is {init.source}'s estimate as it is")
                estimate = body_from_client(self.body, params=init.params())
                estimate.source, estimate.start = "estimated", init.source
                return estimate
            if self.demo:  # random keypoints: a stand-in keeps the demo's later stages running (flagged)
                notes.append(DEMO_BODY_NOTE)
                return standing_body(self.body, camera)
            notes.append(f"body not fitted: {exc.message}")
            return None
        if init is not None:
            notes.append(f"body: started from {init.source}, refined on the keypoints and the silhouette")
        kind = "COCO-WholeBody (133)" if fit.keypoint_format == "coco_wholebody" else "COCO-17 (no hands or feet)"
        notes.append(f"body fitted to {kind} keypoints with the {fit.prior} pose prior; best start: {fit.best_start}")
        notes.extend(f"body: {note}" for note in fit.notes)
        return fit

    def _first_estimate(
        self, image: np.ndarray, perception: Perception, camera: CameraIntrinsics, notes: list[str]
    ) -> BodyInit | None:
        """Multi-HMR's estimate of the chosen person (our intrinsics), or None with a note saying why."""
        if self.body_estimator is None:
            if self.body_estimator_note:
                notes.append(self.body_estimator_note)
            return None
        people = self.body_estimator(image, camera.matrix)
        init, reason = match_person(people, perception.person.box, self.body, camera.matrix, self.body_estimator.name)
        if init is None:
            notes.append(f"{reason}: the body is fitted from keypoints alone")
        return init

    def _contact(self, image: np.ndarray, obj: ObjectInput):
        notes: list[str] = []
        human = estimate_human_contact(self.human_localizer, image, obj.label, self.body_views, self.mapping)
        if human.smplx is None:
            notes.append(f"body contact with '{obj.label}': {human.reason}")
        target = estimate_object_contact(
            self.object_localizer, image, obj.label, obj.mesh, mode=self.object_mode, device=self.device
        )
        if target.vertices is None:
            notes.append(f"object contact on '{obj.label}': {target.reason}")
        answers = {"human": human.localize.text, "object": target.localize.text}
        return human.smplx, target.vertices, answers, notes

    def _place(
        self, body, item, body_contact, object_contact, camera, object_mask, person_mask, options
    ) -> ObjectPlacement:
        obj = item.obj
        if item.placement_blocker is not None:
            return ObjectPlacement("skipped", item.placement_blocker)
        if body is None:
            return ObjectPlacement("skipped", "no body to place the object against")
        if body_contact is None or object_contact is None:
            return ObjectPlacement(
                "skipped", "no contact was predicted, so nothing says where the object touches the body"
            )
        inputs = PlacementInputs(
            body.vertices,
            np.asarray(self.body.model.faces, np.int64),
            body_contact,
            obj.mesh,
            object_contact,
            camera.matrix,
            camera.image_size,
            object_mask,
            person_mask,
        )
        placement = place_object(inputs, options.placement)
        if placement.placed and object_mask is None:
            placement.reason += f"; '{obj.label}' was not found in the photo, so no silhouette constrained it"
        return placement

    # -- fit only ---------------------------------------------------------------------------------------

    def refit(
        self,
        body: BodyFit,
        camera: CameraIntrinsics,
        objects: list[ObjectInput],
        *,
        object_masks: dict[str, np.ndarray] | None = None,
        person_mask: np.ndarray | None = None,
        options: RunOptions = RunOptions(),
    ) -> list[ObjectOutcome]:
        """Re-places objects from contacts the user edited; no perception or language model runs."""
        outcomes = []
        for item in _check_objects(objects):
            obj = item.obj
            if item.reason is None and (obj.object_contact is None or obj.body_contact is None):
                item.reason = f"object '{obj.label}': refit needs both its object_contact and body_contact"
            if item.reason is not None:
                outcomes.append(_unusable(item))
                continue
            mask = (object_masks or {}).get(obj.label)
            placement = self._place(
                body, item, obj.body_contact, obj.object_contact, camera, mask, person_mask, options
            )
            outcomes.append(
                ObjectOutcome(obj.label, placement, obj.object_contact, obj.body_contact, notes=list(item.notes))
            )
        return outcomes


def _localizers(
    configuration: Configuration,
    release_dirs: list[Path],
    clip_dir: Path,
    device: str,
    dtype: torch.dtype,
    sam_batch: int,
) -> tuple[Localizer, Localizer]:
    """(human, object) localizers of a configuration: one shared Localizer for the joint release."""
    options = {"device": device, "dtype": dtype, "llm_precision": configuration.llm_precision, "sam_batch": sam_batch}
    if configuration.joint:
        joint = Localizer.from_folders(release_dirs[0], clip_dir, role="joint", **options)
        return joint, joint
    human = Localizer.from_folders(release_dirs[0], clip_dir, role="human", **options)
    return human, Localizer.from_folders(release_dirs[1], clip_dir, role="object", **options)


def _unusable(item: _CheckedObject) -> ObjectOutcome:
    assert item.reason is not None
    return ObjectOutcome(item.obj.label, ObjectPlacement("skipped", item.reason), None, None, notes=[item.reason])


def standing_body(body: LoadedBodyModel, camera: CameraIntrinsics, height_fraction: float = 0.8) -> BodyFit:
    """The mean-shape SMPL-X body standing upright, facing the camera, centred, filling `height_fraction` of the
    photo's height. Used only by DEMO runs, whose random keypoints cannot be fitted."""
    with torch.no_grad():
        out = body.model(global_orient=torch.tensor([[np.pi, 0.0, 0.0]]))  # 180 deg about x: SMPL-X y-up -> CV y-down
    vertices = out.vertices[0].numpy().astype(np.float64)
    joints = out.joints[0].numpy().astype(np.float64)
    height_m = float(np.ptp(vertices[:, 1]))
    depth = camera.focal_px * height_m / (height_fraction * camera.image_size[0])
    centre = (vertices.max(0) + vertices.min(0)) / 2
    offset = np.array([0.0, 0.0, depth]) - centre  # bounding-box centre on the optical axis
    params = {
        "betas": np.zeros(10, np.float32),
        "global_orient": np.array([np.pi, 0.0, 0.0], np.float32),
        "body_pose": np.zeros(63, np.float32),
        "transl": offset.astype(np.float32),  # smplx adds transl after rotating, so this is exact
    }
    return BodyFit(vertices + offset, joints + offset, params, "demo", notes=[DEMO_BODY_NOTE])


def optional_vposer(root: Path | None) -> VPoser | None:
    """The user's VPoser, or None when it is not there (a damaged one is still an error: the user meant to use it)."""
    try:
        return load_vposer(root=root)
    except ModelFilesMissingError:
        log.info("VPoser not found under %s: the body fit uses its joint-limit prior", vposer_dir(root))
        return None


def perceiver_is_demo(perceiver: Perceiver) -> bool:
    return bool(getattr(perceiver, "demo", False))


def _check_photo(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadInputError(
            f"the photo is {image.dtype} {image.shape}; expected an RGB uint8 image at least 16x16 pixels",
            "Send the reference photo as an 8-bit RGB image (PNG or JPEG).",
        )
    check_photo_size(*image.shape[:2])
    return image


def check_photo_size(height: int, width: int) -> None:
    """Refuses a photo whose short side would vanish in the pipeline's resizes (BadInputError).

    Perception scales the long side down to SMALLEST_LONG_SIDE px or more, and the short side must keep at
    least MIN_PHOTO_SIDE px there: a 20000x16 photo became 0 px high inside the detector's image processor.
    The server applies this same check when a photo is submitted.
    """
    short, long = sorted((int(height), int(width)))
    if short < MIN_PHOTO_SIDE:
        raise BadInputError(
            f"the photo is only {width}x{height} pixels", f"Use a photo at least {MIN_PHOTO_SIDE} pixels on each side."
        )
    if short * SMALLEST_LONG_SIDE < MIN_PHOTO_SIDE * long:
        raise BadInputError(
            f"the photo is {width}x{height} pixels: its long side is {long / short:.0f} times its short side, "
            f"at most {SMALLEST_LONG_SIDE // MIN_PHOTO_SIDE} times is usable (perception scales the long side "
            f"down to {SMALLEST_LONG_SIDE} px, and the short side must keep {MIN_PHOTO_SIDE} px)",
            "Crop the photo around the person and the objects.",
        )
