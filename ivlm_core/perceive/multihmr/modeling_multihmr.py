"""Multi-HMR's network: a DINOv2 backbone from transformers and the human prediction head (HPH) written here.

What it computes (Baradel et al. 2024, "Multi-HMR: Multi-Person Whole-Body Human Mesh Recovery in a Single
Shot"; shapes for multiHMR_896_L: 896 px input, 64 x 64 patches of 14 px, ViT-L 1024 channels):

1. **Backbone.** DINOv2 patch tokens after the final layer norm, without the class token: [B, 64, 64, 1024].
2. **Detection.** A two-layer MLP scores each patch as the centre of a person (sigmoid, clamped to
   [1e-4, 1 - 1e-4]); a 3x3 max-pool keeps local maxima (CenterNet-style NMS); patches scoring >= the
   threshold are people. Another MLP regresses each person's sub-patch offset, so the person centre
   (upstream's "head" joint) is at ((column, row) + 0.5 + offset) * 14 pixels.
3. **Camera.** Each patch centre is back-projected through K into a ray, encoded with sines and cosines of
   16 linear frequencies per axis (99 channels) and appended to its feature: the context [B, 64, 64, 1123].
   This is how the head knows the focal length: pass the photo's own intrinsics.
4. **Head.** Each person's query is its patch's context plus learned row and column embeddings; learned
   row/column "value" embeddings are added to the context at every detected person. The query, the mean
   pose (53 rotations in 6D), mean shape and mean camera form a token, embedded to 1024 channels; two
   pre-norm layers of self-attention (between the people of one image), cross-attention (to all patches of
   the image) and an MLP follow. Linear decoders add pose, shape, camera and expression to their means.
5. **Outputs.** Rotations by Gram-Schmidt on the 6D pairs; depth = exp(camera[0] * f / f_60) where f_60 is
   the focal length of a 60 degree view at the input size (the head predicts log depth for that view),
   clamped to [0, 50] m; the person centre in the camera frame = depth * K^-1 (x, y, 1).

Where upstream's code does something surprising, we do the same because the released weights were trained
with it (each is marked "upstream:" below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Model

from ivlm_core.fit.rotations import rotation_6d_to_matrix
from ivlm_core.perceive.multihmr.configuration_multihmr import (
    EXPRESSION_COEFFICIENTS,
    SMPLX_ROTATIONS,
    MultiHMRConfig,
)

SCORE_CLAMP = 1e-4
MAX_DEPTH_M = 50.0
LOG_DEPTH_EPS = 1e-10


def fourier_ray_embedding(rays: torch.Tensor, bands: int, max_resolution: int) -> torch.Tensor:
    """[..., 3] rays -> [..., 3 + 6 * bands]: the ray, then sin and cos of pi * ray * f for f in
    linspace(1, max_resolution / 2, bands), axis-major (x's bands, y's, z's) within each."""
    freqs = torch.linspace(1.0, max_resolution / 2.0, bands, device=rays.device, dtype=rays.dtype)
    scaled = (rays[..., :, None] * freqs).flatten(-2)
    return torch.cat([rays, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)


def patch_rays(intrinsics: torch.Tensor, grid: int, patch_size: int) -> torch.Tensor:
    """Rays [B, grid, grid, 3] (z = 1) through the patch centres, for intrinsics [B, 3, 3] in the input's pixels.

    upstream: the patch centre is passed to K^-1 as (row, column) where (x, y) belongs; the released weights
    were trained so, so the same transposed rays are built here."""
    centre = (torch.arange(grid, device=intrinsics.device) * patch_size + patch_size // 2).float()
    first = centre[:, None].expand(grid, grid)  # the row's pixel coordinate, used as x
    second = centre[None, :].expand(grid, grid)  # the column's, used as y
    points = torch.stack([first, second, torch.ones_like(first)], dim=-1)
    return torch.einsum("bij,hwj->bhwi", torch.linalg.inv(intrinsics.float()), points)


def _regression_mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class PeopleSelfAttention(nn.Module):
    """Each person's token attends to every person's token of the same image (padding masked out)."""

    def __init__(self, width: int, heads: int, channels: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * heads * channels, bias=False)
        self.out = nn.Linear(heads * channels, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, M, width], mask [B, M] bool (True = a person) -> [B, M, width]."""
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return self.out(y.transpose(1, 2).flatten(2))


class PatchCrossAttention(nn.Module):
    """Each person's token attends to all patches of its image (features and ray embeddings)."""

    def __init__(self, width: int, context: int, heads: int, channels: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, heads * channels, bias=False)
        self.kv = nn.Linear(context, 2 * heads * channels, bias=False)
        self.out = nn.Linear(heads * channels, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x [B, M, width], context [B, N, context] -> [B, M, width]."""
        q = self.q(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.kv(context).chunk(2, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).flatten(2))


class HeadLayer(nn.Module):
    """Pre-norm residual self-attention, cross-attention and MLP (LayerNorm eps 1e-5, exact GELU)."""

    def __init__(self, config: MultiHMRConfig) -> None:
        super().__init__()
        width, heads, channels = config.head_width, config.head_heads, config.head_channels_per_head
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = PeopleSelfAttention(width, heads, channels)
        self.norm2 = nn.LayerNorm(width)
        self.cross_attn = PatchCrossAttention(width, config.context_channels, heads, channels)
        self.norm3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, config.head_mlp), nn.GELU(), nn.Linear(config.head_mlp, width))

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), mask)
        x = x + self.cross_attn(self.norm2(x), context)
        x = x + self.mlp(self.norm3(x))
        return x * mask[..., None]  # padding slots stay zero (they never reach a real person's output)


@dataclass
class HeadPrediction:
    """Per person [P, ...], before any conversion: 6D pose pairs, shape, camera (log depth first), expression."""

    pose_6d: torch.Tensor  # [P, 53 * 6]
    betas: torch.Tensor  # [P, num_betas]
    camera: torch.Tensor  # [P, 3]
    expression: torch.Tensor  # [P, 10]


class HumanPredictionHead(nn.Module):
    """Multi-HMR's HPH: learned queries at the detected people's patches, cross-attending to the image."""

    def __init__(self, config: MultiHMRConfig) -> None:
        super().__init__()
        grid, context, width = config.grid, config.context_channels, config.head_width
        self.query_rows = nn.Parameter(torch.zeros(grid, context))
        self.query_cols = nn.Parameter(torch.zeros(grid, context))
        self.value_rows = nn.Parameter(torch.zeros(grid, context))
        self.value_cols = nn.Parameter(torch.zeros(grid, context))
        self.token_in = nn.Linear(config.token_channels, width)
        self.token_offset = nn.Parameter(torch.zeros(width))
        self.layers = nn.ModuleList(HeadLayer(config) for _ in range(config.head_depth))
        self.pose_out = nn.Linear(width, config.pose_channels)
        self.betas_out = nn.Linear(width, config.num_betas)
        self.camera_out = nn.Linear(width, 3)
        self.expression_out = nn.Linear(width, EXPRESSION_COEFFICIENTS)
        self.register_buffer("mean_pose", torch.zeros(config.pose_channels))
        self.register_buffer("mean_betas", torch.zeros(config.num_betas))
        self.register_buffer("mean_camera", torch.zeros(3))
        self.register_buffer("mean_expression", torch.zeros(EXPRESSION_COEFFICIENTS))

    def forward(
        self, context: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> HeadPrediction:
        """context [B, grid, grid, C]; each person's image, patch row and column [P] (people in image order)."""
        if len(batch) > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError("people must be listed image by image (as MultiHMRModel.detect returns them)")
        images, image_of = torch.unique(batch, return_inverse=True)  # only images with people take part
        counts = torch.bincount(image_of, minlength=len(images))
        slot = torch.arange(len(batch), device=batch.device) - (torch.cumsum(counts, 0) - counts)[image_of]

        kv = context[images].clone()
        kv.index_put_((image_of, rows, cols), self.value_rows[rows] + self.value_cols[cols], accumulate=True)
        queries = context[batch, rows, cols] + self.query_rows[rows] + self.query_cols[cols]
        people = len(batch)
        means = [self.mean_pose, self.mean_betas, self.mean_camera]
        token = torch.cat([queries, *(m.to(queries.dtype).expand(people, -1) for m in means)], dim=-1)

        x = context.new_zeros(len(images), int(counts.max()), self.token_offset.shape[0])
        mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        x[image_of, slot] = self.token_in(token) + self.token_offset
        mask[image_of, slot] = True
        kv = kv.flatten(1, 2)
        for layer in self.layers:
            x = layer(x, kv, mask)
        out = x[image_of, slot]
        return HeadPrediction(
            pose_6d=self.pose_out(out) + self.mean_pose,
            betas=self.betas_out(out) + self.mean_betas,
            camera=self.camera_out(out) + self.mean_camera,
            expression=self.expression_out(out) + self.mean_expression,
        )


@dataclass
class MultiHMROutput:
    """People found in a batch of square inputs. Pixels are the input's (x right, y down, pixel k spanning
    [k, k + 1]); 3D is the camera frame of the intrinsics given (x right, y down, z forward, metres)."""

    scores: torch.Tensor  # [B, grid, grid] person-centre score per patch, after NMS
    batch: torch.Tensor  # [P] which image
    rows: torch.Tensor  # [P] patch row
    cols: torch.Tensor  # [P] patch column
    person_scores: torch.Tensor  # [P]
    centers_px: torch.Tensor  # [P, 2] (x, y) of the person centre (config.person_center) in input pixels
    depth: torch.Tensor  # [P] z of the person centre, metres
    centers_cam: torch.Tensor  # [P, 3] the person centre in the camera frame
    rotations: torch.Tensor  # [P, 53, 3, 3] global orientation, 21 body, 15 left hand, 15 right hand, jaw
    betas: torch.Tensor  # [P, num_betas]
    expression: torch.Tensor  # [P, 10]


class MultiHMRModel(nn.Module):
    """Backbone, person detection, centre offsets and the head. Weights come from `convert_multihmr`."""

    def __init__(self, config: MultiHMRConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Dinov2Model(config.dinov2_config())
        width = config.backbone_hidden
        self.person_score = _regression_mlp(width, width, 1)
        self.center_offset = _regression_mlp(width, width, 2)
        self.head = HumanPredictionHead(config)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised RGB [B, 3, S, S] -> patch features [B, grid, grid, hidden] (final norm, no class token)."""
        size = self.config.image_size
        if tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f"Multi-HMR takes [B, 3, {size}, {size}] inputs, got {list(pixel_values.shape)}")
        hidden = self.backbone(pixel_values=pixel_values).last_hidden_state[:, 1:]
        return hidden.unflatten(1, (self.config.grid, self.config.grid))

    def score_map(self, features: torch.Tensor) -> torch.Tensor:
        """[B, grid, grid, hidden] -> [B, grid, grid] person-centre scores in [1e-4, 1 - 1e-4]."""
        return torch.sigmoid(self.person_score(features)[..., 0]).clamp(SCORE_CLAMP, 1.0 - SCORE_CLAMP)

    @staticmethod
    def suppress(scores: torch.Tensor, kernel: int) -> torch.Tensor:
        """Zeroes every score that is not the maximum of its kernel x kernel neighbourhood (kernel 1: none)."""
        if kernel <= 1:
            return scores
        pad = {2: 1, 4: 2}.get(kernel, (kernel - 1) // 2)  # upstream's padding; even kernels crop the far side
        peaks = F.max_pool2d(scores[:, None], kernel, stride=1, padding=pad)[:, 0, : scores.shape[1], : scores.shape[2]]
        return scores * (peaks == scores)

    @staticmethod
    def detect(scores: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image, row, column) [P] of every patch scoring >= threshold, image by image, row-major."""
        return torch.nonzero(scores >= threshold, as_tuple=True)

    def metric_depth(self, raw: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
        """The head's depth output [P] -> metres, for the focal lengths [P] (input pixels) of each person's image."""
        value = raw.float() * focal.float() / self.config.normalisation_focal
        if self.config.nearness:
            value = torch.exp(value) - LOG_DEPTH_EPS
        return value.clamp(0.0, MAX_DEPTH_M)  # upstream clamps always (its clip_dist flag is stored as a tuple)

    def forward(
        self, pixel_values: torch.Tensor, intrinsics: torch.Tensor, threshold: float = 0.3, nms_kernel: int = 3
    ) -> MultiHMROutput:
        """pixel_values [B, 3, S, S] (ImageNet-normalised RGB), intrinsics [B, 3, 3] in the input's pixels."""
        config = self.config
        features = self.encode(pixel_values)
        scores = self.suppress(self.score_map(features), nms_kernel)
        batch, rows, cols = self.detect(scores, threshold)
        people = len(batch)
        if people == 0:
            empty = features.new_zeros((0,)).float()
            return MultiHMROutput(
                scores,
                batch,
                rows,
                cols,
                empty,
                empty.reshape(0, 2),
                empty,
                empty.reshape(0, 3),
                empty.reshape(0, SMPLX_ROTATIONS, 3, 3),
                empty.reshape(0, config.num_betas),
                empty.reshape(0, EXPRESSION_COEFFICIENTS),
            )
        rays = fourier_ray_embedding(
            patch_rays(intrinsics, config.grid, config.patch_size), config.camera_bands, config.camera_max_resolution
        )
        context = torch.cat([features, rays.to(features.dtype)], dim=-1)
        central = features[batch, rows, cols]
        offsets = self.center_offset(central).float()
        prediction = self.head(context, batch, rows, cols)

        centers_px = (torch.stack([cols, rows], dim=-1).float() + 0.5 + offsets) * config.patch_size
        k = intrinsics[batch].float()
        depth = self.metric_depth(prediction.camera[:, 0], k[:, 0, 0])
        homogeneous = torch.cat([centers_px, torch.ones_like(centers_px[:, :1])], dim=-1)
        centers_cam = torch.einsum("pij,pj->pi", torch.linalg.inv(k), homogeneous) * depth[:, None]
        rotations = rotation_6d_to_matrix(prediction.pose_6d.float().reshape(people, SMPLX_ROTATIONS, 6))
        return MultiHMROutput(
            scores=scores,
            batch=batch,
            rows=rows,
            cols=cols,
            person_scores=scores[batch, rows, cols].float(),
            centers_px=centers_px,
            depth=depth,
            centers_cam=centers_cam,
            rotations=rotations,
            betas=prediction.betas.float(),
            expression=prediction.expression.float(),
        )
