"""Where the project reads model files from and where it caches what it generates.

Model folder (`IVLM_MODELS_DIR`, default `~/ivlm-models`), laid out as:

    body_models/smplx/SMPLX_NEUTRAL.npz   (or .pkl)   SMPL-X, from https://smpl-x.is.tue.mpg.de
    body_models/smplh/SMPLH_NEUTRAL.npz   (or .pkl)   SMPL-H, from https://mano.is.tue.mpg.de
    interactvlm/data/...                              InteractVLM's data.zip, unzipped here
    interactvlm/trained_models/<release>/             InteractVLM release zips, unzipped here
    clip-vit-large-patch14/                           openai/clip-vit-large-patch14 from the Hugging Face hub
    perception/grounding-dino/                        IDEA-Research/grounding-dino-tiny (or -base) from the hub
    perception/sam/                                   facebook/sam-vit-base (or -large, -huge) from the hub
    perception/vitpose/                               usyd-community/vitpose-base-simple from the hub
    perception/vitpose-wholebody/vitpose+_base.pth    ViTPose++ release (whole-body keypoints; optional)
    multihmr/multiHMR_896_L.pt                        optional: Multi-HMR (github.com/naver/multi-hmr, CC BY-NC-SA 4.0)

Cache folder (`IVLM_CACHE_DIR`, default `$XDG_CACHE_HOME/ivlm` or `~/.cache/ivlm`): generated demo
assets and regenerated render maps. It can be deleted at any time.
"""

from __future__ import annotations

import os
from pathlib import Path


def models_dir() -> Path:
    """The folder holding the user's model files."""
    return Path(os.environ.get("IVLM_MODELS_DIR", Path.home() / "ivlm-models")).expanduser()


def cache_dir() -> Path:
    """The folder for generated, reproducible files (created on demand)."""
    env = os.environ.get("IVLM_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
        path = base / "ivlm"
    path.mkdir(parents=True, exist_ok=True)
    return path


def body_models_dir(root: Path | None = None) -> Path:
    return (root or models_dir()) / "body_models"


def interactvlm_data_dir(root: Path | None = None) -> Path:
    return (root or models_dir()) / "interactvlm" / "data"


def interactvlm_release_dir(name: str, root: Path | None = None) -> Path:
    """Where an unzipped release lives, e.g. interactvlm-3d-hcontact-damon-fix."""
    return (root or models_dir()) / "interactvlm" / "trained_models" / name


def clip_dir(root: Path | None = None) -> Path:
    """The CLIP ViT-L/14 folder (releases do not contain the vision tower)."""
    return (root or models_dir()) / "clip-vit-large-patch14"


PERCEPTION_MODEL_NAMES = ("grounding-dino", "sam", "vitpose", "vitpose-wholebody")


def perception_dir(name: str, root: Path | None = None) -> Path:
    """A Perceive-stage model folder (detector, segmenter, keypoints), in the hub's `save_pretrained` layout."""
    if name not in PERCEPTION_MODEL_NAMES:
        raise ValueError(f"unknown perception model {name!r}; choose one of {', '.join(PERCEPTION_MODEL_NAMES)}")
    return (root or models_dir()) / "perception" / name


MULTIHMR_FILENAME = "multiHMR_896_L.pt"


def multihmr_checkpoint(root: Path | None = None) -> Path:
    """The optional Multi-HMR release checkpoint (a learned first body estimate for the fit)."""
    return (root or models_dir()) / "multihmr" / MULTIHMR_FILENAME
