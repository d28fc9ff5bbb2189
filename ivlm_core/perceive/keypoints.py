"""Body keypoints with ViTPose (top-down: one crop per person box): COCO-17, or COCO-WholeBody's 133 (body, feet,
face, hands) when the whole-body model is present (`vitpose_release` says which checkpoint and why).

The image processor cuts an aspect-corrected crop around the box, enlarged 1.25 times (so keypoints may
fall a little outside the box itself), and its `post_process_pose_estimation` maps the heatmap peaks back
into image pixels. Confidences are the heatmap peak values, clipped to [0, 1]: trained models give
values in that range, and fitting uses them as non-negative weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import VitPoseForPoseEstimation
from transformers.utils import is_torchvision_available

from ivlm_core.errors import ModelFileError
from ivlm_core.perceive import folders
from ivlm_core.perceive.coco import KEYPOINT_FORMATS, NUM_WHOLEBODY_KEYPOINTS, keypoint_names
from ivlm_core.perceive.inputs import ImageLike, as_rgb_array, check_boxes
from ivlm_core.perceive.vitpose_release import WHOLEBODY_DATASET_INDEX, find_release, load_release

if TYPE_CHECKING:
    from transformers import VitPoseImageProcessor
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil

VitPoseProcessor: type[VitPoseImageProcessor] | type[VitPoseImageProcessorPil]
if is_torchvision_available():
    from transformers import VitPoseImageProcessor as VitPoseProcessor
else:  # transformers' own fallback when torchvision is absent: same maths in numpy / scipy / PIL
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil as VitPoseProcessor

COCO_DATASET_INDEX = 0  # ViTPose+ (mixture-of-experts) checkpoints pick their COCO expert with this index


class KeypointEstimator:
    """ViTPose (`VitPoseForPoseEstimation` + its image processor) loaded from a local folder: 17 or 133 keypoints."""

    def __init__(
        self,
        model: VitPoseForPoseEstimation,
        processor: VitPoseImageProcessor | VitPoseImageProcessorPil,
        *,
        demo: bool = False,
        dataset_index: int | None = None,
    ) -> None:
        count = model.config.num_labels
        if count not in KEYPOINT_FORMATS:
            raise ModelFileError(
                f"The keypoint model predicts {count} keypoints, neither COCO's 17 nor COCO-WholeBody's {NUM_WHOLEBODY_KEYPOINTS}.",
                "Use a COCO-trained ViTPose such as usyd-community/vitpose-base-simple, or a ViTPose++ release for whole-body keypoints.",
            )
        self.model = model.eval()
        self.processor = processor
        self.demo = demo
        self.names = keypoint_names(count)
        self.format = KEYPOINT_FORMATS[count]
        if dataset_index is None and getattr(model.config.backbone_config, "num_experts", 1) > 1:
            dataset_index = WHOLEBODY_DATASET_INDEX if count == NUM_WHOLEBODY_KEYPOINTS else COCO_DATASET_INDEX
        self.dataset_index = dataset_index

    @classmethod
    def from_folder(
        cls, folder: Path | str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> KeypointEstimator:
        """Loads the folder (never the hub): a Hugging Face-format folder, or a ViTPose++ release file in it."""
        folder = Path(folder)
        name = folder.name if folder.name in folders.SPECS else "vitpose"
        release = find_release(folder)
        if release is not None and not (folder / "config.json").is_file():
            loaded = load_release(release, dtype)
            return cls(
                loaded.model.to(device),  # type: ignore[arg-type]  # @wraps on PreTrainedModel.to: typeshed's _Wrapped does not bind self
                VitPoseProcessor(),
                demo=loaded.is_demo,
                dataset_index=loaded.dataset_index,
            )
        folder = folders.check_folder(name, folder)
        config = folders.read_config(name, folder)
        with folders.loading(name, folder, "the processor file (preprocessor_config.json)"):
            processor = VitPoseProcessor.from_pretrained(folder, local_files_only=True)
        with folders.loading(name, folder, folders.weights_file(folder)):
            model, info = folders.pretrained_with_info(VitPoseForPoseEstimation, folder, dtype)
        folders.check_loading_info(name, folder, info)
        on_device = model.to(device)  # type: ignore[arg-type]  # @wraps on PreTrainedModel.to: typeshed's _Wrapped does not bind self
        return cls(on_device, processor, demo=folders.is_demo_config(config))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, image: ImageLike, box: Sequence[float] | np.ndarray) -> np.ndarray:
        """Keypoints of the person in one xyxy pixel box: float32 [K, 3] (x, y, confidence) in `self.names` order."""
        return self.estimate(image, np.asarray(box, dtype=np.float32).reshape(1, 4))[0]

    def estimate(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Keypoints for each of [N, 4] xyxy pixel boxes: float32 [N, K, 3], x right and y down in pixels."""
        array = as_rgb_array(image)
        boxes = check_boxes(boxes, *array.shape[:2])
        if len(boxes) == 0:
            return np.zeros((0, len(self.names), 3), np.float32)
        coco_boxes = boxes.copy()
        coco_boxes[:, 2:] -= coco_boxes[:, :2]  # xyxy -> COCO (x, y, width, height), what the processor expects
        with torch.inference_mode():
            # preprocess: what __call__ runs; __call__'s own signature does not declare the boxes
            inputs = self.processor.preprocess(array, boxes=[coco_boxes.tolist()], return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, self.model.dtype)
            extra = {}
            if self.dataset_index is not None:
                extra["dataset_index"] = torch.full((len(boxes),), self.dataset_index, device=self.device)
            outputs = self.model(pixel_values=pixel_values, **extra)
            outputs.heatmaps = outputs.heatmaps.float()
            # No target_sizes: the boxes are already in pixels (target_sizes would rescale normalised boxes).
            results = self.processor.post_process_pose_estimation(outputs, boxes=[coco_boxes.tolist()])[0]
        out = np.zeros((len(boxes), len(self.names), 3), np.float32)
        for i, (result, box) in enumerate(zip(results, boxes)):
            out[i, :, :2] = result["keypoints"].cpu().numpy()
            out[i, :, 2] = np.clip(result["scores"].cpu().numpy().reshape(-1), 0.0, 1.0)
            # A peak on a flat heatmap can make the sub-pixel refinement fling a point far away: such a point is
            # not a detection. Points outside the crop the model saw get confidence 0 and are clamped into it.
            region = crop_region(box)
            outside = ~np.all((out[i, :, :2] >= region[:2]) & (out[i, :, :2] <= region[2:]), axis=1)
            out[i, outside, 2] = 0.0
            out[i, :, :2] = np.clip(out[i, :, :2], region[:2], region[2:])
        return out


def crop_region(box: np.ndarray, aspect: float = 192 / 256, padding: float = 1.25) -> np.ndarray:
    """The image region [x0, y0, x1, y1] ViTPose's processor crops for an xyxy box: aspect-corrected to the model's
    192x256 input, enlarged 1.25 times (mmpose's top-down convention)."""
    width, height = box[2] - box[0], box[3] - box[1]
    if width > aspect * height:
        height = width / aspect
    else:
        width = height * aspect
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return np.array(
        [cx - padding * width / 2, cy - padding * height / 2, cx + padding * width / 2, cy + padding * height / 2]
    )
