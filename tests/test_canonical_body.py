"""Canonical body views: regenerated from SMPL-H and cached, or InteractVLM's shipped files; body lift round trip."""

import shutil

import numpy as np
import pytest

from ivlm_core import paths
from ivlm_core.body import load_body_model
from ivlm_core.demo.contact_demo import ground_truth_logits
from ivlm_core.errors import ModelFilesMissingError
from ivlm_core.lift.canonical_body import SOURCE_FILE, load_canonical_body_views
from ivlm_core.render.views import HUMAN_VIEWS


def test_regenerated_views_are_demo_flagged_and_cached(canonical_views, synthetic_body_files):
    assert canonical_views.origin == "regenerated"
    assert canonical_views.is_demo
    assert canonical_views.sam_images.shape == (4, 1024, 1024, 3)
    assert canonical_views.maps.view_names == tuple(HUMAN_VIEWS.names)
    assert (canonical_views.folder / SOURCE_FILE).is_file()
    root = synthetic_body_files.root
    again = load_canonical_body_views(paths.interactvlm_data_dir(root), paths.body_models_dir(root))
    assert again.folder == canonical_views.folder  # read back from the cache, not re-rendered
    assert np.array_equal(again.maps.vertex_ids, canonical_views.maps.vertex_ids)
    assert np.array_equal(again.sam_images, canonical_views.sam_images)


def test_views_show_the_whole_body_on_white(canonical_views):
    valid = canonical_views.maps.valid()
    assert 0.05 < valid.mean() < 0.6
    background = canonical_views.sam_images[~valid]
    assert (background == 255).all()
    # Every vertex of the body's outer surface is seen by some view: InteractVLM's 4 views cover the body.
    assert canonical_views.lift_operator().visible().float().mean() > 0.97


@pytest.mark.parametrize("folder_name", ["hcontact_vitruvian", "hcontact_vitruvian_mv2"])
def test_shipped_data_folder_is_used_as_is(tmp_path, canonical_views, folder_name):
    data = tmp_path / "data"
    shutil.copytree(canonical_views.folder, data / folder_name)
    (data / folder_name / SOURCE_FILE).unlink()  # shipped folders have no provenance file of ours
    views = load_canonical_body_views(data, tmp_path / "no-body-models")
    assert views.origin == "interactvlm-data"
    assert views.folder == data / folder_name
    assert not views.is_demo
    assert np.array_equal(views.maps.vertex_ids, canonical_views.maps.vertex_ids)


def test_no_data_and_no_body_model_says_both_ways_to_fix(tmp_path):
    with pytest.raises(ModelFilesMissingError) as info:
        load_canonical_body_views(tmp_path / "data", tmp_path / "body_models")
    assert "hcontact_vitruvian" in info.value.message and "SMPLH_NEUTRAL" in info.value.message
    assert "data.zip" in info.value.hint and "mano.is.tue.mpg.de" in info.value.hint


def _region(synthetic_body_files, joints, threshold=0.5):
    model = load_body_model("smplh", folder=paths.body_models_dir(synthetic_body_files.root)).model
    weights = model.lbs_weights.numpy()
    return weights[:, joints].sum(1) > threshold


@pytest.mark.parametrize(
    "name, joints",
    [
        ("buttocks and thighs", [0, 1, 2]),
        ("right hand", [21, *range(37, 52)]),
        ("left foot", [7, 10]),
        ("back", [3, 6, 9]),
    ],
)
def test_body_lift_round_trip(canonical_views, synthetic_body_files, name, joints):
    """Mark vertices, render their per-view masks, lift back: F1 >= 0.95 over vertices seen by some view."""
    truth = _region(synthetic_body_files, joints)
    logits = ground_truth_logits(canonical_views.maps, truth.astype(np.float32))
    lifter = canonical_views.lift_operator()
    predicted = lifter.human(logits).numpy() >= 0.5
    visible = lifter.visible().numpy()
    assert truth[visible].sum() > 50, name
    tp = np.sum(predicted & truth & visible)
    f1 = 2 * tp / (np.sum(predicted & visible) + np.sum(truth & visible))
    assert f1 >= 0.95, f"{name}: F1 {f1:.3f}"
