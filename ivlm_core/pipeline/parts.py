"""The pipeline's parts, where each one came from, and what a stand-in or a missing one means for a result.

The one owner of these names and sentences: the pipeline, the server (health and results) and `ivlm doctor`
read them here. A part is the user's ("yours"), the project's generated stand-in (random weights or a synthetic
body: results flagged DEMO), or absent (only the contact models may be: contacts are then not predicted and the
user paints them, see the manual-contact workflow in the README).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeGuard, get_args

PartName = Literal["body_model", "perception", "human_contact", "object_contact", "canonical_views"]
SourceName = Literal["yours", "stand-in", "absent"]

BODY_MODEL: Final = "body_model"
PERCEPTION: Final = "perception"
HUMAN_CONTACT: Final = "human_contact"
OBJECT_CONTACT: Final = "object_contact"
CANONICAL_VIEWS: Final = "canonical_views"
PARTS: tuple[PartName, ...] = get_args(PartName)
CONTACT_PARTS = (HUMAN_CONTACT, OBJECT_CONTACT, CANONICAL_VIEWS)  # needed only to predict contacts

YOURS: Final = "yours"
STAND_IN: Final = "stand-in"
ABSENT: Final = "absent"
SOURCES: tuple[SourceName, ...] = get_args(SourceName)


def is_part(name: str) -> TypeGuard[PartName]:
    return name in PARTS


def is_source(name: str) -> TypeGuard[SourceName]:
    return name in SOURCES


TITLES = {
    BODY_MODEL: "SMPL-X body model",
    PERCEPTION: "perception models (person and object detector, segmenter, keypoints)",
    HUMAN_CONTACT: "human-contact model (InteractVLM release)",
    OBJECT_CONTACT: "object-contact model (InteractVLM release)",
    CANONICAL_VIEWS: "canonical body views and the SMPL -> SMPL-X contact mapping (InteractVLM data)",
}
PAINT = "paint them on the body and the object (or mark them) and press Refit"
CONTACT_NOT_PREDICTED = f"contacts are not predicted: {PAINT}"
_STAND_IN_MEANINGS = {
    BODY_MODEL: "a generated synthetic body stands in for SMPL-X: the body's shape is not SMPL-X's",
    PERCEPTION: "random-weight stand-ins find the person and the objects nowhere in particular: the body is not "
    "fitted to your photo and the masks say nothing",
    HUMAN_CONTACT: f"a random-weight stand-in predicts the body's contacts: they are noise, {PAINT}",
    OBJECT_CONTACT: f"a random-weight stand-in predicts the object's contacts: they are noise, {PAINT}",
    CANONICAL_VIEWS: "views of a synthetic SMPL-H body stand in: body contacts land in the wrong places",
}
_ABSENT_MEANINGS = {
    HUMAN_CONTACT: CONTACT_NOT_PREDICTED,
    OBJECT_CONTACT: CONTACT_NOT_PREDICTED,
    CANONICAL_VIEWS: "not needed without a human-contact model",
}


@dataclass(frozen=True)
class PartSource:
    """Where one part of a loaded pipeline came from (a value of SOURCES) and what that means for a result."""

    part: str
    source: str

    def __post_init__(self) -> None:
        if self.part not in PARTS or self.source not in SOURCES:
            raise ValueError(f"unknown part or source: {self.part!r}, {self.source!r}")
        if self.source == ABSENT and self.part not in CONTACT_PARTS:
            raise ValueError(f"the {self.part} cannot be absent: it has a generated stand-in")

    @property
    def title(self) -> str:
        return TITLES[self.part]

    @property
    def meaning(self) -> str:
        """A sentence for the user: empty for their own part."""
        if self.source == STAND_IN:
            return _STAND_IN_MEANINGS[self.part]
        if self.source == ABSENT:
            return _ABSENT_MEANINGS[self.part]
        return ""

    def note(self) -> str:
        """The line a result's notes carry for a stand-in or an absent part ("" for the user's own)."""
        if self.source == STAND_IN:
            return f"DEMO stand-in for the {self.title}: {self.meaning}"
        if self.source == ABSENT and self.part != CANONICAL_VIEWS:  # the views follow the contact model
            return CONTACT_NOT_PREDICTED
        return ""

    def to_dict(self) -> dict[str, str]:
        return {"part": self.part, "title": self.title, "source": self.source, "meaning": self.meaning}


def part_notes(sources: list[PartSource]) -> list[str]:
    """One note per stand-in or absent part; absent contact parts say it once."""
    notes: list[str] = []
    for note in (source.note() for source in sources):
        if note and note not in notes:
            notes.append(note)
    return notes


def stand_in_summary(sources: list[PartSource]) -> str:
    """One line naming the stand-in parts, for health's demo_reason ("" when there are none)."""
    names = [source.title for source in sources if source.source == STAND_IN]
    return f"generated stand-ins for: {'; '.join(names)}" if names else ""
