"""The FastAPI application: `/v1` routes, error answers, and the request guard.

Handlers that touch files or decode uploads are plain `def` (FastAPI runs them in its thread pool); status and
health are `async` and only read memory, so they answer at once even while the worker runs a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path as FilePath
from typing import Any

import jiter
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ivlm_core.errors import IVLMError
from ivlm_core.pipeline.outputs import RESULT_SCHEMA
from server import SERVER_VERSION
from server.errors import http_status
from server.jobs import JobService
from server.schemas import (
    API_SCHEMA_VERSION,
    JOB_ID_PATTERN,
    ConfigurationInfo,
    ErrorBody,
    EstimateRequest,
    FitRequest,
    Health,
    JobResult,
    JobStatus,
    Limits,
    MissingModelFile,
    PartOut,
    QueueInfo,
)
from server.security import RequestGuard

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 408, 409, 410, 413, 422, 429, 500, 503, 507)
}
_NOT_JSON_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")
JobId = Path(pattern=JOB_ID_PATTERN, description="a job id (32 lowercase hex digits)")


def _error_response(error: IVLMError, status: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if error.code == "SERVER_BUSY" else None
    return JSONResponse(error.to_dict(), status_code=status or http_status(error), headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":  # the parser's own words say what is wrong, and where
            return f"the request body is not valid JSON: {err.get('ctx', {}).get('error', 'it could not be parsed')}"
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class _FastJSONRequest(Request):
    """A request whose JSON body is parsed by jiter (pydantic-core's parser) instead of `json.loads`.

    FastAPI parses bodies on the event loop, and either parser holds the GIL throughout: on a 32 MB mesh upload
    `json.loads` held it for 33 ms and jiter for 10 ms (measured), during which health cannot answer. jiter also
    refuses what JSON leaves undefined or does not have: a key twice in one object (JSON parsers disagree on which
    one wins) and NaN / Infinity.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = jiter.from_json(body, allow_inf_nan=False, catch_duplicate_keys=True)
            except ValueError as exc:  # FastAPI answers a JSONDecodeError as a validation error (422)
                raise json.JSONDecodeError(_json_problem(str(exc), body), "", 0) from exc
        return self._json


def _json_problem(message: str, body: bytes) -> str:
    """jiter's message, said plainly when it stopped at NaN or Infinity ("expected value at line L column C")."""
    where = re.search(r"line (\d+) column (\d+)", message)
    if where is not None:
        line, column = int(where[1]), int(where[2])
        text = body.split(b"\n", line)[line - 1] if line >= 1 else b""
        if text[column - 1 :].startswith(_NOT_JSON_NUMBERS):
            return f"NaN and Infinity are not JSON numbers ({message}); send finite numbers"
    return message


class _FastJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return route


def create_app(service: JobService) -> FastAPI:
    settings = service.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()

        async def clean_periodically() -> None:
            while True:  # at least once per TTL, so a short TTL (tests) is kept as well as the default
                await asyncio.sleep(min(settings.cleanup_interval_s, settings.job_ttl_s))
                await run_in_threadpool(service.cleanup)

        cleaner = asyncio.create_task(clean_periodically())
        try:
            yield
        finally:
            cleaner.cancel()
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="InteractVLM for Blender: local inference server",
        version=SERVER_VERSION,
        summary=f"API schema {API_SCHEMA_VERSION}. Photo + object meshes in; SMPL-X body, placements and contacts out.",
        lifespan=lifespan,
    )
    app.router.route_class = _FastJSONRoute
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_request_bytes,
        token=settings.token,
        allowed_hosts=settings.allowed_hosts(),
        body_timeout_s=settings.body_timeout_s,
    )

    @app.exception_handler(IVLMError)
    async def on_ivlm_error(request: Request, exc: IVLMError) -> JSONResponse:
        return _error_response(service.public_error(exc))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {
                "code": "BAD_INPUT",
                "message": service.public(_validation_message(exc)),
                "hint": "Check the request against /openapi.json.",
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}.get(
            exc.status_code, "BAD_INPUT"
        )
        hint = "See /openapi.json for the routes." if exc.status_code in (404, 405) else "Send JSON (application/json)."
        return JSONResponse({"code": code, "message": str(exc.detail), "hint": hint}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(
            {"code": "INTERNAL", "message": f"{type(exc).__name__}", "hint": "See the server log."}, 500
        )

    limits = Limits(
        max_request_bytes=settings.max_request_bytes,
        max_image_pixels=settings.max_image_pixels,
        max_mesh_vertices=settings.max_mesh_vertices,
        max_mesh_faces=settings.max_mesh_faces,
        max_connections=settings.max_connections,
        head_timeout_s=settings.head_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        keep_alive_s=settings.keep_alive_s,
    )

    @app.get("/v1/health", response_model=Health, responses=_ERRORS, tags=["server"])
    async def health() -> Health:
        """Server and schema versions, device, models, missing files, demo flag and queue."""
        waiting, running = service.queue_info()
        return Health(
            status=service.state,
            server_version=SERVER_VERSION,
            api_schema_version=API_SCHEMA_VERSION,
            result_schema=RESULT_SCHEMA,
            device=service.device,
            gpu=service.gpu,
            demo=service.demo,
            demo_reason=service.demo_reason,
            parts=[PartOut.from_dict(source.to_dict()) for source in service.sources],
            models_loaded=service.loaded_models(),
            missing_model_files=[
                MissingModelFile(
                    name=m.name,
                    path=_relative(m.path, service.models_dir),
                    problem=service.public(m.problem),
                    source=m.source,
                    hint=service.public(m.hint),
                )
                for m in service.missing
            ],
            load_error=_error_body(service.load_error),
            storage_error=_error_body(service.storage_error),
            runner_error=_error_body(service.runner_error),
            queue=QueueInfo(length=waiting, capacity=settings.queue_capacity, running=running),
            configuration=None if service.configuration is None else ConfigurationInfo(**service.configuration),
            limits=limits,
        )

    @app.post("/v1/jobs", status_code=202, response_model=JobStatus, responses=_ERRORS, tags=["jobs"])
    def submit_estimate(request: EstimateRequest) -> JobStatus:
        """Estimate Contact: perceive, fit the body, localize and lift contact, place the objects. Returns at once."""
        return service.submit_estimate(request)

    @app.post("/v1/fit-jobs", status_code=202, response_model=JobStatus, responses=_ERRORS, tags=["jobs"])
    def submit_fit(request: FitRequest) -> JobStatus:
        """Refit: re-place the objects of a finished estimate job from edited contacts (no language model)."""
        return service.submit_fit(request)

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses=_ERRORS, tags=["jobs"])
    async def job_status(job_id: str = JobId) -> JobStatus:
        return service.status(job_id)

    @app.get("/v1/jobs/{job_id}/result", response_model=JobResult, responses=_ERRORS, tags=["jobs"])
    def job_result(job_id: str = JobId) -> Response:
        """The result of a done job (written to disk before the job was reported done, and checked against the
        size and SHA-256 recorded then: a damaged result is answered JOB_DAMAGED, never served)."""
        return Response(service.result(job_id), media_type="application/json")

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobStatus, responses=_ERRORS, tags=["jobs"])
    async def cancel_job(job_id: str = JobId) -> JobStatus:
        """Cancels a queued job at once, a running one at its next stage boundary."""
        return await run_in_threadpool(service.cancel, job_id)

    return app


def _error_body(error: IVLMError | None) -> ErrorBody | None:
    return None if error is None else ErrorBody(**error.to_dict())


def _relative(path: str, root: FilePath | None) -> str:
    """A models-folder path as the user lays it out: relative to the models folder."""
    if root is None:
        return path
    try:
        return FilePath(path).relative_to(root).as_posix()
    except ValueError:
        return FilePath(path).name
