"""What the add-on and the server agree on: the API schema version and what each error code means to a user."""

from __future__ import annotations

from .messages import join_sentences

API_SCHEMA_VERSION = "ivlm-api-1"
SMPLX_VERTEX_COUNT = 10475
FINISHED_STATES = ("done", "failed", "cancelled")

# One fixed sentence per error code, shown before the server's own message and hint.
USER_MESSAGES = {
    "CONNECTION_REFUSED": "The InteractVLM server is not running at this address.",
    "TIMEOUT": "The InteractVLM server did not answer in time.",
    "BAD_RESPONSE": "The server's answer could not be read (is this an InteractVLM server?).",
    "BAD_INPUT": "The server could not use the inputs.",
    "SCHEMA_MISMATCH": "The add-on and the server are different versions.",
    "UNAUTHORIZED": "The server needs a token: set it in the add-on preferences.",
    "SERVER_BUSY": "The server is busy with other jobs.",
    "GPU_OOM": "The GPU ran out of memory.",
    "MODEL_FILES_MISSING": "Model files are missing on the server.",
    "MODEL_FILE_INVALID": "A model file on the server is damaged.",
    "PAYLOAD_TOO_LARGE": "The photo or a mesh is too large for the server.",
    "CANCELLED": "The job was cancelled.",
    "INTERRUPTED": "The server stopped before the job finished.",
    "WORKER_CRASHED": "The server's model worker stopped during the job; it has been restarted.",
    "NOT_FOUND": "The server no longer has this job.",
    "STORAGE_FULL": "The server's disk is full.",
    "JOB_DAMAGED": "The job's files on the server are damaged or missing.",
    "REQUEST_TIMEOUT": "The request reached the server too slowly.",
    "INTERNAL": "The server hit an internal error.",
}


class UserError(Exception):
    """What the user reads when something cannot be done: `message` (what happened), `hint` (what to do)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        """Whole sentences for the UI: what happened, then what to do."""
        return join_sentences(self.message, self.hint)


class InputError(UserError):
    """A problem the add-on finds itself, before or without the server: the scene, a file, the preferences."""


class ServerError(UserError):
    """An error answer or a failed connection, with a stable code, the server's message and a hint."""

    def __init__(self, code: str, message: str, hint: str = "", status: int | None = None) -> None:
        super().__init__(message, hint)
        self.code = code
        self.status = status

    def user_text(self) -> str:
        """The fixed sentence for the code, then the server's message and hint, each as whole sentences."""
        return join_sentences(USER_MESSAGES.get(self.code, f"Server error {self.code}."), self.message, self.hint)
