"""Body models: safe loading of SMPL-X / SMPL-H files through smplx, the canonical Vitruvian body, and
the SMPL -> SMPL-X contact mapping."""

from ivlm_core.body.canonical import CanonicalBody, canonical_body, vitruvian_body_pose
from ivlm_core.body.mapping import load_smpl_to_smplx
from ivlm_core.body.model_files import (
    SanitisedModel,
    find_model_file,
    read_model_file,
    sanitise_model_file,
)
from ivlm_core.body.models import LoadedBodyModel, load_body_model

__all__ = [
    "CanonicalBody",
    "LoadedBodyModel",
    "SanitisedModel",
    "canonical_body",
    "find_model_file",
    "load_body_model",
    "load_smpl_to_smplx",
    "read_model_file",
    "sanitise_model_file",
    "vitruvian_body_pose",
]
