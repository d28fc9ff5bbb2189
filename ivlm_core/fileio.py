"""Small file helpers shared by every stage: atomic writes, so a crash never leaves half a file."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it replaces `path` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_npz_atomic(
    path: Path, arrays: dict[str, np.ndarray], compressed: bool = True, allow_pickle: bool = False
) -> None:
    """np.savez(_compressed) into `path` atomically (the temp name keeps the .npz suffix numpy wants).

    Object arrays are refused unless `allow_pickle` (only the generated SMPL-X/H files, whose release format holds
    two dicts); naming the keyword also keeps an array called "allow_pickle" from reaching it."""
    with atomic_path(path) as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, allow_pickle=allow_pickle, **arrays)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (model files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_folder_once(root: Path, version: str, write: Callable[[Path], object]) -> bool:
    """Writes a generated folder at `root` once per `version`, atomically; returns True when it (re)wrote it.

    `write` fills a temporary folder beside `root`; a VERSION stamp is added and the folder swapped into place
    in one rename, so readers never see half a folder and a new version replaces the old.
    """
    stamp = root / "VERSION"

    def current() -> bool:
        return stamp.is_file() and stamp.read_text().strip() == version

    if current():
        return False
    root.parent.mkdir(parents=True, exist_ok=True)
    # One writer at a time (test workers, a server and its worker share the cache): without the lock a second
    # writer could remove the folder while the first one's readers use it.
    with FileLock(root.parent / f".{root.name}.lock"):
        if current():  # another process wrote it while this one waited
            return False
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            write(tmp)
            (tmp / "VERSION").write_text(version + "\n")
            if root.exists():
                shutil.rmtree(root)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True
