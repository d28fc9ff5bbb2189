"""Quality cost of the 8-bit and 4-bit language model (bitsandbytes LLM.int8 / NF4) against bf16 and fp32.

    nice -n 10 .venv/bin/python benchmarks/bench_quantize.py [--json out.json]

Part 1, release-shaped layers (LLaMA-2-13B widths, random weights N(0, 0.02), 64 random activations): output
cosine similarity and relative error of each projection shape and of a whole decoder layer, per precision.
Part 2, the generated tiny releases through the real loader and Localizer (human contact and the joint release):
identical generated tokens (free and with a forced answer), seg-embedding cosine, mask IoU at the 0.5 threshold
(logit > 0) over the 4 views, and lifted-contact F1 at 0.5 on SMPL-X, each against fp32.

Random weights have none of a trained model's outlier channels (LLM.int8 exists because trained LLaMAs have
them), so these figures bound the rounding error of the formats, not the accuracy of a quantised release.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from ivlm_core.localize import prompts, quantize
from ivlm_core.localize.generation import generate_with_cache

SHAPES = {
    "attention q/k/v/o (5120x5120)": (5120, 5120),
    "mlp gate/up (13824x5120)": (13824, 5120),
    "mlp down (5120x13824)": (5120, 13824),
}
PRECISIONS = ("bf16", "int8", "nf4")


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), 0))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _apply(weight: torch.Tensor, x: torch.Tensor, precision: str) -> torch.Tensor:
    if precision == "bf16":
        return (x.bfloat16() @ weight.bfloat16().T).float()
    layer = quantize.quantized_linear(weight, None, precision, "cpu", torch.float32)
    return layer(x)


def layer_figures(tokens: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    rows = {}
    for name, (out_features, in_features) in SHAPES.items():
        weight = torch.randn(out_features, in_features, generator=generator) * 0.02
        x = torch.randn(tokens, in_features, generator=generator)
        reference = x @ weight.T
        rows[name] = {
            p: {
                "cosine": _cosine(_apply(weight, x, p), reference),
                "rel_error": _relative(_apply(weight, x, p), reference),
            }
            for p in PRECISIONS
        }
    return rows


def decoder_layer_figures(tokens: int) -> dict:
    """One LLaMA-2-13B decoder layer (attention + MLP + norms), fp32 against its projections quantised."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

    config = LlamaConfig(hidden_size=5120, intermediate_size=13824, num_attention_heads=40, num_key_value_heads=40)
    torch.manual_seed(0)
    layer = LlamaDecoderLayer(config, 0).eval()
    for module in layer.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.02)
    x = torch.randn(1, tokens, 5120)
    rotary = LlamaRotaryEmbedding(config)
    positions = torch.arange(tokens)[None]
    embeddings = rotary(x, positions)

    def run(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        cos_sin = tuple(t.to(inputs.dtype) for t in embeddings)
        out = module(inputs, position_embeddings=cos_sin, position_ids=positions)
        return out[0] if isinstance(out, tuple) else out

    with torch.inference_mode():
        reference = run(layer, x)
        rows = {"bf16": {"cosine": _cosine(run(layer.to(torch.bfloat16), x.bfloat16()).float(), reference)}}
        layer = layer.float()
        for precision in ("int8", "nf4"):
            quantised = LlamaDecoderLayer(config, 0).eval()
            quantised.load_state_dict(layer.state_dict())
            for name in quantize.LAYER_PROJECTIONS:
                parent_name, _, child = name.rpartition(".")
                parent = quantised.get_submodule(parent_name)
                setattr(
                    parent,
                    child,
                    quantize.quantized_linear(getattr(parent, child).weight, None, precision, "cpu", torch.float32),
                )
            out = run(quantised, x)
            rows[precision] = {"cosine": _cosine(out, reference), "rel_error": _relative(out, reference)}
    return rows


def tiny_release_figures() -> dict:
    from ivlm_core import paths
    from ivlm_core.demo.body_model import ensure_synthetic_body_models
    from ivlm_core.demo.tiny_release import ensure_tiny_models
    from ivlm_core.lift.canonical_body import load_canonical_body_views
    from ivlm_core.lift.smplx_conversion import load_mapping
    from ivlm_core.localize.localizer import Localizer
    from ivlm_core.pipeline.contact import estimate_human_contact
    from ivlm_core.pipeline.plan import HUMAN_RELEASE, JOINT_RELEASE

    models = ensure_synthetic_body_models()
    views = load_canonical_body_views(paths.interactvlm_data_dir(models.root), paths.body_models_dir(models.root))
    mapping = load_mapping(models.smpl_to_smplx.parent)
    tiny = ensure_tiny_models()
    photo = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    rows = {}
    for release in (HUMAN_RELEASE, JOINT_RELEASE):
        localizers = {"fp32": Localizer.from_folders(tiny.releases[release], tiny.clip, dtype=torch.float32)}
        localizers["bf16"] = Localizer.from_folders(tiny.releases[release], tiny.clip, dtype=torch.bfloat16)
        for precision in ("int8", "nf4"):
            localizers[precision] = Localizer.from_folders(
                tiny.releases[release], tiny.clip, dtype=torch.float32, llm_precision=precision
            )
        outputs = {}
        for name, localizer in localizers.items():
            contact = estimate_human_contact(localizer, photo, "chair", views, mapping)
            net = localizer.network
            prompt = localizer.tokenizer.encode_prompt(prompts.contact_prompt("hcontact", "chair"))
            with torch.inference_mode():
                embeddings = net.prompt_embeddings(prompt, localizer._photo_features(photo))
                forced = generate_with_cache(
                    net.llm,
                    embeddings,
                    max_new_tokens=0,
                    eos_token_id=-1,
                    seg_token_ids=net.config.seg_token_ids,
                    forced_tokens=[*range(300, 320), net.config.seg_token_ids[-1]],
                )
            outputs[name] = (contact, forced)
        reference, reference_forced = outputs["fp32"]
        rows[release] = {}
        for name, (contact, forced) in outputs.items():
            if name == "fp32":
                continue
            a, b = reference.localize.logits, contact.localize.logits
            iou = float(((a > 0) & (b > 0)).sum() / max(int(((a > 0) | (b > 0)).sum()), 1))
            x, y = reference.smplx > 0.5, contact.smplx > 0.5
            f1 = 2 * float((x & y).sum()) / max(float(x.sum() + y.sum()), 1.0)
            rows[release][name] = {
                "same_tokens": contact.localize.token_ids == reference.localize.token_ids,
                "forced_seg_cosine": _cosine(forced.seg_state.float(), reference_forced.seg_state.float()),
                "mask_iou_0.5": iou,
                "lifted_f1_0.5": f1,
            }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--json")
    parser.add_argument("--skip-layers", action="store_true", help="skip part 1 (13B-width layers)")
    args = parser.parse_args()
    figures = {"machine": f"CPU {platform.machine()}, {torch.get_num_threads()} threads", "tokens": args.tokens}
    figures["layers"] = {} if args.skip_layers else layer_figures(args.tokens)
    for name, row in figures["layers"].items():
        print(f"{name:32} " + "  ".join(f"{p}: cos {v['cosine']:.6f} rel {v['rel_error']:.4f}" for p, v in row.items()))
    figures["decoder_layer"] = {} if args.skip_layers else decoder_layer_figures(args.tokens)
    print(
        "LLaMA-2-13B decoder layer vs fp32:",
        {p: {k: round(v, 6) for k, v in r.items()} for p, r in figures["decoder_layer"].items()},
    )
    figures["tiny_releases"] = tiny_release_figures()
    for release, rows in figures["tiny_releases"].items():
        for name, row in rows.items():
            print(
                f"{release} {name:5} vs fp32: "
                + ", ".join(f"{k} {v if isinstance(v, bool) else round(v, 6)}" for k, v in row.items())
            )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
