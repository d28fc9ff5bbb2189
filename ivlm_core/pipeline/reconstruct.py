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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch

from ivlm_core import paths
from ivlm_core.body import LoadedBodyModel, load_body_model
from ivlm_core.body.vposer import VPoser, load_vposer, vposer_dir
from ivlm_core.errors import BadInputError, IVLMError, MeshError, ModelFilesMissingError
from ivlm_core.fit.body_fit import BodyFit, BodyFitOptions, body_from_client, fit_body
from ivlm_core.fit.body_init import BodyInit
from ivlm_core.fit.camera import CameraIntrinsics, camera_for_image
from ivlm_core.fit.place_in_view import place_in_view
from ivlm_core.fit.place_object import (
    ObjectPlacement,
    PlacementInputs,
    PlacementOptions,
    place_object,
    refit_options,
)
from ivlm_core.lift.canonical_body import CanonicalBodyViews, load_canonical_body_views
from ivlm_core.lift.smplx_conversion import load_mapping
from ivlm_core.localize.localizer import Localizer
from ivlm_core.localize.prompts import check_label
from ivlm_core.mesh import TriangleMesh, review_object_mesh, validate_mesh
from ivlm_core.perceive.multihmr.estimator import MultiHMREstimator, match_person
from ivlm_core.perceive.people import PeopleChoice
from ivlm_core.perceive.perceiver import Perceiver, Perception, PersonDetection
from ivlm_core.pipeline import parts
from ivlm_core.pipeline.contact import estimate_human_contact, estimate_object_contact
from ivlm_core.pipeline.parts import PartSource
from ivlm_core.pipeline.plan import CONFIGURATIONS, HUMAN_RELEASE, JOINT_RELEASE, OBJECT_RELEASE, Configuration
from ivlm_core.pipeline.scene_truth import SCENE_TRUTH, RecognisedScene, TruthProvider, TruthUse

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
    scene_truth: TruthUse | None = None  # DEMO: the inputs that came from a generated scene's ground truth


@dataclass(frozen=True)
class RunOptions:
    focal_px: float | None = None
    body_vertices: np.ndarray | None = None  # a client body, used as is (camera frame)
    body_params: dict[str, np.ndarray] | None = None
    body_fit: BodyFitOptions = field(default_factory=BodyFitOptions)
    placement: PlacementOptions = field(default_factory=PlacementOptions)
    stages: frozenset[str] = frozenset(OPTIONAL_STAGES)  # which optional stages run
    person_box: tuple[float, float, float, float] | None = None  # xyxy pixels: the person the client means
    predict_contact: bool = True  # False: no contact model runs (manual contact: the user paints, then refits)

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
        human_localizer: Localizer | None,  # None: absent, body contacts are not predicted
        object_localizer: Localizer | None,  # None: absent, object contacts are not predicted
        body_views: CanonicalBodyViews | None,  # None with no human localizer
        mapping,  # scipy.sparse matrix SMPL-H -> SMPL-X; None with no human localizer
        *,
        device: str = "cpu",
        demo: bool = False,
        configuration: Configuration = CONFIGURATIONS[0],
        body_estimator: MultiHMREstimator | None = None,
        body_estimator_note: str = "",
        scene_truth: TruthProvider | None = None,
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
        self.scene_truth = scene_truth  # DEMO only: recognises the generated demo photos (see scene_truth.py)

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

    def part_sources(self) -> list[PartSource]:
        """Each part (parts.PARTS) as loaded: the user's, a generated stand-in (checked on what was loaded, like
        `demo_parts`) or absent (a contact model that was not loaded)."""
        loaded = {
            parts.BODY_MODEL: (self.body, self.body.is_synthetic),
            parts.PERCEPTION: (self.perceiver, perceiver_is_demo(self.perceiver)),
            parts.HUMAN_CONTACT: (self.human_localizer, getattr(self.human_localizer, "is_demo", False)),
            parts.OBJECT_CONTACT: (self.object_localizer, getattr(self.object_localizer, "is_demo", False)),
            parts.CANONICAL_VIEWS: (self.body_views, getattr(self.body_views, "is_demo", False)),
        }
        return [
            PartSource(name, parts.ABSENT if part is None else parts.STAND_IN if generated else parts.YOURS)
            for name, (part, generated) in loaded.items()
        ]

    @property
    def predicts_contact(self) -> bool:
        """Whether any contact model is loaded (False: the manual-contact workflow, contacts are painted)."""
        return self.human_localizer is not None or self.object_localizer is not None

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
        every: dict[str, str] = dict.fromkeys(parts.PARTS, parts.YOURS)
        return cls.from_parts(root, every, device=device, dtype=dtype, configuration=configuration, sam_batch=sam_batch)

    @classmethod
    def from_parts(
        cls,
        root: Path | None,
        sources: Mapping[str, str],
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        configuration: Configuration = CONFIGURATIONS[0],
        sam_batch: int = 4,
    ) -> ContactPipeline:
        """Each part (parts.PARTS) from where `sources` says: the user's files under `root` ("yours"), the
        generated stand-in ("stand-in"), or not loaded ("absent": the contact models and views only).

        Raises ModelFilesMissingError / ModelFileInvalidError for a "yours" part whose files are not usable."""
        dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
        human, target = _load_contact_models(sources, root, configuration, device, dtype, sam_batch)
        views, mapping = (None, None)
        if human is not None:
            views, mapping = _load_views(sources[parts.CANONICAL_VIEWS], root, device)
        hmr_dtype = torch.float16 if str(device).startswith("cuda") else torch.float32  # upstream ran fp16 on GPUs
        estimator, estimator_note = MultiHMREstimator.optional(root, device, hmr_dtype)
        perceiver, body = (
            _load_perceiver(sources[parts.PERCEPTION], root, device),
            _load_body(sources[parts.BODY_MODEL], root),
        )
        return cls(
            perceiver,
            body,
            human,
            target,
            views,
            mapping,
            device=device,
            configuration=configuration,
            body_estimator=estimator,
            body_estimator_note=estimator_note,
            pose_prior=optional_vposer(root),
            scene_truth=_demo_scene_truth(perceiver, body),
        )

    @classmethod
    def demo_pipeline(
        cls, device: str = "cpu", configuration: Configuration = CONFIGURATIONS[0], sam_batch: int = 4
    ) -> ContactPipeline:
        """Generated DEMO assets only: synthetic body, tiny random-weight perception and InteractVLM releases, loaded
        in `configuration` like real ones (the tiny joint release, the tiny language models quantised)."""
        from ivlm_core.demo.body_model import ensure_synthetic_body_models
        from ivlm_core.demo.scene_truth import SceneTruthProvider
        from ivlm_core.demo.tiny_perception import ensure_tiny_perception
        from ivlm_core.demo.tiny_release import ensure_tiny_models

        models = ensure_synthetic_body_models()
        tiny = ensure_tiny_models()
        perception_root = ensure_tiny_perception()
        release_dirs = [tiny.releases[name] for name in configuration.releases]
        human, target = _localizers(configuration, release_dirs, tiny.clip, device, torch.float32, sam_batch)
        body = load_body_model("smplx", folder=paths.body_models_dir(models.root), num_betas=10)
        return cls(
            Perceiver.from_models_dir(next(iter(perception_root.values())).parent.parent, device=device),
            body,
            human,
            target,
            load_canonical_body_views(
                paths.interactvlm_data_dir(models.root), paths.body_models_dir(models.root), device=device
            ),
            load_mapping(models.smpl_to_smplx.parent),
            device=device,
            demo=True,
            configuration=configuration,
            scene_truth=SceneTruthProvider(body),
        )

    def model_provenance(self) -> dict[str, str]:
        """The models and precisions a result came from (for result files and the server's results)."""
        localizer = self.human_localizer or self.object_localizer
        if localizer is None:
            return {
                "configuration": "none (no contact model)",
                "language_model_precision": "none",
                "dtype": "none",
                "human_contact": "absent",
                "object_contact": "absent",
            }
        report = localizer.report
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

    def models_used(self) -> dict[str, str]:
        """Provenance for a result: each contact model and the body model by name (a generated stand-in or an
        absent model said so), with the configuration, the language model's precision and the dtype."""
        provenance = self.model_provenance()
        source_of = {source.part: source.source for source in self.part_sources()}
        models = {
            parts.HUMAN_CONTACT: provenance["human_contact"],
            parts.OBJECT_CONTACT: provenance["object_contact"],
            parts.BODY_MODEL: self.body.source.name,
        }
        for part, name in list(models.items()):
            if source_of[part] == parts.STAND_IN:
                models[part] = f"DEMO generated stand-in for {name}"
            elif source_of[part] == parts.ABSENT:
                models[part] = f"absent: {parts.CONTACT_NOT_PREDICTED}"
        models.update({k: provenance[k] for k in ("configuration", "language_model_precision", "dtype")})
        return models

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
        notes += parts.part_notes(self.part_sources())
        if not options.predict_contact and self.predicts_contact:
            notes.append(f"contact prediction was not requested: {parts.CONTACT_NOT_PREDICTED}")

        def stage(name: str, fraction: float, message: str) -> float:
            if cancel is not None and cancel():
                raise CancelledError(f"cancelled before the {name} stage", "Submit the job again to run it.")
            if progress is not None:
                progress(name, fraction, message)
            return time.perf_counter()

        usable = [item.obj for item in checked if item.reason is None]

        t = stage("perceive", 0.0, "finding the person and the objects")
        truth = self._recognise_scene(image, pil_image, notes)
        camera = _camera(image, options, pil_image, truth)
        perception = self._perceive(image, [obj.label for obj in usable], options, truth)
        timings["perceive"] = time.perf_counter() - t
        if perception is not None:
            notes += perception.notes

        t = stage("body", 0.2, "fitting the SMPL-X body")
        body = self._body(image, perception, camera, options, notes, true_keypoints=truth is not None)
        timings["body"] = time.perf_counter() - t

        outcomes: list[ObjectOutcome] = []
        predicting = options.predict_contact and self.predicts_contact
        t = stage(
            "contact", 0.4, "rendering, localizing and lifting contact" if predicting else "no contact model runs"
        )
        contacts = {}
        if truth is not None and not predicting:  # no contact model ran, so the truth stood in for none
            truth.use.stages_replaced.pop("contact", None)
        for obj in usable:
            known = truth.contacts(obj.label, obj.mesh) if truth is not None and predicting else None
            contacts[obj.label] = (
                (*known, {}, []) if known is not None else self._contact(image, obj, options.predict_contact)
            )
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
            scene_truth=_truth_use(truth, body, outcomes, notes),
        )

    def _recognise_scene(self, image: np.ndarray, pil_image, notes: list[str]) -> RecognisedScene | None:
        """The generated demo scene this photo is, for a DEMO pipeline given a provider; None otherwise."""
        if self.scene_truth is None or not self.demo:
            return None
        return self.scene_truth.recognise(image, pil_image, notes)

    def _perceive(
        self, image: np.ndarray, labels: list[str], options: RunOptions, truth: RecognisedScene | None
    ) -> Perception | None:
        if not labels:
            return None
        if truth is not None:
            return truth.perception(labels)
        return self.perceiver.perceive(image, labels, person_box=options.person_box)

    def _body(
        self,
        image: np.ndarray,
        perception: Perception | None,
        camera: CameraIntrinsics,
        options: RunOptions,
        notes: list[str],
        true_keypoints: bool = False,
    ) -> BodyFit | None:
        """The body: the client's, a fit to the person's keypoints (from `_first_estimate` when there is one), or
        a standing stand-in for random-weight keypoints; `true_keypoints`: they came from a demo scene's truth."""
        if options.body_vertices is not None or options.body_params is not None:
            notes.append("body supplied by the client, used as is")
            return self.client_body(options.body_vertices, options.body_params)
        if "body" not in options.stages:
            notes.append("the body stage was not requested: no body, so no object was placed")
            return None
        if perception is None or perception.person is None:
            notes.append("no person found in the photo: no body was fitted, so no object could be placed")
            return None
        init = self._first_estimate(image, perception.person, camera, notes)
        random_keypoints = perceiver_is_demo(self.perceiver) and not true_keypoints
        if init is None and random_keypoints:  # fitting random-weight keypoints means nothing
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
            if self.demo and random_keypoints:  # a stand-in keeps the demo's later stages running (flagged)
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
        self, image: np.ndarray, person: PersonDetection, camera: CameraIntrinsics, notes: list[str]
    ) -> BodyInit | None:
        """Multi-HMR's estimate of the chosen `person` (our intrinsics), or None with a note saying why."""
        if self.body_estimator is None:
            if self.body_estimator_note:
                notes.append(self.body_estimator_note)
            return None
        people = self.body_estimator(image, camera.matrix)
        init, reason = match_person(people, person.box, self.body, camera.matrix, self.body_estimator.name)
        if init is None:
            notes.append(f"{reason}: the body is fitted from keypoints alone")
        return init

    def _contact(self, image: np.ndarray, obj: ObjectInput, wanted: bool = True):
        """(body contact [10475] | None, object contact [N] | None, the language model's answers, notes); a
        contact model that is absent (or not `wanted`) gives None without a note (the run's notes say it)."""
        notes: list[str] = []
        answers: dict[str, str] = {}
        body_contact = object_contact = None
        if wanted and self.human_localizer is not None:
            if self.body_views is None:  # the constructor's contract: the views come with a human localizer
                raise ValueError("a human contact localizer needs the canonical body views (body_views)")
            human = estimate_human_contact(self.human_localizer, image, obj.label, self.body_views, self.mapping)
            body_contact, answers["human"] = human.smplx, human.localize.text
            if human.smplx is None:
                notes.append(f"body contact with '{obj.label}': {human.reason}")
        if wanted and self.object_localizer is not None:
            target = estimate_object_contact(
                self.object_localizer, image, obj.label, obj.mesh, mode=self.object_mode, device=self.device
            )
            object_contact, answers["object"] = target.vertices, target.localize.text
            if target.vertices is None:
                notes.append(f"object contact on '{obj.label}': {target.reason}")
        return body_contact, object_contact, answers, notes

    def _place(
        self, body, item, body_contact, object_contact, camera, object_mask, person_mask, options, initial=None
    ) -> ObjectPlacement:
        """The object placed from its contacts (in view when there are none). initial: the camera_from_object
        [4, 4] the user sees, for a refit: the search starts from it (`refit_options`) instead of the dense one."""
        obj = item.obj
        if item.placement_blocker is not None:
            return ObjectPlacement("skipped", item.placement_blocker)
        if body is None:
            return ObjectPlacement("skipped", "no body to place the object against")
        if body_contact is None or object_contact is None:  # the manual-contact workflow starts here
            why = "no contact was predicted, so nothing says where the object touches the body"
            return place_in_view(obj.mesh, camera, object_mask, body.vertices, why)
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
        if initial is None:
            placement = place_object(inputs, options.placement)
        else:
            placement = place_object(inputs, refit_options(options.placement), np.asarray(initial, np.float64))
        if placement.placed and object_mask is None:
            placement.reason += f"; '{obj.label}' was not found in the photo, so no silhouette constrained it"
        return placement

    # -- fit only ---------------------------------------------------------------------------------------

    def client_body(self, vertices: np.ndarray | None = None, params: dict[str, np.ndarray] | None = None) -> BodyFit:
        """A body the client sent, used as is: SMPL-X vertices [10475, 3] in the camera frame, or parameters
        (`body_from_client`). Raises BadInputError when they do not make a body."""
        return body_from_client(self.body, vertices=vertices, params=params)

    def refit(
        self,
        body: BodyFit,
        camera: CameraIntrinsics,
        objects: list[ObjectInput],
        *,
        object_masks: dict[str, np.ndarray] | None = None,
        person_mask: np.ndarray | None = None,
        options: RunOptions = RunOptions(),
        initial_poses: dict[str, np.ndarray] | None = None,
    ) -> list[ObjectOutcome]:
        """Re-places objects from contacts the user edited; no perception or language model runs.

        initial_poses: per label, the camera_from_object [4, 4] the user sees (the estimate's placement, e.g. the
        object put in view); the refit then searches around it (`refit_options`), else the dense search runs."""
        outcomes = []
        for item in _check_objects(objects):
            obj = item.obj
            if item.reason is None and (obj.object_contact is None or obj.body_contact is None):
                item.reason = f"object '{obj.label}': refit needs both its object_contact and body_contact"
            if item.reason is not None:
                outcomes.append(_unusable(item))
                continue
            mask = (object_masks or {}).get(obj.label)
            initial = (initial_poses or {}).get(obj.label)
            placement = self._place(
                body, item, obj.body_contact, obj.object_contact, camera, mask, person_mask, options, initial
            )
            outcomes.append(
                ObjectOutcome(obj.label, placement, obj.object_contact, obj.body_contact, notes=list(item.notes))
            )
        return outcomes


# -- loading each part from the user's files or its generated stand-in (ContactPipeline.from_parts) ------------


def _demo_scene_truth(perceiver: Perceiver, body: LoadedBodyModel) -> TruthProvider | None:
    """The generated demo scenes' truth for a pipeline whose perception has random weights (a stand-in, from
    the cache or copied into the models folder), as `demo_pipeline` has it; None with the user's perception.

    Without it a server with the body and perception present but no contact model put a standing stand-in body
    on a generated demo photo, although the scene's true keypoints could be fitted (the whole DEMO fits them)."""
    if not perceiver_is_demo(perceiver):
        return None
    from ivlm_core.demo.scene_truth import SceneTruthProvider

    return SceneTruthProvider(body)


def _load_body(source: str, root: Path | None) -> LoadedBodyModel:
    """SMPL-X from the user's body-models folder, or the generated synthetic body."""
    if source == parts.STAND_IN:
        from ivlm_core.demo.body_model import ensure_synthetic_body_models

        root = ensure_synthetic_body_models().root
    return load_body_model("smplx", folder=paths.body_models_dir(root), num_betas=10)


def _load_perceiver(source: str, root: Path | None, device: str) -> Perceiver:
    """The detector, segmenter and keypoint models from the user's folders, or the tiny random-weight ones."""
    if source == parts.STAND_IN:
        from ivlm_core.demo.tiny_perception import ensure_tiny_perception

        root = next(iter(ensure_tiny_perception().values())).parent.parent
    return Perceiver.from_models_dir(root, device=device)


def _load_views(source: str, root: Path | None, device: str) -> tuple[CanonicalBodyViews, object]:
    """The canonical body views and the SMPL -> SMPL-X mapping: the user's InteractVLM data, or both made from
    the generated synthetic bodies."""
    if source == parts.STAND_IN:
        from ivlm_core.demo.body_model import ensure_synthetic_body_models

        root = ensure_synthetic_body_models().root
    data = paths.interactvlm_data_dir(root)
    return load_canonical_body_views(data, paths.body_models_dir(root), device=device), load_mapping(data)


class _LocalizerOptions(TypedDict):
    """The keyword arguments every `Localizer.from_folders` call here shares."""

    device: str
    dtype: torch.dtype
    llm_precision: str
    sam_batch: int


def _load_contact_models(
    sources: Mapping[str, str],
    root: Path | None,
    configuration: Configuration,
    device: str,
    dtype: torch.dtype,
    sam_batch: int,
) -> tuple[Localizer | None, Localizer | None]:
    """(human, object) contact localizers: the user's releases, the tiny random-weight ones (then in float32,
    as the demo runs them), or None for an absent one. A joint configuration loads one release for both."""
    wanted = [sources[parts.HUMAN_CONTACT], sources[parts.OBJECT_CONTACT]]
    if wanted == [parts.ABSENT, parts.ABSENT]:
        return None, None
    if parts.STAND_IN in wanted:
        from ivlm_core.demo.tiny_release import ensure_tiny_models

        tiny = ensure_tiny_models()
    if configuration.joint:
        if parts.ABSENT in wanted:
            raise ValueError("the joint release answers both questions: both contact parts are loaded or neither")
        folder, clip = (
            (tiny.releases[JOINT_RELEASE], tiny.clip)
            if wanted[0] == parts.STAND_IN
            else (paths.interactvlm_release_dir(JOINT_RELEASE, root), paths.clip_dir(root))
        )
        return _localizers(configuration, [folder], clip, device, dtype, sam_batch)
    out: list[Localizer | None] = []
    for source, release, role in zip(wanted, configuration.releases, ("human", "object"), strict=True):
        if source == parts.ABSENT:
            out.append(None)
            continue
        stand_in = source == parts.STAND_IN
        folder = tiny.releases[release] if stand_in else paths.interactvlm_release_dir(release, root)
        clip = tiny.clip if stand_in else paths.clip_dir(root)
        options: _LocalizerOptions = {
            "device": device,
            "dtype": torch.float32 if stand_in else dtype,
            "llm_precision": configuration.llm_precision,
            "sam_batch": sam_batch,
        }
        out.append(Localizer.from_folders(folder, clip, role=role, **options))
    return out[0], out[1]


def _localizers(
    configuration: Configuration,
    release_dirs: list[Path],
    clip_dir: Path,
    device: str,
    dtype: torch.dtype,
    sam_batch: int,
) -> tuple[Localizer, Localizer]:
    """(human, object) localizers of a configuration: one shared Localizer for the joint release."""
    options: _LocalizerOptions = {
        "device": device,
        "dtype": dtype,
        "llm_precision": configuration.llm_precision,
        "sam_batch": sam_batch,
    }
    if configuration.joint:
        joint = Localizer.from_folders(release_dirs[0], clip_dir, role="joint", **options)
        return joint, joint
    human = Localizer.from_folders(release_dirs[0], clip_dir, role="human", **options)
    return human, Localizer.from_folders(release_dirs[1], clip_dir, role="object", **options)


def _camera(image: np.ndarray, options: RunOptions, pil_image, truth: RecognisedScene | None) -> CameraIntrinsics:
    """The client's focal length, else a recognised demo scene's true one, else EXIF or the default."""
    size = image.shape[:2]
    if truth is not None and options.focal_px is None:
        truth.use.inputs["focal_length"] = SCENE_TRUTH
        return CameraIntrinsics(truth.focal_px, size, SCENE_TRUTH)
    return camera_for_image(size, options.focal_px, pil_image)


def _truth_use(
    truth: RecognisedScene | None, body: BodyFit | None, outcomes: list[ObjectOutcome], notes: list[str]
) -> TruthUse | None:
    """What a recognised demo scene supplied and which real stages ran on it, also said in the notes; None for
    any other photo."""
    if truth is None:
        return None
    use = truth.use
    use.stages_ran = [
        *(["body fit (on the true keypoints and person mask)"] if body is not None and body.source == "fitted" else []),
        *(["placement"] if any(o.placement.placed for o in outcomes) else []),
    ]
    supplied = ", ".join(sorted(use.inputs))
    notes.append(
        f"DEMO scene '{use.scene}': from its ground truth: {supplied}; really ran: {', '.join(use.stages_ran) or 'nothing'}"
    )
    return use


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
