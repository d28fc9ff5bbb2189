"""Recognising the generated demo photos, and their ground truth as pipeline inputs. DEMO data.

The DEMO models have random weights, so on a demo photo they find nothing useful. For the project's own
generated scenes (`ivlm assets`) the truth is known: a DEMO run may then feed the scene's true keypoints to the
real body fit, its true masks to the real placement, and its true contacts to the vertex groups, so the demo
shows what the rest of the product does. A user's own photo never gets any of it.

How a photo is recognised (never by its file name): `save_scene` writes a PNG text chunk (SCENE_TAG_KEY) with
the generator version, the scene kind and seed, and a SHA-256 of the photo's pixels. A photo is a demo scene
when that chunk is present, the pixels it was sent with hash to the value in the chunk (so an edited photo is
not), and the scene regenerated from kind and seed matches the photo within a small tolerance (so the truth
used is the photo's, on any CPU).
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from ivlm_core.body import LoadedBodyModel
from ivlm_core.demo.scenes import (
    GENERATOR_VERSION,
    SCENE_KINDS,
    SCENE_TAG_KEY,
    SyntheticScene,
    make_scene,
    pixels_sha256,
    scene_tag,
)
from ivlm_core.mesh import TriangleMesh
from ivlm_core.perceive.people import PeopleChoice, PersonCandidate
from ivlm_core.perceive.perceiver import ObjectDetection, Perception, PersonDetection
from ivlm_core.pipeline.scene_truth import SCENE_TRUTH, TruthUse

# A regenerated photo may differ from the stored one by rounding on another CPU: at most this share of its
# pixels may differ by more than PIXEL_TOLERANCE levels in any channel.
PIXEL_TOLERANCE = 8
MAX_DIFFERENT_SHARE = 0.005
SAME_MESH_TOLERANCE_M = 1e-4  # the user's object is the scene's when rigidly aligned to within this, per vertex
CACHED_SCENES = 4


def tagged_png(scene: SyntheticScene) -> bytes:
    """The scene's photo as PNG bytes carrying its tag (what `save_scene` writes)."""
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, format="PNG", pnginfo=scene_tag(scene))
    return buffer.getvalue()


def true_keypoints(scene: SyntheticScene, body: LoadedBodyModel) -> np.ndarray:
    """The scene body's COCO-WholeBody keypoints in the photo: float32 [133, 3] (x, y pixels; 1 where the
    keypoint is visible in the photo, 0 where the body or the object hides it), as a whole-body detector gives."""
    del body  # the generator projected the posed body's own keypoints (scenes.py)
    return scene.keypoints.astype(np.float32)


def _box(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def same_mesh(mesh: TriangleMesh, reference: TriangleMesh) -> bool:
    """Whether `mesh` is `reference` moved rigidly (same vertex order and faces), e.g. imported into Blender."""
    if mesh.vertices.shape != reference.vertices.shape or mesh.faces.shape != reference.faces.shape:
        return False
    if not np.array_equal(np.sort(mesh.faces, axis=1), np.sort(reference.faces, axis=1)):
        return False
    a = mesh.vertices - mesh.vertices.mean(0)
    b = reference.vertices - reference.vertices.mean(0)
    rotation, _ = Rotation.align_vectors(a, b)
    return float(np.abs(rotation.apply(b) - a).max()) < SAME_MESH_TOLERANCE_M


@dataclass
class DemoScene:
    """A photo recognised as a generated scene: its truth as the pipeline's inputs (`RecognisedScene`)."""

    scene: SyntheticScene
    keypoints: np.ndarray  # [133, 3] COCO-WholeBody
    use: TruthUse

    @property
    def focal_px(self) -> float:
        return float(self.scene.intrinsics[0, 0])

    def perception(self, labels: list[str]) -> Perception:
        scene = self.scene
        box = _box(scene.person_mask)
        person = PersonDetection(box, 1.0, scene.person_mask, 1.0, self.keypoints)
        objects: dict[str, ObjectDetection | None] = {}
        for label in labels:
            found = label == scene.label and scene.object_mask.any()
            objects[label] = (
                ObjectDetection(label, _box(scene.object_mask), 1.0, scene.object_mask, 1.0) if found else None
            )
            if found:
                self.use.inputs[f"object_mask:{label}"] = SCENE_TRUTH
        self.use.inputs.update({"person_mask": SCENE_TRUTH, "keypoints": f"{SCENE_TRUTH} (the true body projected)"})
        notes = [
            f"DEMO scene '{scene.name}': the person's keypoints and mask and the '{scene.label}' mask are the "
            "scene's ground truth (the random-weight perception models were not used)"
        ]
        people = PeopleChoice([PersonCandidate(box, 1.0)], 0, box, "the scene's one person (ground truth)")
        return Perception(scene.image.shape[:2], person, 1, objects, notes, True, people)

    def contacts(self, label: str, mesh: TriangleMesh) -> tuple[np.ndarray, np.ndarray] | None:
        if label != self.scene.label or not same_mesh(mesh, self.scene.object_mesh):
            return None
        self.use.inputs[f"body_contact:{label}"] = SCENE_TRUTH
        self.use.inputs[f"object_contact:{label}"] = SCENE_TRUTH
        return self.scene.body_contact.astype(np.float32), self.scene.object_contact.astype(np.float32)


class SceneTruthProvider:
    """Recognises generated demo photos (`TruthProvider`) for a DEMO pipeline whose body is the synthetic one."""

    def __init__(self, body: LoadedBodyModel) -> None:
        self.body = body
        self._scenes: OrderedDict[tuple[str, int], SyntheticScene] = OrderedDict()

    def recognise(self, image: np.ndarray, pil_image, notes: list[str]) -> DemoScene | None:
        tag = _read_tag(pil_image)
        if tag is None:
            return None
        refused = _tag_problem(tag, image)
        if refused is None and not getattr(self.body, "is_synthetic", False):
            refused = "the body model is not the synthetic one the scene was made with"
        scene = None
        if refused is None:
            scene = self._scene(tag["kind"], int(tag["seed"]))
            refused = _pixels_problem(scene.image, image)
        if refused is not None or scene is None:
            notes.append(f"DEMO: the photo is tagged as a generated demo scene but {refused}: its truth is not used")
            return None
        use = TruthUse(scene.name)  # the pipeline fills in stages_ran when the run ends
        use.stages_replaced = {
            "perceive": "scene ground truth (keypoints, person and object masks)",
            "contact": "scene ground truth for the scene's own object; DEMO random-weight models for any other",
        }
        return DemoScene(scene, true_keypoints(scene, self.body), use)

    def _scene(self, kind: str, seed: int) -> SyntheticScene:
        key = (kind, seed)
        if key not in self._scenes:
            self._scenes[key] = make_scene(kind, seed, body=self.body)
            while len(self._scenes) > CACHED_SCENES:
                self._scenes.popitem(last=False)
        self._scenes.move_to_end(key)
        return self._scenes[key]


def _read_tag(pil_image) -> dict | None:
    text = getattr(pil_image, "text", None) if pil_image is not None else None
    raw = text.get(SCENE_TAG_KEY) if isinstance(text, dict) else None
    if raw is None:
        return None
    try:
        tag = json.loads(raw)
    except ValueError:
        return {}
    return tag if isinstance(tag, dict) else {}


def _tag_problem(tag: dict, image: np.ndarray) -> str | None:
    if tag.get("generator") != GENERATOR_VERSION:
        return f"by another generator version ({tag.get('generator')!r}, this one is {GENERATOR_VERSION!r})"
    if tag.get("kind") not in SCENE_KINDS or not isinstance(tag.get("seed"), int) or not 0 <= tag["seed"] < 10**6:
        return "its tag names no known scene"
    if tag.get("pixels_sha256") != pixels_sha256(image):
        return "its pixels are not the tagged scene's (edited or re-encoded)"
    return None


def _pixels_problem(expected: np.ndarray, image: np.ndarray) -> str | None:
    if expected.shape != image.shape:
        return f"the regenerated scene is {expected.shape[1]}x{expected.shape[0]} pixels, the photo is not"
    different = (np.abs(expected.astype(np.int16) - image.astype(np.int16)).max(axis=2) > PIXEL_TOLERANCE).mean()
    if different > MAX_DIFFERENT_SHARE:
        return f"the regenerated scene differs from it in {different:.1%} of the pixels"
    return None
