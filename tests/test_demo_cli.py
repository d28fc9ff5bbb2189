"""The main command: `ivlm demo` runs Render -> Lift on demo assets and writes flagged outputs."""

import json

import numpy as np

from ivlm_core.cli import main


def test_demo_command_writes_flagged_outputs(tmp_path, synthetic_body_files, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--scene", "foot_on_ball"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demo"] is True and "ground-truth" in summary["note"] and "random weights" in summary["note"]
    assert summary["demo_model"]["human_body_parts"] == ["left hand"]  # the tiny release's scripted answer
    assert summary["demo_model"]["object_affordance"] == "grasp"
    assert summary["f1_vs_ground_truth"]["smplh_visible_vertices"] >= 0.95
    assert summary["f1_vs_ground_truth"]["smplx"] >= 0.9
    contacts = np.load(out / "contacts.npz")
    assert contacts["ground_truth_masks_smplh"].shape == (6890,) and contacts["demo_model_smplx"].shape == (10475,)
    assert contacts["demo_model_object"].shape == contacts["ground_truth_masks_object"].shape
    for name in (
        "human_views_ground_truth_masks.png",
        "human_views_demo_model_masks.png",
        "object_views_demo_model_masks.png",
        "human_topfront.png",
    ):
        assert (out / "renders" / name).is_file()
    assert (out / "body_smplx_contact.ply").is_file() and (out / "object_contact.ply").is_file()
    assert "DEMO" in capsys.readouterr().out


def test_render_object_command_and_bad_mesh_error(tmp_path, capsys):
    mesh = tmp_path / "tri.obj"
    mesh.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    assert main(["render-object", str(mesh), "--out", str(tmp_path / "views"), "--size", "64"]) == 0
    assert (tmp_path / "views" / "obj_render_color_frontleft.png").is_file()
    assert (tmp_path / "views" / "pixel_to_vertex_map_64.npz").is_file()
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nv 1 0 0\n")
    assert main(["render-object", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "error [BAD_INPUT]" in err and "no faces" in err and "hint:" in err
