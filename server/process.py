"""Running the server as a child process on a free loopback port, for tests, benchmarks and scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.client import ApiError, ServerClient
from server.main import LISTENING


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    data_dir: Path
    token: str | None = None
    log: list[str] = field(default_factory=list)

    def client(self, token: str | None = None, timeout: float = 60.0) -> ServerClient:
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


def launch(
    data_dir: Path, args: list[str] = (), env: dict[str, str] | None = None, token: str | None = None,
    timeout: float = 180.0,
) -> ServerProcess:  # fmt: skip
    """`ivlm serve --port 0` in a child process; returns once health says the models are loaded (or failed)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "ivlm_core.cli", "serve", "--port", "0", "--data-dir", str(data_dir), *args]
    if token:
        command += ["--token", token]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
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
    client = server.client(token)
    while time.monotonic() < deadline:
        try:
            if client.health()["status"] != "loading":
                return server
        except (OSError, ApiError):
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the server did not load its models in time:\n" + "".join(log))
