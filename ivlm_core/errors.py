"""Errors with a stable code, a message (what went wrong) and a hint (how to fix it).

The server turns these into `{code, message, hint}` answers, so codes never change meaning.
"""

from __future__ import annotations


class IVLMError(Exception):
    """Base class: every error a user can cause or fix carries a code, a message and a hint."""

    code = "INTERNAL"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} Hint: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class BadInputError(IVLMError):
    """The caller's data cannot be used as given (bad mesh, bad image, bad option)."""

    code = "BAD_INPUT"


class MeshError(BadInputError):
    """A mesh is empty, non-finite, badly indexed or too large."""


class ModelFilesMissingError(IVLMError):
    """A licensed or downloaded model file is not where the project looks for it."""

    code = "MODEL_FILES_MISSING"


class ModelFileError(IVLMError):
    """A model file exists but cannot be read safely or has the wrong content."""

    code = "MODEL_FILE_INVALID"
