"""Localize latency: KV-cached generation against upstream's no-cache schedule, in the same run.

    .venv/bin/python benchmarks/bench_localize.py                 # tiny release on CPU (what CI machines can run)
    python benchmarks/bench_localize.py --model 13b --device cuda  # release shapes, random weights, bf16

--model 13b builds the released architecture at full size with random weights (LLaMA-2-13B, CLIP ViT-L/14,
SAM ViT-H; no checkpoint needed). Random weights never stop on their own, so every request decodes a fixed
24-token answer ending in the seg token (`forced_tokens`). Steps are the Localizer's, timed one by one:
CLIP + prompt, LLM prefill, per-token decode, SAM image encoding (human: the canonical renders, cached after
the first request as in the product; object: 4 renders per request), SAM decode + float32 upsampling.
The no-cache path re-runs the full sequence for every token, as upstream does (spec §2.5), and like
upstream re-encodes the photo with CLIP at every step.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPVisionConfig

from ivlm_core.localize import prompts, sam
from ivlm_core.localize.checkpoint import LoadReport
from ivlm_core.localize.config import load_release_config
from ivlm_core.localize.generation import generate_with_cache, generate_without_cache
from ivlm_core.localize.localizer import Localizer
from ivlm_core.localize.network import InteractVLMNetwork
from ivlm_core.localize.tokenizer import ReleaseTokenizer
from ivlm_core.render.views import HUMAN_VIEWS, OBJECT_VIEWS

ANSWER_TOKENS = 24
CACHED_GENERATE = generate_with_cache  # --decoder static replaces it with the static decoder's generate
RELEASE_13B = {  # a 13B release's config.json fields (spec §1.2, §1.7), human and object heads both on
    "hidden_size": 5120,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "intermediate_size": 13824,
    "vocab_size": 32003,
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 4096,
    "seg_token_idx": 32000,
    "token_type": "Gen",
    "img_emb_len": 255,
    "multiview_channels": 4,
    "multiview_cam_cond": True,
    "cam_encoder_type": "vi_v1",
    "hC_sam_view_type": "4MV-Z_Vitru_wScene",
    "oC_sam_view_type": "4MV-Z_HM",
    "hC_loss_weight": 3.0,
    "oC_loss_weight": 3.0,
    "mm_hidden_size": 1024,
    "mm_vision_select_layer": -2,
    "out_dim": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
CLIP_VIT_L_14 = CLIPVisionConfig(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=768,
    hidden_act="quick_gelu",
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_13b_network(
    device: torch.device, dtype: torch.dtype, llm_layers: int, precision: str = "native"
) -> InteractVLMNetwork:
    if precision != "native":  # quantised one matrix at a time (the float 13B would not fit beside it)
        from bench_release_size import Memory, build_network

        folder = Path(tempfile.mkdtemp())
        (folder / "config.json").write_text(json.dumps({**RELEASE_13B, "num_hidden_layers": llm_layers}))
        return build_network(load_release_config(folder), device, dtype, precision, False, Memory(device, 0.0), print)
    folder = Path(tempfile.mkdtemp())
    (folder / "config.json").write_text(json.dumps({**RELEASE_13B, "num_hidden_layers": llm_layers}))
    config = load_release_config(folder)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            network = InteractVLMNetwork(config, CLIP_VIT_L_14, sam.vit_h_sam_config())
    finally:
        torch.set_default_dtype(previous)
    return network.eval().requires_grad_(False)


def time_request(
    localizer: Localizer,
    photo: np.ndarray,
    views: np.ndarray,
    view_set,
    forced: list[int],
    use_cache: bool,
    encode_views: bool,
    cached_embeddings,
) -> dict[str, float]:
    """One Localize request, step by step, as Localizer.localize runs it (forced answer, optional cache)."""
    net, device = localizer.network, localizer.report.device
    times: dict[str, float] = {}
    _sync(device)
    start = time.perf_counter()
    prompt_ids = localizer.tokenizer.encode_prompt(prompts.contact_prompt("hcontact", "chair"))
    embeddings = net.prompt_embeddings(prompt_ids, localizer._photo_features(photo))
    _sync(device)
    times["clip_and_prompt_s"] = time.perf_counter() - start
    generate = CACHED_GENERATE if use_cache else generate_without_cache
    generation = generate(
        net.llm,
        embeddings,
        max_new_tokens=0,
        eos_token_id=-1,
        seg_token_ids=net.config.seg_token_ids,
        forced_tokens=forced,
    )
    times["prefill_s"] = generation.prefill_seconds
    times["decode_per_token_s"] = statistics.median(generation.decode_seconds)
    times["decode_total_s"] = sum(generation.decode_seconds)
    if not use_cache:  # upstream re-encodes the photo with CLIP at every generation step
        times["decode_total_s"] += (len(forced) - 1) * times["clip_and_prompt_s"]
    start = time.perf_counter()
    if encode_views or cached_embeddings[0] is None:
        pixels, _ = sam.preprocess(views)
        weights = next(net.sam.parameters())
        cached_embeddings[0] = sam.encode_images(net.sam, pixels.to(device=weights.device, dtype=weights.dtype))
    _sync(device)
    times["sam_encode_s"] = time.perf_counter() - start
    start = time.perf_counter()
    tokens = net.view_prompt_tokens(
        generation.seg_state.to(cached_embeddings[0].dtype),
        generation.seg_token,
        torch.as_tensor(view_set.camera_vectors(), device=device),
    )
    logits = sam.postprocess_masks(sam.decode_views(net.sam, cached_embeddings[0], tokens), (1024, 1024), (1024, 1024))
    _sync(device)
    times["sam_decode_s"] = time.perf_counter() - start
    assert logits.dtype == torch.float32 and tuple(logits.shape) == (4, 1024, 1024)
    times["total_s"] = sum(
        times[k] for k in ("clip_and_prompt_s", "prefill_s", "decode_total_s", "sam_encode_s", "sam_decode_s")
    )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "13b"), default=None, help="default: 13b on CUDA, tiny on CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", default=None, choices=("bfloat16", "float16", "float32"), help="default: bf16 (13b), fp32 (tiny)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--llm-layers", type=int, default=40, help="13b only: fewer layers for a quick check of the path"
    )
    parser.add_argument(
        "--llm-precision",
        default="native",
        choices=("native", "int8", "nf4"),
        help="the language model's decoder layers (int8/nf4: bitsandbytes, see localize/quantize.py)",
    )
    parser.add_argument(
        "--decoder",
        default="dynamic",
        choices=("dynamic", "static"),
        help="static: preallocated cache + torch.compile'd step (CUDA graphs on a GPU)",
    )
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend for --decoder static")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = args.model or ("13b" if device.type == "cuda" else "tiny")
    dtype = getattr(torch, args.dtype or ("bfloat16" if model == "13b" else "float32"))

    from ivlm_core.demo.tiny_release import ensure_tiny_models

    tiny = ensure_tiny_models()
    name = "interactvlm-3d-hcontact-wScene-damon-lemon-rich"  # human and object heads
    if model == "tiny":
        localizer = Localizer.from_folders(
            tiny.releases[name], tiny.clip, device=device, dtype=dtype, llm_precision=args.llm_precision
        )
    else:
        network = random_13b_network(device, dtype, args.llm_layers, args.llm_precision)
        tokenizer = ReleaseTokenizer.from_folder(
            tiny.releases[name],
            seg_token_idx=json.loads((tiny.releases[name] / "config.json").read_text())["seg_token_idx"],
        )
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        report = LoadReport(Path("random-13b"), tiny.clip, False, [], dtype, device)
        localizer = Localizer(network, tokenizer, CLIPImageProcessorPil.from_pretrained(tiny.clip), report)
    if args.decoder == "static":  # the benchmark drives generation itself: swap in the static decoder's generate
        from ivlm_core.localize.generation import StaticDecoder

        prompt_len = len(localizer.tokenizer.encode_prompt(prompts.contact_prompt("hcontact", "chair"))) - 1 + 256
        decoder = StaticDecoder(localizer.network.llm, prompt_len + ANSWER_TOKENS + 8, backend=args.compile_backend)
        global CACHED_GENERATE
        CACHED_GENERATE = lambda llm, embeddings, **kw: decoder.generate(embeddings, **kw)  # noqa: E731
    seg = localizer.network.config.seg_token_idx
    filler = (
        [i for i in range(1000, 1000 + ANSWER_TOKENS - 1)]
        if model == "13b"
        else list(range(300, 300 + ANSWER_TOKENS - 1))
    )
    forced = [*filler, seg]
    rng = np.random.default_rng(0)
    photo = (rng.random((480, 640, 3)) * 255).astype(np.uint8)
    views = (rng.random((4, 1024, 1024, 3)) * 255).astype(np.uint8)
    rows = {}
    for mode, view_set, encode_each_time in (("human", HUMAN_VIEWS, False), ("object", OBJECT_VIEWS, True)):
        for use_cache in (True, False):
            cache_box = [None]
            time_request(localizer, photo, views, view_set, forced, use_cache, encode_each_time, cache_box)  # warm-up
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            runs = [
                time_request(localizer, photo, views, view_set, forced, use_cache, encode_each_time, cache_box)
                for _ in range(args.repeats)
            ]
            row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            if device.type == "cuda":
                row["peak_gpu_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
            rows[f"{mode}_{'kv_cache' if use_cache else 'no_cache'}"] = row
    prompt_len = len(localizer.tokenizer.encode_prompt(prompts.contact_prompt("hcontact", "chair"))) - 1 + 256
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"Localize benchmark: model {model} ({dtype}, language model {args.llm_precision}, {args.decoder} decoder), {where}, prompt {prompt_len} positions, answer {ANSWER_TOKENS} tokens"
    )
    print(
        f"{'request':22} {'clip+prompt':>11} {'prefill':>9} {'decode/tok':>10} {'sam enc':>9} {'sam dec':>9} {'total':>9}"
    )
    for key, row in rows.items():
        print(
            f"{key:22} {row['clip_and_prompt_s'] * 1e3:>9.1f}ms {row['prefill_s'] * 1e3:>7.1f}ms {row['decode_per_token_s'] * 1e3:>8.2f}ms "
            f"{row['sam_encode_s'] * 1e3:>7.1f}ms {row['sam_decode_s'] * 1e3:>7.1f}ms {row['total_s'] * 1e3:>7.1f}ms"
            + (f"  peak {row['peak_gpu_gb']:.1f} GB" if "peak_gpu_gb" in row else "")
        )
    for mode in ("human", "object"):
        ratio = rows[f"{mode}_no_cache"]["total_s"] / rows[f"{mode}_kv_cache"]["total_s"]
        print(f"{mode}: KV cache is {ratio:.2f}x faster than the no-cache path per request")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"model": model, "dtype": str(dtype), "device": where, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
