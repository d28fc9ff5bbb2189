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
from ivlm_core.doctor import check_model_files, planned_sources, required_missing
from ivlm_core.errors import IVLMError
from ivlm_core.pipeline import parts
from ivlm_core.pipeline import plan as memory_plan
from ivlm_core.pipeline.parts import PartSource, stand_in_summary
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
    """The job service: each pipeline part from the user's files when present, its generated stand-in when not
    (DEMO), no contact model when its release is missing or `--no-contact-model` (doctor.planned_sources)."""
    settings.check()
    device = choose_device(settings.device)
    root = Path(settings.models_dir) if settings.models_dir else paths.models_dir()
    statuses = check_model_files(root)
    missing = required_missing(statuses, root)
    sources = planned_sources(statuses, root, demo=settings.demo, contact_model=settings.contact_model)
    stand_ins = [part for part, source in sources.items() if source == parts.STAND_IN]
    if settings.demo is False and stand_ins:
        needed = [m for m in missing if set(m.parts) & set(stand_ins)]
        names = "; ".join(f"{m.name}: {m.problem}" for m in needed)
        raise SystemExit(
            f"--no-demo was given but model files are missing ({names}). Run `ivlm doctor` for where to get them."
        )
    demo = bool(stand_ins)
    reason = demo_reason(settings, missing, [PartSource(part, source) for part, source in sources.items()], root)
    contact = sources[parts.HUMAN_CONTACT] != parts.ABSENT or sources[parts.OBJECT_CONTACT] != parts.ABSENT
    choice = choose_configuration(settings, device, root, nominal=demo or not contact, contact=contact)
    models = ModelSpec(
        demo=demo,
        models_root=None if all(source == parts.STAND_IN for source in sources.values()) else str(root),
        device=device,
        configuration=choice.plan.configuration.name,
        sam_batch=choice.plan.sam_batch,
        convert_on_start=settings.convert_on_start,
        sources=tuple(sources.items()),
    )
    service = JobService(settings, models, demo_reason=reason, missing=missing, models_dir=root)
    service.configuration = choice.to_dict()
    return service


def demo_reason(settings: ServerSettings, missing: list, sources: list[PartSource], root: Path) -> str:
    """Why the server is in DEMO mode, naming the stand-in parts ("" when none is a stand-in)."""
    summary = stand_in_summary(sources)
    if not summary:
        return ""
    if settings.demo:
        return f"started with --demo: {summary}"
    return f"{len(missing)} model file item(s) missing under {root} (run `ivlm doctor`): {summary}"


def choose_configuration(
    settings: ServerSettings, device: str, root: Path, nominal: bool, contact: bool = True
) -> memory_plan.Choice:
    """The most accurate configuration that fits the budget (pipeline/plan.py). `nominal` (DEMO stand-ins, or no
    contact model) plans for the real release shapes (nothing to read); stand-ins load in the chosen
    configuration. Without a contact model (`contact` False) no language model loads: nothing to fit in a budget.
    Exits with the smallest configuration's need when nothing fits."""
    if contact:
        budget, source = memory_plan.detect_budget(device, settings.gpu_memory_gb, demo=nominal)
    else:
        budget, source = None, "no contact model is loaded, so no language model needs memory"
    plans = memory_plan.plan_all(device, root=None if nominal else root, nominal=nominal)
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
    plan = service.configuration
    assert plan is not None  # build_service sets it
    banner = [
        f"{LISTENING} http://{shown}:{port}  (server {SERVER_VERSION}, device {service.device})",
        f"  data folder: {settings.data_dir}",
        f"  configuration: {plan['configuration']} ({plan['description']}, SAM "
        f"{plan['sam_batch']} view(s) per call): {plan['reason']}",
    ]
    if service.demo:
        banner.append(f"  DEMO MODE: {service.demo_reason}. Results come from generated assets and random-weight")
        banner.append("  models and are NOT meaningful. Put the model files in place (`ivlm doctor`) for real results.")
    absent = [source.title for source in service.sources if source.source == parts.ABSENT]
    if absent:
        banner.append(f"  NOT LOADED: {'; '.join(absent)}. {parts.CONTACT_NOT_PREDICTED}.")
    if settings.token:
        banner.append("  bearer token required")
    print("\n".join(banner), flush=True)
    config = uvicorn.Config(
        app,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
        http=head_timeout_protocol(settings.head_timeout_s),
        # uvicorn annotates an int, but only hands it to loop.call_later, which takes seconds as a float
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_head_bytes,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown; that is a clean stop
        pass
    print("IVLM server stopped", flush=True)
