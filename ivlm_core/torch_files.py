"""Reading third-party PyTorch checkpoints without running pickled code.

`torch.load(weights_only=True)` refuses any class it does not know. Training frameworks save a few plain
dictionaries under their own class names (PyTorch Lightning's `AttributeDict` for hyper-parameters); those, and
only those, may be named in `plain_dicts`: they are rebuilt as OrderedDicts (their items only), never imported.
Anything else in the file is refused with an error that names the class.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ivlm_core.errors import ModelFileError

LIGHTNING_DICTS = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
)


def load_checkpoint(path: Path, what: str, hint: str, plain_dicts: tuple[str, ...] = ()) -> Any:
    """The unpickled checkpoint at `path` (tensors on the CPU). Raises ModelFileError naming the file and the
    reason when it is damaged or holds anything but tensors, plain containers and the named `plain_dicts`."""
    stand_ins: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        (OrderedDict, name) for name in plain_dicts
    ]  # rebuilt as an OrderedDict: items only
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path} ({what}) holds objects other than weights and plain containers, so it was not loaded "
            f"(no pickled code is run): {_reason(exc)}",
            hint,
        ) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelFileError(f"{path} ({what}) cannot be read: it is damaged or truncated ({exc}).", hint) from exc


def _reason(exc: Exception) -> str:
    """The useful line of torch's weights-only refusal (what it met), without its generic advice."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("WeightsUnpickler error") and i + 1 < len(lines):
            return lines[i + 1]
    return lines[0] if lines else type(exc).__name__
