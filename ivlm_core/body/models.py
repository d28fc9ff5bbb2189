"""Loading SMPL-X / SMPL-H body models through smplx, from the user's files or the demo ones.

The user's file is found (`find_model_file`), read safely and sanitised (`sanitise_model_file`); smplx
then loads the sanitised copy, so the same path serves real and synthetic demo files. The result says
whether the model is the synthetic demo body, so demo output can be flagged.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import smplx

from ivlm_core.body.model_files import SPECS, find_model_file, sanitise_model_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedBodyModel:
    """An smplx module and where it came from."""

    model: smplx.SMPL  # SMPLX, SMPLH or their *Layer variants (all subclass SMPL); smplx ships no types
    model_type: str  # "smplx" or "smplh"
    gender: str
    source: Path  # the user's (or demo) file that was read
    synthetic_version: str | None  # set when the file is the project's synthetic demo body

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic_version is not None


def load_body_model(
    model_type: str = "smplx",
    gender: str = "neutral",
    folder: Path | None = None,
    *,
    path: Path | None = None,
    layer: bool = False,
    **smplx_kwargs: Any,
) -> LoadedBodyModel:
    """Loads `model_type` ("smplx" or "smplh") as an smplx module.

    folder: the body-models folder holding smplx/ and smplh/ (default: `paths.body_models_dir()`);
    path: a model file to use instead of looking in `folder`;
    layer: build smplx's *Layer variant (rotation-matrix inputs, no stored pose parameters);
    smplx_kwargs: passed on to smplx (num_betas, use_pca, flat_hand_mean, batch_size, ...).
    Raises ModelFilesMissingError or ModelFileError with what is wrong and how to fix it.
    """
    import smplx

    spec = SPECS[model_type] if model_type in SPECS else None
    if spec is None:
        raise ValueError(f"unknown body model type {model_type!r}; use one of {', '.join(SPECS)}")
    source = Path(path) if path is not None else find_model_file(model_type, gender, folder)
    sanitised = sanitise_model_file(source, model_type)
    classes = {
        ("smplx", False): smplx.SMPLX,
        ("smplx", True): smplx.SMPLXLayer,
        ("smplh", False): smplx.SMPLH,
        ("smplh", True): smplx.SMPLHLayer,
    }
    cls = classes[(model_type, layer)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # smplx prints notes such as "only 10 shape coefficients"
        model = cls(str(sanitised.path), ext="npz", gender=gender, **smplx_kwargs)
    if printed.getvalue().strip():
        log.info("smplx (%s): %s", source.name, printed.getvalue().strip())
    return LoadedBodyModel(
        model=model, model_type=model_type, gender=gender, source=source, synthetic_version=sanitised.synthetic_version
    )
