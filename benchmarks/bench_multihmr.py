"""Multi-HMR forward time at the release's size: DINOv2 ViT-L/14 + the human prediction head, random weights.

One square input (896 px: 64 x 64 patches), our camera intrinsics, and a detection threshold set so that exactly
N people are found, for each N asked. Baseline in the same run: the backbone alone (`encode`), so the head's
share is a ratio on the same device. Random weights give the real model's compute (the same layers and
shapes); they say nothing about accuracy. Published reference: about 126 ms per 896 px image on a V100.

    .venv/bin/python benchmarks/bench_multihmr.py [--device cuda] [--dtype float16] [--size 896] \
        [--people 1 4] [--repeats 10] [--tiny] [--json out.json]

On a CPU a 896 px forward takes minutes; `--size 448` gives a quicker sanity run (not the release's size), and
`--tiny` the demo's tiny random architecture (112 px, for rehearsing the GPU check; its times mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ivlm_core.demo.tiny_multihmr import TINY, tiny_release
from ivlm_core.perceive.multihmr.configuration_multihmr import MultiHMRConfig
from ivlm_core.perceive.multihmr.convert_multihmr import ReleaseCheckpoint, config_from_release
from ivlm_core.perceive.multihmr.modeling_multihmr import MultiHMRModel

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def median_ms(fn: Callable[[], object], repeats: int, cuda: bool) -> float:
    """Median wall time of `repeats` runs after one warm-up, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def build(size: int, device: torch.device, dtype: torch.dtype, tiny: bool = False) -> MultiHMRModel:
    """The multiHMR_896_L architecture (at `size` px) with random weights; `tiny`: the demo's tiny architecture."""
    torch.manual_seed(0)
    config = MultiHMRConfig(image_size=size)
    if tiny:  # the configuration the loader reads from the demo's tiny release file
        release = tiny_release()
        checkpoint = ReleaseCheckpoint(Path("tiny"), vars(release["args"]), release["model_state_dict"])
        config = dataclasses.replace(config_from_release(checkpoint), image_size=size)
    model = MultiHMRModel(config)
    with torch.no_grad():  # mean pose: identity 6D pairs, so random heads give finite rotations
        model.head.mean_pose.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(53))
        model.head.mean_camera.copy_(torch.tensor([1.0, 0.0, 0.0]))
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = DTYPES[args.dtype]
    model = build(args.size, device, dtype, args.tiny)
    pixels = torch.randn(1, 3, args.size, args.size, device=device, dtype=dtype)
    focal = args.size / (2 * 0.5773502691896257)  # a 60 degree view, as upstream's demo assumes
    k = torch.tensor([[[focal, 0.0, args.size / 2], [0.0, focal, args.size / 2], [0.0, 0.0, 1.0]]], device=device)
    row: dict = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "dtype": args.dtype,
        "size": args.size,
        "architecture": "tiny (demo)" if args.tiny else "multiHMR_896_L",
        "torch_threads": torch.get_num_threads(),
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }
    with torch.inference_mode():
        row["backbone_ms"] = median_ms(lambda: model.encode(pixels), args.repeats, cuda)
        scores = model.suppress(model.score_map(model.encode(pixels)), 3).flatten().float().sort(descending=True).values
        for people in args.people:
            threshold = float(scores[people - 1])  # exactly `people` detections (ties aside)
            found = len(model(pixels, k, threshold=threshold).batch)
            total = median_ms(lambda t=threshold: model(pixels, k, threshold=t), args.repeats, cuda)
            row[f"forward_ms_{people}_people"] = total
            row[f"head_share_{people}_people"] = (total - row["backbone_ms"]) / total
            row[f"people_found_{people}"] = found
    if cuda:
        row["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default: float16 on CUDA, else float32")
    parser.add_argument("--size", type=int, default=896, help="input side in pixels (the release: 896)")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="the demo's tiny architecture (rehearsals only)")
    parser.add_argument("--json", help="also write the row to this file")
    args = parser.parse_args()
    if args.tiny and args.size == 896:
        args.size = TINY["img_size"]
    args.dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    row = run(args)
    print(json.dumps(row, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(row, handle, indent=2)


if __name__ == "__main__":
    main()
