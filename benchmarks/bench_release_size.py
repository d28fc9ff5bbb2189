"""The whole pipeline at release size with random weights: peak memory, bytes per part, time per stage, against
the memory plan (ivlm_core/pipeline/plan.py).

    nice -n 10 .venv/bin/python benchmarks/bench_release_size.py --precision nf4            # CPU, the 24 GB machine
    python benchmarks/bench_release_size.py --device cuda --precision nf4                  # GPU (gpu_check.sh)
    .venv/bin/python benchmarks/bench_release_size.py --tiny                               # rehearsal, seconds

Built at the real shapes: the joint release's network (LLaMA-2-13B + [HSEG]/[OSEG], SAM ViT-H, heads), CLIP
ViT-L/14, and the perception models at their hub sizes (grounding-dino-tiny at 800x1333, sam-vit-base,
vitpose-base). The 13B decoder weights are generated and quantised one matrix at a time, so the float weights of
one matrix at most exist beside the quantised ones. One job runs on a generated scene (the scene's own body is
handed over, as a client body) with a forced 24-token answer ending in [HSEG]/[OSEG] (random weights never stop).

On a CPU the language model is too slow to run all 40 layers for a whole job (bitsandbytes dequantises every
weight per matmul without AVX-512: ~1 s per 5120x13824 matrix), so `--run-layers N` runs the first N layers
while all 40 stay resident: the memory is the full model's, the LLM times are measured on N layers and scaled
by 40/N (printed as such). Peak resident memory is the kernel's high-water mark (VmHWM), reset per stage.
The run aborts when the machine's available memory falls under `--min-available-gb`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ivlm_core.localize import quantize, sam
from ivlm_core.localize.config import load_release_config
from ivlm_core.localize.generation import generate_with_cache
from ivlm_core.localize.network import InteractVLMNetwork, llama_config
from ivlm_core.pipeline import plan as memory_plan

GB = 1024**3
ANSWER_TOKENS = 24


# ---- memory ------------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Memory:
    """Resident memory (CPU: VmRSS / VmHWM, reset per stage) or CUDA allocator peaks; aborts when the machine runs
    short (other processes share it)."""

    def __init__(self, device: torch.device, min_available_gb: float) -> None:
        self.device = device
        self.min_available = min_available_gb * GB
        self.peaks: dict[str, float] = {}

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def now_gb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) / GB
        return _status_kb("VmRSS") / 1024**2

    def peak_gb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / GB
        return _status_kb("VmHWM") / 1024**2

    def record(self, stage: str) -> None:
        self.peaks[stage] = self.peak_gb()

    def guard(self) -> None:
        available = memory_plan.host_available_bytes()
        if available is not None and available < self.min_available:
            raise SystemExit(f"aborted: the machine's available memory fell to {available / GB:.1f} GB")


# ---- building the release-size parts -----------------------------------------------------------------------


def joint_release_config(tiny: bool, token_ids: dict[str, int]):
    """The joint release's config.json fields at 13B (or tiny for the rehearsal), read by the real reader. The seg
    token ids are the tiny tokenizer's (the prompt is tokenised with it; the embedding keeps the 13B vocabulary)."""
    import tempfile

    raw = dict(
        memory_plan.NOMINAL_RELEASE,
        token_type="Gen-Hu-Obj",
        hC_sam_view_type="4MV-Z_Vitru",
        oC_sam_view_type="4MV-Z_HM_BM",
        **token_ids,
    )
    if tiny:
        width = sam.tiny_sam_config().mask_decoder_config.hidden_size
        raw.update(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            mm_hidden_size=32,
            out_dim=width,
        )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(raw))
        return load_release_config(Path(tmp))


def _random(
    shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, generator: torch.Generator
) -> torch.Tensor:
    return (torch.randn(shape, generator=generator, device=device, dtype=torch.float32) * 0.02).to(dtype)


def build_network(
    config, device: torch.device, dtype: torch.dtype, precision: str, tiny: bool, memory: Memory, log
) -> InteractVLMNetwork:
    """The network with random weights: the decoder generated and quantised one matrix at a time."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, SamModel
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    clip_config = (
        CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2)
        if tiny
        else memory_plan.clip_vit_l_14_config()
    )
    sam_config = sam.tiny_sam_config() if tiny else sam.vit_h_sam_config()
    with torch.device("meta"):
        network = InteractVLMNetwork(config, clip_config, sam_config)
    generator = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    llm = network.llm
    for index, layer in enumerate(llm.model.layers):
        for name in quantize.LAYER_PROJECTIONS:
            parent_name, _, child = name.rpartition(".")
            parent = layer.get_submodule(parent_name)
            old = getattr(parent, child)
            weight = _random((old.out_features, old.in_features), device, dtype, generator)
            if precision == "native":
                new = torch.nn.Linear(old.in_features, old.out_features, bias=False, device="meta")
                new.weight = torch.nn.Parameter(weight, requires_grad=False)
            else:
                new = quantize.quantized_linear(weight, None, precision, device, dtype)
            del weight
            setattr(parent, child, new)
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            norm.weight = torch.nn.Parameter(
                torch.ones(config.hidden_size, device=device, dtype=dtype), requires_grad=False
            )
        memory.guard()
        if index % 10 == 9 or index + 1 == len(llm.model.layers):
            log(f"  decoder layers {index + 1}/{len(llm.model.layers)} built ({memory.now_gb():.1f} GB resident)")
    llm.model.embed_tokens.weight = torch.nn.Parameter(
        _random(tuple(llm.model.embed_tokens.weight.shape), device, dtype, generator), requires_grad=False
    )
    llm.lm_head.weight = torch.nn.Parameter(
        _random(tuple(llm.lm_head.weight.shape), device, dtype, generator), requires_grad=False
    )
    llm.model.norm.weight = torch.nn.Parameter(
        torch.ones(config.hidden_size, device=device, dtype=dtype), requires_grad=False
    )
    llm.model.rotary_emb = LlamaRotaryEmbedding(llama_config(config)).to(device)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            network.vision_tower = CLIPVisionModel(clip_config)
            network.sam = SamModel(sam_config)
            network.mm_projector = torch.nn.Linear(clip_config.hidden_size, config.hidden_size)
            from ivlm_core.localize.heads import AttentionSplitter, camera_encoder, text_hidden_fcs

            network.text_hidden_fcs = torch.nn.ModuleList([text_hidden_fcs(config.hidden_size, config.out_dim)])
            network.cam_pose_encoder = camera_encoder(config.camera_encoder, config.num_views, config.out_dim)
            network.attention_splitter = AttentionSplitter(config.out_dim)
    finally:
        torch.set_default_dtype(previous)
    network.requires_grad_(False).eval()
    log(f"  network built in {time.perf_counter() - start:.0f} s")
    return network


def build_perceiver(device: torch.device, tiny: bool):
    """The Perceiver with its three models at hub sizes (random weights), the tiny folders' processors."""
    from transformers import GroundingDinoForObjectDetection, SamModel, VitPoseForPoseEstimation

    from ivlm_core.demo.tiny_perception import ensure_tiny_perception
    from ivlm_core.perceive.keypoints import KeypointEstimator
    from ivlm_core.perceive.perceiver import Perceiver

    folders = ensure_tiny_perception()
    perceiver = Perceiver.from_models_dir(next(iter(folders.values())).parent.parent, device=device)
    if tiny:
        return perceiver
    configs = memory_plan.hub_perception_configs()
    perceiver.detector.model = GroundingDinoForObjectDetection(configs["grounding-dino"]).to(device).eval()
    perceiver.detector.processor.image_processor.size = {"shortest_edge": 800, "longest_edge": 1333}
    perceiver.segmenter.model = SamModel(configs["sam"]).to(device).eval()
    # The head as many keypoints as the folder's model (COCO-17 or COCO-WholeBody's 133), so the estimator's names
    # and the fit's keypoint format stay the folder's.
    keypoints = perceiver.keypoints
    vitpose = configs["vitpose"]
    vitpose.num_labels = keypoints.model.config.num_labels
    perceiver.keypoints = KeypointEstimator(
        VitPoseForPoseEstimation(vitpose).to(device).eval(), keypoints.processor, demo=keypoints.demo
    )
    return perceiver


# ---- the job -----------------------------------------------------------------------------------------------


def force_answers(localizer, answer_tokens: int, generations: list) -> None:
    """Random weights never stop: every request decodes a fixed answer ending in the mode's seg token."""
    config = localizer.network.config

    def generate(embeddings: torch.Tensor):
        seg = config.hseg_token_idx if len(generations) % 2 == 0 else config.oseg_token_idx
        forced = [*range(300, 300 + answer_tokens - 2), seg, localizer.tokenizer.eos_id]
        generation = generate_with_cache(
            localizer.network.llm,
            embeddings,
            max_new_tokens=0,
            eos_token_id=-1,
            seg_token_ids=config.seg_token_ids,
            forced_tokens=forced,
        )
        generations.append(generation)
        return generation

    localizer._generate = generate


def run(args: argparse.Namespace) -> dict:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from ivlm_core import paths
    from ivlm_core.body import load_body_model
    from ivlm_core.demo.body_model import ensure_synthetic_body_models
    from ivlm_core.demo.scenes import make_scene
    from ivlm_core.demo.tiny_release import ensure_tiny_models
    from ivlm_core.lift.canonical_body import load_canonical_body_views
    from ivlm_core.lift.smplx_conversion import load_mapping
    from ivlm_core.localize.checkpoint import LoadReport
    from ivlm_core.localize.localizer import Localizer
    from ivlm_core.localize.tokenizer import ReleaseTokenizer
    from ivlm_core.pipeline.reconstruct import ContactPipeline, ObjectInput, RunOptions

    device = torch.device(args.device)
    dtype = memory_plan.default_dtype(device.type)
    memory = Memory(device, args.min_available_gb)
    log = print if not args.quiet else (lambda *a: None)
    stages: dict[str, float] = {}
    parts: dict[str, float] = {}
    tiny = ensure_tiny_models()
    joint_folder = tiny.releases[memory_plan.JOINT_RELEASE]
    ids = {k: v for k, v in json.loads((joint_folder / "config.json").read_text()).items() if k.endswith("_token_idx")}
    config = joint_release_config(args.tiny, ids)
    if args.layers:  # rehearsal at the real widths with fewer decoder layers
        config = dataclasses.replace(config, num_hidden_layers=args.layers)
    configuration = memory_plan.configuration_named(
        "joint" if args.precision == "native" else f"joint-{args.precision}"
    )
    log(f"release-size pipeline: {configuration.name}, {dtype} where not quantised, device {device}")
    memory.reset()

    t = time.perf_counter()
    base = memory.now_gb()
    perceiver = build_perceiver(device, args.tiny)
    parts["perception"] = memory.now_gb() - base
    models = ensure_synthetic_body_models()
    body = load_body_model("smplx", folder=paths.body_models_dir(models.root), num_betas=10)
    views = load_canonical_body_views(
        paths.interactvlm_data_dir(models.root), paths.body_models_dir(models.root), device=str(device)
    )
    mapping = load_mapping(models.smpl_to_smplx.parent)
    stages["build: perception, body, views"] = time.perf_counter() - t

    t = time.perf_counter()
    network = build_network(config, device, dtype, args.precision, args.tiny, memory, log)
    stages["build: network (generate + quantise)"] = time.perf_counter() - t
    llm_layers = network.llm.model.layers
    parts["language model"] = quantize.weight_bytes(network.llm) / GB
    parts["SAM ViT-H" if not args.tiny else "SAM (tiny)"] = quantize.weight_bytes(network.sam) / GB
    parts["CLIP"] = quantize.weight_bytes(network.vision_tower) / GB
    heads = (network.mm_projector, network.text_hidden_fcs, network.cam_pose_encoder, network.attention_splitter)
    parts["projector and heads"] = sum(quantize.weight_bytes(m) for m in heads) / GB
    memory.record("build")
    if args.build_only:  # memory of the parts only (a job at real size is too slow for a shared CPU)
        per_layer = quantize.weight_bytes(llm_layers[0]) / GB
        return {
            "configuration": configuration.name,
            "device": str(device),
            "dtype": str(dtype),
            "parts_gb": parts,
            "build_s": stages,
            "peak_gb": dict(memory.peaks),
            "rss_gb": memory.now_gb(),
            "layers_built": len(llm_layers),
            "decoder_layer_gb": per_layer,
            "language_model_at_40_layers_gb": parts["language model"] + (40 - len(llm_layers)) * per_layer,
        }
    run_layers = min(args.run_layers or len(llm_layers), len(llm_layers))
    network.llm.model.layers = torch.nn.ModuleList(list(llm_layers)[:run_layers])  # all stay resident in llm_layers
    tokenizer = ReleaseTokenizer.from_folder(joint_folder, **ids)
    report = LoadReport(Path("random-release-size"), tiny.clip, False, [], dtype, device, args.precision)
    localizer = Localizer(
        network, tokenizer, CLIPImageProcessorPil.from_pretrained(tiny.clip), report, sam_batch=args.sam_batch
    )
    generations: list = []
    force_answers(localizer, args.answer_tokens, generations)
    pipeline = ContactPipeline(
        perceiver,
        body,
        localizer,
        localizer,
        views,
        mapping,
        device=str(device),
        demo=True,
        configuration=configuration,
    )

    scene = make_scene("hold_mug", 0)
    options = RunOptions(body_vertices=scene.body_vertices, stages=frozenset({"fit"}) if args.fit else frozenset())
    stage_peaks: dict[str, float] = {}

    def progress(stage: str, fraction: float, message: str) -> None:
        memory.guard()
        if progress.last is not None:
            stage_peaks[progress.last] = memory.peak_gb()
        memory.reset()
        progress.last = stage if stage != "done" else None

    progress.last = None
    memory.reset()
    t = time.perf_counter()
    result = pipeline.run(scene.image, [ObjectInput(scene.label, scene.object_mesh)], options, progress=progress)
    job_seconds = time.perf_counter() - t
    scale = len(llm_layers) / run_layers
    llm = {
        "prefill_s": [g.prefill_seconds for g in generations],
        "decode_per_token_s": [float(np.median(g.decode_seconds)) for g in generations],
        "layers_run": run_layers,
        "layers_resident": len(llm_layers),
        "scale_to_all_layers": scale,
    }
    outcome = result.objects[0]
    return {
        "configuration": configuration.name,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.machine()}, {torch.get_num_threads()} threads",
        "dtype": str(dtype),
        "parts_gb": parts,
        "build_s": stages,
        "peak_gb": {"build": memory.peaks["build"], **stage_peaks},
        "job_timings_s": result.timings_s,
        "job_s": job_seconds,
        "llm": llm,
        "answers": {k: len(v) for k, v in outcome.answers.items()},
        "contacts": {"body": outcome.body_contact is not None, "object": outcome.object_contact is not None},
        "notes": result.notes,
    }


def report(figures: dict, args: argparse.Namespace) -> None:
    if args.build_only:
        print(json.dumps(figures, indent=2, default=str))
        return
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    plan = memory_plan.plan_configuration(
        memory_plan.configuration_named(figures["configuration"]),
        device=device,
        dtype=memory_plan.default_dtype(device),
        nominal=True,
        sam_batch=args.sam_batch,
    )
    print(f"\n{figures['configuration']} on {figures['device']} ({figures['dtype']} where not quantised)")
    print("bytes per part (measured) vs plan:")
    planned: dict[str, float] = {}
    for part in plan.weights:
        key = next((k for k in ("perception", "language model", "SAM", "CLIP", "heads") if k in part.name), part.name)
        planned[key] = planned.get(key, 0.0) + part.bytes / GB
    for name, value in figures["parts_gb"].items():
        key = next((k for k in ("perception", "language model", "SAM", "CLIP", "heads") if k in name), name)
        print(f"  {name:22} {value:7.2f} GB   plan {planned.get(key, float('nan')):7.2f} GB")
    print("peak resident memory per stage:", {k: round(v, 2) for k, v in figures["peak_gb"].items()})
    print(
        f"plan: weights {plan.weights_bytes / GB:.2f} GB + KV {plan.kv_cache.bytes / GB:.2f} + largest transient "
        f"{plan.peak_transient.bytes / GB:.2f} ({plan.peak_transient.name}) + margin {plan.margin_bytes / GB:.2f} = {plan.need_gb:.2f} GB"
    )
    print("build seconds:", {k: round(v, 1) for k, v in figures["build_s"].items()})
    print(
        "job seconds per stage:",
        {k: round(v, 1) for k, v in figures["job_timings_s"].items()},
        f"total {figures['job_s']:.1f}",
    )
    llm = figures["llm"]
    scale = llm["scale_to_all_layers"]
    print(
        f"LLM ({llm['layers_run']} of {llm['layers_resident']} layers run): prefill {llm['prefill_s']} s, "
        f"decode/token {llm['decode_per_token_s']} s" + (f"; x{scale:.0f} for all layers" if scale != 1 else "")
    )


def simulate_card(args: argparse.Namespace) -> None:
    """Caps CUDA memory at `args.simulate_gb` and lets the plan choose the configuration, as the server would."""
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    budget = int(args.simulate_gb * GB)
    if device == "cuda":
        total = torch.cuda.get_device_properties(torch.device(args.device)).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), torch.device(args.device))
    choice = memory_plan.choose(
        memory_plan.plan_all("cuda", nominal=True), budget, f"simulated {args.simulate_gb:g} GB card"
    )
    configuration = choice.plan.configuration
    if not configuration.joint:
        raise SystemExit(f"the plan chose {configuration.name}; this benchmark builds the joint release only")
    args.precision, args.sam_batch = configuration.llm_precision, choice.plan.sam_batch
    print(
        f"simulated {args.simulate_gb:g} GB card: the plan chose {configuration.name} (SAM {choice.plan.sam_batch} "
        f"view(s) per call): {choice.reason}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="nf4", choices=("native", "int8", "nf4"))
    parser.add_argument("--tiny", action="store_true", help="rehearsal: tiny shapes, same code paths")
    parser.add_argument("--layers", type=int, default=None, help="rehearsal: build only this many decoder layers")
    parser.add_argument("--run-layers", type=int, default=None, help="decoder layers run (all stay resident)")
    parser.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS)
    parser.add_argument("--sam-batch", type=int, default=1)
    parser.add_argument("--fit", action="store_true", help="also place the object (CPU-bound, not a GPU figure)")
    parser.add_argument(
        "--simulate-gb",
        type=float,
        default=None,
        help="a card of this size: CUDA memory capped with set_per_process_memory_fraction, the "
        "configuration and SAM batch chosen by the plan for it (overrides --precision)",
    )
    parser.add_argument("--min-available-gb", type=float, default=3.0)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--build-only", action="store_true", help="build the parts and report their memory, no job")
    args = parser.parse_args()
    if args.simulate_gb is not None:
        simulate_card(args)
    torch.manual_seed(0)
    with torch.inference_mode():
        figures = run(args)
    report(figures, args)
    if args.simulate_gb is not None:
        done = figures["contacts"]["body"] and figures["contacts"]["object"]
        print(
            f"simulated {args.simulate_gb:g} GB card: job {'COMPLETED' if done else 'FAILED'} in {figures['job_s']:.1f} s, "
            f"peak {max(figures['peak_gb'].values()):.2f} GB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
