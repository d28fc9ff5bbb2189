"""InteractVLM's small heads between the language model and SAM (spec §1.5, §1.6, §2.6).

Attribute names match the released state-dict keys (`text_hidden_fcs.0.{0,2}`, `cam_pose_encoder.*`,
`attention_splitter.*`) so weights load by name. Forward passes follow upstream's `process_embeddings`:
camera conditioning first, then (joint model only) the human/object split.
"""

from __future__ import annotations

import torch
from torch import nn


def text_hidden_fcs(hidden_size: int, out_dim: int) -> nn.Sequential:
    """LLM final hidden state -> SAM prompt space: Linear, ReLU, Linear (+ an inert Dropout(0), for key indices)."""
    return nn.Sequential(
        nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, out_dim), nn.Dropout(0.0)
    )


class AddCameraEncoder(nn.Module):
    """Type "simple": ReLU(Linear(5 -> D)) of each view's camera vector, ADDED to the seg embedding."""

    def __init__(self, out_dim: int = 256, camera_dim: int = 5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(camera_dim, out_dim)

    def forward(self, embeddings: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
        """embeddings [n, V, D], cameras [V, 5] -> [n, V, D]."""
        return embeddings + torch.relu(self.linear1(cameras))


class ViewIndexCameraEncoder(nn.Module):
    """Type "view_index": Linear-ReLU-Linear-Sigmoid of the camera vector, a per-view Linear, MULTIPLIED in."""

    def __init__(self, num_views: int, out_dim: int = 256, camera_dim: int = 5) -> None:
        super().__init__()
        self.spatial_encoder = nn.Sequential(
            nn.Linear(camera_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.Sigmoid()
        )
        self.view_transforms = nn.ModuleList(nn.Linear(out_dim, out_dim) for _ in range(num_views))

    def view_encodings(self, cameras: torch.Tensor) -> torch.Tensor:
        base = self.spatial_encoder(cameras)
        return torch.stack([transform(base[v]) for v, transform in enumerate(self.view_transforms)])

    def forward(self, embeddings: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
        return embeddings * self.view_encodings(cameras)


class GateCameraEncoder(ViewIndexCameraEncoder):
    """Type "vi_v1" (every released 3D model): Linear-ReLU-Linear-ReLU to 128, a per-view Linear to D,
    then a sigmoid: a per-view gate in (0, 1) multiplied into the seg embedding (the paper's FeatLift)."""

    def __init__(self, num_views: int, out_dim: int = 256, camera_dim: int = 5, hidden: int = 128) -> None:
        nn.Module.__init__(self)
        self.spatial_encoder = nn.Sequential(
            nn.Linear(camera_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.view_transforms = nn.ModuleList(nn.Linear(hidden, out_dim) for _ in range(num_views))

    def view_encodings(self, cameras: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().view_encodings(cameras))


def camera_encoder(kind: str, num_views: int, out_dim: int = 256) -> nn.Module:
    if kind == "simple":
        return AddCameraEncoder(out_dim)
    if kind == "view_index":
        return ViewIndexCameraEncoder(num_views, out_dim)
    if kind == "vi_v1":
        return GateCameraEncoder(num_views, out_dim)
    raise ValueError(f"unknown camera encoder type {kind!r}")


class AttentionSplitter(nn.Module):
    """Joint model: one seg embedding per view -> a human or an object variant, by attention over the V views.

    Both branches share keys, values and the output projection; only the query differs. No residual.
    """

    def __init__(self, dim: int = 256, hidden: int = 128) -> None:
        super().__init__()
        self.input_proj = nn.Linear(dim, hidden)
        self.query_human = nn.Linear(hidden, hidden)
        self.query_object = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.output_proj = nn.Linear(hidden, dim)

    def forward(self, embeddings: torch.Tensor, branch: str) -> torch.Tensor:
        """embeddings [n, V, D] -> [n, V, D] for branch "human" or "object"."""
        x = self.input_proj(embeddings)
        keys, values = self.key(x), self.value(x)
        query = (self.query_human if branch == "human" else self.query_object)(x)
        weights = torch.softmax(query @ keys.transpose(-2, -1) / keys.shape[-1] ** 0.5, dim=-1)
        return self.output_proj(weights @ values)
