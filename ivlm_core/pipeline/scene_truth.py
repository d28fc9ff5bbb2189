"""The seam through which a DEMO run may use a generated scene's own ground truth (production side).

The pipeline never imports `ivlm_core.demo` for this at import time: `ContactPipeline.demo_pipeline` (and
`from_parts`, when the perception models are the random-weight stand-ins) hands it a provider
(`ivlm_core.demo.scene_truth.SceneTruthProvider`), which recognises the project's generated demo photos and
supplies their true keypoints, masks and contacts where the DEMO models have random weights. A result made
so says which inputs came from the scene's truth and which stages really ran (`TruthUse`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ivlm_core.mesh import TriangleMesh
from ivlm_core.perceive.perceiver import Perception

SCENE_TRUTH = "scene ground truth"  # the source named for an input that came from the scene's truth


@dataclass
class TruthUse:
    """Which inputs of a run came from a generated scene's ground truth, and which stages really ran.

    inputs: input name (e.g. "keypoints", "body_contact:chair") -> where it came from.
    stages_ran: the stages whose real code ran on those inputs (e.g. "body fit", "placement").
    """

    scene: str
    inputs: dict[str, str] = field(default_factory=dict)
    stages_ran: list[str] = field(default_factory=list)
    stages_replaced: dict[str, str] = field(default_factory=dict)  # stage -> what stood in for it

    def to_dict(self) -> dict:
        return {
            "scene": self.scene,
            "inputs": dict(self.inputs),
            "stages_ran": list(self.stages_ran),
            "stages_replaced": dict(self.stages_replaced),
        }


class RecognisedScene(Protocol):
    """A photo recognised as one of the project's generated demo scenes."""

    use: TruthUse

    @property
    def focal_px(self) -> float:
        """The photo's true focal length in pixels (read-only: a property satisfies it)."""

    def perception(self, labels: list[str]) -> Perception:
        """The person (true keypoints, visible mask) and each label's object (its true mask, or None)."""

    def contacts(self, label: str, mesh: TriangleMesh) -> tuple[np.ndarray, np.ndarray] | None:
        """(body_contact [10475], object_contact [N]) for an object that is the scene's own; None otherwise."""


class TruthProvider(Protocol):
    def recognise(self, image: np.ndarray, pil_image, notes: list[str]) -> RecognisedScene | None:
        """The scene when `image` (uint8 [H, W, 3], as analysed) is a generated demo photo, else None; a photo
        that claims to be one but is not gets a note saying why its truth is not used."""
