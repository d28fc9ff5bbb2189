"""Request guards that run before any route: body size, Host header (DNS rebinding), bearer token.

Written as one small ASGI middleware (not Starlette's TrustedHost/GZip helpers) so that every refusal is our
`{code, message, hint}` JSON and an oversized body is refused while it streams in, before it is all buffered.
"""

from __future__ import annotations

import hmac
import json

from server.errors import HTTP_STATUS

_PUBLIC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


# How much of an oversized body is read and thrown away before the 413 is sent. A client (urllib, the add-on)
# that is still sending when the server closes gets a broken pipe instead of the answer; draining a bounded
# amount lets it read the clear PAYLOAD_TOO_LARGE. Bodies declared larger than this are refused at once.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


async def _drain(receive, budget: int) -> None:
    """Reads and discards the rest of the request body, up to `budget` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


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
    def __init__(self, app, *, max_body_bytes: int, token: str | None, allowed_hosts: tuple[str, ...] | None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
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
                    send, "BAD_HOST", f"Host header {host!r} is not this machine",
                    "Connect to http://127.0.0.1:<port>; the server only answers loopback names.",
                )  # fmt: skip
                return
        if self.token is not None and scope["path"] not in _PUBLIC_PATHS:
            if not token_matches(headers.get("authorization"), self.token):
                await _send_error(
                    send, "UNAUTHORIZED", "missing or wrong bearer token",
                    "Send 'Authorization: Bearer <token>' with the server's token (add-on preferences: Token).",
                    [(b"www-authenticate", b"Bearer")],
                )  # fmt: skip
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            if int(declared) <= DRAIN_LIMIT_BYTES:
                await _drain(receive, DRAIN_LIMIT_BYTES)
            await _send_error(send, "PAYLOAD_TOO_LARGE", *self._too_large(int(declared)), [(b"connection", b"close")])
            return

        # The body is read here, up to the limit, and replayed to the app as one message: FastAPI turns any
        # exception raised while it reads the body into a generic 400, so the limit cannot be enforced from
        # inside its receive. FastAPI buffers the whole body anyway, so this costs no extra memory.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_body_bytes:
                chunks.clear()
                if message.get("more_body", False):
                    await _drain(receive, DRAIN_LIMIT_BYTES)
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

    def _too_large(self, size: int) -> tuple[str, str]:
        return (
            f"the request body is {size:,} bytes or more; the limit is {self.max_body_bytes:,}",
            "Send a smaller photo or decimated meshes, or raise the server's --max-request-mb.",
        )
