"""The server's error codes and their HTTP statuses: the one table clients can rely on.

Every error answer is `{code, message, hint}` (`schemas.ErrorBody`); codes never change meaning.
"""

from __future__ import annotations

import re

from ivlm_core.errors import IVLMError

HTTP_STATUS = {
    "BAD_INPUT": 400,
    "SCHEMA_MISMATCH": 400,
    "BAD_HOST": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "REQUEST_TIMEOUT": 408,
    "JOB_NOT_FINISHED": 409,
    "JOB_FINISHED": 409,
    "JOB_DAMAGED": 410,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "SERVER_BUSY": 429,
    "INTERNAL": 500,
    "MODEL_FILES_MISSING": 503,
    "MODEL_FILE_INVALID": 503,
    "STORAGE_FULL": 507,
    # codes a job can fail with (seen in its status / result, never as an answer to the submit itself):
    "GPU_OOM": 507,
    "CANCELLED": 409,
    "INTERRUPTED": 409,
    "WORKER_CRASHED": 500,
}


class ServerError(IVLMError):
    """An error with any of the codes above."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.code = code

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def http_status(error: IVLMError) -> int:
    return HTTP_STATUS.get(error.code, 500)


def public_text(text: str, folders: dict[str, str]) -> str:
    """`text` with each server folder (a key of `folders`) replaced by how users know it (its value), e.g.
    '/home/ana/ivlm-models/body_models' -> '<models folder>/body_models': a client never learns the server's paths.
    """
    for folder in sorted(folders, key=len, reverse=True):
        text = re.sub(re.escape(folder.rstrip("/")) + r"(?=/|\b|$)", lambda _, name=folders[folder]: name, text)
    return text
