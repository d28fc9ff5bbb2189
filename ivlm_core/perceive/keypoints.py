"""COCO-17 body keypoints with ViTPose (top-down: one crop per person box).

The image processor cuts an aspect-corrected crop around the box, enlarged 1.25 times (so keypoints may
fall a little outside the box itself), and its `post_process_pose_estimation` maps the heatmap peaks back
into image pixels. Confidences are the heatmap peak values, clipped to [0, 1]: trained models give
values in that range, and fitting uses them as non-negative weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import VitPoseForPoseEstimation
from transformers.utils import is_torchvision_available

from ivlm_core.errors import ModelFileError
from ivlm_core.perceive import folders
from ivlm_core.perceive.coco import NUM_COCO_KEYPOINTS
from ivlm_core.perceive.inputs import ImageLike, as_rgb_array, check_boxes

if is_torchvision_available():
    from transformers import VitPoseImageProcessor as VitPoseProcessor
else:  # transformers' own fallback when torchvision is absent: same maths in numpy / scipy / PIL
    from transformers.models.vitpose.image_processing_pil_vitpose import VitPoseImageProcessorPil as VitPoseProcessor

COCO_DATASET_INDEX = 0  # ViTPose+ (mixture-of-experts) checkpoints pick their COCO expert with this index


class KeypointEstimator:
    """ViTPose (`VitPoseForPoseEstimation` + its image processor) loaded from a local folder."""

    def __init__(self, model: VitPoseForPoseEstimation, processor: VitPoseProcessor, *, demo: bool = False) -> None:
        if model.config.num_labels != NUM_COCO_KEYPOINTS:
            raise ModelFileError(
                f"The keypoint model predicts {model.config.num_labels} keypoints, not the {NUM_COCO_KEYPOINTS} of COCO.",
                "Use a COCO-trained ViTPose such as usyd-community/vitpose-base-simple.",
            )
        self.model = model.eval()
        self.processor = processor
        self.demo = demo

    @classmethod
    def from_folder(
        cls, folder: Path | str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> KeypointEstimator:
        """Loads the folder (never the hub)."""
        folder = folders.check_folder("vitpose", Path(folder))
        config = folders.read_config("vitpose", folder)
        with folders.loading("vitpose", folder, "the processor file (preprocessor_config.json)"):
            processor = VitPoseProcessor.from_pretrained(folder, local_files_only=True)
        with folders.loading("vitpose", folder, folders.weights_file(folder)):
            model, info = VitPoseForPoseEstimation.from_pretrained(
                folder, local_files_only=True, dtype=dtype, output_loading_info=True
            )
        folders.check_loading_info("vitpose", folder, info)
        return cls(model.to(device), processor, demo=folders.is_demo_config(config))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, image: ImageLike, box: Sequence[float] | np.ndarray) -> np.ndarray:
        """Keypoints of the person in one xyxy pixel box: float32 [17, 3] (x, y, confidence), COCO order."""
        return self.estimate(image, np.asarray(box, dtype=np.float32).reshape(1, 4))[0]

    def estimate(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Keypoints for each of [N, 4] xyxy pixel boxes: float32 [N, 17, 3], x right and y down in pixels."""
        array = as_rgb_array(image)
        boxes = check_boxes(boxes, *array.shape[:2])
        if len(boxes) == 0:
            return np.zeros((0, NUM_COCO_KEYPOINTS, 3), np.float32)
        coco_boxes = boxes.copy()
        coco_boxes[:, 2:] -= coco_boxes[:, :2]  # xyxy -> COCO (x, y, width, height), what the processor expects
        with torch.inference_mode():
            inputs = self.processor(images=array, boxes=[coco_boxes.tolist()], return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device, self.model.dtype)
            extra = {}
            if getattr(self.model.config.backbone_config, "num_experts", 1) > 1:
                extra["dataset_index"] = torch.full((len(boxes),), COCO_DATASET_INDEX, device=self.device)
            outputs = self.model(pixel_values=pixel_values, **extra)
            outputs.heatmaps = outputs.heatmaps.float()
            # No target_sizes: the boxes are already in pixels (target_sizes would rescale normalised boxes).
            results = self.processor.post_process_pose_estimation(outputs, boxes=[coco_boxes.tolist()])[0]
        out = np.zeros((len(boxes), NUM_COCO_KEYPOINTS, 3), np.float32)
        for i, result in enumerate(results):
            out[i, :, :2] = result["keypoints"].cpu().numpy()
            out[i, :, 2] = np.clip(result["scores"].cpu().numpy().reshape(-1), 0.0, 1.0)
        return out
