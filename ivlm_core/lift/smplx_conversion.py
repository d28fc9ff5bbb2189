"""SMPL(-H) <-> SMPL-X per-vertex contact, through InteractVLM's mapping matrix (spec §4.3).

InteractVLM predicts contact on the 6890-vertex SMPL-H canonical body; the product's bodies are SMPL-X.
`contact_smplx = M @ contact_smpl` with M = data/smpl_to_smplx.pkl [10475, 6890] (rows are barycentric-
like weights), clipped to [0, 1] as a probability must be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ivlm_core import paths
from ivlm_core.body import load_smpl_to_smplx

MAPPING_FILENAME = "smpl_to_smplx.pkl"


def load_mapping(data_dir: Path | None = None) -> sp.csr_matrix:
    """The user's mapping from InteractVLM's data folder (default: `paths.interactvlm_data_dir()`)."""
    return load_smpl_to_smplx((Path(data_dir) if data_dir else paths.interactvlm_data_dir()) / MAPPING_FILENAME)


def smpl_to_smplx(contact_smpl: np.ndarray, mapping: sp.csr_matrix) -> np.ndarray:
    """Per-vertex contact [6890] on SMPL(-H) -> [10475] on SMPL-X."""
    return np.clip(np.asarray(mapping @ np.asarray(contact_smpl, dtype=np.float32)).ravel(), 0.0, 1.0)


def smplx_to_smpl(contact_smplx: np.ndarray, mapping: sp.csr_matrix) -> np.ndarray:
    """The reverse direction, for ground truth given on SMPL-X: each SMPL vertex takes the weighted mean of
    the SMPL-X vertices the matrix draws from it (the normalised transpose). Not an exact inverse."""
    weight = np.asarray(mapping.sum(axis=0)).ravel()
    return np.asarray(mapping.T @ np.asarray(contact_smplx, dtype=np.float32)).ravel() / np.maximum(weight, 1e-12)
