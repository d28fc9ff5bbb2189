"""Multi-HMR's architecture as numbers: what the release's stored `args` and weight shapes say.

Multi-HMR (Baradel et al. 2024, github.com/naver/multi-hmr) is a DINOv2 ViT followed by a "human prediction
head" (HPH). Upstream builds the network from the `args` saved in the checkpoint; some sizes are fixed in its
code (HPH width 1024, 32 per attention head, 53 joint rotations), so we read those from the weight shapes
instead, which also lets the project's tiny generated checkpoint use small ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transformers import Dinov2Config

# Where the head's predicted translation sits on the body (upstream's `person_center`), as smplx joint indices.
PERSON_CENTERS = {"pelvis": 0, "head": 15, "nose": 55}
DINOV2_HEAD_DIM = 64  # every DINOv2 ViT (S/B/L/g) has 64 channels per attention head
SMPLX_ROTATIONS = 53  # global orientation, 21 body joints, 15 + 15 hand joints, the jaw
EXPRESSION_COEFFICIENTS = 10


@dataclass(frozen=True)
class MultiHMRConfig:
    """Sizes and switches of one Multi-HMR release (defaults: multiHMR_896_L)."""

    image_size: int = 896  # square input side, pixels
    patch_size: int = 14
    backbone_hidden: int = 1024
    backbone_layers: int = 24
    backbone_mlp_ratio: int = 4
    backbone_position_grid: int = 37  # side of the stored DINOv2 position-embedding grid (518 px / 14)
    camera_bands: int = 16  # Fourier bands of the ray embedding
    camera_max_resolution: int = 64  # highest band frequency is max_resolution / 2
    head_width: int = 1024
    head_depth: int = 2
    head_heads: int = 8
    head_channels_per_head: int = 32
    head_mlp: int = 1024
    num_betas: int = 10
    person_center: str = "head"
    nearness: bool = True  # the head regresses log depth (upstream: "regress log(1/z)")
    fov_normalisation_deg: float = 60.0  # depth is predicted for this field of view, then rescaled by focal length

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of the patch size {self.patch_size}")
        if self.person_center not in PERSON_CENTERS:
            raise ValueError(f"person_center {self.person_center!r}; known: {', '.join(PERSON_CENTERS)}")

    @property
    def grid(self) -> int:
        """Patches per image side."""
        return self.image_size // self.patch_size

    @property
    def backbone_heads(self) -> int:
        return self.backbone_hidden // DINOV2_HEAD_DIM

    @property
    def camera_channels(self) -> int:
        """Ray embedding size: the ray (3) and a sine and a cosine per band and axis."""
        return 3 * (1 + 2 * self.camera_bands)

    @property
    def context_channels(self) -> int:
        """What the head attends to at each patch: the backbone feature and the ray embedding."""
        return self.backbone_hidden + self.camera_channels

    @property
    def pose_channels(self) -> int:
        return 6 * SMPLX_ROTATIONS

    @property
    def token_channels(self) -> int:
        """A person's input token: its patch's context, then the mean pose (6D), shape and camera it refines."""
        return self.context_channels + self.pose_channels + self.num_betas + 3

    @property
    def center_joint(self) -> int:
        return PERSON_CENTERS[self.person_center]

    @property
    def normalisation_focal(self) -> float:
        """The focal length (pixels, at image_size) for which the head's depth is defined."""
        return self.image_size / (2.0 * math.tan(math.radians(self.fov_normalisation_deg) / 2.0))

    def dinov2_config(self) -> Dinov2Config:
        """transformers' config for the backbone at this input size (position embeddings pre-resampled to it)."""
        return Dinov2Config(
            hidden_size=self.backbone_hidden,
            num_hidden_layers=self.backbone_layers,
            num_attention_heads=self.backbone_heads,
            mlp_ratio=self.backbone_mlp_ratio,
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
            layerscale_value=1.0,
            qkv_bias=True,
            use_swiglu_ffn=False,
        )
