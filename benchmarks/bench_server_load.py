"""Load benchmark of the server on DEMO models: many clients, each submitting jobs and fetching results, while a
prober measures health latency.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_server_load.py [--clients 50] [--jobs-per-client 4]

Then one large object (an icosphere of --large-faces faces, 1.3M by default) is submitted alone, and health
latency is reported separately while it uploads and while its job runs: the case where a library that holds the
GIL would stall the API if model work shared its process.

Every client sends one of a few distinct inputs (demo scenes with their objects). Each input is first run alone
to get its reference result; under load every result must match its reference (same body, contacts and
placements), which also shows that jobs never see each other's data. A client that gets SERVER_BUSY waits for
Retry-After (capped by --busy-wait) and tries again, as the add-on does. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import io
import math
import multiprocessing
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from ivlm_core.demo.scenes import make_scene
from server.client import ApiError, array_value, estimate_request
from server.process import launch

INPUTS = (("foot_on_ball", 0), ("foot_on_ball", 1), ("hold_mug", 0), ("hold_mug", 2))


def _request(kind: str, seed: int, stages: list[str]) -> dict:
    scene = make_scene(kind, seed)
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, "PNG")
    return estimate_request(
        buffer.getvalue(), [(scene.label, scene.object_mesh.vertices, scene.object_mesh.faces)], stages=stages
    )


def _same(result: dict, reference: dict) -> bool:
    """Same body, contacts and placements (to float32 rounding); job ids and timings differ by design."""
    if (result["body"] is None) != (reference["body"] is None) or len(result["objects"]) != len(reference["objects"]):
        return False
    if result["body"] is not None and not np.allclose(
        array_value(result["body"]["vertices"]), array_value(reference["body"]["vertices"]), atol=1e-5
    ):
        return False
    for got, want in zip(result["objects"], reference["objects"], strict=True):
        if (got["label"], got["status"]) != (want["label"], want["status"]):
            return False
        for key in ("object_contact", "body_contact"):
            if (got[key] is None) != (want[key] is None):
                return False
            if got[key] is not None and not np.allclose(array_value(got[key]), array_value(want[key]), atol=1e-5):
                return False
        if want["camera_from_object"] is not None and not np.allclose(
            got["camera_from_object"], want["camera_from_object"], atol=1e-4
        ):
            return False
    return True


def _run_job(client, body: dict, busy_wait: float, counters: dict, lock: threading.Lock) -> dict:
    while True:
        try:
            job = client.submit(body)
            break
        except ApiError as exc:
            if exc.code != "SERVER_BUSY":
                raise
            with lock:
                counters["busy"] += 1
            time.sleep(min(float(exc.headers.get("retry-after", exc.headers.get("Retry-After", 1))), busy_wait))
    status = client.wait_finished(job["job_id"], timeout=3600, poll=0.25)
    if status["state"] != "done":
        raise RuntimeError(f"job {job['job_id']} ended {status['state']}: {status['error']}")
    return client.result(job["job_id"])


def _probe_health(url: str, stop: threading.Event, latencies: list, interval: float) -> None:
    """GET /v1/health on one kept-alive connection, as the add-on's status line would."""
    parts = urlparse(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    while not stop.is_set():
        start = time.perf_counter()
        connection.request("GET", "/v1/health")
        answer = connection.getresponse()
        answer.read()
        latencies.append((start, time.perf_counter() - start))
        if answer.status != 200:
            raise RuntimeError(f"health answered {answer.status}")
        stop.wait(interval)
    connection.close()


class HealthProber:
    """`_probe_health` in its own process: in this one, 50 client threads share the GIL with it and their waits
    would be counted as the server's latency."""

    def __init__(self, url: str, interval: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop, self._ready = context.Event(), context.Event()
        self._receive, send = context.Pipe(duplex=False)
        args = (url, self._stop, self._ready, send, interval)
        self._process = context.Process(target=_probe_process, args=args, daemon=True)

    def __enter__(self) -> HealthProber:
        self._process.start()
        if not self._ready.wait(120):
            raise RuntimeError("the health prober did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def latencies(self) -> list[tuple[float, float]]:
        """(time.perf_counter() at the request, seconds taken): perf_counter is one clock for the whole machine."""
        result = self._receive.recv()
        self._process.join()
        return result


def _probe_process(url: str, stop, ready, send, interval: float) -> None:
    ready.set()
    latencies: list[tuple[float, float]] = []
    _probe_health(url, stop, latencies, interval)
    send.send(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs-per-client", type=int, default=4)
    parser.add_argument("--stages", default="body", help="optional stages, comma-separated: body,fit ('' = none)")
    parser.add_argument("--queue-capacity", type=int, default=16)
    parser.add_argument("--busy-wait", type=float, default=1.0, help="longest wait after SERVER_BUSY (s)")
    parser.add_argument("--health-interval", type=float, default=0.05)
    parser.add_argument("--large-faces", type=int, default=1_310_720, help="faces of the large object (0: skip)")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]

    requests = [_request(kind, seed, stages) for kind, seed in INPUTS]
    with tempfile.TemporaryDirectory() as data, tempfile.TemporaryDirectory() as no_models:
        server = launch(Path(data), ["--queue-capacity", str(args.queue_capacity)], {"IVLM_MODELS_DIR": no_models})
        try:
            client = server.client(timeout=120)
            health = client.health()
            print(
                f"server {health['server_version']} on {health['device']}, demo={health['demo']}, "
                f"queue capacity {args.queue_capacity}, stages {stages or 'none'}"
            )
            counters, lock = {"busy": 0}, threading.Lock()
            start = time.perf_counter()
            references = [_run_job(client, body, args.busy_wait, counters, lock) for body in requests]
            alone_s = (time.perf_counter() - start) / len(requests)
            print(f"reference results: {len(references)} inputs, {alone_s:.2f} s per job run alone")

            outcomes: list[tuple[int, dict | Exception]] = []

            def client_loop(index: int) -> None:
                own = server.client(timeout=120)
                for j in range(args.jobs_per_client):
                    which = (index + j) % len(requests)
                    try:
                        result = _run_job(own, requests[which], args.busy_wait, counters, lock)
                    except Exception as exc:
                        result = exc
                    with lock:
                        outcomes.append((which, result))

            threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
            with HealthProber(server.url, args.health_interval) as prober:
                start = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                wall = time.perf_counter() - start
            latencies = prober.latencies()
            large = _large_object_phase(server, args.large_faces, ["body", "fit"]) if args.large_faces else None
        finally:
            server.stop()

    total = args.clients * args.jobs_per_client
    errors = [r for _, r in outcomes if isinstance(r, Exception)]
    correct = sum(1 for which, r in outcomes if not isinstance(r, Exception) and _same(r, references[which]))
    print(
        f"jobs: {total} submitted by {args.clients} clients; {len(outcomes) - len(errors)} results arrived, "
        f"{correct} correct (equal to their reference), {len(errors)} failed"
    )
    for exc in errors[:3]:
        print(f"  failure: {exc}")
    print(f"SERVER_BUSY answers (then retried): {counters['busy']}")
    print(f"throughput: {total / wall:.3f} jobs/s ({wall:.1f} s wall; {alone_s:.2f} s per job alone)")
    print(f"health latency during load: {_latency_summary([x for _, x in latencies])}")
    if large is not None:
        faces, upload_s, job_s, state, upload_ms, job_ms = large
        print(f"large object, {faces:,} faces: upload {upload_s:.2f} s, job {job_s:.1f} s ({state})")
        print(f"  health latency while it uploads: {_latency_summary(upload_ms)}")
        print(f"  health latency while its job runs: {_latency_summary(job_ms)}")


def _latency_summary(seconds: list[float]) -> str:
    if not seconds:
        return "no probes"
    ms = sorted(1000 * x for x in seconds)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} probes"


def _large_object_phase(server, faces: int, stages: list[str]) -> tuple:
    """One full job (body and fit too) on an icosphere of about `faces` faces; health probed every 5 ms."""
    import trimesh

    subdivisions = max(1, round(math.log(faces / 20, 4)))
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.11)
    scene = make_scene("foot_on_ball", 0)
    buffer = io.BytesIO()
    Image.fromarray(scene.image).save(buffer, "PNG")
    body = estimate_request(buffer.getvalue(), [(scene.label, sphere.vertices, sphere.faces)], stages=stages)
    client = server.client(timeout=600)
    with HealthProber(server.url, 0.005) as prober:
        time.sleep(0.2)
        start = time.perf_counter()
        job = client.submit(body)
        uploaded = time.perf_counter()
        status = client.wait_finished(job["job_id"], timeout=1800, poll=0.25)
        done = time.perf_counter()
    latencies = prober.latencies()
    upload_ms = [x for t, x in latencies if start <= t < uploaded]
    job_ms = [x for t, x in latencies if uploaded <= t < done]
    return len(sphere.faces), uploaded - start, done - uploaded, status["state"], upload_ms, job_ms


if __name__ == "__main__":
    main()
