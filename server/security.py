"""Request guards that run before any route: body size and time, Host header (DNS rebinding), bearer token; and
the connection protocol's deadline for request heads.

Written as one small ASGI middleware (not Starlette's TrustedHost/GZip helpers) so that every refusal is our
`{code, message, hint}` JSON and an oversized or too slow body is refused while it streams in.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.errors import HTTP_STATUS

_PUBLIC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


# How much of an oversized body is read and thrown away before the 413 is sent. A client (urllib, the add-on)
# that is still sending when the server closes gets a broken pipe instead of the answer; draining a bounded
# amount lets it read the clear PAYLOAD_TOO_LARGE. Bodies declared larger than this are refused at once.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
BODY_MIN_RATE = 1024 * 1024  # bytes/s: a body may take body_timeout_s plus 1 s per MiB, no longer


def head_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing connections that send no complete request head within `seconds`."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": seconds})


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head.

    uvicorn times out only kept-alive connections idle after an answer: a client that connected and sent nothing,
    or its headers a byte at a time, held its connection for good (300 such stayed open). Here a connection must
    deliver a complete request head within `head_timeout_s` of connecting or of its last answer, or it is closed.
    Hand-written because uvicorn has no such setting; it uses H11Protocol's `conn`, `loop`, `transport` and the
    `connection_made` / `on_response_complete` / `connection_lost` hooks.
    """

    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # the connection is now ready for its next request head
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = None
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # no complete head arrived
            self.transport.close()


async def _drain(receive, budget: int, timeout_s: float) -> None:
    """Reads and discards the rest of the request body, up to `budget` bytes and `timeout_s` seconds."""

    async def drain() -> None:
        nonlocal budget
        while budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    try:
        await asyncio.wait_for(drain(), timeout_s)
    except TimeoutError:
        pass  # a slow client gets the answer anyway, or a broken pipe


async def _send_error(send, code: str, message: str, hint: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"code": code, "message": message, "hint": hint}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": HTTP_STATUS[code],
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def token_matches(header: str | None, token: str) -> bool:
    """Constant-time comparison of an Authorization header with 'Bearer <token>'."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class RequestGuard:
    def __init__(
        self,
        app,
        *,
        max_body_bytes: int,
        token: str | None,
        allowed_hosts: tuple[str, ...] | None,
        body_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.token = token
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name.strip("[]") not in self.allowed_hosts:
                await _send_error(
                    send,
                    "BAD_HOST",
                    f"Host header {host!r} is not this machine",
                    "Connect to http://127.0.0.1:<port>; the server only answers loopback names.",
                )
                return
        if self.token is not None and scope["path"] not in _PUBLIC_PATHS:
            if not token_matches(headers.get("authorization"), self.token):
                await _send_error(
                    send,
                    "UNAUTHORIZED",
                    "missing or wrong bearer token",
                    "Send 'Authorization: Bearer <token>' with the server's token (add-on preferences: Token).",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            if int(declared) <= DRAIN_LIMIT_BYTES:
                await _drain(receive, DRAIN_LIMIT_BYTES, self._allowance(DRAIN_LIMIT_BYTES))
            await _send_error(send, "PAYLOAD_TOO_LARGE", *self._too_large(int(declared)), [(b"connection", b"close")])
            return

        # The body is read here, up to the limit, and replayed to the app as one message: FastAPI turns any
        # exception raised while it reads the body into a generic 400, so the limit cannot be enforced from
        # inside its receive. FastAPI buffers the whole body anyway, so this costs no extra memory.
        chunks: list[bytes] = []
        received = 0
        started = time.monotonic()
        expected = int(declared) if declared is not None and declared.isdigit() else None
        while True:
            allowed = self._allowance(expected if expected is not None else received)
            try:  # a chunked body's allowance grows as it arrives; a declared one's is known at once
                message = await asyncio.wait_for(receive(), max(0.0, started + allowed - time.monotonic()))
            except TimeoutError:
                await _send_error(
                    send,
                    "REQUEST_TIMEOUT",
                    f"the request body did not arrive in {allowed:.0f} s ({received:,} bytes came)",
                    f"Send the whole request without pausing; a body may take {self.body_timeout_s:.0f} s plus 1 s per MiB.",
                    [(b"connection", b"close")],
                )
                return
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_body_bytes:
                chunks.clear()
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_LIMIT_BYTES, self._allowance(DRAIN_LIMIT_BYTES))
                await _send_error(send, "PAYLOAD_TOO_LARGE", *self._too_large(received), [(b"connection", b"close")])
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay_receive():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay_receive, send)

    def _allowance(self, size: int) -> float:
        """Seconds a body of `size` bytes may take to arrive."""
        return self.body_timeout_s + size / BODY_MIN_RATE

    def _too_large(self, size: int) -> tuple[str, str]:
        return (
            f"the request body is {size:,} bytes or more; the limit is {self.max_body_bytes:,}",
            "Send a smaller photo or decimated meshes, or raise the server's --max-request-mb.",
        )
