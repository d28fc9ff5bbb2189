"""Perceive stage on the tiny random-weight folders: loading contracts, output frames and shapes, clear errors.

Random weights make the detections meaningless, so these tests check contracts (shapes, dtypes, coordinate
frames, thresholds, error messages), never what the boxes or masks cover.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from perception_fakes import BestPersonPlusCopies
from PIL import Image
from safetensors.torch import load_file, save_file

from ivlm_core import paths
from ivlm_core.demo.tiny_perception import (
    TINY_PERCEPTION_VERSION,
    ensure_tiny_perception,
    write_tiny_grounding_dino,
    write_tiny_sam,
    write_tiny_vitpose,
)
from ivlm_core.errors import BadInputError, ModelFileError, ModelFilesMissingError
from ivlm_core.perceive import (
    COCO_KEYPOINTS,
    BoxSegmenter,
    KeypointEstimator,
    ObjectDetector,
    Perceiver,
)
from ivlm_core.perceive.detect import box_iou
from ivlm_core.perceive.inputs import as_rgb_array
from ivlm_core.perceive.keypoints import crop_region


@pytest.fixture(scope="module")
def scene(synthetic_body_files):
    from ivlm_core.demo.scenes import make_scene

    return make_scene("hold_mug", 0)


@pytest.fixture(scope="module")
def perceiver(tiny_perception) -> Perceiver:
    return Perceiver.from_models_dir(tiny_perception["sam"].parent.parent)


def _inside(points: np.ndarray, region: np.ndarray, heatmap_width: int = 48) -> bool:
    """Inside the crop, give or take 2 heatmap cells (the sub-pixel refinement may step past the border; with 133
    random heatmaps some peak does sit on it)."""
    tolerance = 2.0 * (region[2] - region[0]) / heatmap_width
    return bool(
        (points[:, 0] >= region[0] - tolerance).all()
        and (points[:, 0] <= region[2] + tolerance).all()
        and (points[:, 1] >= region[1] - tolerance).all()
        and (points[:, 1] <= region[3] + tolerance).all()
    )


# Mask logits of the tiny SAM are O(1-10); float32 kernel paths (batch size, load path, CPU) move them by ~1e-5.
LOGIT_TOLERANCE = 1e-3


def _assert_same_masks(logits: np.ndarray, other: np.ndarray, masks: np.ndarray, other_masks: np.ndarray) -> None:
    """Logits agree within LOGIT_TOLERANCE; the masks (logit > 0) agree wherever |logit| exceeds it, which must
    be nearly every pixel, so the check cannot pass having compared nothing."""
    np.testing.assert_allclose(other, logits, rtol=0, atol=LOGIT_TOLERANCE)
    safe = np.abs(logits) > LOGIT_TOLERANCE
    assert safe.mean() > 0.99
    assert np.array_equal(masks[safe], other_masks[safe]) and np.array_equal(masks, logits > 0)


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# --- folders and generator -------------------------------------------------------------------------------


def test_perception_dir_layout(tmp_path):
    assert paths.perception_dir("sam", tmp_path) == tmp_path / "perception" / "sam"
    with pytest.raises(ValueError, match="unknown perception model"):
        paths.perception_dir("yolo", tmp_path)


def test_tiny_folders_are_marked_demo_and_in_hub_layout(tiny_perception):
    root = tiny_perception["sam"].parent.parent
    assert (root / "VERSION").read_text().strip() == TINY_PERCEPTION_VERSION
    for name, folder in tiny_perception.items():
        assert folder == paths.perception_dir(name, root)
        if name == "vitpose-wholebody":  # the original release's format (not on the hub): one .pth file
            assert {p.name for p in folder.iterdir()} == {"README.txt", "vitpose+_small.pth"}
            continue
        files = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "README.txt"} <= files
        assert "random weights, demo only" in (folder / "README.txt").read_text()
        config = json.loads((folder / "config.json").read_text())
        assert config["ivlm_tiny_demo"] == TINY_PERCEPTION_VERSION
        text = (folder / "config.json").read_text()
        assert 'use_pretrained_backbone": true' not in text and "huggingface.co" not in text
    assert {"tokenizer_config.json", "tokenizer.json"} <= {p.name for p in tiny_perception["grounding-dino"].iterdir()}


def test_generator_is_deterministic(tmp_path):
    for writer in (write_tiny_grounding_dino, write_tiny_sam, write_tiny_vitpose):
        first = _tree_digest(writer(tmp_path / f"{writer.__name__}-a", seed=0))
        second = _tree_digest(writer(tmp_path / f"{writer.__name__}-b", seed=0))
        other = _tree_digest(writer(tmp_path / f"{writer.__name__}-c", seed=1))
        assert first == second
        assert first["model.safetensors"] != other["model.safetensors"]


def test_ensure_is_written_once(tiny_perception):
    root = tiny_perception["sam"].parent.parent
    before = (tiny_perception["sam"] / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_perception(root) == tiny_perception
    assert (tiny_perception["sam"] / "model.safetensors").stat().st_mtime_ns == before


def test_loading_never_touches_the_network(tiny_perception, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    write_tiny_grounding_dino(tmp_path / "gd")  # building too
    ObjectDetector.from_folder(tiny_perception["grounding-dino"])
    BoxSegmenter.from_folder(tiny_perception["sam"])
    KeypointEstimator.from_folder(tiny_perception["vitpose"])


def test_coco_names_import_without_transformers():
    code = (
        "import sys, ivlm_core.perceive as p; assert len(p.COCO_KEYPOINTS) == 17; print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert len(set(COCO_KEYPOINTS)) == 17 and COCO_KEYPOINTS[0] == "nose" and COCO_KEYPOINTS[-1] == "right_ankle"


# --- each model's contract ---------------------------------------------------------------------------------


def test_tokenizer_covers_any_label(perceiver):
    tokenizer = perceiver.detector.processor.tokenizer
    ids = tokenizer("person. skateboard. dining table. 3d-printer. zebra's hat.")["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert [ids[0], ids[-1]] == [101, 102] and ids.count(1012) == 5  # the ids Grounding DINO hard-codes


def test_detector_boxes_in_image_above_thresholds(perceiver, scene):
    detector = perceiver.detector
    height, width = scene.image.shape[:2]
    labels = ["person", "mug", "coffee cup"]
    found = detector(scene.image, labels, box_threshold=0.2, text_threshold=0.2)
    assert list(found) == labels
    # The demo detector finds several boxes for every label (13, 2, 13 here), so no check below is vacuous.
    assert all(len(v) >= 2 for v in found.values())
    for label, detections in found.items():
        scores = [d.score for d in detections]
        assert scores == sorted(scores, reverse=True)
        for d in detections:
            assert d.label == label and d.box.dtype == np.float32 and d.box.shape == (4,)
            assert 0 <= d.box[0] < d.box[2] <= width and 0 <= d.box[1] < d.box[3] <= height
            assert 0.2 < d.score <= 1.0 and 0.2 < d.label_score <= d.score + 1e-6
        boxes = np.stack([d.box for d in detections]) if detections else np.zeros((0, 4))
        for i in range(len(boxes)):
            assert box_iou(boxes[i], np.delete(boxes, i, axis=0)).max(initial=0) <= detector.nms_iou + 1e-6
    # A PIL image reaches the model as the very same array as the numpy one.
    assert np.array_equal(as_rgb_array(Image.fromarray(scene.image)), scene.image)


def test_segmenter_masks_at_image_size(perceiver, scene):
    height, width = scene.image.shape[:2]
    boxes = np.array([[100, 120, 300, 500], [0, 0, width, height], [-20, -20, 50, 40]], np.float32)  # last is clipped
    masks, iou = perceiver.segmenter.segment(scene.image, boxes)
    assert masks.shape == (3, height, width) and masks.dtype == bool
    assert iou.shape == (3,) and iou.dtype == np.float32 and np.isfinite(iou).all()
    logits, _ = perceiver.segmenter.mask_logits(scene.image, boxes)
    assert logits.shape == (3, height, width) and logits.dtype == np.float32
    # One box alone (a batch of 1, a PIL input) gives the first box's mask of the batch of 3.
    one_logits, _ = perceiver.segmenter.mask_logits(Image.fromarray(scene.image), boxes[:1])
    one_mask = perceiver.segmenter(Image.fromarray(scene.image), boxes[:1])
    _assert_same_masks(logits[:1], one_logits, masks[:1], one_mask)
    assert perceiver.segmenter(scene.image, np.zeros((0, 4))).shape == (0, height, width)
    with pytest.raises(BadInputError, match="no area"):
        perceiver.segmenter(scene.image, [[10, 10, 5, 50]])


def test_keypoints_mapped_back_into_the_box_crop(perceiver, scene):
    boxes = np.array([[40, 30, 140, 330], [250, 300, 470, 420]], np.float32)  # tall and wide, far apart
    keypoints = perceiver.keypoints.estimate(scene.image, boxes)
    assert perceiver.keypoints.format == "coco_wholebody"  # the whole-body folder is preferred when present
    assert keypoints.shape == (2, 133, 3) and keypoints.dtype == np.float32
    assert ((keypoints[..., 2] >= 0) & (keypoints[..., 2] <= 1)).all()
    for box, points in zip(boxes, keypoints):
        assert _inside(points[:, :2], crop_region(box))
    np.testing.assert_allclose(perceiver.keypoints(scene.image, boxes[1]), keypoints[1], atol=1e-4)


# --- the Perceiver ---------------------------------------------------------------------------------------


def test_perceive_demo_scene(perceiver, scene):
    """The tiny demo models find a person and the object at the default thresholds (what demo mode relies on)."""
    height, width = scene.image.shape[:2]
    result = perceiver.perceive(scene.image, [scene.label])
    assert result.image_size == (height, width) and result.demo
    assert any("DEMO" in note for note in result.notes)
    person = result.person
    assert person is not None and result.people_count >= 1
    assert person.score > perceiver.box_threshold
    assert 0 <= person.box[0] < person.box[2] <= width and 0 <= person.box[1] < person.box[3] <= height
    assert person.mask.shape == (height, width) and person.mask.dtype == bool
    assert person.keypoints.shape == (133, 3) and person.keypoints.dtype == np.float32
    assert person.keypoint_format == "coco_wholebody"
    assert _inside(person.keypoints[:, :2], crop_region(person.box))
    assert list(result.objects) == [scene.label]
    mug = result.objects[scene.label]
    assert mug is not None and mug.label == scene.label
    assert mug.mask.shape == (height, width) and mug.mask.dtype == bool


@pytest.mark.parametrize("extra_people", [0, 2])
def test_several_people_are_counted_and_noted(perceiver, scene, extra_people):
    """The demo detector's best person box plus `extra_people` weaker copies: the count and the note
    follow, and the chosen person is still the best box."""
    counting = Perceiver(
        BestPersonPlusCopies(perceiver.detector, extra_people), perceiver.segmenter, perceiver.keypoints
    )
    result = counting.perceive(scene.image, [scene.label])
    assert result.people_count == 1 + extra_people
    noted = [note for note in result.notes if "people detected" in note]
    count = 1 + extra_people
    if extra_people:  # the copies tie with the best box, and ties go to the higher detector score: person 1
        assert len(noted) == 1 and noted[0].startswith(f"person: {count} people detected"), noted
        assert f"chose person 1 of {count}" in noted[0], noted
    else:
        assert noted == []
    best = perceiver.detector(scene.image, ["person", scene.label])["person"][0]  # the same call the wrapper makes
    assert result.person is not None and np.allclose(result.person.box, best.box)


def test_nothing_found_gives_notes_not_errors(perceiver, scene):
    strict = Perceiver(perceiver.detector, perceiver.segmenter, perceiver.keypoints, box_threshold=1.0)  # sigmoid <= 1
    result = strict.perceive(Image.fromarray(scene.image), ["mug", "ball"])
    assert result.person is None and result.people_count == 0
    assert result.objects == {"mug": None, "ball": None}
    assert "no person found above box threshold 1" in " ".join(result.notes)
    assert "label 'mug' not found in the photo" in " ".join(result.notes)
    assert "label 'ball' not found in the photo" in " ".join(result.notes)


@pytest.mark.parametrize(
    ("image", "labels", "match"),
    [
        (np.zeros((64, 48, 3), np.uint8), [""], "empty"),
        (np.zeros((64, 48, 3), np.uint8), ["   "], "empty"),
        (np.zeros((64, 48, 3), np.uint8), [], "No object label"),
        (np.zeros((64, 48, 3), np.uint8), ["mug."], "contains '.'"),
        (np.zeros((64, 48, 3), np.uint8), "mug", "list of strings"),
        (np.zeros((64, 48, 4), np.uint8), ["mug"], r"\[H, W, 3\]"),
        (np.zeros((64, 48), np.uint8), ["mug"], r"\[H, W, 3\]"),
        (np.zeros((0, 48, 3), np.uint8), ["mug"], "empty"),
        (np.zeros((64, 48, 3), np.float32), ["mug"], "uint8"),
        (Image.new("L", (48, 64)), ["mug"], "not RGB"),
        (Image.new("RGBA", (48, 64)), ["mug"], "not RGB"),
    ],
)
def test_bad_input(perceiver, image, labels, match):
    with pytest.raises(BadInputError, match=match) as info:
        perceiver.perceive(image, labels)
    assert info.value.hint


# --- missing and broken folders ----------------------------------------------------------------------------


def test_missing_models_dir_lists_every_folder(tmp_path):
    with pytest.raises(ModelFilesMissingError) as info:
        Perceiver.from_models_dir(tmp_path)
    message, hint = info.value.message, info.value.hint
    for name in ("grounding-dino", "sam", "vitpose"):
        assert str(tmp_path / "perception" / name) in message
    for hub in ("IDEA-Research/grounding-dino-tiny", "facebook/sam-vit-base", "usyd-community/vitpose-base-simple"):
        assert hub in hint
    assert "hf download" in hint


def test_missing_folder_names_hub_and_place(tmp_path):
    with pytest.raises(ModelFilesMissingError, match="does not exist") as info:
        KeypointEstimator.from_folder(tmp_path / "nowhere")
    assert "usyd-community/vitpose-base-simple" in info.value.hint and str(tmp_path / "nowhere") in info.value.hint


@pytest.mark.parametrize(("name", "cls"), [("sam", BoxSegmenter), ("grounding-dino", ObjectDetector)])
def test_missing_weight_file_is_named(tiny_perception, tmp_path, name, cls):
    folder = shutil.copytree(tiny_perception[name], tmp_path / name)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFilesMissingError, match="model.safetensors"):
        cls.from_folder(folder)


def test_corrupt_weight_file_is_named(tiny_perception, tmp_path):
    folder = shutil.copytree(tiny_perception["vitpose"], tmp_path / "vitpose")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])  # a cut-off download
    with pytest.raises(ModelFileError, match="model.safetensors") as info:
        KeypointEstimator.from_folder(folder)
    assert "usyd-community/vitpose-base-simple" in info.value.hint


def test_incomplete_weights_are_refused(tiny_perception, tmp_path):
    folder = shutil.copytree(tiny_perception["sam"], tmp_path / "sam")
    weights = load_file(folder / "model.safetensors")
    dropped = min(weights)
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="missing keys") as info:
        BoxSegmenter.from_folder(folder)
    assert dropped in info.value.message


def test_corrupt_or_swapped_config_is_named(tiny_perception, tmp_path):
    folder = shutil.copytree(tiny_perception["sam"], tmp_path / "sam")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="config.json"):
        BoxSegmenter.from_folder(folder)
    with pytest.raises(ModelFileError, match="'vitpose' model"):
        BoxSegmenter.from_folder(tiny_perception["vitpose"])


def _round_trip(loaded, cls, folder: Path):
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    reloaded = cls.from_folder(folder, dtype=torch.float32)
    assert reloaded.demo
    weights, again = loaded.model.state_dict(), reloaded.model.state_dict()
    assert list(weights) == list(again) and all(torch.equal(weights[k], again[k]) for k in weights)  # stored: exact
    return reloaded


def test_save_pretrained_round_trip_detector(perceiver, scene, tmp_path):
    """Folders written by save_pretrained (as the hub's are) load through from_folder to the same outputs."""
    reloaded = _round_trip(perceiver.detector, ObjectDetector, tmp_path)
    threshold = 0.2
    expected = perceiver.detector(scene.image, ["person"], box_threshold=threshold, text_threshold=threshold)["person"]
    actual = reloaded(scene.image, ["person"], box_threshold=threshold, text_threshold=threshold)["person"]
    assert expected, "the demo detector should find a person at this threshold"
    # Equal counts only because no score lies within float noise of the threshold (a deterministic property of
    # the generated weights, checked here on both sides).
    assert min(d.score for d in expected + actual) > threshold + 1e-3
    assert len(expected) == len(actual)
    for before, after in zip(expected, actual):
        np.testing.assert_allclose(after.box, before.box, atol=1e-3)  # pixels
        assert after.score == pytest.approx(before.score, abs=1e-5)


def test_save_pretrained_round_trip_segmenter(perceiver, scene, tmp_path):
    reloaded = _round_trip(perceiver.segmenter, BoxSegmenter, tmp_path)
    box = np.array([[60, 80, 300, 560]], np.float32)
    logits, _ = perceiver.segmenter.mask_logits(scene.image, box)
    again, _ = reloaded.mask_logits(scene.image, box)
    _assert_same_masks(logits, again, perceiver.segmenter(scene.image, box), reloaded(scene.image, box))


def test_save_pretrained_round_trip_keypoints(perceiver, scene, tmp_path):
    reloaded = _round_trip(perceiver.keypoints, KeypointEstimator, tmp_path)
    box = np.array([60, 80, 300, 560], np.float32)
    np.testing.assert_allclose(reloaded(scene.image, box), perceiver.keypoints(scene.image, box), atol=1e-4)


def _detector_input_sizes(detector, image, labels) -> tuple[list[tuple[int, int]], dict]:
    """The (H, W) of every pixel_values the detector's model was called with, and the detections."""
    sizes: list[tuple[int, int]] = []

    def record(module, args, kwargs):
        sizes.append(tuple(kwargs["pixel_values"].shape[-2:]))

    handle = detector.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        found = detector(image, labels, box_threshold=0.2, text_threshold=0.2)
    finally:
        handle.remove()
    return sizes, found


def test_detector_enlarges_small_photos_only_when_asked(tiny_perception, scene):
    """A photo below the processor's short side (224 for the tiny model, 800 on the hub) is kept at its size on
    the CPU by default and enlarged with upscale=True (upstream); the boxes are in the photo's pixels either way."""
    folder = tiny_perception["grounding-dino"]
    default = ObjectDetector.from_folder(folder)  # on the CPU
    assert default.upscale is False and ObjectDetector.from_folder(folder, upscale=True).upscale is True
    small = np.ascontiguousarray(scene.image[100:260, 200:400])  # 200x160
    for upscale, expected in ((False, (160, 200)), (True, (224, 280))):
        detector = ObjectDetector.from_folder(folder, upscale=upscale)
        sizes, found = _detector_input_sizes(detector, small, ["person", "mug"])
        assert sizes == [expected]
        boxes = [d.box for detections in found.values() for d in detections]
        assert boxes, "the demo detector finds boxes at both sizes, so the bounds check below is not vacuous"
        assert all(0 <= b[0] < b[2] <= 200 and 0 <= b[1] < b[3] <= 160 for b in boxes)


def test_detector_input_unchanged_for_photos_at_or_above_its_size(tiny_perception, scene):
    """A photo as large as the processor's size or larger is resized as upstream does, whatever `upscale` says:
    the same model input and the same boxes and scores (1e-5 tolerance)."""
    folder = tiny_perception["grounding-dino"]
    results = []
    for upscale in (False, True):
        sizes, found = _detector_input_sizes(ObjectDetector.from_folder(folder, upscale=upscale), scene.image, ["mug"])
        results.append((sizes, found["mug"]))
    (sizes, kept), (sizes_up, upscaled) = results
    assert sizes == sizes_up == [(298, 224)] and len(kept) == len(upscaled) >= 2
    for a, b in zip(kept, upscaled):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        assert abs(a.score - b.score) < 1e-5
