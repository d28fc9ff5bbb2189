"""Starting the server: choose the device, real or DEMO models, build the app and run uvicorn.

`ivlm serve` calls `serve`. The listening socket is bound here (port 0 picks a free one) so the real address can
be printed before uvicorn starts; tests and scripts read it from the line starting with `IVLM server listening`.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import torch
import uvicorn

from ivlm_core import paths
from ivlm_core.doctor import check_model_files, required_missing
from ivlm_core.errors import IVLMError
from ivlm_core.pipeline import plan as memory_plan
from server import LISTENING, SERVER_VERSION
from server.app import create_app
from server.jobs import JobService
from server.security import head_timeout_protocol
from server.settings import ServerSettings
from server.worker import ModelSpec

log = logging.getLogger("ivlm.server")


def choose_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {requested}: this PyTorch build sees no CUDA GPU. Install a CUDA build (README: GPU setup)."
        )
    return requested


def build_service(settings: ServerSettings) -> JobService:
    """The job service, to load real models when all files are present, else (or when asked) DEMO assets."""
    settings.check()
    device = choose_device(settings.device)
    root = Path(settings.models_dir) if settings.models_dir else paths.models_dir()
    statuses = check_model_files(root)
    missing = required_missing(statuses, root)
    if settings.demo is False and missing:
        names = "; ".join(f"{m.name}: {m.problem}" for m in missing)
        raise SystemExit(
            f"--no-demo was given but model files are missing ({names}). Run `ivlm doctor` for where to get them."
        )
    demo = bool(settings.demo) or bool(missing)
    if settings.demo:
        reason = "started with --demo"
    elif missing:
        reason = f"{len(missing)} model file item(s) missing under {root} (run `ivlm doctor`)"
    else:
        reason = ""

    choice = choose_configuration(settings, device, root, demo)
    models = ModelSpec(
        demo=demo,
        models_root=None if demo else str(root),
        device=device,
        configuration=choice.plan.configuration.name,
        sam_batch=choice.plan.sam_batch,
        convert_on_start=settings.convert_on_start,
    )
    service = JobService(settings, models, demo_reason=reason, missing=missing, models_dir=root)
    service.configuration = choice.to_dict()
    return service


def choose_configuration(settings: ServerSettings, device: str, root: Path, demo: bool) -> memory_plan.Choice:
    """The most accurate configuration that fits the budget (pipeline/plan.py). DEMO mode plans for the real
    release shapes (nothing to read) and loads the tiny stand-ins in the chosen configuration. Exits with the
    smallest configuration's need when nothing fits."""
    budget, source = memory_plan.detect_budget(device, settings.gpu_memory_gb, demo=demo)
    plans = memory_plan.plan_all(device, root=None if demo else root, nominal=demo)
    try:
        return memory_plan.choose(plans, budget, source)
    except IVLMError as exc:
        raise SystemExit(f"error [{exc.code}]: {exc.message}\nhint: {exc.hint}") from exc


def listening_socket(host: str, port: int) -> socket.socket:
    """The bound TCP socket uvicorn serves on (port 0 picks a free one).

    Made with proto IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose
    proto says TCP, and with Nagle on, a client on a kept-alive connection waits ~40 ms (delayed ACK) for every
    answer uvicorn sends in two writes (measured: health p50 42 ms instead of 0.6 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(settings: ServerSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = build_service(settings)
    app = create_app(service)
    sock = listening_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    banner = [
        f"{LISTENING} http://{shown}:{port}  (server {SERVER_VERSION}, device {service.device})",
        f"  data folder: {settings.data_dir}",
        f"  configuration: {service.configuration['configuration']} ({service.configuration['description']}, SAM "
        f"{service.configuration['sam_batch']} view(s) per call): {service.configuration['reason']}",
    ]
    if service.demo:
        banner.append(f"  DEMO MODE: {service.demo_reason}. Results come from generated assets and random-weight")
        banner.append("  models and are NOT meaningful. Put the model files in place (`ivlm doctor`) for real results.")
    if settings.token:
        banner.append("  bearer token required")
    print("\n".join(banner), flush=True)
    config = uvicorn.Config(
        app,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
        http=head_timeout_protocol(settings.head_timeout_s),
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_head_bytes,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown; that is a clean stop
        pass
    print("IVLM server stopped", flush=True)
