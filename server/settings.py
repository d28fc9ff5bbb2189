"""Server settings: one place for defaults, limits and their environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ivlm_core.errors import BadInputError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MIB = 1024 * 1024


def default_data_dir() -> Path:
    """Job inputs and results (`IVLM_DATA_DIR`, default `$XDG_DATA_HOME/ivlm/server` or ~/.local/share/...)."""
    env = os.environ.get("IVLM_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")).expanduser()
    return base / "ivlm" / "server"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    models_dir: Path | None = None  # None: IVLM_MODELS_DIR or ~/ivlm-models
    data_dir: Path = field(default_factory=default_data_dir)
    token: str | None = field(default_factory=lambda: os.environ.get("IVLM_SERVER_TOKEN") or None)
    device: str = "auto"  # auto: cuda when available, else cpu
    demo: bool | None = None  # None: demo exactly when model files are missing; True: always; False: never
    gpu_memory_gb: float | None = None  # the memory budget the configuration is planned for (None: detected)
    convert_on_start: bool = False  # convert .bin releases to safetensors once, before loading (faster later starts)
    queue_capacity: int = 16  # waiting jobs; one more answers SERVER_BUSY
    max_request_bytes: int = 256 * MIB
    max_image_pixels: int = 50_000_000
    max_mesh_vertices: int = 1_000_000
    max_mesh_faces: int = 2_000_000
    job_ttl_s: float = 7 * 24 * 3600.0  # finished jobs older than this are deleted
    cleanup_interval_s: float = 600.0  # (or the TTL, if shorter)
    # Connections (uvicorn and server.security). A client that sends its request slowly, or nothing, would
    # otherwise hold a connection for good; past max_connections uvicorn answers 503 until some close.
    max_connections: int = 64
    head_timeout_s: float = 10.0  # from connecting (or the previous answer) to a complete request head
    body_timeout_s: float = 10.0  # a request body must arrive within this plus 1 s per MiB (BODY_MIN_RATE)
    keep_alive_s: float = 5.0  # an idle kept-alive connection is closed after this
    max_head_bytes: int = 64 * 1024  # request line and headers (h11's limit; the add-on sends well under 1 KiB)
    # Test-only fault injection, read from IVLM_SERVER_TEST_FAULTS and honoured in DEMO mode only:
    # "oom-label=<label>" makes a job with that object label hit a real torch.OutOfMemoryError mid-run;
    # "crash-label=<label>" makes the worker process exit abruptly mid-run (as a segfault or OOM kill would);
    # "disk-full-flag=<path>" makes every job-store write fail as on a full disk (ENOSPC) while that file exists;
    # "hold-label=<label>" makes a job with that label wait HOLD_S in the worker once its contact stage began.
    test_faults: str = field(default_factory=lambda: os.environ.get("IVLM_SERVER_TEST_FAULTS", ""))

    def check(self) -> None:
        """Refuses unsafe or impossible settings with a clear reason."""
        if not is_loopback(self.host) and not self.token:
            raise BadInputError(
                f"refusing to listen on {self.host} without a token: anyone on the network could use the server",
                "Set IVLM_SERVER_TOKEN (or --token) to a long random secret, or bind 127.0.0.1.",
            )
        if self.token is not None and len(self.token) < 16:
            raise BadInputError("the server token is shorter than 16 characters", "Use a long random secret.")
        if self.gpu_memory_gb is not None and not self.gpu_memory_gb > 0:
            raise BadInputError("--gpu-memory-gb must be a positive number of gigabytes", "e.g. --gpu-memory-gb 16")
        if self.queue_capacity < 1:
            raise BadInputError("the queue capacity must be at least 1", "Use --queue-capacity 1 or more.")

    def allowed_hosts(self) -> tuple[str, ...] | None:
        """Host headers accepted (DNS-rebinding guard) when bound to loopback; None accepts any."""
        return LOOPBACK_HOSTS if is_loopback(self.host) else None

    def fault_label(self, kind: str) -> str | None:
        for item in self.test_faults.split(","):
            name, _, value = item.partition("=")
            if name.strip() == kind and value.strip():
                return value.strip()
        return None
