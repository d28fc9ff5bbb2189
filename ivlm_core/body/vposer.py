"""VPoser (Pavlakos et al. 2019, version 2: `human_body_prior`'s V02_05), loaded without its research code.

VPoser is a variational autoencoder of SMPL-X body poses (21 joints). Its decoder maps a 32-D latent to
21 rotations through the 6D representation (two columns, Gram-Schmidt, cross product), so a fit that moves
the latent instead of the joint angles stays on poses people make; the prior is the latent's squared norm.
The weights come from the SMPL-X site (registration, "VPoser v2.0"; licence as SMPL-X) and are never shipped.

Release layout (the unzipped download), under `<models>/body_models/vposer/`:

    V02_05/V02_05.yaml                                   model_params: latentD 32, num_neurons 512
    V02_05/snapshots/V02_05_epoch=<n>_val_loss=<x>.ckpt  a PyTorch Lightning checkpoint

The checkpoint is read with `weights_only` (Lightning's hyper-parameter `AttributeDict` rebuilt as a plain dict,
nothing else allowed, `ivlm_core.torch_files`). Its `state_dict` keys are `vp_model.<upstream module path>`;
every one is mapped onto `VPoserNet` by name (`UPSTREAM_NAMES`), and an unknown or missing key is an error that
names it. Keys of the trainer's own copy of the body model (`bm_train.`), if present, are known and skipped.
Layer sizes are read from the weights, so tiny generated checkpoints load through the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ivlm_core import paths
from ivlm_core.errors import ModelFileError, ModelFilesMissingError
from ivlm_core.torch_files import LIGHTNING_DICTS, load_checkpoint

RELEASE = "V02_05"
SITE = "https://smpl-x.is.tue.mpg.de"
NUM_JOINTS = 21
DEMO_MARKER_KEY = "ivlm_tiny_demo"
# Upstream module path (inside vp_model.) -> ours. Upstream's Sequential indices: encoder 0 flatten, 1 BatchNorm1d,
# 2 Linear, 3 LeakyReLU, 4 BatchNorm1d, 5 Dropout, 6 Linear, 7 Linear, 8 (mu, logvar); decoder 0 Linear,
# 1 LeakyReLU, 2 Dropout, 3 Linear, 4 LeakyReLU, 5 Linear (to 6D), 6 the 6D -> matrix step.
UPSTREAM_NAMES = {
    "encoder_net.1": "enc_norm_in",
    "encoder_net.2": "enc_fc1",
    "encoder_net.4": "enc_norm1",
    "encoder_net.6": "enc_fc2",
    "encoder_net.7": "enc_fc3",
    "encoder_net.8.mu": "enc_mu",
    "encoder_net.8.logvar": "enc_logvar",
    "decoder_net.0": "dec_fc1",
    "decoder_net.3": "dec_fc2",
    "decoder_net.5": "dec_out",
}
SKIPPED_PREFIXES = ("bm_train.",)  # the trainer's body model buffers: not part of VPoser
_SNAPSHOT = re.compile(r"epoch=(\d+)")


def vposer_dir(root: Path | None = None) -> Path:
    """Where the unzipped VPoser release goes: <models>/body_models/vposer/V02_05."""
    return paths.body_models_dir(root) / "vposer" / RELEASE


def download_hint(folder: Path) -> str:
    return (
        f"VPoser v2.0 is on the SMPL-X site ({SITE}, registration, Download > VPoser): unzip it so that {folder} "
        "holds V02_05.yaml and snapshots/*.ckpt. Without it the fit uses its licence-free joint limits."
    )


class VPoserNet(nn.Module):
    """VPoser v2's encoder (pose -> latent mean) and decoder (latent -> 21 rotation matrices)."""

    def __init__(self, num_neurons: int, latent: int) -> None:
        super().__init__()
        features = NUM_JOINTS * 3
        self.latent_dim = latent
        self.enc_norm_in = nn.BatchNorm1d(features)
        self.enc_fc1 = nn.Linear(features, num_neurons)
        self.enc_norm1 = nn.BatchNorm1d(num_neurons)
        self.enc_fc2 = nn.Linear(num_neurons, num_neurons)
        self.enc_fc3 = nn.Linear(num_neurons, num_neurons)
        self.enc_mu = nn.Linear(num_neurons, latent)
        self.enc_logvar = nn.Linear(num_neurons, latent)
        self.dec_fc1 = nn.Linear(latent, num_neurons)
        self.dec_fc2 = nn.Linear(num_neurons, num_neurons)
        self.dec_out = nn.Linear(num_neurons, NUM_JOINTS * 6)

    def encode(self, pose: torch.Tensor) -> torch.Tensor:
        """Axis-angle body poses [B, 63] -> latent means [B, latent] (eval mode: no dropout, running BN stats)."""
        x = self.enc_norm_in(pose.reshape(pose.shape[0], -1))
        x = F.leaky_relu(self.enc_fc1(x))
        x = self.enc_norm1(x)
        x = self.enc_fc3(self.enc_fc2(x))  # upstream has no activation between these two
        return self.enc_mu(x)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latents [B, latent] -> rotation matrices [B, 21, 3, 3]."""
        x = F.leaky_relu(self.dec_fc1(latent))
        x = F.leaky_relu(self.dec_fc2(x))
        return rotation_6d_columns(self.dec_out(x)).reshape(latent.shape[0], NUM_JOINTS, 3, 3)


def rotation_6d_columns(x: torch.Tensor) -> torch.Tensor:
    """[..., 6] read as a 3x2 matrix (row-major) whose columns are Gram-Schmidt-ed into the first two columns of a
    rotation; the third is their cross product. Returns [N, 3, 3] (VPoser's ContinousRotReprDecoder)."""
    pair = x.reshape(-1, 3, 2)
    b1 = F.normalize(pair[:, :, 0], dim=1)
    b2 = F.normalize(pair[:, :, 1] - (b1 * pair[:, :, 1]).sum(1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2, dim=1)], dim=-1)


@dataclass
class VPoser:
    """A loaded VPoser: `encode`/`decode` for the fit, where it came from, and whether it is a DEMO stand-in."""

    net: VPoserNet
    source: Path
    is_demo: bool

    @property
    def latent_dim(self) -> int:
        return self.net.latent_dim

    def encode(self, pose: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.net.encode(pose)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net.decode(latent)


def find_snapshot(folder: Path) -> Path:
    """The release's checkpoint with the highest epoch in its name (upstream takes the newest file)."""
    snapshots = sorted((folder / "snapshots").glob("*.ckpt")) if (folder / "snapshots").is_dir() else []
    if not snapshots:
        raise ModelFilesMissingError(f"no VPoser checkpoint in {folder / 'snapshots'}.", download_hint(folder))

    def epoch(path: Path) -> int:
        match = _SNAPSHOT.search(path.name)
        return int(match.group(1)) if match else -1

    return max(snapshots, key=lambda p: (epoch(p), p.name))


def load_vposer(folder: Path | None = None, root: Path | None = None) -> VPoser:
    """The VPoser release in `folder` (default `vposer_dir(root)`). Raises ModelFilesMissingError when absent and
    ModelFileError when the file is damaged or holds other weights."""
    folder = Path(folder) if folder is not None else vposer_dir(root)
    snapshot = find_snapshot(folder)
    hint = download_hint(folder)
    checkpoint = load_checkpoint(snapshot, "the VPoser checkpoint", hint, LIGHTNING_DICTS)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{snapshot} has no state_dict of tensors: it is not a VPoser checkpoint.", hint)
    ours = map_state_dict(state, snapshot, hint)
    if "enc_fc1.weight" not in ours or "enc_mu.weight" not in ours:
        raise ModelFileError(f"{snapshot} lacks VPoser's encoder weights (vp_model.encoder_net.*).", hint)
    num_neurons, latent = ours["enc_fc1.weight"].shape[0], ours["enc_mu.weight"].shape[0]
    net = VPoserNet(num_neurons, latent)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(ours))
    wrong = sorted(k for k in set(expected) & set(ours) if expected[k].shape != ours[k].shape)
    if missing or wrong:
        raise ModelFileError(
            f"{snapshot} does not match VPoser v2 ({num_neurons} neurons, latent {latent}): "
            f"missing {missing[:5]}, mis-shaped {wrong[:5]}.",
            hint,
        )
    net.load_state_dict(ours, strict=True)
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    demo = isinstance(checkpoint, dict) and bool(checkpoint.get(DEMO_MARKER_KEY))
    return VPoser(net, snapshot, demo)


def map_state_dict(state: dict[str, torch.Tensor], source: Path, hint: str) -> dict[str, torch.Tensor]:
    """Upstream `vp_model.*` keys -> VPoserNet keys; the trainer's body model skipped; anything else is an error."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith(SKIPPED_PREFIXES):
            continue
        module, _, leaf = key.removeprefix("vp_model.").rpartition(".")
        if not key.startswith("vp_model.") or module not in UPSTREAM_NAMES:
            unknown.append(key)
            continue
        out[f"{UPSTREAM_NAMES[module]}.{leaf}"] = value
    if unknown:
        raise ModelFileError(
            f"{source} has {len(unknown)} weights VPoser v2 does not have (e.g. {', '.join(unknown[:5])}): "
            "it is another model's checkpoint.",
            hint,
        )
    return out
