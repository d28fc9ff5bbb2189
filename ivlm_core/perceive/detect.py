"""Open-vocabulary boxes with Grounding DINO: one forward pass for "person" and every object label.

The prompt is the labels' phrases, lower case, each ending in "." ("person. mug."), as Grounding DINO was
trained. The processor's post-processing gives pixel xyxy boxes, box scores (the highest token
probability, Grounding DINO's box confidence) and the decoded phrase. Which label a box belongs to is
decided from the token spans: the label whose tokens have the highest probability, if above the text
threshold. Matching the decoded phrase string instead breaks for multi-word labels and for boxes whose
phrase spills over several labels or onto "." and [SEP] (the post-processing keeps those tokens).
Duplicate boxes of one label are removed by non-maximum suppression, so people can be counted.

Input size: the processor resizes the photo's short side to 800 (long side at most 1333), enlarging a smaller
photo as upstream does. `upscale=False` keeps a smaller photo at its own size (a 640x480 photo stays 640x480:
2.8 times fewer pixels, and the encoder's cost grows with them); larger photos are reduced exactly as before.
It changes results on small photos only: Grounding DINO was trained on short sides 480..800, but small objects
are found less readily without the enlargement. The default enlarges on a GPU, where it costs little, and not on
the CPU, where it is most of the Estimate's time (README, "Manual contact without a contact model").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import AutoProcessor, GroundingDinoForObjectDetection

from ivlm_core.errors import BadInputError
from ivlm_core.perceive import folders
from ivlm_core.perceive.inputs import ImageLike, as_rgb_array, check_labels, prompt_phrase

if TYPE_CHECKING:
    from transformers import GroundingDinoProcessor

DEFAULT_BOX_THRESHOLD = 0.35
DEFAULT_TEXT_THRESHOLD = 0.25
DEFAULT_NMS_IOU = 0.6  # high enough that two people side by side or hugging are both kept


@dataclass(frozen=True)
class Detection:
    """One box. `box`: float32 [4] (x0, y0, x1, y1) in image pixels (x right, y down), clipped to the image."""

    label: str
    box: np.ndarray
    score: float  # box confidence: the box's highest token probability (what the box threshold applies to)
    label_score: float  # the highest probability among this label's tokens (what the text threshold applies to)
    phrase: str  # the phrase the post-processing decoded for the box, for diagnostics

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of [N, 4] others."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def non_max_suppression(detections: list[Detection], iou: float) -> list[Detection]:
    """Greedy NMS: highest score first, dropping boxes overlapping a kept one by more than `iou`."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if not kept or box_iou(det.box, np.stack([k.box for k in kept])).max() <= iou:
            kept.append(det)
    return kept


def default_upscale(device: str | torch.device) -> bool:
    """Whether small photos are enlarged for the detector by default: on a GPU yes (upstream), on the CPU no."""
    return torch.device(device).type != "cpu"


def _phrase_token_spans(offsets: Sequence[tuple[int, int]], char_spans: list[tuple[int, int]]) -> list[list[int]]:
    """Token indices of each phrase, from the tokenizer's character offsets (special tokens have (0, 0))."""
    spans: list[list[int]] = [[] for _ in char_spans]
    for index, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        for k, (lo, hi) in enumerate(char_spans):
            if lo <= start and end <= hi:
                spans[k].append(index)
    return spans


class ObjectDetector:
    """Grounding DINO (`GroundingDinoForObjectDetection` + its processor) loaded from a local folder."""

    def __init__(
        self,
        model: GroundingDinoForObjectDetection,
        processor: GroundingDinoProcessor,
        *,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
        nms_iou: float = DEFAULT_NMS_IOU,
        demo: bool = False,
        upscale: bool = True,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.upscale = upscale  # enlarge photos below the processor's short side (upstream), see the module doc
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.nms_iou = nms_iou
        self.demo = demo

    @classmethod
    def from_folder(
        cls,
        folder: Path | str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        upscale: bool | None = None,
        **options: float,
    ) -> ObjectDetector:
        """Loads the folder (never the hub); `options` are box_threshold, text_threshold, nms_iou.

        upscale: enlarge small photos to the processor's size; None: on a GPU only (`default_upscale`)."""
        folder = folders.check_folder("grounding-dino", Path(folder))
        config = folders.read_config("grounding-dino", folder)
        with folders.loading("grounding-dino", folder, "the processor files (preprocessor / tokenizer)"):
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        with folders.loading("grounding-dino", folder, folders.weights_file(folder)):
            model, info = folders.pretrained_with_info(GroundingDinoForObjectDetection, folder, dtype)
        folders.check_loading_info("grounding-dino", folder, info)
        model = model.to(device)  # type: ignore[arg-type]  # @wraps on PreTrainedModel.to: typeshed's _Wrapped does not bind self
        upscale = default_upscale(device) if upscale is None else upscale
        return cls(model, processor, demo=folders.is_demo_config(config), upscale=upscale, **options)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def resize_option(self, height: int, width: int) -> dict[str, dict[str, int]]:
        """The processor's `size` for this photo: its own (none given) unless a photo smaller than it is kept."""
        size = self.processor.image_processor.size
        short = min(height, width)
        if self.upscale or "shortest_edge" not in size or short >= size["shortest_edge"]:
            return {}
        return {"size": {"shortest_edge": short, "longest_edge": size["longest_edge"]}}

    def __call__(
        self,
        image: ImageLike,
        labels: Sequence[str],
        *,
        box_threshold: float | None = None,
        text_threshold: float | None = None,
    ) -> dict[str, list[Detection]]:
        """Boxes for each label, best first (after NMS); an empty list where nothing passed the thresholds."""
        array = as_rgb_array(image)
        labels = check_labels(labels)
        if not labels:
            raise BadInputError("No labels to detect.", "Pass at least one label, e.g. ['person'].")
        box_t = self.box_threshold if box_threshold is None else box_threshold
        text_t = self.text_threshold if text_threshold is None else text_threshold

        phrases = list(dict.fromkeys(prompt_phrase(label) for label in labels))  # one phrase per distinct label
        prompt, char_spans = "", []
        for phrase in phrases:
            if prompt:
                prompt += " "
            char_spans.append((len(prompt), len(prompt) + len(phrase)))
            prompt += phrase + "."
        encoded = self.processor.tokenizer(prompt, return_offsets_mapping=True)
        max_len = int(self.model.config.max_text_len)
        if len(encoded["input_ids"]) > max_len:
            raise BadInputError(
                f"The labels make a prompt of {len(encoded['input_ids'])} tokens; the detector reads at most {max_len}.",
                "Use fewer or shorter labels.",
            )
        spans = _phrase_token_spans(encoded["offset_mapping"], char_spans)

        height, width = array.shape[:2]
        with torch.inference_mode():
            inputs = self.processor(images=array, text=prompt, return_tensors="pt", **self.resize_option(height, width))
            if inputs["input_ids"][0].tolist() != list(encoded["input_ids"]):
                raise RuntimeError("the processor tokenized the prompt differently from its own tokenizer")
            inputs = {
                k: v.to(self.device, self.model.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in inputs.items()
            }
            outputs = self.model(**inputs)
            results = self.processor.post_process_grounded_object_detection(
                outputs, inputs["input_ids"], threshold=box_t, text_threshold=text_t, target_sizes=[(height, width)]
            )[0]
            # The same selection the post-processing made (score > threshold, in query order), to read token spans.
            probs = outputs.logits[0].float().sigmoid()
            kept = probs[probs.max(-1).values > box_t].cpu().numpy()
        boxes = results["boxes"].float().cpu().numpy().reshape(-1, 4)
        scores = results["scores"].float().cpu().numpy().reshape(-1)
        if len(kept) != len(boxes):
            raise RuntimeError("post-processing kept a different set of boxes than its documented threshold rule")

        by_phrase: dict[str, list[Detection]] = {phrase: [] for phrase in phrases}
        for box, score, token_probs, decoded in zip(boxes, scores, kept, results["text_labels"]):
            label_scores = [float(token_probs[span].max()) if span else 0.0 for span in spans]
            best = int(np.argmax(label_scores))
            if label_scores[best] <= text_t:
                continue
            clipped = np.clip(box, 0, [width, height, width, height]).astype(np.float32)
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                continue  # the box lies entirely outside the image
            by_phrase[phrases[best]].append(
                Detection(phrases[best], clipped, float(score), label_scores[best], str(decoded).strip())
            )
        kept_by_phrase = {phrase: non_max_suppression(dets, self.nms_iou) for phrase, dets in by_phrase.items()}
        return {
            label: [
                Detection(label, d.box, d.score, d.label_score, d.phrase) for d in kept_by_phrase[prompt_phrase(label)]
            ]
            for label in labels
        }
