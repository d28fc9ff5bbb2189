"""Start-up: loading a release from its `.bin` pickle shards against our safetensors conversion, same run.

    nice -n 10 .venv/bin/python benchmarks/bench_startup.py --layers 2 [--precision nf4] [--keep DIR]

Writes a release-format folder at LLaMA-2-13B widths with random weights (`--layers` decoder layers of 40, SAM
ViT-H, bf16 pickles in shards as transformers 4.31 wrote them), converts it with `convert_release` (what
`ivlm serve --convert-on-start` does once), then times `load_network` from each, alternating, `--repeats` times.
The printout is for the layers written (SAM ViT-H, CLIP ViT-L/14 and the embeddings in full); the decoder layers
are identical, so their share scales with their count. The page cache is warm for both after the first pass.
With `--keep DIR`, the folders an earlier run left in DIR are reused (not rewritten).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ivlm_core.localize.checkpoint import convert_release, load_network
from ivlm_core.localize.sam import UPSTREAM_SAM_PREFIX, hf_to_upstream_state_dict, vit_h_sam_config
from ivlm_core.pipeline import plan as memory_plan


def write_release(folder: Path, layers: int, shard_bytes: int = 10 << 30) -> int:
    """A release-format folder (config, tokenizer from the tiny joint release, bf16 .bin shards + index)."""
    from transformers import SamModel

    from ivlm_core.demo.tiny_release import ensure_tiny_models

    tiny = ensure_tiny_models().releases[memory_plan.HUMAN_RELEASE]
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        if (tiny / name).is_file():
            shutil.copy2(tiny / name, folder / name)
    ids = json.loads((tiny / "config.json").read_text())
    config = dict(memory_plan.NOMINAL_RELEASE, num_hidden_layers=layers, seg_token_idx=ids["seg_token_idx"])
    (folder / "config.json").write_text(json.dumps(config))
    h, f, v = 5120, 13824, config["vocab_size"]
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)

    state = {
        "model.embed_tokens.weight": rand(v, h),
        "lm_head.weight": rand(v, h),
        "model.norm.weight": torch.ones(h, dtype=torch.bfloat16),
    }
    for i in range(layers):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[f"model.layers.{i}.self_attn.{name}.weight"] = rand(h, h)
        state[f"model.layers.{i}.mlp.gate_proj.weight"] = rand(f, h)
        state[f"model.layers.{i}.mlp.up_proj.weight"] = rand(f, h)
        state[f"model.layers.{i}.mlp.down_proj.weight"] = rand(h, f)
        for name in ("input_layernorm", "post_attention_layernorm"):
            state[f"model.layers.{i}.{name}.weight"] = torch.ones(h, dtype=torch.bfloat16)
    state["model.mm_projector.weight"], state["model.mm_projector.bias"] = rand(h, 1024), rand(h)
    state["model.text_hidden_fcs.0.0.weight"], state["model.text_hidden_fcs.0.0.bias"] = rand(h, h), rand(h)
    state["model.text_hidden_fcs.0.2.weight"], state["model.text_hidden_fcs.0.2.bias"] = rand(256, h), rand(256)
    from ivlm_core.localize.heads import camera_encoder

    state.update(
        {f"cam_pose_encoder.{k}": t.to(torch.bfloat16) for k, t in camera_encoder("vi_v1", 4, 256).state_dict().items()}
    )
    sam_state = SamModel(vit_h_sam_config()).state_dict()
    state.update(
        {UPSTREAM_SAM_PREFIX + k: t.to(torch.bfloat16) for k, t in hf_to_upstream_state_dict(sam_state).items()}
    )
    total, shard, shards, weight_map = 0, {}, [], {}
    for key, tensor in state.items():
        if shard and sum(t.numel() * 2 for t in shard.values()) + tensor.numel() * 2 > shard_bytes:
            shards.append(shard)
            shard = {}
        shard[key] = tensor.contiguous()
        total += tensor.numel() * tensor.element_size()
    shards.append(shard)
    for k, part in enumerate(shards):
        name = f"pytorch_model-{k + 1:05d}-of-{len(shards):05d}.bin"
        torch.save(part, folder / name)
        weight_map.update({key: name for key in part})
    (folder / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    return total


def write_clip_vit_l(folder: Path, tiny_clip: Path) -> None:
    """A CLIP ViT-L/14 vision folder with random weights: the tiny folder's processor files, ViT-L/14's shapes."""
    from transformers import CLIPVisionModel

    shutil.copytree(tiny_clip, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "config.json"))
    CLIPVisionModel(memory_plan.clip_vit_l_14_config()).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--precision", default="nf4", choices=("native", "int8", "nf4"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", help="write the folders here instead of a temporary folder")
    parser.add_argument("--json")
    args = parser.parse_args()
    from ivlm_core.demo.tiny_release import ensure_tiny_models

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    bins, converted, clip = root / "release-bin", root / "release-safetensors", root / "clip-vit-large-patch14"
    if not clip.is_dir():  # the release's projector takes ViT-L/14's 1024-d features; loaded the same for both
        write_clip_vit_l(clip, ensure_tiny_models().clip)
    if (converted / "config.json").is_file():  # --keep: the folders of an earlier run, written at these sizes
        total = json.loads((bins / "pytorch_model.bin.index.json").read_text())["metadata"]["total_size"]
        convert_s = float("nan")
        print(f"reusing {total / 1e9:.2f} GB of .bin shards and their conversion in {root}")
    else:
        start = time.perf_counter()
        total = write_release(bins, args.layers)
        print(
            f"wrote {total / 1e9:.2f} GB of .bin shards ({args.layers} decoder layers) in "
            f"{time.perf_counter() - start:.0f} s"
        )
        start = time.perf_counter()
        convert_release(bins, converted)
        convert_s = time.perf_counter() - start
        print(f"converted to safetensors in {convert_s:.0f} s")
    times: dict[str, list[float]] = {"bin": [], "safetensors": []}
    for _ in range(args.repeats):
        for name, folder in (("bin", bins), ("safetensors", converted)):
            start = time.perf_counter()
            network, _ = load_network(folder, clip, dtype=torch.float32, llm_precision=args.precision)
            times[name].append(time.perf_counter() - start)
            del network
    rows = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"load ({args.precision}, float32 where not quantised, {args.layers} layers): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in rows.items())
        + f"; .bin / safetensors = {rows['bin'] / rows['safetensors']:.2f}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "layers": args.layers,
                    "precision": args.precision,
                    "bytes": total,
                    "convert_s": convert_s,
                    "load_s": times,
                },
                indent=2,
            )
        )
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
