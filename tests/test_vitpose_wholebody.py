"""Whole-body ViTPose from the original release format: every key mapped or named, the whole-body expert and head
chosen, the split-file variant, files of another kind refused, and the doctor's view of the folders."""

from __future__ import annotations

import shutil
from collections import OrderedDict

import numpy as np
import pytest
import torch
from transformers import VitPoseForPoseEstimation

from ivlm_core import paths
from ivlm_core.demo.tiny_perception import tiny_wholebody_config, write_tiny_vitpose_wholebody
from ivlm_core.errors import ModelFileError
from ivlm_core.perceive.folders import check_folders
from ivlm_core.perceive.keypoints import KeypointEstimator
from ivlm_core.perceive.vitpose_release import WHOLEBODY_DATASET_INDEX, load_release

RELEASE = "vitpose+_small.pth"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_vitpose_wholebody(tmp_path_factory.mktemp("wholebody"))


def _reference() -> VitPoseForPoseEstimation:
    torch.manual_seed(0)  # the generator's seed: the same weights it wrote
    return VitPoseForPoseEstimation(tiny_wholebody_config()).eval()


def test_release_file_maps_onto_the_moe_model_exactly(folder) -> None:
    loaded = load_release(folder / RELEASE)
    assert loaded.is_demo and loaded.dataset_index == WHOLEBODY_DATASET_INDEX
    assert loaded.model.config.num_labels == 133 and not loaded.model.config.use_simple_decoder
    expected = _reference().state_dict()
    actual = loaded.model.state_dict()
    assert set(actual) == set(expected)
    assert all(torch.equal(actual[k], expected[k]) for k in expected)  # stored weights: exact


def test_estimator_runs_the_whole_body_expert(folder) -> None:
    estimator = KeypointEstimator.from_folder(folder)
    assert estimator.format == "coco_wholebody" and estimator.dataset_index == 5 and estimator.demo
    image = np.random.default_rng(0).integers(0, 255, (320, 240, 3), dtype=np.uint8)
    keypoints = estimator(image, [30, 20, 200, 300])
    assert keypoints.shape == (133, 3) and np.isfinite(keypoints).all()
    pixels = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = estimator.model(pixel_values=pixels, dataset_index=torch.tensor([5])).heatmaps
        other_expert = estimator.model(pixel_values=pixels, dataset_index=torch.tensor([0])).heatmaps
        reference = _reference()(pixel_values=pixels, dataset_index=torch.tensor([5])).heatmaps
    assert torch.allclose(ours, reference, atol=1e-5) and not torch.allclose(ours, other_expert, atol=1e-4)


def test_split_whole_body_file_loads_as_a_plain_vit(folder, tmp_path) -> None:
    """ViTPose's tools/model_split.py output: the whole-body expert merged into fc2, its head as the main head, the
    experts left behind unused. It computes what the multi-task file computes with dataset index 5."""
    state = torch.load(folder / RELEASE, weights_only=True)["state_dict"]
    split: dict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        if key.startswith(("keypoint_head.", "associate_keypoint_heads.")):
            continue
        if key.endswith(("mlp.fc2.weight", "mlp.fc2.bias")):
            expert = state[key.replace("fc2.", f"experts.{WHOLEBODY_DATASET_INDEX}.")]
            value = torch.cat([value, expert])
        split[key] = value
    for key, value in state.items():
        if key.startswith("associate_keypoint_heads.4."):
            split["keypoint_head." + key.removeprefix("associate_keypoint_heads.4.")] = value
    (tmp_path / "split").mkdir()
    torch.save({"meta": {"num_attention_heads": 2}, "state_dict": split}, tmp_path / "split" / "wholebody.pth")
    loaded = load_release(tmp_path / "split" / "wholebody.pth")
    assert loaded.dataset_index is None and loaded.model.config.backbone_config.num_experts == 1 and not loaded.is_demo
    pixels = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = loaded.model(pixel_values=pixels).heatmaps
        moe = _reference()(pixel_values=pixels, dataset_index=torch.tensor([5])).heatmaps
    assert torch.allclose(plain, moe, atol=1e-4)


def _rewrite(folder, tmp_path, edit) -> object:
    target = shutil.copytree(folder, tmp_path / "copy")
    checkpoint = torch.load(target / RELEASE, weights_only=True)
    edit(checkpoint["state_dict"])
    torch.save(checkpoint, target / RELEASE)
    return target / RELEASE


def test_unknown_missing_and_foreign_weights_are_named(folder, tmp_path) -> None:
    path = _rewrite(folder, tmp_path, lambda s: s.__setitem__("backbone.blocks.0.attn.rel_pos", torch.zeros(3)))
    with pytest.raises(ModelFileError, match="backbone.blocks.0.attn.rel_pos"):
        load_release(path)
    shutil.rmtree(tmp_path / "copy")
    path = _rewrite(folder, tmp_path, lambda s: s.pop("backbone.blocks.1.norm2.weight"))
    with pytest.raises(ModelFileError, match="layernorm_after.weight"):
        load_release(path)
    shutil.rmtree(tmp_path / "copy")

    def coco_only(state: dict) -> None:  # a COCO-17 ViTPose in the whole-body folder
        for key in [k for k in state if k.startswith("associate_keypoint_heads.")]:
            state.pop(key)

    path = _rewrite(folder, tmp_path, coco_only)
    with pytest.raises(ModelFileError, match="no COCO-WholeBody head .* found 17") as info:
        load_release(path)
    assert "github.com/ViTAE-Transformer/ViTPose" in info.value.hint
    path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        load_release(path)


def test_whole_body_folder_is_preferred_and_coco17_is_the_fallback(tiny_perception, tmp_path) -> None:
    from ivlm_core.doctor import check_model_files, check_optional_model_files

    for name in ("grounding-dino", "sam", "vitpose"):
        shutil.copytree(tiny_perception[name], paths.perception_dir(name, tmp_path))
    assert check_folders(tmp_path)["keypoints"] == paths.perception_dir("vitpose", tmp_path)
    assert not any("vitpose-wholebody" in s.name for s in check_model_files(tmp_path))  # optional: listed apart
    wholebody = next(s for s in check_optional_model_files(tmp_path) if "vitpose-wholebody" in s.name)
    assert not wholebody.present and "ViTAE-Transformer/ViTPose" in wholebody.source
    shutil.copytree(tiny_perception["vitpose-wholebody"], paths.perception_dir("vitpose-wholebody", tmp_path))
    shutil.rmtree(paths.perception_dir("vitpose", tmp_path))
    assert check_folders(tmp_path)["keypoints"] == paths.perception_dir("vitpose-wholebody", tmp_path)
    statuses = {s.name: s for s in check_model_files(tmp_path)}
    assert next(s for name, s in statuses.items() if "(vitpose)" in name).present  # not needed beside whole-body
