"""A real server process (`python -m ivlm_core.cli serve`) on a random loopback port, on DEMO assets."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.client import ServerClient
from server.main import LISTENING

OOM_LABEL = "simulate-oom"
START_TIMEOUT_S = 120.0


@dataclass
class RunningServer:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log: list[str] = field(default_factory=list)

    def client(self, token: str | None = None, timeout: float = 60.0) -> ServerClient:
        return ServerClient(self.url, token=token, timeout=timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _start(
    data_dir: Path, models_dir: Path, args: list[str], env: dict[str, str] | None, token: str | None
) -> RunningServer:
    environment = {**os.environ, "IVLM_MODELS_DIR": str(models_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "ivlm_core.cli", "serve", "--port", "0", "--data-dir", str(data_dir), *args]
        + (["--token", token] if token else []),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
    )  # fmt: skip
    log: list[str] = []
    url = None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        log.append(line)
        if line.startswith(LISTENING):
            url = line.split()[4]
            break
    if url is None:
        process.kill()
        raise RuntimeError("the server did not start:\n" + "".join(log))
    server = RunningServer(process, url, data_dir, log)
    threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()  # keep the pipe drained
    client = server.client(token)
    while time.monotonic() < deadline:
        try:
            if client.health()["status"] != "loading":
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the server did not load its models in time:\n" + "".join(log))


@pytest.fixture(scope="session")
def start_server(tmp_path_factory, synthetic_body_files, tiny_models, tiny_perception) -> Iterator:  # noqa: ANN001
    """A factory: start_server(*cli_args, data_dir=None, env=None, token=None) -> RunningServer; all are stopped
    at the end."""
    started: list[RunningServer] = []
    models_dir = tmp_path_factory.mktemp("no-models")  # empty: the server must choose DEMO mode itself

    def start(
        *args: str, data_dir: Path | None = None, env: dict[str, str] | None = None, token: str | None = None
    ) -> RunningServer:
        server = _start(data_dir or tmp_path_factory.mktemp("server-data"), models_dir, list(args), env, token)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def oom_label() -> str:
    return OOM_LABEL


@pytest.fixture(scope="session")
def server(start_server) -> RunningServer:  # noqa: ANN001
    """The shared demo server (simulated out-of-memory for the label OOM_LABEL)."""
    return start_server(env={"IVLM_SERVER_TEST_FAULTS": f"oom-label={OOM_LABEL}"})


@dataclass(frozen=True)
class DemoScene:
    png: bytes
    label: str
    vertices: np.ndarray
    faces: np.ndarray
    body_vertices: np.ndarray


@pytest.fixture(scope="session")
def demo_scene(synthetic_body_files) -> DemoScene:  # noqa: ANN001
    """The foot-on-ball DEMO scene (640x480): a photo, the ball's mesh and the scene's true body."""
    from ivlm_core.demo.scenes import make_scene

    scene = make_scene("foot_on_ball", 0)
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, "PNG")
    mesh = scene.object_mesh
    return DemoScene(buffer.getvalue(), scene.label, mesh.vertices, mesh.faces, scene.body_vertices)
