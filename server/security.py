"""Request guards that run before any route: body size, Host header (DNS rebinding), bearer token.

Written as one small ASGI middleware (not Starlette's TrustedHost/GZip helpers) so that every refusal is our
`{code, message, hint}` JSON and an oversized body is refused while it streams in, before it is buffered.
"""

from __future__ import annotations

import hmac
import json

from server.errors import HTTP_STATUS

_PUBLIC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


class _TooLarge(Exception):
    pass


async def _send_error(send, code: str, message: str, hint: str, headers: list[tuple[bytes, bytes]] = ()) -> None:  # noqa: ANN001
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
    def __init__(self, app, *, max_body_bytes: int, token: str | None, allowed_hosts: tuple[str, ...] | None) -> None:  # noqa: ANN001
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.token = token
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
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
            await _send_error(send, "PAYLOAD_TOO_LARGE", *self._too_large(int(declared)))
            return

        received = 0
        started = False

        async def limited_receive():  # noqa: ANN202
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message) -> None:  # noqa: ANN001
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_error(send, "PAYLOAD_TOO_LARGE", *self._too_large(received))

    def _too_large(self, size: int) -> tuple[str, str]:
        return (
            f"the request body is {size:,} bytes or more; the limit is {self.max_body_bytes:,}",
            "Send a smaller photo or decimated meshes, or raise the server's --max-request-mb.",
        )
