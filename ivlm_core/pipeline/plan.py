"""Which model configuration fits a memory budget: the needs are computed from the configs, never guessed.

Configurations, most accurate first (`CONFIGURATIONS`): precision first (native > int8 > nf4, where native is the
load dtype: bf16 on a GPU as upstream, float32 on the CPU; int8/nf4 apply to
the language model's decoder layers only, see localize/quantize.py), then the two specialised releases
(human contact `damon-fix`, object affordance `oafford-lemon-piad`) before the joint release
(`hcontact-ocontact`, one language model answering both modes with `[HSEG]`/`[OSEG]`, spec P9).

A configuration's need is the peak memory of one job on the device:

    resident weights (every part, its dtype and precision; counted from the release configs and the model
    folders' own configs on the meta device, so nothing is loaded)
  + the KV cache at the real prompt length plus the answer cap, for the one release generating at a time
  + the largest transient of the stages, which run one after another: LLM prefill, SAM ViT-H image encoder on
    `sam_batch` views at 1024², perception (Grounding DINO at 800x1333), render and lift buffers
  + a stated margin (`MARGIN_FIXED_GB` for the CUDA context or the Python process, plus `MARGIN_FRACTION`).

The formulas for the transients are in `_transients`; each says what it counts. `ivlm plan` prints every
configuration with its parts and whether it fits; the server picks the first that fits (`choose`).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ivlm_core import paths
from ivlm_core.errors import IVLMError
from ivlm_core.localize.config import ReleaseConfig, load_release_config
from ivlm_core.localize.quantize import NF4_BLOCK

GB = 1024**3
COUNTS_VERSION = 3  # bump when the cached counts (plan_counts/*.json) change shape
HUMAN_RELEASE = "interactvlm-3d-hcontact-damon-fix"
OBJECT_RELEASE = "interactvlm-3d-oafford-lemon-piad"
JOINT_RELEASE = "interactvlm-3d-hcontact-ocontact"
MARGIN_FIXED_GB = {"cuda": 0.75, "cpu": 1.0}  # CUDA context and kernels / the Python process with its libraries
MARGIN_FRACTION = 0.08  # allocator fragmentation and what the formulas leave out
SAM_IMAGE_TOKENS = 64 * 64  # SAM ViT-H sees 1024² as a 64x64 grid
VIEW_PIXELS = 1024 * 1024
RENDER_BYTES_PER_PIXEL = 96  # depth, face id (int64), barycentrics, normals, colour, mask, logits: ~80 B, rounded up
PERCEPTION_INPUT = (800, 1333)  # Grounding DINO's resize; its encoder dominates the perception transient
PROMPT_TEXT_TOKENS = 130  # the longest question with a 100-character label, tokenised (see prompt_tokens)
NOMINAL_RELEASE = {  # a 13B release's config.json fields (spec §1.2, §1.7): the plan without the files
    "hidden_size": 5120,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "intermediate_size": 13824,
    "vocab_size": 32005,
    "rms_norm_eps": 1e-5,
    "max_position_embeddings": 4096,
    "seg_token_idx": 32000,
    "token_type": "Gen",
    "img_emb_len": 255,
    "multiview_channels": 4,
    "multiview_cam_cond": True,
    "cam_encoder_type": "vi_v1",
    "hC_sam_view_type": "4MV-Z_Vitru_mv2",
    "oC_sam_view_type": "4MV-Z_HM",
    "hC_loss_weight": 3.0,
    "oC_loss_weight": 3.0,
    "mm_hidden_size": 1024,
    "mm_vision_select_layer": -2,
    "out_dim": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


@dataclass(frozen=True)
class Configuration:
    """Which releases are loaded and at which language-model precision."""

    name: str
    releases: tuple[str, ...]  # (human, object) or (joint,)
    llm_precision: str  # "native" (the load dtype: bf16 on a GPU, fp32 on the CPU), "int8" or "nf4"

    @property
    def joint(self) -> bool:
        return len(self.releases) == 1

    def describe(self, native: str = "bf16") -> str:
        which = "joint human+object release" if self.joint else "separate human and object releases"
        precision = native if self.llm_precision == "native" else self.llm_precision
        return f"{which}, language model in {precision}"


CONFIGURATIONS = (
    Configuration("separate", (HUMAN_RELEASE, OBJECT_RELEASE), "native"),
    Configuration("joint", (JOINT_RELEASE,), "native"),
    Configuration("separate-int8", (HUMAN_RELEASE, OBJECT_RELEASE), "int8"),
    Configuration("joint-int8", (JOINT_RELEASE,), "int8"),
    Configuration("separate-nf4", (HUMAN_RELEASE, OBJECT_RELEASE), "nf4"),
    Configuration("joint-nf4", (JOINT_RELEASE,), "nf4"),
)


def configuration_named(name: str) -> Configuration:
    for configuration in CONFIGURATIONS:
        if configuration.name == name:
            return configuration
    raise IVLMError(f"unknown configuration {name!r}", f"Use one of {', '.join(c.name for c in CONFIGURATIONS)}.")


@dataclass(frozen=True)
class Part:
    name: str
    bytes: int
    note: str = ""


@dataclass
class Plan:
    """One configuration's memory need on one device; `need_bytes` is what must be free."""

    configuration: Configuration
    device: str  # "cuda" or "cpu"
    dtype: str  # the load dtype of everything not quantised
    sam_batch: int  # views per SAM image-encoder call
    weights: list[Part]
    transients: list[Part]  # stages run one after another: only the largest counts
    kv_cache: Part
    margin_bytes: int
    available: bool = True  # its release folders are present (always True for a nominal plan)
    missing: list[str] = field(default_factory=list)
    nominal: bool = False  # planned for the real release shapes without reading any folder

    @property
    def weights_bytes(self) -> int:
        return sum(p.bytes for p in self.weights)

    @property
    def peak_transient(self) -> Part:
        return max(self.transients, key=lambda p: p.bytes)

    @property
    def need_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache.bytes + self.peak_transient.bytes + self.margin_bytes

    @property
    def need_gb(self) -> float:
        return self.need_bytes / GB

    def fits(self, budget_bytes: int | None) -> bool:
        return budget_bytes is None or self.need_bytes <= budget_bytes

    def label(self) -> str:
        return self.configuration.describe(self.dtype)

    def to_dict(self) -> dict:
        return {
            "configuration": self.configuration.name,
            "description": self.label(),
            "releases": list(self.configuration.releases),
            "llm_precision": self.configuration.llm_precision,
            "device": self.device,
            "dtype": self.dtype,
            "sam_batch": self.sam_batch,
            "need_gb": round(self.need_gb, 2),
            "weights": [asdict(p) for p in self.weights],
            "kv_cache": asdict(self.kv_cache),
            "peak_transient": asdict(self.peak_transient),
            "margin_bytes": self.margin_bytes,
            "available": self.available,
            "missing": self.missing,
        }


# ---- counting parameters from configs (meta device: nothing is allocated) -------------------------------------


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())


def _dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@dataclass(frozen=True)
class ReleaseShapes:
    """Parameter counts of one release's parts, from its config."""

    name: str
    layer_projections: int  # decoder q/k/v/o + gate/up/down: what int8/nf4 quantise
    projection_rows: int  # their output rows (int8 keeps one float32 scale per row)
    largest_projection: int  # elements of the largest projection (dequantised one at a time)
    projection_matrices: int
    other_llm: int  # embeddings, lm_head, norms
    heads: int  # projector, text_hidden_fcs, camera encoder, attention splitter
    sam: int
    sam_heads: int  # SAM image encoder: attention heads and width (ViT-H: 16, 1280)
    sam_width: int
    config: ReleaseConfig


def release_shapes(config: ReleaseConfig, name: str) -> ReleaseShapes:
    """Counted on a meta-device network built from `config` (cached: a 13B network takes seconds to build)."""
    counts = _release_counts(json.dumps(config.raw, sort_keys=True))
    return ReleaseShapes(name=name, config=config, **counts)


def _disk_cached(kind: str, key: str, compute):
    """`compute()` once per machine: counting on the meta device needs transformers' model modules, whose import
    alone takes seconds (the server's API process plans before it starts). Keyed by the transformers version."""
    import hashlib

    import transformers

    digest = hashlib.sha1(f"{kind}|{key}|{transformers.__version__}|{COUNTS_VERSION}".encode()).hexdigest()[:20]
    path = paths.cache_dir() / "plan_counts" / f"{kind}-{digest}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    from ivlm_core.fileio import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value))
    return value


@functools.lru_cache(maxsize=16)
def _release_counts(raw_json: str) -> dict[str, int]:
    return _disk_cached("release", raw_json, lambda: _count_release(raw_json))


def _count_release(raw_json: str) -> dict[str, int]:
    """LLaMA counted by formula (building a 13B model, even on the meta device, takes long); the heads and SAM
    built on the meta device from the same constructors the loader uses."""
    import tempfile

    from transformers import SamModel

    from ivlm_core.localize import sam
    from ivlm_core.localize.heads import AttentionSplitter, camera_encoder, text_hidden_fcs

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(raw_json)
        config = load_release_config(Path(tmp))
    hidden, heads, layers = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    kv = config.num_key_value_heads * (hidden // heads)
    projections = layers * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * config.intermediate_size)
    norms = (2 * layers + 1) * hidden
    with torch.device("meta"):
        parts = [torch.nn.Linear(config.mm_hidden_size, hidden), text_hidden_fcs(hidden, config.out_dim)]
        if config.camera_conditioned:
            parts.append(camera_encoder(config.camera_encoder, config.num_views, config.out_dim))
        if config.token_type in ("Gen-Hu-Obj", "Gen-Int"):
            parts.append(AttentionSplitter(config.out_dim))
        segment_anything = SamModel(sam.vit_h_sam_config())
    extra_decoders = 2 * _numel(segment_anything.mask_decoder) if config.separate_decoders else 0
    sam_vision: Any = segment_anything.config.vision_config  # typed as its inputs (dict | None); it is a config
    return {
        "layer_projections": projections,
        "projection_rows": layers * (hidden + 2 * kv + hidden + 2 * config.intermediate_size + hidden),
        "largest_projection": hidden * config.intermediate_size,
        "projection_matrices": 7 * layers,
        "other_llm": 2 * config.vocab_size * hidden + norms,
        "heads": sum(_numel(part) for part in parts),
        "sam": _numel(segment_anything) + extra_decoders,
        "sam_heads": sam_vision.num_attention_heads,
        "sam_width": sam_vision.hidden_size,
    }


def nominal_release_config() -> ReleaseConfig:
    """A 13B release's config without the files (written to a temporary folder and read by the real reader)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(NOMINAL_RELEASE))
        return load_release_config(Path(tmp))


def clip_vit_l_14_config():
    """openai/clip-vit-large-patch14's vision tower, as its hub config.json gives it."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
    )


@functools.lru_cache(maxsize=8)
def clip_params(clip_dir: Path | None) -> int:
    key = (Path(clip_dir) / "config.json").read_text() if clip_dir is not None else "clip-vit-large-patch14"
    return _disk_cached("clip", key, lambda: _count_clip(clip_dir))


def _count_clip(clip_dir: Path | None) -> int:
    from transformers import CLIPVisionModel

    from ivlm_core.localize.checkpoint import clip_vision_config

    config = clip_vision_config(clip_dir) if clip_dir is not None else clip_vit_l_14_config()
    with torch.device("meta"):
        return _numel(CLIPVisionModel(config))


def hub_perception_configs() -> dict:
    """The default perception models at their hub sizes: grounding-dino-tiny, sam-vit-base, vitpose-base-simple.

    transformers' default configs of these classes are those checkpoints' architectures."""
    from transformers import GroundingDinoConfig, SamConfig, VitPoseConfig

    vitpose = VitPoseConfig(num_labels=17)  # type: ignore[call-arg]  # num_labels: a **kwargs of __post_init__, not typed
    return {"grounding-dino": GroundingDinoConfig(), "sam": SamConfig(), "vitpose": vitpose}


@functools.lru_cache(maxsize=8)
def perception_params(root: Path | None) -> dict[str, int]:
    """Parameters of each perception model: counted from the folder's safetensors headers when present, else
    from the hub-size configs on the meta device."""
    counts = {}
    # One keypoint model runs: counted as COCO-17 ViTPose-B (the optional whole-body ViTPose++-B, a .pth release,
    # is the same backbone plus small dataset experts).
    for name in ("grounding-dino", "sam", "vitpose"):
        folder = paths.perception_dir(name, root) if root is not None else None
        counted = _safetensors_params(folder) if folder is not None else None
        if counted is None:
            counted = _disk_cached("perception", name, lambda name=name: _count_hub_perception(name))
        counts[name] = counted
    return counts


def _count_hub_perception(name: str) -> int:
    import transformers

    classes = {
        "grounding-dino": "GroundingDinoForObjectDetection",
        "sam": "SamModel",
        "vitpose": "VitPoseForPoseEstimation",
    }
    with torch.device("meta"):
        return _numel(getattr(transformers, classes[name])(hub_perception_configs()[name]))


def _safetensors_params(folder: Path) -> int | None:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():
                shape = handle.get_slice(key).get_shape()
                count = 1
                for size in shape:
                    count *= int(size)
                total += count
    return total


# ---- the plan -------------------------------------------------------------------------------------------------


def llm_weight_bytes(shapes: ReleaseShapes, precision: str, dtype: torch.dtype) -> tuple[int, str]:
    """Bytes of one release's language model at `precision` (decoder projections) and `dtype` (the rest)."""
    element = _dtype_bytes(dtype)
    rest = shapes.other_llm * element
    if precision == "native":
        return shapes.layer_projections * element + rest, f"{shapes.layer_projections + shapes.other_llm:,} parameters"
    if precision == "int8":  # int8 weights, one float32 scale per output row
        quantised = shapes.layer_projections + 4 * shapes.projection_rows
        return quantised + rest, "decoder projections int8 (+ float32 row scales), embeddings/lm_head/norms unquantised"
    # nf4: 4 bits per weight; per block of 64 an 8-bit absmax (double quantisation), per 256 blocks a float32; per
    # matrix the two code tables (16 and 256 float32) and an offset
    blocks = shapes.layer_projections // NF4_BLOCK
    tables = shapes.projection_matrices * (16 + 256 + 1) * 4
    quantised = shapes.layer_projections // 2 + blocks + 4 * (blocks // 256 + shapes.projection_matrices) + tables
    return quantised + rest, "decoder projections NF4 (blocks of 64, double-quantised scales), the rest unquantised"


LONGEST_LABEL = ("tennis racket " * 8)[:100]  # a label at the length limit (prompts.MAX_LABEL_CHARS)


def prompt_tokens(config: ReleaseConfig) -> int:
    """Positions of the longest prompt: its text tokens, counted with the release's own tokenizer when the folder
    has one (else `PROMPT_TEXT_TOKENS`, measured the same way on LLaMA-2's), with the image sentinel expanded
    to the 256 CLIP tokens."""
    ids = (config.seg_token_idx, config.hseg_token_idx, config.oseg_token_idx)
    return _text_tokens(str(config.folder), *ids) - 1 + 256 + (config.img_emb_len - 255)


def answer_cap_for(config: ReleaseConfig) -> int:
    """The Localizer's generation cap for this release (prompts.answer_token_cap), with its tokenizer when present."""
    ids = (config.seg_token_idx, config.hseg_token_idx, config.oseg_token_idx)
    return _answer_cap(str(config.folder), *ids)


@functools.lru_cache(maxsize=16)
def _answer_cap(folder: str, seg: int, hseg: int | None, oseg: int | None) -> int:
    from ivlm_core.localize import prompts
    from ivlm_core.localize.tokenizer import ReleaseTokenizer

    try:
        tokenizer = ReleaseTokenizer.from_folder(
            Path(folder), seg_token_idx=seg, hseg_token_idx=hseg, oseg_token_idx=oseg
        )
    except Exception:
        return prompts.answer_token_cap(prompts.estimated_llama_tokens)
    return prompts.answer_token_cap(lambda text: len(tokenizer.encode_text(text)))


@functools.lru_cache(maxsize=16)
def _text_tokens(folder: str, seg: int, hseg: int | None, oseg: int | None) -> int:
    from ivlm_core.localize import prompts
    from ivlm_core.localize.tokenizer import ReleaseTokenizer

    try:
        tokenizer = ReleaseTokenizer.from_folder(
            Path(folder), seg_token_idx=seg, hseg_token_idx=hseg, oseg_token_idx=oseg
        )
    except Exception:
        return PROMPT_TEXT_TOKENS
    return max(len(tokenizer.encode_prompt(prompts.contact_prompt(mode, LONGEST_LABEL))) for mode in prompts.MODES)


def _transients(
    shapes: list[ReleaseShapes], dtype: torch.dtype, sam_batch: int, perception: dict[str, int], answer_cap: int
) -> list[Part]:
    element = _dtype_bytes(dtype)
    config = shapes[0].config
    tokens = prompt_tokens(config) + answer_cap
    hidden, ffn = config.hidden_size, config.intermediate_size
    # LLM prefill, per layer (layers run one at a time): hidden states in and out, q/k/v, the MLP's gate/up/product,
    # attention scores in float32 (CPU's math kernel materialises them; flash kernels do not), and two dequantised
    # projections in the compute dtype (bitsandbytes dequantises a weight per matmul).
    prefill = (
        tokens * (6 * hidden + 3 * ffn) * element
        + config.num_attention_heads * tokens * tokens * 4
        + 2 * shapes[0].largest_projection * element
        + config.vocab_size * 4
    )
    # SAM ViT-H global-attention blocks: the decomposed rel-pos bias [B, 16, 4096, 4096] in the compute dtype, counted
    # twice (the sum of the two rel-pos terms and the attention kernel's own copy), plus the block's activations
    # (qkv, MLP 4x) of B views.
    n, encoder = SAM_IMAGE_TOKENS, shapes[0]
    sam_encode = sam_batch * (2 * encoder.sam_heads * n * n * element + n * encoder.sam_width * 10 * element)
    # Perception: Grounding DINO's encoder over its multi-scale features (stride 8..64 of 800x1333, 256 channels,
    # 6 layers of ~10 live tensors) dominates; its weights are counted above.
    h, w = PERCEPTION_INPUT
    dino_tokens = sum((h // s) * (w // s) for s in (8, 16, 32, 64))
    perceive = dino_tokens * 256 * 60 * 4
    render = 4 * VIEW_PIXELS * RENDER_BYTES_PER_PIXEL + 4 * VIEW_PIXELS * 4 * 3  # 4 views + float32 mask logits
    return [
        Part("LLM prefill", prefill, f"{tokens} positions (prompt {prompt_tokens(config)} + answer cap {answer_cap})"),
        Part("SAM image encoder", sam_encode, f"{sam_batch} view(s) of 1024² per call"),
        Part("perception", perceive, f"Grounding DINO at {h}x{w}"),
        Part("render and lift", render, "4 views of 1024²"),
    ]


def plan_configuration(
    configuration: Configuration,
    *,
    device: str,
    dtype: torch.dtype,
    root: Path | None = None,
    nominal: bool = False,
    sam_batch: int = 4,
    answer_cap: int | None = None,
) -> Plan:
    """The need of `configuration` on `device` ("cuda" or "cpu"). `nominal` plans for the real release shapes and
    hub-size models without reading any folder; otherwise the release and model folders under `root` are read
    (configs and safetensors headers only)."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    missing: list[str] = []
    shapes = []
    for release in configuration.releases:
        folder = paths.interactvlm_release_dir(release, root)
        if nominal:
            config = nominal_release_config()
        else:
            try:
                config = load_release_config(folder)
            except IVLMError:
                missing.append(release)
                config = nominal_release_config()
        shapes.append(release_shapes(config, release))
    element = _dtype_bytes(dtype)
    weights = []
    for item in shapes:
        llm_bytes, note = llm_weight_bytes(item, configuration.llm_precision, dtype)
        weights.append(Part(f"{item.name}: language model", llm_bytes, note))
        weights.append(Part(f"{item.name}: SAM ViT-H", item.sam * element, f"{item.sam:,} parameters"))
        weights.append(Part(f"{item.name}: projector and heads", item.heads * element, f"{item.heads:,} parameters"))
    clip = clip_params(None if nominal or root is None else _existing(paths.clip_dir(root)))
    weights.append(Part("CLIP ViT-L/14 (shared)", clip * element, f"{clip:,} parameters"))
    perception = dict(perception_params(None if nominal else root or paths.models_dir()))
    for name, count in perception.items():
        weights.append(Part(f"perception: {name}", count * 4, f"{count:,} parameters, float32"))
    weights.append(
        Part(
            "body model, canonical views, lift operators", _body_bytes(), "SMPL-X arrays, 4 body views, SAM embeddings"
        )
    )
    config = shapes[0].config
    answer_cap = answer_cap or answer_cap_for(config)
    tokens = prompt_tokens(config) + answer_cap
    kv = (
        2
        * config.num_hidden_layers
        * tokens
        * config.num_key_value_heads
        * (config.hidden_size // config.num_attention_heads)
        * element
    )
    kv_cache = Part("KV cache", kv, f"{tokens} positions, one request at a time")
    transients = _transients(shapes, dtype, sam_batch, perception, answer_cap)
    subtotal = sum(p.bytes for p in weights) + kv + max(p.bytes for p in transients)
    margin = int(MARGIN_FIXED_GB[kind] * GB + MARGIN_FRACTION * subtotal)
    return Plan(
        configuration,
        kind,
        str(dtype).replace("torch.", ""),
        sam_batch,
        weights,
        transients,
        kv_cache,
        margin,
        available=not missing,
        missing=missing,
        nominal=nominal,
    )


def _existing(folder: Path) -> Path | None:
    return folder if (folder / "config.json").is_file() else None


def _body_bytes() -> int:
    """SMPL-X (10475 vertices; shape, expression and pose blend shapes in float32), the 4 canonical body renders
    (uint8) and their cached SAM embeddings, and the sparse lifting operators (about 2 entries per pixel)."""
    smplx = 10475 * 3 * (400 + 486 + 1) * 4 + 10475 * 55 * 4
    views = 4 * VIEW_PIXELS * 3 + 4 * 256 * 64 * 64 * 4
    lift = 4 * VIEW_PIXELS * 2 * (8 + 4)
    return smplx + views + lift


def default_dtype(device: str) -> torch.dtype:
    """What the pipeline loads on `device`: bf16 on a GPU (as upstream), float32 on the CPU (bf16 is slow there)."""
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def plan_all(
    device: str, *, root: Path | None = None, nominal: bool = False, answer_cap: int | None = None
) -> list[Plan]:
    """Every configuration, most accurate first, each with SAM encoding 4 views per call and 1 view per call."""
    dtype = default_dtype(device)
    plans = []
    for configuration in CONFIGURATIONS:
        for sam_batch in (4, 1):
            plans.append(
                plan_configuration(
                    configuration,
                    device=device,
                    dtype=dtype,
                    root=root,
                    nominal=nominal,
                    sam_batch=sam_batch,
                    answer_cap=answer_cap,
                )
            )
    return plans


@dataclass
class Choice:
    """What was chosen for a budget, and why, in words a user reads in the banner, in health and in results."""

    plan: Plan
    budget_bytes: int | None
    budget_source: str  # "--gpu-memory-gb", "free GPU memory", "host memory", "unrestricted"
    reason: str

    def to_dict(self) -> dict:
        return {
            "configuration": self.plan.configuration.name,
            "description": self.plan.label(),
            "llm_precision": self.plan.configuration.llm_precision,
            "dtype": self.plan.dtype,
            "sam_batch": self.plan.sam_batch,
            "need_gb": round(self.plan.need_gb, 2),
            "budget_gb": None if self.budget_bytes is None else round(self.budget_bytes / GB, 2),
            "budget_source": self.budget_source,
            "reason": self.reason,
        }


class BudgetTooSmallError(IVLMError):
    """No configuration fits the memory budget."""

    code = "GPU_MEMORY_TOO_SMALL"


def choose(
    plans: list[Plan], budget_bytes: int | None, budget_source: str, *, require_available: bool = True
) -> Choice:
    """The first (most accurate) plan that fits and whose files are present; BudgetTooSmallError when none fits."""
    candidates = [p for p in plans if p.available or not require_available]
    if not candidates:
        raise IVLMError(
            "no configuration has its release folders: neither both separate releases nor the joint one is present",
            f"Put {HUMAN_RELEASE} and {OBJECT_RELEASE}, or {JOINT_RELEASE}, under interactvlm/trained_models/ "
            "(`ivlm doctor`).",
        )
    best_skipped = candidates[0]
    for plan in candidates:
        if plan.fits(budget_bytes):
            if budget_bytes is None:
                reason = f"{budget_source}: the most accurate configuration whose files are present"
            else:
                reason = (
                    f"needs {plan.need_gb:.1f} GB of the {budget_bytes / GB:.1f} GB budget ({budget_source}); "
                    f"the most accurate configuration that fits"
                )
                if plan is not best_skipped:
                    reason += f" ({best_skipped.configuration.name} needs {best_skipped.need_gb:.1f} GB)"
            return Choice(plan, budget_bytes, budget_source, reason)
    assert budget_bytes is not None  # without a budget every plan fits
    smallest = min(candidates, key=lambda p: p.need_bytes)
    raise BudgetTooSmallError(
        f"no configuration fits {budget_bytes / GB:.1f} GB ({budget_source}): the smallest, "
        f"{smallest.configuration.name} ({smallest.label()}, SAM {smallest.sam_batch} view per call), "
        f"needs {smallest.need_gb:.1f} GB",
        "Free GPU memory (close other programs), use a GPU with more memory, or pass --gpu-memory-gb if the "
        "detected budget is wrong. `ivlm plan` lists every configuration and its need.",
    )


def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), None elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def detect_budget(device: str, gpu_memory_gb: float | None, *, demo: bool) -> tuple[int | None, str]:
    """The budget and where it came from: the flag; else free CUDA memory; else on the CPU the host's available
    memory for real models, and no limit for the DEMO models (they are tiny; the plan of the real shapes is shown)."""
    if gpu_memory_gb is not None:
        return int(gpu_memory_gb * GB), f"--gpu-memory-gb {gpu_memory_gb:g}"
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), "free GPU memory at start"
    if demo:
        return None, "CPU, DEMO models, no --gpu-memory-gb: unrestricted"
    available = host_available_bytes()
    return (available, "available host memory (CPU)") if available is not None else (None, "CPU: unrestricted")


def format_plans(plans: list[Plan], budget_bytes: int | None, budget_source: str, chosen: Plan | None) -> str:
    """The table `ivlm plan` prints."""
    budget = "no limit" if budget_bytes is None else f"{budget_bytes / GB:.1f} GB"
    lines = [
        f"Memory plan for {plans[0].device} ({plans[0].dtype} where not quantised), budget {budget} ({budget_source})",
        "",
    ]
    lines.append(f"{'configuration':<16} {'SAM views/call':>14} {'need GB':>8}  {'fits':<5} files")
    for plan in plans:
        mark = "<- chosen" if plan is chosen else ""
        fits = "yes" if plan.fits(budget_bytes) else "no"
        files = "(not read)" if plan.nominal else "present" if plan.available else "missing: " + ", ".join(plan.missing)
        lines.append(
            f"{plan.configuration.name:<16} {plan.sam_batch:>14} {plan.need_gb:>8.1f}  {fits:<5} {files} {mark}"
        )
    if chosen is not None:
        lines += ["", f"Chosen: {chosen.configuration.name} ({chosen.label()}). Its parts:"]
        for part in chosen.weights:
            lines.append(f"  {part.bytes / GB:7.2f} GB  {part.name}  ({part.note})")
        lines.append(f"  {chosen.kv_cache.bytes / GB:7.2f} GB  {chosen.kv_cache.name}  ({chosen.kv_cache.note})")
        for part in chosen.transients:
            flag = "  <- largest transient (counted)" if part is chosen.peak_transient else ""
            size = part.bytes / GB
            lines.append(f"  {size:7.2f} GB  transient: {part.name}  ({part.note}){flag}")
        lines.append(
            f"  {chosen.margin_bytes / GB:7.2f} GB  margin "
            f"({MARGIN_FIXED_GB[chosen.device]} GB + {MARGIN_FRACTION:.0%})"
        )
        lines.append(f"  {chosen.need_gb:7.2f} GB  total")
    return "\n".join(lines)


def plan_json(plans: list[Plan], choice: Choice | None) -> str:
    return json.dumps(
        {"plans": [p.to_dict() for p in plans], "choice": None if choice is None else choice.to_dict()}, indent=2
    )


def environment_gpu_memory_gb() -> float | None:
    """`IVLM_GPU_MEMORY_GB`, the environment form of --gpu-memory-gb."""
    value = os.environ.get("IVLM_GPU_MEMORY_GB")
    return float(value) if value else None
