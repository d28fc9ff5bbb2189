"""ensure_folder_once: written once per version, replaced whole on a new version, nothing left on failure."""

import pytest

from ivlm_core.fileio import ensure_folder_once


def test_folder_written_once_per_version(tmp_path):
    root = tmp_path / "generated"
    calls = []

    def write(folder):
        calls.append(folder)
        (folder / "data.txt").write_text(str(len(calls)))

    assert ensure_folder_once(root, "v1", write) is True
    assert ensure_folder_once(root, "v1", write) is False
    assert (root / "data.txt").read_text() == "1" and (root / "VERSION").read_text().strip() == "v1"
    assert ensure_folder_once(root, "v2", write) is True
    assert (root / "data.txt").read_text() == "2" and len(calls) == 2


def test_failed_write_leaves_the_old_folder_and_no_temp(tmp_path):
    root = tmp_path / "generated"
    ensure_folder_once(root, "v1", lambda f: (f / "data.txt").write_text("old"))

    def broken(folder):
        (folder / "data.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ensure_folder_once(root, "v2", broken)
    assert (root / "data.txt").read_text() == "old"
    # only the folder and the writers' lock file remain (no half-written temporary folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".generated.lock", "generated"]


def test_concurrent_writers_write_the_folder_once(tmp_path):
    """Test workers, a server and its worker share the cache: a second writer waits and reuses the first one's
    folder instead of replacing it under its readers."""
    import threading
    import time

    root = tmp_path / "generated"
    calls = []

    def write(folder):
        calls.append(folder)
        time.sleep(0.3)
        (folder / "data.txt").write_text("done")

    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_folder_once(root, "v1", write))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True] and len(calls) == 1
    assert (root / "data.txt").read_text() == "done"
