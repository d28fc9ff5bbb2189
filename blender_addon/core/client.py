"""HTTP client for the server: `http.client` with separate connect and read timeouts, bearer token, and every
failure turned into a `ServerError` with a stable code (the UI never sees a raw socket exception)."""

from __future__ import annotations

import http.client
import ipaddress
import json
from urllib.parse import urlsplit

from .protocol import API_SCHEMA_VERSION, InputError, ServerError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerClient:
    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        connect_timeout: float = 0.5,
        read_timeout: float = 5.0,
        allow_remote: bool = False,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                f"The server URL '{url}' is not an address.",
                "Set the Server URL in the add-on preferences, e.g. http://127.0.0.1:8765.",
            )
        if not allow_remote and not is_loopback(parts.hostname):
            raise InputError(
                f"The server URL points to {parts.hostname}, which is not this machine.",
                "The add-on talks to a server on this machine; to use another host, turn on Allow remote server "
                "in the add-on preferences (that server needs a token).",
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.token = token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def request(self, method: str, path: str, body: dict | None = None, read_timeout: float | None = None) -> dict:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        connection = kind(self.host, self.port, timeout=self.connect_timeout)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            connection.connect()
            connection.sock.settimeout(read_timeout or self.read_timeout)
            connection.request(method, path, body=data, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
        except ConnectionRefusedError as exc:
            raise ServerError(
                "CONNECTION_REFUSED",
                f"Nothing listens on {self.host}:{self.port}.",
                "Start the server (./run.sh) or check the URL in the add-on preferences.",
            ) from exc
        except TimeoutError as exc:  # socket.timeout is TimeoutError
            raise ServerError(
                "TIMEOUT",
                f"No answer came from {self.host}:{self.port} within the timeout.",
                "The server may be loading models or overloaded; try again, or raise the timeouts in the preferences.",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ServerError(
                "CONNECTION_REFUSED",
                f"The connection to {self.host}:{self.port} failed ({exc}).",
                "Check that the server is running and the URL is right.",
            ) from exc
        finally:
            connection.close()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise ServerError(
                "BAD_RESPONSE",
                f"It answered HTTP {answer.status} with a body that is not JSON.",
                "Check the Server URL in the add-on preferences.",
                answer.status,
            ) from exc
        if answer.status >= 400:
            if isinstance(payload, dict) and "code" in payload:
                raise ServerError(payload["code"], payload.get("message", ""), payload.get("hint", ""), answer.status)
            raise ServerError(
                "BAD_RESPONSE",
                f"It answered HTTP {answer.status}.",
                "Check the Server URL in the add-on preferences.",
                answer.status,
            )
        if not isinstance(payload, dict):
            raise ServerError(
                "BAD_RESPONSE",
                "Its answer is not a JSON object.",
                "Check the Server URL in the add-on preferences.",
                answer.status,
            )
        return payload

    # -- the API ----------------------------------------------------------------------------------------

    def health(self) -> dict:
        """Health, after checking the server speaks our API schema."""
        health = self.request("GET", "/v1/health")
        version = health.get("api_schema_version")
        if version != API_SCHEMA_VERSION:
            raise ServerError(
                "SCHEMA_MISMATCH",
                f"The server speaks API '{version}', this add-on '{API_SCHEMA_VERSION}'.",
                "Install matching versions of the add-on and the server.",
            )
        return health

    def submit(self, body: dict, upload_timeout: float = 60.0) -> dict:
        return self.request("POST", "/v1/jobs", body, read_timeout=upload_timeout)

    def submit_fit(self, body: dict) -> dict:
        return self.request("POST", "/v1/fit-jobs", body)

    def status(self, job_id: str) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}")

    def result(self, job_id: str, timeout: float = 60.0) -> dict:
        return self.request("GET", f"/v1/jobs/{job_id}/result", read_timeout=timeout)

    def cancel(self, job_id: str, timeout: float | None = None) -> dict:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel", read_timeout=timeout)
