"""The job state machine: one short network call per `step()`, so a modal operator's timer tick never blocks.

    submit -> poll (until the server says done/failed/cancelled) -> fetch -> done
                                                  \\-> failed | cancelled
A busy server (SERVER_BUSY) is retried until `busy_give_up_s`; any other error ends the job as failed with a
`ServerError` the UI can show.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .client import ServerClient
from .protocol import ServerError


class JobRunner:
    def __init__(
        self,
        client: ServerClient,
        body: dict,
        *,
        fit_only: bool = False,
        poll_interval_s: float = 0.25,
        busy_give_up_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.body = body
        self.fit_only = fit_only
        self.poll_interval_s = poll_interval_s
        self.busy_give_up_s = busy_give_up_s
        self.clock = clock
        self.state = "submit"
        self.job_id: str | None = None
        self.stage = "submitting"
        self.progress = 0.0
        self.message = "sending the inputs"
        self.result: dict | None = None
        self.error: ServerError | None = None
        self.demo = False
        self._started = clock()
        self._not_before = 0.0
        self._cancel_requested = False

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def step(self) -> str:
        """Does at most one request if one is due; returns the state."""
        if self.finished or self.clock() < self._not_before:
            return self.state
        try:
            if self.state == "submit":
                self._submit()
            elif self.state == "poll":
                self._poll()
            elif self.state == "fetch":
                self.result = self.client.result(self._submitted_id())
                self.demo = bool(self.result.get("demo"))
                self.state, self.progress, self.message = "done", 1.0, "finished"
        except ServerError as exc:
            self.error = exc
            self.state = "cancelled" if exc.code == "CANCELLED" else "failed"
            self.message = exc.user_text()
        return self.state

    def _submit(self) -> None:
        if self._cancel_requested:
            self.state, self.message = "cancelled", "The job was cancelled before it was sent."
            return
        try:
            answer = self.client.submit_fit(self.body) if self.fit_only else self.client.submit(self.body)
        except ServerError as exc:
            if exc.code == "SERVER_BUSY" and self.clock() - self._started < self.busy_give_up_s:
                self.message = "the server is busy; waiting for a free slot"
                self._not_before = self.clock() + 2.0
                return
            raise
        self.job_id = answer["job_id"]
        self.demo = bool(answer.get("demo"))
        self.state = "poll"
        self._apply(answer)

    def _submitted_id(self) -> str:
        """The server's job id; only the poll and fetch states ask for it, and they follow a successful submit.
        A ServerError (not an assert) so that `step` ends the job as failed instead of killing a worker thread."""
        if self.job_id is None:
            raise ServerError("INTERNAL", f"the add-on reached the {self.state} step without a job id")
        return self.job_id

    def _poll(self) -> None:
        status = self.client.status(self._submitted_id())
        self._apply(status)
        if status["state"] == "done":
            self.state = "fetch"
        elif status["state"] in ("failed", "cancelled"):
            error = status.get("error") or {}
            raise ServerError(
                error.get("code", "INTERNAL"), error.get("message", status["message"]), error.get("hint", "")
            )
        else:
            self._not_before = self.clock() + self.poll_interval_s

    def _apply(self, status: dict) -> None:
        self.stage = status.get("stage", self.stage)
        self.progress = float(status.get("progress", self.progress))
        self.message = status.get("message", self.message)

    def cancel(self) -> None:
        """Asks the server to stop the job (at its next stage boundary); polling continues until it has."""
        self._cancel_requested = True
        if self.job_id is not None and not self.finished:
            try:
                self.client.cancel(self.job_id)
                self.message = "cancelling"
            except ServerError as exc:
                if exc.code != "JOB_FINISHED":
                    self.error, self.state, self.message = exc, "failed", exc.user_text()

    def run_blocking(
        self,
        timeout_s: float = 600.0,
        sleep: Callable[[float], object] = time.sleep,
        should_cancel: Callable[[], bool] = lambda: False,
    ) -> str:
        """Steps until finished or the deadline (then cancels and fails with TIMEOUT). The synchronous path for
        scripts and tests, and the worker thread's loop (`sleep` and `should_cancel` wired to its event)."""
        deadline = self.clock() + timeout_s
        cancel_sent = False
        while not self.finished:
            if should_cancel() and not cancel_sent:
                self.cancel()
                cancel_sent = True
            if self.clock() > deadline:
                self.cancel()
                self.error = ServerError(
                    "TIMEOUT", f"The job did not finish within {timeout_s:.0f} s and was cancelled.", "Try again."
                )
                self.state, self.message = "failed", self.error.user_text()
                break
            self.step()
            if not self.finished:
                sleep(max(0.0, min(self.poll_interval_s, self._not_before - self.clock())))
        return self.state


class BackgroundJob:
    """Runs a JobRunner on a worker thread that only does socket I/O (never bpy); the UI's timer tick reads
    `state`, `stage`, `progress` and `message`, and applies `result` on the main thread when `finished`."""

    def __init__(self, runner: JobRunner, timeout_s: float = 3600.0) -> None:
        import threading

        self.runner = runner
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(timeout_s,), name="ivlm-job", daemon=True)
        self._thread.start()

    def _loop(self, timeout_s: float) -> None:
        self.runner.run_blocking(timeout_s, sleep=self._sleep, should_cancel=self._cancel.is_set)

    def _sleep(self, seconds: float) -> None:
        """Waits between polls, woken early by a cancel; once cancelled, a plain sleep (the event stays set, so
        waiting on it would return at once and the loop would spin until the server reports the job cancelled)."""
        if self._cancel.is_set() or self._cancel.wait(seconds):
            time.sleep(seconds)

    def cancel(self) -> None:
        self._cancel.set()

    def abandon(self, wait_s: float = 2.0, timeout_s: float = 1.0) -> None:
        """Best effort, for a job nobody will wait for (Blender quits, a file loads, the add-on is disabled): asks
        the server to cancel it now, from the caller's thread, because the worker is a daemon thread that dies with
        Blender before its next poll. Waits up to `wait_s` for a submit still in flight to name the job; errors
        are ignored (the server may already be gone)."""
        self._cancel.set()
        deadline = time.monotonic() + wait_s
        while self.runner.job_id is None and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        job_id = self.runner.job_id
        if job_id is None or self.runner.finished:
            return
        try:
            self.runner.client.cancel(job_id, timeout=timeout_s)
        except ServerError:
            pass

    @property
    def finished(self) -> bool:
        return self.runner.finished and not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
