"""A detector wrapper for tests that need a known number of people in the photo."""

from __future__ import annotations

import dataclasses

import numpy as np

from ivlm_core.perceive import ObjectDetector


class BestPersonPlusCopies:
    """The real detector, its person list cut to the best box followed by `extra` weaker, shifted copies, so a
    test knows the people count (1 + extra) and which person must be chosen (the real best box)."""

    def __init__(self, detector: ObjectDetector, extra: int) -> None:
        self.detector, self.extra = detector, extra
        self.box_threshold, self.text_threshold, self.demo = (
            detector.box_threshold,
            detector.text_threshold,
            detector.demo,
        )

    def __call__(self, image, labels, **kwargs):
        found = self.detector(image, labels, **kwargs)
        assert found["person"], "the demo detector should find a person"
        best = found["person"][0]
        copies = [
            dataclasses.replace(best, box=best.box + np.float32(3 * (i + 1)), score=best.score * 0.5 / (i + 1))
            for i in range(self.extra)
        ]
        return {**found, "person": [best, *copies]}
