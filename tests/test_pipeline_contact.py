"""Localize plugged into Render-Lift: per-vertex contact from a photo and a label, and the no-contact outcome."""

import numpy as np
import pytest
import torch

from ivlm_core import paths
from ivlm_core.demo.objects import mug
from ivlm_core.demo.tiny_release import write_tiny_release
from ivlm_core.lift.canonical_body import load_canonical_body_views
from ivlm_core.lift.smplx_conversion import load_mapping
from ivlm_core.localize.localizer import Localizer
from ivlm_core.pipeline.contact import NO_CONTACT_TOKEN, estimate_human_contact, estimate_object_contact


@pytest.fixture(scope="module")
def body(synthetic_body_files):
    root = synthetic_body_files.root
    views = load_canonical_body_views(paths.interactvlm_data_dir(root), paths.body_models_dir(root))
    return views, load_mapping(paths.interactvlm_data_dir(root))


PHOTO = (np.random.default_rng(1).random((240, 320, 3)) * 255).astype(np.uint8)


def test_human_contact_from_a_photo_and_a_label(tiny_models, body):
    views, mapping = body
    localizer = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-hcontact-damon-fix"], tiny_models.clip, dtype=torch.float32
    )
    contact = estimate_human_contact(localizer, PHOTO, "bench", views, mapping)
    assert contact.reason is None and contact.localize.found_contact
    assert contact.smplh.shape == (6890,) and contact.smplx.shape == (10475,)
    assert 0 <= contact.smplh.min() and contact.smplh.max() <= 1 and contact.smplh.std() > 0
    # Lift is the canonical body's lifter applied to the model's masks.
    expected = views.lift_operator().human(contact.localize.logits).numpy()
    assert np.allclose(contact.smplh, expected)


def test_object_contact_on_the_users_mesh(tiny_models):
    localizer = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-oafford-lemon-piad"], tiny_models.clip, dtype=torch.float32
    )
    mesh = mug().mesh
    contact = estimate_object_contact(localizer, PHOTO, "cup", mesh)
    assert contact.vertices.shape == (mesh.num_vertices,)
    lifted = contact.vertices[contact.vertices > 0]
    assert lifted.size and lifted.min() > 0.3  # the object lifter's values are 0 or above its pixel threshold
    assert contact.localize.affordance == "grasp"


def test_no_contact_token_is_a_clear_outcome(tiny_models, body, tmp_path):
    views, mapping = body
    name = "interactvlm-3d-hcontact-damon"
    folder = write_tiny_release(tmp_path / name, name, tiny_models.clip, scripted=False)  # random LLM: no [SEG]
    localizer = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    contact = estimate_human_contact(localizer, PHOTO, "bench", views, mapping)
    assert not contact.localize.found_contact and contact.localize.logits is None
    assert contact.smplh is None and contact.smplx is None
    assert contact.reason == NO_CONTACT_TOKEN
    assert len(contact.localize.token_ids) > 0  # it did answer, just without a contact token
