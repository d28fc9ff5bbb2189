"""InteractVLM's SMPL -> SMPL-X contact mapping (`data/smpl_to_smplx.pkl`): contact_smplx = M @ contact_smpl.

The file is a pickled dict whose `matrix` is [10475, 6890], dense (as shipped with InteractVLM and DECO)
or scipy sparse (as the demo writes it). It is read with the restricted unpickler, never `pickle.load`.

joblib: joblib pickles keep array bytes outside the pickle stream, in a layout that changes between
joblib versions and compressors. Rather than parse that, such files are refused with a message saying
how to convert them once into a plain pickle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ivlm_core.body.model_files import BROKEN_FILE_HINT, read_model_file
from ivlm_core.errors import ModelFileError, ModelFilesMissingError

SMPLX_VERTICES, SMPL_VERTICES = 10475, 6890


def load_smpl_to_smplx(path: Path) -> sp.csr_matrix:
    """The mapping as a float32 CSR matrix [10475, 6890]; ModelFilesMissingError / ModelFileError if
    the file is absent, unsafe or of the wrong shape."""
    path = Path(path)
    if not path.is_file():
        raise ModelFilesMissingError(
            f"SMPL -> SMPL-X mapping {path.name} not found in {path.parent}.",
            "It is part of InteractVLM's data.zip (data/smpl_to_smplx.pkl; registration at the InteractVLM "
            f"site): unzip it so that the file is at {path}.",
        )
    data = read_model_file(path)
    if "matrix" not in data:
        raise ModelFileError(f"{path} has no 'matrix' entry (keys: {sorted(map(str, data))}).", BROKEN_FILE_HINT)
    matrix = data["matrix"]
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
    elif isinstance(matrix, np.ndarray) and matrix.ndim == 2 and np.issubdtype(matrix.dtype, np.number):
        matrix = sp.csr_matrix(matrix.astype(np.float32))
    else:
        raise ModelFileError(
            f"{path}: 'matrix' is a {type(matrix).__name__}, not a 2-D numeric matrix.", BROKEN_FILE_HINT
        )
    if matrix.shape != (SMPLX_VERTICES, SMPL_VERTICES):
        raise ModelFileError(
            f"{path}: 'matrix' has shape {matrix.shape}, expected ({SMPLX_VERTICES}, {SMPL_VERTICES}).",
            BROKEN_FILE_HINT,
        )
    if not np.isfinite(matrix.data).all():
        raise ModelFileError(f"{path}: 'matrix' contains NaN or infinite values.", BROKEN_FILE_HINT)
    return matrix
