"""Demo assets the project generates itself (never downloaded, never committed): synthetic body models
in the real SMPL-X / SMPL-H file formats, demo objects.

The body-model names are imported lazily, so `import ivlm_core.demo.objects` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GENERATOR_VERSION", "SyntheticBodyFiles", "ensure_synthetic_body_models", "write_synthetic_body_models"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ivlm_core.demo import body_model

        return getattr(body_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
