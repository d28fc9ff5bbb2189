"""Render benchmark: 4 views at 1024^2 of the SMPL-X body and of a 200k-face object.

Our pure-PyTorch rasteriser against Embree ray casting of the same pixel centres, in the same run,
on CPU; and on CUDA when a GPU is present. Prints ms per view and the ratio (Embree time / ours).

    .venv/bin/python benchmarks/bench_render.py [--size 1024] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from ivlm_core.demo.body_model import ensure_synthetic_body_models
from ivlm_core.demo.objects import knot_200k
from ivlm_core.render.embree_reference import EmbreeCaster
from ivlm_core.render.renderer import rasterize_mesh, render_mesh
from ivlm_core.render.shading import position_colors
from ivlm_core.render.views import HUMAN_VIEWS, OBJECT_VIEWS, ViewSet, normalize_object_vertices


def best_ms(fn: Callable[[], object], repeats: int, sync: bool = False) -> float:
    """Median wall time of `repeats` runs after one warm-up, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_mesh(
    name: str, vertices: np.ndarray, faces: np.ndarray, view_set: ViewSet, size: int, repeats: int, embree: bool = True
) -> dict:
    cameras = view_set.cameras(size)
    v = torch.tensor(vertices, dtype=torch.float32)
    f = torch.tensor(faces, dtype=torch.int64)
    views = len(view_set)
    colors = position_colors(v)
    lights = view_set.light_positions()
    row = {"mesh": name, "faces": int(len(faces)), "views": views, "size": size}
    row["raster_ms_per_view_cpu"] = best_ms(lambda: rasterize_mesh(v, f, cameras), repeats) / views
    row["render_ms_per_view_cpu"] = best_ms(lambda: render_mesh(v, f, cameras, colors, lights), repeats) / views
    if embree:
        rays = [EmbreeCaster.pixel_rays(cameras, b) for b in range(views)]  # prepared outside the timing
        build_start = time.perf_counter()
        caster = EmbreeCaster(vertices, faces)
        caster.intersect(*rays[0])  # the BVH is built lazily on the first query
        row["embree_bvh_and_first_view_ms"] = (time.perf_counter() - build_start) * 1000
        row["embree_ms_per_view_cpu"] = best_ms(lambda: [caster.intersect(*r) for r in rays], repeats) / views
        row["ratio_embree_over_raster"] = row["embree_ms_per_view_cpu"] / row["raster_ms_per_view_cpu"]
    if torch.cuda.is_available():
        vc, fc = v.cuda(), f.cuda()
        cc, lc = cameras.to("cuda"), lights.cuda()
        row["raster_ms_per_view_cuda"] = best_ms(lambda: rasterize_mesh(vc, fc, cc), repeats, sync=True) / views
        row["render_ms_per_view_cuda"] = (
            best_ms(lambda: render_mesh(vc, fc, cc, colors.cuda(), lc), repeats, sync=True) / views
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--no-embree",
        action="store_true",
        help="leave out the Embree columns (a GPU machine without embreex: its CUDA rows are what it is run for)",
    )
    args = parser.parse_args()
    embree = not args.no_embree

    body = np.load(ensure_synthetic_body_models().smplx, allow_pickle=False)
    knot = knot_200k().mesh
    knot_vertices, _, _ = normalize_object_vertices(knot.vertices)
    rows = [
        bench_mesh(
            "SMPL-X (synthetic demo, template)",
            body["v_template"],
            body["f"],
            HUMAN_VIEWS,
            args.size,
            args.repeats,
            embree,
        ),
        bench_mesh("200k-face knot (demo)", knot_vertices, knot.faces, OBJECT_VIEWS, args.size, args.repeats, embree),
    ]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(
        f"render benchmark: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {device}"
    )
    print(
        f"{'mesh':36} {'faces':>8} {'raster ms/view':>15} {'render ms/view':>15} {'embree ms/view':>15} {'embree/raster':>14}"
    )
    for r in rows:
        embree_columns = (
            f"{r['embree_ms_per_view_cpu']:>15.1f} {r['ratio_embree_over_raster']:>13.2f}x"
            if embree
            else f"{'-':>15} {'-':>14}"
        )
        print(
            f"{r['mesh']:36} {r['faces']:>8} {r['raster_ms_per_view_cpu']:>15.1f} {r['render_ms_per_view_cpu']:>15.1f} "
            + embree_columns
        )
        if "raster_ms_per_view_cuda" in r:
            print(f"{'':36} {'CUDA':>8} {r['raster_ms_per_view_cuda']:>15.2f} {r['render_ms_per_view_cuda']:>15.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device, "threads": torch.get_num_threads(), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
