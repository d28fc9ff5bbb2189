"""Check Server without blocking the UI, and keep its answer current.

A check runs `ServerClient.health()` on a daemon thread (socket I/O only); the UI reads `latest` from a timer.
Once the user has checked, the add-on re-checks every `refresh_s`, so the panel follows a server that was
restarted (with other model files, or stopped) instead of showing what it said minutes ago.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .client import ServerClient
from .messages import join_sentences
from .protocol import ServerError, UserError

MAX_MISSING_SHOWN = 3


@dataclass(frozen=True)
class HealthReport:
    """What the panel shows about the server: whole-sentence lines, and the flags the UI colours by."""

    lines: tuple[str, ...]
    reachable: bool
    demo: bool
    checked_at: float  # time.time() when the answer came (for "checked at 12:03:05")

    def text(self) -> str:
        return "\n".join(self.lines)


def summarize(health: dict, checked_at: float) -> HealthReport:
    """The lines for a health answer: version, device and state; DEMO mode and why; missing model files."""
    lines = [
        join_sentences(
            f"Server {health.get('server_version', '?')} on {health.get('device', '?')} is "
            f"{health.get('status', 'in an unknown state')}"
        )
    ]
    if health.get("demo"):
        reason = str(health.get("demo_reason", "")).strip()
        lines.append(join_sentences("DEMO mode", reason, "Results are not meaningful"))
    missing = list(health.get("missing_model_files", []))
    for item in missing[:MAX_MISSING_SHOWN]:
        lines.append(join_sentences(f"Missing model file: {item.get('name', '?')}"))
    if len(missing) > MAX_MISSING_SHOWN:
        lines.append(join_sentences(f"{len(missing) - MAX_MISSING_SHOWN} more model files are missing"))
    load_error = health.get("load_error")
    if isinstance(load_error, dict):
        lines.append(join_sentences(load_error.get("message", ""), load_error.get("hint", "")))
    lines.append(time.strftime("Checked at %H:%M:%S.", time.localtime(checked_at)))
    return HealthReport(tuple(lines), True, bool(health.get("demo")), checked_at)


def failed(error: UserError, checked_at: float) -> HealthReport:
    return HealthReport(
        (error.user_text(), time.strftime("Checked at %H:%M:%S.", time.localtime(checked_at))),
        False,
        False,
        checked_at,
    )


class HealthChecker:
    """One health check at a time on a worker thread; `latest` is the newest finished check.

    `clock` (monotonic seconds) decides when a re-check is due, so tests drive it without waiting."""

    def __init__(self, refresh_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.clock = clock
        self.latest: HealthReport | None = None
        self.generation = 0  # counts finished checks, so the UI copies each answer once
        self._finished_at: float | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, client: ServerClient) -> bool:
        """Starts a check unless one is running; returns whether it started. Never waits on the network."""
        with self._lock:
            if self.busy:
                return False
            self._thread = threading.Thread(target=self._check, args=(client,), name="ivlm-health", daemon=True)
            self._thread.start()
            return True

    def _check(self, client: ServerClient) -> None:
        try:
            report = summarize(client.health(), time.time())
        except ServerError as exc:
            report = failed(exc, time.time())
        with self._lock:
            self.latest = report
            self.generation += 1
            self._finished_at = self.clock()

    def due(self) -> bool:
        """A re-check is due: an earlier check finished more than `refresh_s` ago and none is running."""
        return self._finished_at is not None and not self.busy and self.clock() - self._finished_at >= self.refresh_s

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
