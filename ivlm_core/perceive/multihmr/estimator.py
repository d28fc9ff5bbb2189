"""Multi-HMR on a photo with the photo's own camera: the people it finds, and a first body estimate for the fit.

Input as upstream's demo prepares it: the photo scaled to fit the square input (Pillow's `ImageOps.contain`,
bicubic), centred on black padding (`ImageOps.pad`), ImageNet-normalised. The photo's intrinsics K (ours:
pixel centres at integers) are carried into the input's pixels (Multi-HMR's: pixel k spans [k, k + 1]), so the
network sees the real focal length and its 3D output is in the photo's own CV_CAMERA frame.

The network gives each person's 53 joint rotations (camera frame), shape, expression, and the 3D position of
one joint (upstream's `person_center`, the head for the releases). `body_init_from_estimate` turns that into
smplx's (global_orient about the pelvis, transl) convention with the user's SMPL-X model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ivlm_core import paths
from ivlm_core.body import LoadedBodyModel
from ivlm_core.errors import BadInputError, ModelFileError, ModelFilesMissingError
from ivlm_core.fit.body_init import BodyInit
from ivlm_core.perceive.multihmr.convert_multihmr import LoadReport, load_multihmr
from ivlm_core.perceive.multihmr.modeling_multihmr import MultiHMRModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_THRESHOLD = 0.3  # upstream demo's det_thresh
DEFAULT_NMS_KERNEL = 3  # upstream demo's nms_kernel_size
MATCH_MIN_IOU = 0.3  # a Multi-HMR person and a detector box are the same person above this box overlap
MATCH_MAX_PEOPLE = 10  # the most confident people compared with the box (each costs a body-model evaluation)


@dataclass(frozen=True)
class InputTransform:
    """Photo pixel (u, v) (centres at integers) -> input pixel (x, y) (pixel k spans [k, k + 1]):
    x = (u + 0.5) * scale_x + offset_x, likewise y."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def intrinsics(self, k: np.ndarray) -> np.ndarray:
        """The photo's K [3, 3] as seen in the input's pixels: the same camera, scaled and shifted."""
        out = np.array(k, np.float64)
        out[0] = out[0] * self.scale_x
        out[1] = out[1] * self.scale_y
        out[0, 2] = (k[0, 2] + 0.5) * self.scale_x + self.offset_x
        out[1, 2] = (k[1, 2] + 0.5) * self.scale_y + self.offset_y
        return out

    def to_photo(self, xy: np.ndarray) -> np.ndarray:
        """Input pixels [..., 2] -> photo pixels."""
        xy = np.asarray(xy, np.float64)
        return np.stack(
            [(xy[..., 0] - self.offset_x) / self.scale_x - 0.5, (xy[..., 1] - self.offset_y) / self.scale_y - 0.5], -1
        )


def prepare_input(image: np.ndarray, size: int) -> tuple[np.ndarray, InputTransform]:
    """uint8 [H, W, 3] photo -> the square network input [3, size, size] float32, and the pixel transform."""
    photo = Image.fromarray(np.ascontiguousarray(image))
    resized = ImageOps.contain(photo, (size, size))
    padded = ImageOps.pad(resized, (size, size))  # black, centred: Pillow offsets by round(margin * 0.5)
    offset_x = round((size - resized.width) * 0.5) if resized.width != size else 0
    offset_y = round((size - resized.height) * 0.5) if resized.width == size else 0
    pixels = np.asarray(padded, np.float32) / 255.0
    pixels = (pixels - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    transform = InputTransform(resized.width / photo.width, resized.height / photo.height, offset_x, offset_y)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), transform


@dataclass(frozen=True)
class PersonEstimate:
    """One person Multi-HMR found, in the photo's frames (pixels: centres at integers; 3D: CV_CAMERA, metres)."""

    score: float
    center_px: np.ndarray  # [2] (u, v) of the person-centre joint in the photo
    center_cam: np.ndarray  # [3] the person-centre joint in the camera frame
    center_joint: int  # which smplx output joint that is (15 = head for the releases)
    rotations: np.ndarray  # [53, 3, 3] global orientation (camera frame), 21 body, 15 + 15 hand joints, jaw
    betas: np.ndarray  # [10] (or 11 for a model trained with children)
    expression: np.ndarray  # [10]


class MultiHMREstimator:
    """A loaded Multi-HMR release; call it on a photo and its intrinsics."""

    def __init__(
        self,
        model: MultiHMRModel,
        report: LoadReport,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        nms_kernel: int = DEFAULT_NMS_KERNEL,
    ) -> None:
        self.model = model
        self.report = report
        self.threshold = threshold
        self.nms_kernel = nms_kernel

    @classmethod
    def from_file(
        cls, path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> MultiHMREstimator:
        model, report = load_multihmr(Path(path), device=device, dtype=dtype)
        return cls(model, report)

    @classmethod
    def from_models_dir(
        cls, root: Path | None = None, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> MultiHMREstimator:
        """`<root>/multihmr/multiHMR_896_L.pt` (root: IVLM_MODELS_DIR by default)."""
        return cls.from_file(paths.multihmr_checkpoint(Path(root) if root is not None else None), device, dtype)

    @classmethod
    def optional(
        cls, root: Path | None = None, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> tuple[MultiHMREstimator | None, str]:
        """The estimator if its file is in the models folder and usable, else None and a note saying why
        (it is optional: without it the body is fitted from keypoints alone)."""
        try:
            return cls.from_models_dir(root, device, dtype), ""
        except ModelFilesMissingError:
            return None, "no Multi-HMR checkpoint (optional): the body is fitted from keypoints alone"
        except ModelFileError as exc:
            return None, f"Multi-HMR checkpoint not used ({exc.message}); the body is fitted from keypoints alone"

    @property
    def demo(self) -> bool:
        """True for the project's tiny random-weight stand-in."""
        return self.report.demo

    @property
    def name(self) -> str:
        prefix = "DEMO random-weight " if self.demo else ""
        return f"{prefix}Multi-HMR ({self.report.path.name}, {self.report.config.image_size} px)"

    def __call__(self, image: np.ndarray, intrinsics: np.ndarray) -> list[PersonEstimate]:
        """People in an RGB uint8 [H, W, 3] photo seen with intrinsics [3, 3], most confident first."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BadInputError(f"the photo is {image.dtype} {image.shape}; expected RGB uint8", "Send an RGB photo.")
        config = self.model.config
        pixels, transform = prepare_input(image, config.image_size)
        k_input = transform.intrinsics(np.asarray(intrinsics, np.float64))
        device, dtype = self.model.person_score[0].weight.device, self.model.person_score[0].weight.dtype
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(pixels)[None].to(device, dtype),
                torch.tensor(k_input[None], dtype=torch.float32, device=device),
                threshold=self.threshold,
                nms_kernel=self.nms_kernel,
            )
        people = [
            PersonEstimate(
                score=float(out.person_scores[i]),
                center_px=transform.to_photo(out.centers_px[i].cpu().numpy()),
                center_cam=out.centers_cam[i].cpu().numpy().astype(np.float64),
                center_joint=config.center_joint,
                rotations=out.rotations[i].cpu().numpy().astype(np.float64),
                betas=out.betas[i].cpu().numpy().astype(np.float64),
                expression=out.expression[i].cpu().numpy().astype(np.float64),
            )
            for i in range(len(out.batch))
        ]
        return sorted(people, key=lambda p: -p.score)


def body_init_from_estimate(estimate: PersonEstimate, body: LoadedBodyModel, source: str) -> BodyInit:
    """The person as smplx parameters of the user's SMPL-X model (`body`, batch size 1), camera frame.

    Multi-HMR places the person-centre joint c at `center_cam` and rotates about it: v = R (v_local - c) +
    center_cam. smplx rotates about the rest pelvis J0 and adds transl: v = R (v_local - J0) + J0 + transl;
    equal when transl = center_cam - R (c - J0) - J0, with c and J0 from the same unrotated body. That body is
    posed with the fit's parameters only (shape and body pose): the expression also moves the regressed head
    joint, by well under a millimetre, and the fit does not use it."""
    from scipy.spatial.transform import Rotation

    if body.model.batch_size != 1:
        raise ValueError(f"body_init_from_estimate needs a batch-1 body model, got {body.model.batch_size}")
    rotvecs = Rotation.from_matrix(estimate.rotations).as_rotvec()
    betas = np.zeros(10)
    betas[: min(10, len(estimate.betas))] = estimate.betas[:10]  # an 11th (child) coefficient has no SMPL-X slot
    with torch.no_grad():
        out = body.model(
            betas=torch.tensor(betas[None], dtype=torch.float32)[:, : body.model.num_betas],
            body_pose=torch.tensor(rotvecs[1:22].reshape(1, -1), dtype=torch.float32),
        )
    joints = out.joints[0].numpy().astype(np.float64)
    pelvis, center = joints[0], joints[estimate.center_joint]
    transl = estimate.center_cam - estimate.rotations[0] @ (center - pelvis) - pelvis
    return BodyInit(
        betas=betas,
        global_orient=rotvecs[0],
        body_pose=rotvecs[1:22].reshape(-1),
        transl=transl,
        source=source,
        left_hand_pose=rotvecs[22:37].reshape(-1),
        right_hand_pose=rotvecs[37:52].reshape(-1),
        jaw_pose=rotvecs[52],
        expression=estimate.expression[:10],
        score=estimate.score,
    )


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    from ivlm_core.perceive.detect import box_iou

    return float(box_iou(np.asarray(a, np.float64), np.asarray(b, np.float64)[None])[0])


def match_person(
    estimates: list[PersonEstimate], box: np.ndarray, body: LoadedBodyModel, intrinsics: np.ndarray, source: str
) -> tuple[BodyInit | None, str]:
    """The estimate that is the person in `box` (xyxy photo pixels): the highest overlap of its projected body's
    box with `box`, if at least MATCH_MIN_IOU. Returns (its BodyInit or None, a sentence saying why)."""
    from ivlm_core.fit.body_fit import body_from_client

    if not estimates:
        return None, "Multi-HMR found no person in the photo"
    best: tuple[float, BodyInit | None] = (-1.0, None)
    k = np.asarray(intrinsics, np.float64)
    for estimate in sorted(estimates, key=lambda e: -e.score)[:MATCH_MAX_PEOPLE]:
        init = body_init_from_estimate(estimate, body, source)
        vertices = body_from_client(body, params=init.params()).vertices
        if (vertices[:, 2] <= 1e-3).any():
            continue  # (partly) behind the camera: not a person in the photo
        uv = (vertices @ k.T)[:, :2] / vertices[:, 2:3]
        iou = _box_iou(np.concatenate([uv.min(0), uv.max(0)]), box)
        if iou > best[0]:
            best = (iou, init)
    iou, init = best
    if init is None or iou < MATCH_MIN_IOU:
        return None, (
            f"none of the {len(estimates)} people Multi-HMR found matches the chosen person's box "
            f"(best overlap {max(iou, 0.0):.2f} < {MATCH_MIN_IOU})"
        )
    return init, f"Multi-HMR's person with score {init.score:.2f} (box overlap {iou:.2f})"
