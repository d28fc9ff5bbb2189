"""Render -> Localize -> Lift: a photo and an object label to per-vertex contact on the body and the object.

Human contact: InteractVLM segments its 4 canonical SMPL-H renders; the soft human lifter gives 6890 values,
the SMPL->SMPL-X matrix 10475. Object contact: the user's mesh is normalised and rendered from the 4 object
views, segmented, and lifted with the thresholded object lifter. When the model generates no contact token
the contact is None and `reason` says so: there is nothing to lift, and zeros would read as "no contact".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ivlm_core.lift.canonical_body import CanonicalBodyViews
from ivlm_core.lift.operator import lift_object_once
from ivlm_core.lift.smplx_conversion import smpl_to_smplx
from ivlm_core.localize.localizer import Localizer, LocalizeResult
from ivlm_core.mesh import TriangleMesh
from ivlm_core.render.canonical import ObjectViewRenders, render_object_views

NO_CONTACT_TOKEN = "the model generated no contact token, so it predicts no contact region"


@dataclass
class HumanContact:
    """Per-vertex contact probabilities on SMPL-H [6890] and SMPL-X [10475], or None (see `reason`)."""

    smplh: np.ndarray | None
    smplx: np.ndarray | None
    localize: LocalizeResult
    reason: str | None = None


@dataclass
class ObjectContact:
    """Per-vertex contact [N] on the user's mesh (its own vertex order), or None (see `reason`)."""

    vertices: np.ndarray | None
    localize: LocalizeResult
    renders: ObjectViewRenders
    reason: str | None = None


def estimate_human_contact(
    localizer: Localizer,
    photo: np.ndarray,
    label: str,
    body_views: CanonicalBodyViews,
    mapping: sp.csr_matrix,
    *,
    mode: str = "hcontact",
) -> HumanContact:
    result = localizer.localize(photo, label, mode, views=body_views.sam_images)
    if result.logits is None:
        return HumanContact(None, None, result, result.cap_note or NO_CONTACT_TOKEN)
    device = result.logits.device
    smplh = body_views.lift_operator(device).human(result.logits).cpu().numpy()
    return HumanContact(smplh, smpl_to_smplx(smplh, mapping), result)


def estimate_object_contact(
    localizer: Localizer,
    photo: np.ndarray,
    label: str,
    mesh: TriangleMesh,
    *,
    mode: str = "oafford",
    device: str = "cpu",
) -> ObjectContact:
    renders = render_object_views(mesh, device=device)
    result = localizer.localize(photo, label, mode, views=renders.sam_images)
    if result.logits is None:
        return ObjectContact(None, result, renders, result.cap_note or NO_CONTACT_TOKEN)
    contact = lift_object_once(renders.fragments, renders.faces, renders.num_vertices, result.logits).cpu().numpy()
    return ObjectContact(contact, result, renders)
