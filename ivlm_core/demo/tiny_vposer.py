"""A tiny random-weight VPoser in the release layout, for tests and the demo (DEMO: its prior is meaningless).

Written like the download: `V02_05/V02_05.yaml` and `V02_05/snapshots/V02_05_epoch=13_val_loss=0.03.ckpt`, a
PyTorch Lightning-style checkpoint (epoch, global_step, `state_dict` keyed `vp_model.<upstream path>`, the
hyper-parameters pickled as Lightning's `AttributeDict`), so `ivlm_core.body.vposer.load_vposer` reads it
through the same code as the real file. The AttributeDict is a local dict subclass saved under Lightning's
class name (Lightning itself is not needed). A top-level marker key says it is a DEMO stand-in.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch

from ivlm_core import paths
from ivlm_core.body.vposer import DEMO_MARKER_KEY, RELEASE, UPSTREAM_NAMES, VPoserNet
from ivlm_core.fileio import atomic_path, ensure_folder_once

TINY_VPOSER_VERSION = "ivlm-tiny-vposer-1"
SNAPSHOT = f"{RELEASE}_epoch=13_val_loss=0.03.ckpt"
_LIGHTNING_MODULE = "pytorch_lightning.utilities.parsing"


class AttributeDict(dict):
    """Saved under Lightning's name so the checkpoint has what a real one has."""


def tiny_vposer_state(num_neurons: int = 32, latent: int = 8, seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Random VPoser weights under upstream's `vp_model.` names (BatchNorm statistics set to plausible values)."""
    torch.manual_seed(seed)
    net = VPoserNet(num_neurons, latent)
    ours = net.state_dict()
    for name, value in ours.items():
        if name.endswith("running_var"):
            value.uniform_(0.5, 1.5)
        elif name.endswith("running_mean"):
            value.normal_(0.0, 0.1)
    upstream = {ours_name: up for up, ours_name in UPSTREAM_NAMES.items()}
    out = OrderedDict()
    for name, value in ours.items():
        module, _, leaf = name.rpartition(".")
        out[f"vp_model.{upstream[module]}.{leaf}"] = value.clone()
    return out


def write_tiny_vposer(folder: Path, num_neurons: int = 32, latent: int = 8, seed: int = 0) -> Path:
    """Writes `<folder>/V02_05.yaml` and `<folder>/snapshots/<SNAPSHOT>`; returns the folder."""
    folder = Path(folder)
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    (folder / f"{RELEASE}.yaml").write_text(
        f"# DEMO: random weights ({TINY_VPOSER_VERSION}), not VPoser\nmodel_params:\n  latentD: {latent}\n"
        f"  num_neurons: {num_neurons}\n"
    )
    hyper = AttributeDict(model_params={"latentD": latent, "num_neurons": num_neurons}, demo=True)
    checkpoint = {
        "epoch": 13,
        "global_step": 1234,
        "pytorch-lightning_version": "1.1.0",
        "state_dict": tiny_vposer_state(num_neurons, latent, seed),
        "hyper_parameters": hyper,
        DEMO_MARKER_KEY: TINY_VPOSER_VERSION,
    }
    parts = _LIGHTNING_MODULE.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]  # pickle imports the package chain
    previous = {name: sys.modules.get(name) for name in names}
    saved_name = (AttributeDict.__module__, AttributeDict.__qualname__)
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    vars(sys.modules[_LIGHTNING_MODULE])["AttributeDict"] = (
        AttributeDict  # a bare stand-in module (no typed attributes)
    )
    AttributeDict.__module__, AttributeDict.__qualname__ = _LIGHTNING_MODULE, "AttributeDict"
    try:
        with atomic_path(folder / "snapshots" / SNAPSHOT) as tmp:
            torch.save(checkpoint, tmp)
    finally:
        AttributeDict.__module__, AttributeDict.__qualname__ = saved_name
        for name, module in previous.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return folder


def ensure_tiny_vposer(root: Path | None = None) -> Path:
    """The tiny release folder `<root>/V02_05` (default root <cache>/demo/tiny_vposer), written once, atomically."""
    root = Path(root) if root is not None else paths.cache_dir() / "demo" / "tiny_vposer"
    ensure_folder_once(root, TINY_VPOSER_VERSION, lambda tmp: write_tiny_vposer(tmp / RELEASE))
    return root / RELEASE
