"""Tiny InteractVLM releases in exactly the release layout, with random weights: DEMO models.

Each variant of the model zoo (spec §1.10) gets a folder like the real download: `config.json` with the
release fields, `generation_config.json`, sharded PyTorch pickles `pytorch_model-0000k-of-0000n.bin` (bf16,
upstream key names) with their index, and a SentencePiece tokenizer with the added tokens at the ids the
config names. A tiny CLIP vision folder stands in for openai/clip-vit-large-patch14. The real loader reads
them, so tests and the server's demo mode exercise the same code as a real release.

Random language models never emit a seg token, so the "scripted" flavour shapes the weights: the layers'
output projections are scaled down (the residual stream stays close to the token embedding) and lm_head
maps each token of a fixed answer to the next one, ending in the seg token and `</s>`. The answer is then
decided by the weights, not by any special case in the code. Masks from random SAM weights are noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ivlm_core import paths
from ivlm_core.demo.tiny_tokenizer import write_tiny_tokenizer
from ivlm_core.fileio import ensure_folder_once
from ivlm_core.localize.heads import AttentionSplitter, camera_encoder, text_hidden_fcs
from ivlm_core.localize.sam import UPSTREAM_SAM_PREFIX, tiny_sam_state_dict
from ivlm_core.localize.tokenizer import ReleaseTokenizer

TINY_VERSION = "ivlm-tiny-release-1"
MARKER_KEY = "ivlm_tiny_demo"
HIDDEN, LAYERS, HEADS, FFN = 64, 2, 4, 128
CLIP_HIDDEN = 32


@dataclass(frozen=True)
class Variant:
    """The config fields that distinguish one model-zoo release (spec §1.10)."""

    token_type: str = "Gen"
    num_views: int = 4
    camera_conditioned: bool = True
    camera_encoder: str = "vi_v1"
    human_view_type: str | None = "4MV-Z_Vitru"
    object_view_type: str | None = None
    human_weight: float = 3.0
    object_weight: float = 0.0
    human_question: str = "parts"
    object_question: str = "simple"
    # One of upstream's answer templates; no token may repeat, since lm_head maps token -> next token.
    answer: str = "The contacting body parts are left hand, and the contact region is [SEG]."
    extra_upstream_keys: tuple[str, ...] = field(default=())


VARIANTS: dict[str, Variant] = {
    "interactvlm-3d-hcontact-damon": Variant(extra_upstream_keys=("rotary_inv_freq",)),
    "interactvlm-3d-hcontact-damon-fix": Variant(human_view_type="4MV-Z_Vitru_mv2"),
    "interactvlm-3d-hcontact-damon-noParts": Variant(
        human_view_type="4MV-Z_Vitru_mv2", human_question="simple", answer="Sure, it is [SEG]."
    ),
    "interactvlm-3d-hcontact-wScene-damon-lemon-rich": Variant(
        human_view_type="4MV-Z_Vitru_wScene", object_view_type="4MV-Z_HM"
    ),
    "interactvlm-3d-oafford-lemon-piad": Variant(
        human_view_type=None,
        object_view_type="4MV-Z_HM",
        human_weight=0.0,
        object_weight=3.0,
        object_question="afford",
        answer="This shows an affordance type of grasp, with contact at [SEG].",
    ),
    "interactvlm-3d-hcontact-ocontact": Variant(
        token_type="Gen-Hu-Obj",
        object_view_type="4MV-Z_HM_BM",
        object_weight=3.0,
        object_question="afford",
        answer="The contacting body parts are left hand, and the contact region is [HSEG].",
    ),
    "interactvlm-2d-hcontact": Variant(
        num_views=1, camera_conditioned=False, human_view_type=None, human_weight=0.0, answer="Sure, it is [SEG]."
    ),
}


def _release_config(variant: Variant, ids: dict[str, int], vocab_size: int, clip_dir: str, out_dim: int) -> dict:
    """config.json as transformers 4.31 + InteractVLM wrote it (spec §1.7), with tiny sizes."""
    return {
        "_name_or_path": "xinlai/LISA-13B-llama2-v1",
        "architectures": ["InteractVLMForCausalLM"],
        "model_type": "llava",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "initializer_range": 0.02,
        "max_position_embeddings": 4096,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": HEADS,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.31.0",
        "use_cache": False,
        "vocab_size": vocab_size,
        "freeze_mm_mlp_adapter": True,
        "image_aspect_ratio": "square",
        "image_grid_pinpoints": None,
        "mm_hidden_size": CLIP_HIDDEN,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": True,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": -2,
        "mm_vision_tower": clip_dir,
        "vision_tower": clip_dir,
        "pretrain_mm_mlp_adapter": None,
        "tune_mm_mlp_adapter": False,
        "use_mm_proj": True,
        "out_dim": out_dim,
        "train_mask_decoder": True,
        "seg_token_idx": ids["[SEG]"],
        "hseg_token_idx": ids.get("[HSEG]"),
        "oseg_token_idx": ids.get("[OSEG]"),
        "token_type": variant.token_type,
        "img_emb_len": 255,
        "multiview_channels": variant.num_views,
        "multiview_cam_cond": variant.camera_conditioned,
        "cam_encoder_type": variant.camera_encoder,
        "hC_sam_view_type": variant.human_view_type,
        "oC_sam_view_type": variant.object_view_type,
        "hC_loss_weight": variant.human_weight,
        "oC_loss_weight": variant.object_weight,
        "hC_question_type": variant.human_question,
        "oC_question_type": variant.object_question,
        "use_fusion": False,
        "use_uncertainty": False,
        MARKER_KEY: TINY_VERSION,
    }


def _script_answer(llm: LlamaForCausalLM, chain: list[int], gain: float = 4.0) -> None:
    """Shapes lm_head so each token of `chain` predicts the next one (see the module docstring)."""
    if len(set(chain)) != len(chain):
        raise ValueError(f"a scripted answer cannot repeat a token (ids {chain}): choose other wording")
    with torch.no_grad():
        for layer in llm.model.layers:
            layer.self_attn.o_proj.weight.mul_(0.02)
            layer.mlp.down_proj.weight.mul_(0.02)
        embed = llm.model.embed_tokens.weight
        normed = embed / embed.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()  # what RMSNorm makes of it
        llm.model.norm.weight.fill_(1.0)
        head = torch.zeros_like(llm.lm_head.weight)
        for current, following in zip(chain[:-1], chain[1:]):
            head[following] += gain * normed[current] / normed[current].norm() ** 2 * 16
        llm.lm_head.weight.copy_(head)


def write_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny CLIP vision folder (config, weights, PIL image processor) in the hub layout."""
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=CLIP_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=224,
        patch_size=14,
    )
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def write_tiny_release(folder: Path, name: str, clip_dir: Path, *, seed: int = 0, scripted: bool = True) -> Path:
    """Writes one variant's folder in the release layout (two .bin shards + index)."""
    variant = VARIANTS[name]
    folder.mkdir(parents=True, exist_ok=True)
    ids = write_tiny_tokenizer(folder, variant.token_type)
    vocab_size = max(ids.values()) + 1
    sam_state = tiny_sam_state_dict(seed)
    sam_dim = int(sam_state["mask_decoder.iou_token.weight"].shape[1])  # SAM's prompt width = out_dim
    config = _release_config(variant, ids, vocab_size, str(clip_dir), sam_dim)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(
        json.dumps(
            {
                "_from_model_config": True,
                "bos_token_id": 1,
                "eos_token_id": 2,
                "pad_token_id": 0,
                "transformers_version": "4.31.0",
            },
            indent=2,
        )
    )
    torch.manual_seed(seed)
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=HIDDEN,
            intermediate_size=FFN,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            num_key_value_heads=HEADS,
            tie_word_embeddings=False,
        )
    )
    if scripted:
        tokenizer = ReleaseTokenizer.from_folder(
            folder, seg_token_idx=ids["[SEG]"], hseg_token_idx=ids.get("[HSEG]"), oseg_token_idx=ids.get("[OSEG]")
        )
        answer = tokenizer.encode_text(variant.answer)
        prompt_end = tokenizer.encode_text("ASSISTANT:")[-1]
        _script_answer(llm, [prompt_end, *answer, config["eos_token_id"]])
    state: dict[str, torch.Tensor] = dict(llm.state_dict())
    if "rotary_inv_freq" in variant.extra_upstream_keys:  # transformers 4.31 saved these; loaders must skip them
        for i in range(LAYERS):
            state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, 16, 2) / 16)
    projector = torch.nn.Linear(CLIP_HIDDEN, HIDDEN)
    state.update({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()})
    state.update({UPSTREAM_SAM_PREFIX + k: v for k, v in sam_state.items()})
    fcs = torch.nn.ModuleList([text_hidden_fcs(HIDDEN, sam_dim)])
    state.update({f"model.text_hidden_fcs.{k}": v for k, v in fcs.state_dict().items()})
    if variant.camera_conditioned:
        encoder = camera_encoder(variant.camera_encoder, variant.num_views, sam_dim)
        state.update({f"cam_pose_encoder.{k}": v for k, v in encoder.state_dict().items()})
    if variant.token_type == "Gen-Hu-Obj":
        state.update({f"attention_splitter.{k}": v for k, v in AttentionSplitter(sam_dim).state_dict().items()})
    _write_shards(folder, {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()})
    return folder


def _write_shards(folder: Path, state: dict[str, torch.Tensor], shards: int = 2) -> None:
    """pytorch_model-0000k-of-0000n.bin + pytorch_model.bin.index.json, as transformers 4.31 wrote them."""
    keys = sorted(state)
    per = -(-len(keys) // shards)
    weight_map, total = {}, 0
    for k in range(shards):
        name = f"pytorch_model-{k + 1:05d}-of-{shards:05d}.bin"
        part = {key: state[key].contiguous() for key in keys[k * per : (k + 1) * per]}
        torch.save(part, folder / name)
        for key, tensor in part.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


@dataclass(frozen=True)
class TinyModels:
    """Where the tiny demo models are: `root/clip` and `root/<release name>` for every variant."""

    root: Path
    clip: Path
    releases: dict[str, Path]


def ensure_tiny_models(root: Path | None = None) -> TinyModels:
    """All tiny releases under `root` (default <cache>/demo/tiny_models), written once, atomically."""
    root = Path(root) if root is not None else paths.cache_dir() / "demo" / "tiny_models"
    models = TinyModels(root, root / "clip", {name: root / name for name in VARIANTS})

    def write(tmp: Path) -> None:
        write_tiny_clip(tmp / "clip")
        for name in VARIANTS:
            write_tiny_release(tmp / name, name, root / "clip")

    ensure_folder_once(root, TINY_VERSION, write)
    return models
