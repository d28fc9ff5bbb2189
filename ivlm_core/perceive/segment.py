"""Masks from boxes with SAM: the image is encoded once, then every box is decoded in one batch.

The processor resizes the photo (longest side to its `size`, 1024 for the hub models) and pads it square;
its `post_process_masks` undoes both, so masks come back at the photo's own size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import SamModel, SamProcessor

from ivlm_core.errors import ModelFileError
from ivlm_core.perceive import folders
from ivlm_core.perceive.inputs import ImageLike, as_rgb_array, check_boxes

MASK_THRESHOLD = 0.0  # on logits, as SamProcessor.post_process_masks binarizes


class BoxSegmenter:
    """SAM (`SamModel` + `SamProcessor`, the hub's HF format) loaded from a local folder."""

    def __init__(self, model: SamModel, processor: SamProcessor, *, demo: bool = False) -> None:
        self.model = model.eval()
        self.processor = processor
        self.demo = demo
        pad = processor.image_processor.pad_size
        side = model.config.vision_config.image_size
        if (pad["height"], pad["width"]) != (side, side) or processor.image_processor.size["longest_edge"] != side:
            raise ModelFileError(
                f"The SAM processor makes {pad['height']}x{pad['width']} inputs but the model expects {side}x{side}.",
                "preprocessor_config.json and config.json come from different SAM downloads; download both again.",
            )

    @classmethod
    def from_folder(
        cls, folder: Path | str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> BoxSegmenter:
        """Loads the folder (never the hub)."""
        folder = folders.check_folder("sam", Path(folder))
        config = folders.read_config("sam", folder)
        with folders.loading("sam", folder, "the processor file (preprocessor_config.json)"):
            processor = SamProcessor.from_pretrained(folder, local_files_only=True)
        with folders.loading("sam", folder, folders.weights_file(folder)):
            model, info = SamModel.from_pretrained(folder, local_files_only=True, dtype=dtype, output_loading_info=True)
        folders.check_loading_info("sam", folder, info)
        return cls(model.to(device), processor, demo=folders.is_demo_config(config))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """One bool mask [H, W] per xyxy pixel box, at the image's size: [N, H, W] (N may be 0)."""
        return self.segment(image, boxes)[0]

    def segment(self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
        """Masks [N, H, W] bool and SAM's predicted IoU of each [N] float32 (its own estimate of mask quality)."""
        logits, iou = self.mask_logits(image, boxes)
        return logits > MASK_THRESHOLD, iou

    def mask_logits(
        self, image: ImageLike, boxes: np.ndarray | Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """SAM's mask logits [N, H, W] float32 at the image's size (the mask is logits > 0) and its predicted
        IoU [N] float32. Tests compare these: the masks alone flip on pixels whose logit is within rounding of 0."""
        array = as_rgb_array(image)
        height, width = array.shape[:2]
        boxes = check_boxes(boxes, height, width)
        if len(boxes) == 0:
            return np.zeros((0, height, width), np.float32), np.zeros(0, np.float32)
        with torch.inference_mode():
            inputs = self.processor(images=array, input_boxes=[boxes.tolist()], return_tensors="pt")
            model_inputs = {
                "pixel_values": inputs["pixel_values"].to(self.device, self.model.dtype),
                "input_boxes": inputs["input_boxes"].to(self.device, self.model.dtype),
            }
            # multimask_output=False: a box is an unambiguous prompt, which is what SAM's single-mask output token
            # is for (the SAM authors use it for box prompts). The three multimask outputs exist for ambiguous
            # point prompts (whole / part / sub-part); picking one by predicted IoU adds nothing for a box.
            outputs = self.model(**model_inputs, multimask_output=False)
            logits = self.processor.post_process_masks(
                outputs.pred_masks.float().cpu(),
                inputs["original_sizes"].cpu(),
                inputs["reshaped_input_sizes"].cpu(),
                binarize=False,
            )[0]
        iou = outputs.iou_scores[0, :, 0].float().cpu().numpy().astype(np.float32)
        return logits[:, 0].numpy().astype(np.float32), iou  # [N, 1, H, W] -> [N, H, W]
