"""Running the server as a child process on a free loopback port, for tests, benchmarks and scripts.

Standard library only, so the Blender tests (whose environment has no torch) can start a server too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from server import LISTENING


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    data_dir: Path
    token: str | None = None
    log: list[str] = field(default_factory=list)

    def client(self, token: str | None = None, timeout: float = 60.0):
        from server.client import ServerClient

        return ServerClient(self.url, token=token, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """Ctrl+C (uvicorn's graceful shutdown), then kill if it hangs; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _health_state(url: str, token: str | None) -> str | None:
    request = urllib.request.Request(url + "/v1/health", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())["status"]
    except (OSError, ValueError, KeyError):
        return None


def launch(
    data_dir: Path,
    args: list[str] = (),
    env: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 600.0,
    python: str = sys.executable,
) -> ServerProcess:
    """`ivlm serve --port 0` in a child process; returns once health says the models are loaded (or failed).

    `timeout` only bounds a start that hangs: a first start generates the DEMO assets, which takes minutes on a
    busy 2-core machine (180 s was seen to run out there), so it is generous.
    """
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [python, "-m", "ivlm_core.cli", "serve", "--port", "0", "--data-dir", str(data_dir), *args]
    if token:
        command += ["--token", token]
    process = subprocess.Popen(  # its own process group, so a test can send it Ctrl+C as a terminal would
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, start_new_session=True
    )
    log: list[str] = []
    url = None
    deadline = time.monotonic() + timeout
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
    server = ServerProcess(process, url, Path(data_dir), token, log)
    threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()  # keep the pipe drained
    while time.monotonic() < deadline:
        if _health_state(url, token) not in (None, "loading"):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the server did not load its models in time:\n" + "".join(log))
