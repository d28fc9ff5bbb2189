"""A real server process (`python -m ivlm_core.cli serve`) on a random loopback port, on DEMO assets."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.process import ServerProcess, launch

OOM_LABEL = "simulate-oom"
CRASH_LABEL = "simulate-crash"


@pytest.fixture(scope="session")
def empty_models_dir(tmp_path_factory) -> Path:
    """The models folder the test servers are given: empty, so they choose DEMO mode themselves."""
    return tmp_path_factory.mktemp("no-models")


@pytest.fixture(scope="session")
def start_server(empty_models_dir, tmp_path_factory, synthetic_body_files, tiny_models, tiny_perception) -> Iterator:
    """A factory: start_server(*cli_args, data_dir=None, env=None, token=None) -> ServerProcess; all are stopped
    at the end."""
    started: list[ServerProcess] = []
    models_dir = empty_models_dir

    def start(
        *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None, token: str | None = None
    ) -> ServerProcess:
        env = {"IVLM_MODELS_DIR": str(models_dir), **(env or {})}
        server = launch(data_dir or tmp_path_factory.mktemp("server-data"), list(args), env, token)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def oom_label() -> str:
    return OOM_LABEL


@pytest.fixture(scope="session")
def crash_label() -> str:
    return CRASH_LABEL


@pytest.fixture(scope="session")
def disk_full_flag(tmp_path_factory) -> Path:
    """While this file exists, every write of the shared server's job store fails as on a full disk (ENOSPC)."""
    return tmp_path_factory.mktemp("faults") / "disk-full"


@pytest.fixture(scope="session")
def server(start_server, disk_full_flag) -> ServerProcess:
    """The shared demo server (simulated out-of-memory for the label OOM_LABEL, a worker crash for CRASH_LABEL,
    a full disk while `disk_full_flag` exists)."""
    faults = f"oom-label={OOM_LABEL},crash-label={CRASH_LABEL},disk-full-flag={disk_full_flag}"
    return start_server(env={"IVLM_SERVER_TEST_FAULTS": faults})


@dataclass(frozen=True)
class DemoScene:
    png: bytes
    label: str
    vertices: np.ndarray
    faces: np.ndarray
    body_vertices: np.ndarray


@pytest.fixture(scope="session")
def demo_scene(synthetic_body_files) -> DemoScene:
    """The foot-on-ball DEMO scene (640x480): a photo, the ball's mesh and the scene's true body."""
    from ivlm_core.demo.scenes import make_scene

    scene = make_scene("foot_on_ball", 0)
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, "PNG")
    mesh = scene.object_mesh
    return DemoScene(buffer.getvalue(), scene.label, mesh.vertices, mesh.faces, scene.body_vertices)


def _lay_out_models_folder(root: Path, synthetic_body_files, tiny_models, tiny_perception) -> Path:
    """Copies the generated assets into the user's models-folder layout (`ivlm_core.paths`), so the server takes
    its real-model path: `ivlm doctor` finds every item and `ContactPipeline.from_models_dir` loads them."""
    import shutil

    from ivlm_core import paths
    from ivlm_core.pipeline.reconstruct import HUMAN_RELEASE, OBJECT_RELEASE

    shutil.copytree(paths.body_models_dir(synthetic_body_files.root), paths.body_models_dir(root))
    shutil.copytree(paths.interactvlm_data_dir(synthetic_body_files.root), paths.interactvlm_data_dir(root))
    for release in (HUMAN_RELEASE, OBJECT_RELEASE):
        shutil.copytree(tiny_models.releases[release], paths.interactvlm_release_dir(release, root))
    shutil.copytree(tiny_models.clip, paths.clip_dir(root))
    for name, folder in tiny_perception.items():
        shutil.copytree(folder, paths.perception_dir(name, root))
    return root


@pytest.fixture
def models_folder(tmp_path, synthetic_body_files, tiny_models, tiny_perception) -> Path:
    """A complete models folder of generated assets (about 20 MB), fresh for each test so a test may damage it."""
    return _lay_out_models_folder(tmp_path / "ivlm-models", synthetic_body_files, tiny_models, tiny_perception)
