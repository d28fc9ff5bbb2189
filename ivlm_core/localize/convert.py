"""Converting releases to safetensors once, on the server's first start when asked (`ivlm serve --convert-on-start`).

Releases ship as PyTorch pickles (`pytorch_model-*.bin`); reading them means unpickling 26 GB per release at every
start. `checkpoint.convert_release` writes safetensors in our layout beside them (in the release folder, marker
last), after which every start reads the safetensors (see benchmarks/bench_startup.py for the two start times).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ivlm_core import paths
from ivlm_core.localize.checkpoint import CONVERTED_MARKER, convert_release

log = logging.getLogger("ivlm.convert")
PROGRESS_EVERY_S = 5.0


def convert_releases_once(releases: tuple[str, ...] | list[str], root: Path | None = None) -> list[Path]:
    """Converts each release folder under `root` that is not converted yet, in place, logging progress; returns the
    folders it converted."""
    converted = []
    for name in releases:
        folder = paths.interactvlm_release_dir(name, root)
        if (folder / CONVERTED_MARKER).is_file():
            continue
        log.info("converting %s to safetensors (once; later starts read the safetensors)", name)
        last = [0.0]
        start = time.perf_counter()

        def report(done: int, total: int, name: str = name, last: list[float] = last) -> None:
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_EVERY_S or done >= total:
                last[0] = now
                log.info(
                    "converting %s: %3.0f%% (%.1f of %.1f GB)",
                    name,
                    100 * done / max(total, 1),
                    done / 1e9,
                    total / 1e9,
                )

        convert_release(folder, folder, progress=report)
        log.info("converted %s in %.0f s", name, time.perf_counter() - start)
        converted.append(folder)
    return converted
