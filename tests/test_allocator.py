"""The allocator setting: the large arrays a render frees are reused by the next render instead of being faulted in
again page by page."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# In a fresh process, with the setting or without: whether it took effect and the fewest page faults of the third to
# fifth 4-view renders of a cube at 1024^2 (the heap may still grow once in a while as it settles).
_SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch
    from ivlm_core.allocator import keep_freed_memory
    from ivlm_core.demo import primitives
    from ivlm_core.render.canonical import render_object_views

    applied = keep_freed_memory() if sys.argv[1] == "set" else None
    torch.set_num_threads(1)
    cube = primitives.cube()
    render_object_views(cube)
    render_object_views(cube)
    faults = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        render_object_views(cube)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(applied, min(faults))
    """
)


def _later_render_faults(mode: str) -> tuple[str, int]:
    command = [sys.executable, "-c", _SCRIPT, mode]
    applied, faults = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout.split()
    return applied, int(faults)


def _huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.skipif(_huge_pages_always(), reason="huge pages always on: a fault maps 2 MB, faults do not measure reuse")
def test_a_render_reuses_the_memory_the_previous_render_freed():
    _, default = _later_render_faults("default")
    applied, kept = _later_render_faults("set")
    assert applied == "True"
    # By default each array above glibc's mmap threshold (32 MiB at most) is a fresh mapping, and freed heap above
    # twice that is given back: the z-buffer alone (4 x 1024^2 int64, 33.5 MB) is 8k pages of 4 kB.
    assert default > 8000
    assert kept < default / 20, (default, kept)
