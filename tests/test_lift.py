"""Lifting: hand-computed values for both of InteractVLM's lifters, map files, and an object round trip."""

import math

import numpy as np
import pytest
import torch

from ivlm_core.demo.objects import DEMO_OBJECTS
from ivlm_core.errors import ModelFileError
from ivlm_core.lift.operator import LiftOperator
from ivlm_core.lift.pixel_maps import PixelMaps, bary_map_filename, vertex_map_filename
from ivlm_core.render.renderer import render_mesh
from ivlm_core.render.shading import interpolate, position_colors
from ivlm_core.render.views import OBJECT_VIEWS, normalize_object_vertices


def tiny_maps() -> PixelMaps:
    """Two views of 2x2 pixels over 4 vertices (pixels listed row by row).

    view 0: pixel 0 shows vertices (0,1,2) with weights (.5,.25,.25); pixel 1 shows (1,2,3) with (.2,.3,.5);
            pixels 2, 3 are background.
    view 1: pixel 0 shows (0,1,2) with weights (1,0,0); the rest is background.
    """
    ids = -np.ones((2, 4, 3), dtype=np.int64)
    bary = np.zeros((2, 4, 3), dtype=np.float32)
    ids[0, 0], bary[0, 0] = [0, 1, 2], [0.5, 0.25, 0.25]
    ids[0, 1], bary[0, 1] = [1, 2, 3], [0.2, 0.3, 0.5]
    ids[1, 0], bary[1, 0] = [0, 1, 2], [1.0, 0.0, 0.0]
    return PixelMaps(("a", "b"), ids.reshape(2, 2, 2, 3), bary.reshape(2, 2, 2, 3), 4)


def test_human_lifter_by_hand():
    op = LiftOperator(tiny_maps())
    # view 0 probabilities: pixel 0 sigmoid(0) = .5, pixel 1 sigmoid(20) ~ 1; view 1 pixel 0 sigmoid(-20) ~ 0.
    logits = torch.tensor([[[0.0, 20.0], [5.0, 5.0]], [[-20.0, 7.0], [7.0, 7.0]]])
    contact = op.human(logits)
    # vertex 0: view 0 -> .5*.5/.5 = .5; view 1 -> 0; visible in both -> (.5 + 0) / 2 = .25
    # vertex 1: view 0 -> (.25*.5 + .2*1) / .45 = .72222; view 1 gives it zero weight -> not visible there
    # vertex 2: (.25*.5 + .3*1) / .55 = .77273;  vertex 3: .5*1/.5 = 1
    assert contact.tolist() == pytest.approx([0.25, 0.722222, 0.772727, 1.0], abs=1e-6)
    assert op.visible_views.tolist() == [2, 1, 1, 1]


def test_human_lifter_clamps_logits_to_plus_minus_20():
    """Upstream clamps logits to [-20, 20] before the sigmoid, so no probability drops below sigmoid(-20)
    (2.06e-9, a float32 normal number); without the clamp a logit of -1000 gives exactly 0."""
    op = LiftOperator(tiny_maps())
    floor = 1.0 / (1.0 + math.exp(20.0))
    # Every visible vertex is a weighted mean of pixels that all sit at the floor. rel 1e-4: float32 sigmoid
    # and the sparse product are a few ulps off the float64 value, far from the 100 % gap to 0.
    assert op.human(torch.full((2, 2, 2), -1000.0)).tolist() == pytest.approx([floor] * 4, rel=1e-4)
    assert op.human(torch.full((2, 2, 2), 1000.0)).tolist() == pytest.approx([1.0] * 4, abs=1e-6)


def test_object_lifter_by_hand():
    op = LiftOperator(tiny_maps())
    # sigmoid(-1) = .2689 is below the 0.3 pixel threshold, sigmoid(1) = .7311 above it.
    logits = torch.tensor([[[-1.0, 1.0], [9.0, 9.0]], [[1.0, 9.0], [9.0, 9.0]]])
    contact = op.object(logits)
    p = 1 / (1 + np.exp(-1.0))
    # view 0: only pixel 1 is selected -> vertices 1, 2, 3 get p; vertex 0 nothing.
    # view 1: pixel 0 selected, weight 1 on vertex 0 -> p.  Vertex 0 hit in one view -> p.
    assert contact.tolist() == pytest.approx([p, p, p, p], abs=1e-6)
    none = op.object(torch.full((2, 2, 2), -5.0))
    assert none.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_object_lifter_averages_over_views_and_keeps_pixels_between_threshold_and_half():
    """Probabilities between the 0.3 pixel threshold and 0.5 count, and a vertex selected in two views gets
    the mean of its two per-view values (their sum would exceed 1 for confident pixels)."""
    op = LiftOperator(tiny_maps())

    def sigmoid(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    p00, p01, p10 = sigmoid(-0.5), sigmoid(-0.2), sigmoid(-0.3)  # .3775, .4502, .4256: all in (0.3, 0.5)
    logits = torch.tensor([[[-0.5, -0.2], [0.0, 0.0]], [[-0.3, 0.0], [0.0, 0.0]]])
    expected = [
        (p00 + p10) / 2,  # vertex 0: view 0 pixel 0 only, view 1 pixel 0 (weight 1)
        (0.25 * p00 + 0.2 * p01) / 0.45,  # vertex 1: view 0 only (zero weight in view 1)
        (0.25 * p00 + 0.3 * p01) / 0.55,
        p01,
    ]
    assert op.object(logits).tolist() == pytest.approx(expected, abs=1e-6)
    # A stricter threshold drops view 0's pixel 0 (.3775) and view 1's pixel 0 (.4256): vertex 0 has nothing left.
    assert op.object(logits, threshold=0.44).tolist() == pytest.approx([0.0, p01, p01, p01], abs=1e-6)
    # Confident pixels in both views: the mean stays 1 (a sum would give 2 for vertex 0).
    assert op.object(torch.full((2, 2, 2), 30.0)).tolist() == pytest.approx([1.0] * 4, abs=1e-6)


def test_lifter_rejects_wrong_shapes():
    op = LiftOperator(tiny_maps())
    with pytest.raises(ValueError, match=r"expected logits of shape \(2, 2, 2\)"):
        op.human(torch.zeros(4, 2, 2))


def test_pixel_maps_round_trip_and_file_errors(tmp_path):
    maps = tiny_maps()
    maps.save(tmp_path)  # 2 x 2 images: files are named by the size, like the shipped _1024 ones
    loaded = PixelMaps.load(tmp_path, ["a", "b"], num_vertices=4, image_size=2)
    assert np.array_equal(loaded.vertex_ids, maps.vertex_ids) and np.array_equal(loaded.bary, maps.bary)
    with pytest.raises(ModelFileError, match="no map for view"):
        PixelMaps.load(tmp_path, ["a", "c"], num_vertices=4, image_size=2)
    for name in (vertex_map_filename, bary_map_filename):
        (tmp_path / name(1024)).write_bytes((tmp_path / name(2)).read_bytes())
    with pytest.raises(ModelFileError, match=r"expected \(1024, 1024, 3\)"):
        PixelMaps.load(tmp_path, ["a", "b"], num_vertices=4, image_size=1024)
    with pytest.raises(ModelFileError, match="refers to vertex 3, but the body has 3 vertices"):
        PixelMaps.load(tmp_path, ["a", "b"], num_vertices=3, image_size=2)
    (tmp_path / bary_map_filename(2)).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFileError, match="cannot be read"):
        PixelMaps.load(tmp_path, ["a", "b"], num_vertices=4, image_size=2)
    (tmp_path / vertex_map_filename(2)).unlink()
    with pytest.raises(ModelFileError, match="missing pixel map file"):
        PixelMaps.load(tmp_path, ["a", "b"], num_vertices=4, image_size=2)


def _round_trip(vertices, faces, contact_gt, view_set, image_size, lifter):
    v = torch.tensor(vertices)
    f = torch.tensor(faces)
    rendering = render_mesh(v, f, view_set.cameras(image_size), position_colors(v), view_set.light_positions())
    maps = PixelMaps.from_fragments(rendering.fragments, f, len(vertices), view_set.names)
    op = LiftOperator(maps)
    # The per-view mask: pixels whose surface point is more contact than not, as strong logits.
    indicator = interpolate(rendering.fragments, f, torch.tensor(contact_gt, dtype=torch.float64)[:, None])[..., 0]
    logits = torch.where(indicator > 0.5, 8.0, -8.0)
    predicted = (getattr(op, lifter)(logits) > 0.5).numpy()
    visible = op.visible().numpy()
    tp = np.sum(predicted & contact_gt & visible)
    f1 = 2 * tp / (np.sum(predicted & visible) + np.sum(contact_gt & visible))
    return f1, predicted, visible


def _chair_seat():
    mesh = DEMO_OBJECTS["chair"]().mesh
    vertices, _, _ = normalize_object_vertices(mesh.vertices)
    seat_top = np.abs(vertices[:, 1] - (vertices[:, 1].min() + 0.5)) < 1e-3  # the seat's top plane
    return vertices, mesh.faces, seat_top


def test_human_lifter_round_trip_on_an_object():
    vertices, faces, seat_top = _chair_seat()
    f1, _, visible = _round_trip(vertices, faces, seat_top, OBJECT_VIEWS, 512, "human")
    assert seat_top[visible].sum() > 100
    assert f1 >= 0.95


def test_object_lifter_finds_the_region_and_dilates_it_by_at_most_one_ring():
    # Upstream's object lifter averages only over selected pixels, so a vertex next to a contact patch
    # inherits its probability: the patch grows by one ring of vertices (spec §4.4). We reproduce that.
    vertices, faces, seat_top = _chair_seat()
    _, predicted, visible = _round_trip(vertices, faces, seat_top, OBJECT_VIEWS, 512, "object")
    recall = predicted[seat_top & visible].mean()
    assert recall >= 0.97
    neighbours = np.zeros(len(vertices), bool)
    touching = seat_top[faces].any(axis=1)
    neighbours[faces[touching].ravel()] = True
    assert not np.any(predicted & ~neighbours)  # every false positive shares a face with the patch


def test_smpl_to_smplx_conversion_by_hand():
    import scipy.sparse as sp

    from ivlm_core.lift.smplx_conversion import smpl_to_smplx, smplx_to_smpl

    # 3 SMPL-X vertices drawn from 2 SMPL vertices: the first two copy, the third mixes them 50/50.
    mapping = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32))
    assert smpl_to_smplx(np.array([1.0, 0.2]), mapping).tolist() == pytest.approx([1.0, 0.2, 0.6])
    # Back: SMPL vertex 0 gets (1*1 + 0.5*0.6) / 1.5 from contacts [1, 0.2, 0.6].
    assert smplx_to_smpl(np.array([1.0, 0.2, 0.6]), mapping).tolist() == pytest.approx([1.3 / 1.5, 0.5 / 1.5])


def test_smpl_to_smplx_with_the_demo_mapping(synthetic_body_files):
    from ivlm_core.lift.smplx_conversion import load_mapping, smpl_to_smplx

    mapping = load_mapping(synthetic_body_files.smpl_to_smplx.parent)
    out = smpl_to_smplx(np.ones(6890), mapping)
    assert out.shape == (10475,) and np.allclose(out, 1.0, atol=1e-5)  # rows are partitions of unity
