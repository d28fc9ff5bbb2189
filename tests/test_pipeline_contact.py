"""Localize plugged into Render-Lift: per-vertex contact from a photo and a label, and the no-contact outcome."""

import numpy as np
import pytest
import torch

from ivlm_core import paths
from ivlm_core.demo.objects import mug
from ivlm_core.demo.tiny_release import write_tiny_release
from ivlm_core.lift.canonical_body import load_canonical_body_views
from ivlm_core.lift.operator import LiftOperator
from ivlm_core.lift.pixel_maps import PixelMaps
from ivlm_core.lift.smplx_conversion import load_mapping
from ivlm_core.localize.localizer import Localizer
from ivlm_core.pipeline.contact import NO_CONTACT_TOKEN, estimate_human_contact, estimate_object_contact
from ivlm_core.render.views import OBJECT_VIEWS


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
    # The one-off lift gives what the precomputed operator gives on the same renders and masks.
    maps = PixelMaps.from_fragments(
        contact.renders.fragments, contact.renders.faces, mesh.num_vertices, OBJECT_VIEWS.names
    )
    expected = LiftOperator(maps).object(contact.localize.logits).numpy()
    assert np.allclose(contact.vertices, expected, atol=1e-5)
    assert (contact.vertices > 0).sum() == (expected > 0).sum()


def test_no_contact_token_is_a_clear_outcome(tiny_models, body, tmp_path):
    views, mapping = body
    name = "interactvlm-3d-hcontact-damon"
    folder = write_tiny_release(tmp_path / name, name, tiny_models.clip, scripted=False)  # random LLM: no [SEG]
    localizer = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    contact = estimate_human_contact(localizer, PHOTO, "bench", views, mapping)
    assert not contact.localize.found_contact and contact.localize.logits is None
    assert contact.smplh is None and contact.smplx is None
    # A random LLM rambles until the answer cap: that is reported as unknown contact, never as "no contact".
    expected = contact.localize.cap_note if contact.localize.stopped_at_cap else NO_CONTACT_TOKEN
    assert contact.reason == expected and expected
    assert len(contact.localize.token_ids) > 0  # it did answer, just without a contact token


def _awkward_meshes():
    """Object meshes as users send them that are valid but awkward (see ivlm_core.mesh.review_object_mesh)."""
    from ivlm_core.demo import primitives
    from ivlm_core.mesh import TriangleMesh

    tube = primitives.cylinder(64, 0.04, 0.1)
    original = mug().mesh
    zero_area = np.concatenate([original.faces, np.repeat(original.faces[:2000, :1], 3, axis=1)])
    return {
        "2-triangle 10 m floor": primitives.plane(10.0),
        "80k slivers": primitives.cylinder(20_000),
        "zero-area faces": TriangleMesh(original.vertices, zero_area),
        "open tube, no thickness": TriangleMesh(tube.vertices, tube.faces[:128]),
    }


@pytest.fixture(scope="module")
def object_localizer(tiny_models):
    folder = tiny_models.releases["interactvlm-3d-oafford-lemon-piad"]
    return Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)


@pytest.mark.parametrize("name", list(_awkward_meshes()))
def test_contact_stage_on_awkward_meshes(object_localizer, name):
    mesh = _awkward_meshes()[name]
    contact = estimate_object_contact(object_localizer, PHOTO, "thing", mesh)
    assert contact.renders.fragments.mask.float().mean() > 0.01  # drawn in the 4 views
    assert contact.vertices.shape == (mesh.num_vertices,) and np.isfinite(contact.vertices).all()
    assert 0 <= contact.vertices.min() and contact.vertices.max() <= 1
