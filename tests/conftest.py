"""Shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def synthetic_body_files(tmp_path_factory: pytest.TempPathFactory):
    """The synthetic demo bodies (SMPL-X, SMPL-H, SMPL->SMPL-X mapping), generated once per session
    into the cache (IVLM_CACHE_DIR; a temp dir when the runner did not set one)."""
    if not os.environ.get("IVLM_CACHE_DIR"):
        os.environ["IVLM_CACHE_DIR"] = str(tmp_path_factory.mktemp("ivlm-cache"))
    from ivlm_core.demo import ensure_synthetic_body_models

    return ensure_synthetic_body_models()


@pytest.fixture(scope="session")
def canonical_views(synthetic_body_files):
    """The canonical body views regenerated from the synthetic SMPL-H (cached for the session)."""
    from ivlm_core import paths
    from ivlm_core.lift.canonical_body import load_canonical_body_views

    root = synthetic_body_files.root
    return load_canonical_body_views(paths.interactvlm_data_dir(root), paths.body_models_dir(root))


@pytest.fixture(scope="session")
def tiny_models(synthetic_body_files):
    """Tiny release-format InteractVLM folders for every model-zoo variant, plus a tiny CLIP folder."""
    from ivlm_core.demo.tiny_release import ensure_tiny_models

    return ensure_tiny_models()


@pytest.fixture(scope="session")
def tiny_perception(tmp_path_factory: pytest.TempPathFactory):  # returns dict[str, Path]
    """Tiny random-weight Grounding DINO, SAM and ViTPose folders (DEMO models), keyed by name; they sit at
    `<root>/perception/<name>`, so `Perceiver.from_models_dir(root)` loads them."""
    from ivlm_core.demo.tiny_perception import ensure_tiny_perception

    return ensure_tiny_perception(tmp_path_factory.mktemp("tiny-perception"))
