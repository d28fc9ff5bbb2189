"""The Perceive stage: from a photo and object labels to the person's box, mask and keypoints and the objects'.

One detector pass finds "person" and every label; SAM segments all people's and the chosen objects' boxes in
one pass; the person who interacts with the objects (or the one the client names by box) is chosen from those
masks (`ivlm_core.perceive.people`); ViTPose reads the chosen person's keypoints. Nothing found is not an
error: the entry is None and `notes` says why, so the caller can tell the user (and continue with what there is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ivlm_core.errors import BadInputError
from ivlm_core.perceive import folders
from ivlm_core.perceive.coco import KEYPOINT_FORMATS
from ivlm_core.perceive.detect import DEFAULT_BOX_THRESHOLD, DEFAULT_TEXT_THRESHOLD, Detection, ObjectDetector
from ivlm_core.perceive.inputs import ImageLike, as_rgb_array, check_boxes, check_labels, prompt_phrase
from ivlm_core.perceive.keypoints import KeypointEstimator
from ivlm_core.perceive.people import MAX_CANDIDATES, PeopleChoice, choose_person
from ivlm_core.perceive.segment import BoxSegmenter

PERSON_LABEL = "person"


@dataclass
class PersonDetection:
    """The chosen person. Pixel frame of the photo: x right, y down, origin at the top-left corner."""

    box: np.ndarray  # float32 [4] (x0, y0, x1, y1)
    score: float  # detector box confidence (0 for a box the client gave that matched no detection)
    mask: np.ndarray  # bool [H, W]
    mask_score: float  # SAM's predicted IoU of the mask
    keypoints: np.ndarray  # float32 [K, 3] (x, y, confidence in [0, 1]): K = 17 (COCO_KEYPOINTS order) or 133
    # (COCO_WHOLEBODY_KEYPOINTS order), see `keypoint_format`
    keypoint_format: str = "coco17"  # "coco17" or "coco_wholebody"


@dataclass
class ObjectDetection:
    """The chosen box of one object label, in the photo's pixel frame (as PersonDetection)."""

    label: str
    box: np.ndarray  # float32 [4] (x0, y0, x1, y1)
    score: float
    mask: np.ndarray  # bool [H, W]
    mask_score: float


@dataclass
class Perception:
    """What the photo shows. `people_count` counts person boxes above the threshold (after duplicate removal);
    `person` is the one chosen (see `people.reason`); `people` keeps every person's box for another choice."""

    image_size: tuple[int, int]  # (H, W)
    person: PersonDetection | None
    people_count: int
    objects: dict[str, ObjectDetection | None]
    notes: list[str] = field(default_factory=list)
    demo: bool = False  # True when any model is one of the project's tiny random-weight DEMO models
    people: PeopleChoice = field(default_factory=lambda: PeopleChoice([], None, None, "no person found"))


class Perceiver:
    """Holds the detector, segmenter and keypoint estimator; `perceive` runs them on one photo."""

    def __init__(
        self,
        detector: ObjectDetector,
        segmenter: BoxSegmenter,
        keypoints: KeypointEstimator,
        *,
        box_threshold: float | None = None,
        text_threshold: float | None = None,
    ) -> None:
        self.detector = detector
        self.segmenter = segmenter
        self.keypoints = keypoints
        self.box_threshold = detector.box_threshold if box_threshold is None else box_threshold
        self.text_threshold = detector.text_threshold if text_threshold is None else text_threshold

    @property
    def demo(self) -> bool:
        return self.detector.demo or self.segmenter.demo or self.keypoints.demo

    @classmethod
    def from_folders(
        cls,
        *,
        detector: Path | str,
        segmenter: Path | str,
        keypoints: Path | str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
        detector_upscale: bool | None = None,
    ) -> Perceiver:
        """Loads the three models from explicit folders (never the hub). detector_upscale: enlarge photos smaller
        than the detector's 800-pixel short side (None: on a GPU only; see `ivlm_core.perceive.detect`)."""
        return cls(
            ObjectDetector.from_folder(detector, device, dtype, upscale=detector_upscale),
            BoxSegmenter.from_folder(segmenter, device, dtype),
            KeypointEstimator.from_folder(keypoints, device, dtype),
            box_threshold=box_threshold,
            text_threshold=text_threshold,
        )

    @classmethod
    def from_models_dir(
        cls,
        root: Path | str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
        detector_upscale: bool | None = None,
    ) -> Perceiver:
        """Loads `<root>/perception/{grounding-dino,sam}` and the keypoint model: `vitpose-wholebody` when present,
        else the COCO-17 `vitpose` (root: IVLM_MODELS_DIR by default).

        All folders are checked first, so one error lists everything that is missing."""
        found = folders.check_folders(Path(root) if root is not None else None)
        return cls.from_folders(
            detector=found["grounding-dino"],
            segmenter=found["sam"],
            keypoints=found["keypoints"],
            device=device,
            dtype=dtype,
            box_threshold=box_threshold,
            text_threshold=text_threshold,
            detector_upscale=detector_upscale,
        )

    def perceive(
        self, image: ImageLike, labels: Sequence[str], person_box: Sequence[float] | None = None
    ) -> Perception:
        """Person and objects in `image` (PIL RGB or uint8 [H, W, 3]) for each label (e.g. ["mug"]).

        person_box: xyxy pixels of the person the client means (e.g. one of an earlier result's people);
        the detected person it overlaps, or the box itself if it overlaps none."""
        array = as_rgb_array(image)
        labels = list(dict.fromkeys(check_labels(labels)))
        if not labels:
            raise BadInputError("No object label given.", "Name the object the person uses, e.g. ['chair'].")
        height, width = array.shape[:2]
        notes: list[str] = []
        if self.demo:
            notes.append("DEMO perception models (random weights): boxes, masks and keypoints are meaningless.")

        found = self.detector(
            array, [PERSON_LABEL, *labels], box_threshold=self.box_threshold, text_threshold=self.text_threshold
        )
        people = found[PERSON_LABEL]
        client_box = check_boxes(person_box, height, width)[0] if person_box is not None else None
        if not people and client_box is None:
            notes.append(
                f"no person found above box threshold {self.box_threshold:g} (text threshold {self.text_threshold:g})"
            )
        chosen: dict[str, Detection | None] = {}
        for label in labels:
            candidates = found[label]
            chosen[label] = candidates[0] if candidates else None
            if not candidates:
                notes.append(
                    f"label {label!r} not found in the photo (box threshold {self.box_threshold:g}, "
                    f"text threshold {self.text_threshold:g})"
                )
            elif prompt_phrase(label) == PERSON_LABEL:
                notes.append(f"label {label!r} is the person prompt; its object box is the chosen person's box")
            elif len(candidates) > 1:
                notes.append(f"{len(candidates)} boxes found for {label!r}; using the one with the highest score")

        # One SAM pass: the compared people, the client's box, the objects (in this order).
        compared = people[:MAX_CANDIDATES]
        extra = [] if client_box is None else [client_box]
        object_dets = {
            label: det for label, det in chosen.items() if det is not None and prompt_phrase(label) != PERSON_LABEL
        }
        boxes = [d.box for d in compared] + extra + [d.box for d in object_dets.values()]
        masks, mask_scores = self.segmenter.segment(array, np.stack(boxes)) if boxes else (None, None)
        choice = choose_person(
            people,
            None if masks is None or client_box is not None else masks[: len(compared)],
            {label: det.box for label, det in object_dets.items()},
            client_box,
        )
        if len(people) > 1 or client_box is not None:
            notes.append(f"person: {choice.reason}")
        person_result = None
        if choice.box is not None:
            assert masks is not None and mask_scores is not None  # the chosen box was among those segmented
            measured = choice.chosen is not None and choice.chosen < len(compared)
            index = choice.chosen if measured else len(compared)  # else the client's box was segmented there
            keypoints = self.keypoints(array, choice.box)
            person_result = PersonDetection(
                box=np.asarray(choice.box, np.float32),
                score=people[choice.chosen].score if choice.chosen is not None else 0.0,
                mask=masks[index],
                mask_score=float(mask_scores[index]),
                keypoints=keypoints,
                keypoint_format=KEYPOINT_FORMATS[len(keypoints)],
            )
        objects: dict[str, ObjectDetection | None] = {}
        index = len(compared) + len(extra)
        for label, det in chosen.items():
            if det is None:
                objects[label] = None
            elif label not in object_dets:  # the person prompt: the chosen person is that "object"
                objects[label] = (
                    None
                    if person_result is None
                    else ObjectDetection(
                        label, person_result.box, person_result.score, person_result.mask, person_result.mask_score
                    )
                )
            else:
                assert masks is not None and mask_scores is not None  # each object box was segmented
                objects[label] = ObjectDetection(label, det.box, det.score, masks[index], float(mask_scores[index]))
                index += 1
        return Perception((height, width), person_result, len(people), objects, notes, self.demo, choice)
