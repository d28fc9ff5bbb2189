"""SAM for Localize: the SAM inside InteractVLM's releases, run on transformers' `SamModel`.

The releases store SAM ViT-H under `model.visual_model.` with the ORIGINAL Segment Anything key names
(`image_encoder.blocks.0.norm1.weight`, ...). transformers names the same tensors differently, so this module
owns the one exact key mapping (both ways, unknown keys fail loudly), infers the architecture from tensor
shapes, builds the model without allocating it twice, and provides the inference steps InteractVLM uses:
SAM's preprocessing, batched image encoding, multi-view decoding with LISA-style sparse tokens (spec §2.6)
and SAM's post-processing to float32 logits. Numerics match the original implementation (tested against
Meta's `segment_anything` to 1e-5 in fp32).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

from ivlm_core.errors import BadInputError, ModelFileError

__all__ = [
    "SAM_IMAGE_SIZE",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "UPSTREAM_SAM_PREFIX",
    "build_sam",
    "decode_views",
    "encode_images",
    "hf_key_to_upstream",
    "hf_to_upstream_state_dict",
    "postprocess_masks",
    "preprocess",
    "resized_shape",
    "sam_config_from_state_dict",
    "tiny_sam_config",
    "tiny_sam_state_dict",
    "upstream_key_to_hf",
    "upstream_to_hf_state_dict",
]

UPSTREAM_SAM_PREFIX = "model.visual_model."
# The original `Sam.pixel_mean` / `pixel_std` buffers are not persistent, so releases do not store them.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
SAM_IMAGE_SIZE = 1024

# Not recoverable from tensor shapes; these are the values of every released SAM (ViT-B/L/H alike).
SAM_DECODER_HEADS = 8
SAM_VIT_LAYER_NORM_EPS = 1e-6  # `partial(nn.LayerNorm, eps=1e-6)` in the ViT; LayerNorm2d also uses 1e-6
SAM_DECODER_LAYER_NORM_EPS = 1e-5  # the two-way transformer's norms are plain `nn.LayerNorm` (PyTorch default)

GAUSSIAN_KEY = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
HF_POSITIONAL_KEY = "shared_image_embedding.positional_embedding"
# transformers keeps a second, tied handle on the same matrix inside its prompt encoder.
HF_TIED_POSITIONAL_KEY = "prompt_encoder.shared_embedding.positional_embedding"
_DEFAULT_IOU_HEAD_DEPTH = 3
_HYPERNETWORK_MLP_DEPTH = 3  # fixed in both implementations

# ---------------------------------------------------------------------------------------------------------
# Key mapping
# ---------------------------------------------------------------------------------------------------------

# Placeholders usable in the rule templates below, with what they may match.
_PLACEHOLDERS = {
    "i": r"\d+",
    "p": r"weight|bias",
    "ln": r"1|2",
    "norm": r"1|2|3|4",
    "lin": r"1|2",
    "hw": r"h|w",
    "vit_attn": r"qkv|proj",
    "proj": r"q_proj|k_proj|v_proj|out_proj",
    "attn": r"self_attn|cross_attn_token_to_image|cross_attn_image_to_token",
}

# (original Segment Anything key, transformers SamModel key); placeholders carry over unchanged.
_FIXED_RULES: tuple[tuple[str, str], ...] = (
    ("image_encoder.patch_embed.proj.{p}", "vision_encoder.patch_embed.projection.{p}"),
    ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
    ("image_encoder.blocks.{i}.norm{ln}.{p}", "vision_encoder.layers.{i}.layer_norm{ln}.{p}"),
    ("image_encoder.blocks.{i}.attn.{vit_attn}.{p}", "vision_encoder.layers.{i}.attn.{vit_attn}.{p}"),
    ("image_encoder.blocks.{i}.attn.rel_pos_{hw}", "vision_encoder.layers.{i}.attn.rel_pos_{hw}"),
    ("image_encoder.blocks.{i}.mlp.lin{lin}.{p}", "vision_encoder.layers.{i}.mlp.lin{lin}.{p}"),
    ("image_encoder.neck.0.weight", "vision_encoder.neck.conv1.weight"),
    ("image_encoder.neck.1.{p}", "vision_encoder.neck.layer_norm1.{p}"),
    ("image_encoder.neck.2.weight", "vision_encoder.neck.conv2.weight"),
    ("image_encoder.neck.3.{p}", "vision_encoder.neck.layer_norm2.{p}"),
    (GAUSSIAN_KEY, HF_POSITIONAL_KEY),
    ("prompt_encoder.point_embeddings.{i}.weight", "prompt_encoder.point_embed.{i}.weight"),
    ("prompt_encoder.not_a_point_embed.weight", "prompt_encoder.not_a_point_embed.weight"),
    ("prompt_encoder.no_mask_embed.weight", "prompt_encoder.no_mask_embed.weight"),
    ("prompt_encoder.mask_downscaling.0.{p}", "prompt_encoder.mask_embed.conv1.{p}"),
    ("prompt_encoder.mask_downscaling.1.{p}", "prompt_encoder.mask_embed.layer_norm1.{p}"),
    ("prompt_encoder.mask_downscaling.3.{p}", "prompt_encoder.mask_embed.conv2.{p}"),
    ("prompt_encoder.mask_downscaling.4.{p}", "prompt_encoder.mask_embed.layer_norm2.{p}"),
    ("prompt_encoder.mask_downscaling.6.{p}", "prompt_encoder.mask_embed.conv3.{p}"),
    ("mask_decoder.iou_token.weight", "mask_decoder.iou_token.weight"),
    ("mask_decoder.mask_tokens.weight", "mask_decoder.mask_tokens.weight"),
    ("mask_decoder.transformer.layers.{i}.{attn}.{proj}.{p}", "mask_decoder.transformer.layers.{i}.{attn}.{proj}.{p}"),
    ("mask_decoder.transformer.layers.{i}.norm{norm}.{p}", "mask_decoder.transformer.layers.{i}.layer_norm{norm}.{p}"),
    ("mask_decoder.transformer.layers.{i}.mlp.lin{lin}.{p}", "mask_decoder.transformer.layers.{i}.mlp.lin{lin}.{p}"),
    (
        "mask_decoder.transformer.final_attn_token_to_image.{proj}.{p}",
        "mask_decoder.transformer.final_attn_token_to_image.{proj}.{p}",
    ),
    ("mask_decoder.transformer.norm_final_attn.{p}", "mask_decoder.transformer.layer_norm_final_attn.{p}"),
    ("mask_decoder.output_upscaling.0.{p}", "mask_decoder.upscale_conv1.{p}"),
    ("mask_decoder.output_upscaling.1.{p}", "mask_decoder.upscale_layer_norm.{p}"),
    ("mask_decoder.output_upscaling.3.{p}", "mask_decoder.upscale_conv2.{p}"),
)


def _mlp_rules(prefix: str, depth: int) -> tuple[tuple[str, str], ...]:
    """The original MLP numbers its linears 0..depth-1; transformers calls them proj_in, layers.k, proj_out."""
    rules = [(f"{prefix}.layers.0.{{p}}", f"{prefix}.proj_in.{{p}}")]
    rules += [(f"{prefix}.layers.{k}.{{p}}", f"{prefix}.layers.{k - 1}.{{p}}") for k in range(1, depth - 1)]
    rules.append((f"{prefix}.layers.{depth - 1}.{{p}}", f"{prefix}.proj_out.{{p}}"))
    return tuple(rules)


def _compile_template(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>{_PLACEHOLDERS[part]})" for index, part in enumerate(parts)
    )
    return re.compile(pattern)


@lru_cache(maxsize=8)
def _compiled_rules(iou_head_depth: int) -> tuple[tuple[re.Pattern[str], str, re.Pattern[str], str], ...]:
    """(upstream regex, hf template, hf regex, upstream template) for every rule, for one IoU-head depth."""
    if iou_head_depth < 2:
        raise ModelFileError(
            f"SAM IoU head of depth {iou_head_depth} is not supported.", "transformers' SAM needs at least 2 layers."
        )
    rules = (
        _FIXED_RULES
        + _mlp_rules("mask_decoder.output_hypernetworks_mlps.{i}", _HYPERNETWORK_MLP_DEPTH)
        + _mlp_rules("mask_decoder.iou_prediction_head", iou_head_depth)
    )
    return tuple((_compile_template(up), hf, _compile_template(hf), up) for up, hf in rules)


def _unknown_key_error(key: str, naming: str) -> ModelFileError:
    return ModelFileError(
        f"SAM weight {key!r} ({naming} naming) has no counterpart in the other SAM implementation.",
        "The checkpoint is not an original-layout SAM (as LISA/InteractVLM releases store it under "
        f"{UPSTREAM_SAM_PREFIX!r}), or it carries a module this loader does not support.",
    )


def upstream_key_to_hf(key: str, iou_head_depth: int = _DEFAULT_IOU_HEAD_DEPTH) -> str:
    """The transformers `SamModel` key for an original SAM key (given without `model.visual_model.`)."""
    for upstream_re, hf_template, _, _ in _compiled_rules(iou_head_depth):
        match = upstream_re.fullmatch(key)
        if match:
            return hf_template.format(**match.groupdict())
    raise _unknown_key_error(key, "original SAM")


def hf_key_to_upstream(key: str, iou_head_depth: int = _DEFAULT_IOU_HEAD_DEPTH) -> str:
    """The original SAM key for a transformers `SamModel` key (both positional handles give the gaussian)."""
    if key == HF_TIED_POSITIONAL_KEY:
        return GAUSSIAN_KEY
    for _, _, hf_re, upstream_template in _compiled_rules(iou_head_depth):
        match = hf_re.fullmatch(key)
        if match:
            return upstream_template.format(**match.groupdict())
    raise _unknown_key_error(key, "transformers")


def _indices(keys: Sequence[str] | Mapping[str, object], pattern: str) -> list[int]:
    """Sorted distinct integers captured by `pattern` (one group) over the keys."""
    compiled = re.compile(pattern)
    found = {int(m.group(1)) for m in map(compiled.fullmatch, keys) if m}
    return sorted(found)


def _upstream_iou_head_depth(keys: Mapping[str, object]) -> int:
    layers = _indices(keys, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight")
    return layers[-1] + 1 if layers else _DEFAULT_IOU_HEAD_DEPTH


def _hf_iou_head_depth(keys: Mapping[str, object]) -> int:
    if "mask_decoder.iou_prediction_head.proj_in.weight" not in keys:
        return _DEFAULT_IOU_HEAD_DEPTH
    middle = _indices(keys, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight")
    return (middle[-1] + 1 if middle else 0) + 2


def upstream_to_hf_state_dict(upstream: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename original SAM weights to `SamModel` keys (tensors are shared, not copied).

    The positional gaussian goes to both of transformers' handles on it, so a strict load sees every key.
    """
    depth = _upstream_iou_head_depth(upstream)
    renamed = {upstream_key_to_hf(key, depth): tensor for key, tensor in upstream.items()}
    if HF_POSITIONAL_KEY in renamed:
        renamed[HF_TIED_POSITIONAL_KEY] = renamed[HF_POSITIONAL_KEY]
    return renamed


def hf_to_upstream_state_dict(hf: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename `SamModel` weights to original SAM keys; the two positional handles must agree."""
    depth = _hf_iou_head_depth(hf)
    renamed: dict[str, Tensor] = {}
    for key, tensor in hf.items():
        if key == HF_TIED_POSITIONAL_KEY and HF_POSITIONAL_KEY in hf:
            _check_tied(hf[HF_POSITIONAL_KEY], tensor)
            continue
        renamed[hf_key_to_upstream(key, depth)] = tensor
    return renamed


def _check_tied(first: Tensor, second: Tensor) -> None:
    same = first is second or (
        first.shape == second.shape and (first.is_meta or second.is_meta or torch.equal(first, second))
    )
    if not same:
        raise ModelFileError(
            f"{HF_POSITIONAL_KEY!r} and {HF_TIED_POSITIONAL_KEY!r} differ, but SAM uses one positional matrix.",
            "Save the SamModel with tied positional embeddings.",
        )


# ---------------------------------------------------------------------------------------------------------
# Architecture from shapes
# ---------------------------------------------------------------------------------------------------------


def _shape(upstream: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in upstream:
        raise ModelFileError(
            f"SAM weights lack {key!r}, needed to tell the model's size.",
            "The checkpoint's SAM part is incomplete or not in the original Segment Anything layout.",
        )
    return tuple(upstream[key].shape)


def _inconsistent(what: str) -> ModelFileError:
    return ModelFileError(f"SAM weights are inconsistent: {what}.", "The checkpoint's SAM part is damaged or mixed.")


def _rel_pos_sizes(upstream: Mapping[str, Tensor], blocks: list[int]) -> tuple[list[int], int]:
    """Per-block attention extent (window side, or grid side for global blocks) and the attention head dim."""
    extents, head_dims = [], set()
    for index in blocks:
        length, head_dim = _shape(upstream, f"image_encoder.blocks.{index}.attn.rel_pos_h")
        extents.append((length + 1) // 2)
        head_dims.add(head_dim)
    if len(head_dims) != 1:
        raise _inconsistent(f"ViT blocks disagree on the attention head size ({sorted(head_dims)})")
    return extents, head_dims.pop()


def _vision_config(upstream: Mapping[str, Tensor]) -> SamVisionConfig:
    embed_dim, _, patch, patch_w = _shape(upstream, "image_encoder.patch_embed.proj.weight")
    if patch != patch_w:
        raise _inconsistent(f"non-square patches {patch}x{patch_w}")
    use_abs_pos = "image_encoder.pos_embed" in upstream
    grid = _shape(upstream, "image_encoder.pos_embed")[1] if use_abs_pos else SAM_IMAGE_SIZE // patch
    blocks = _indices(upstream, r"image_encoder\.blocks\.(\d+)\.attn\.qkv\.weight")
    if not blocks or blocks != list(range(len(blocks))):
        raise _inconsistent(f"ViT block numbers are {blocks}, not 0..n-1")
    extents, head_dim = _rel_pos_sizes(upstream, blocks)
    global_blocks = [i for i, extent in zip(blocks, extents) if extent == grid]
    window_sizes = {extent for extent in extents if extent != grid}
    if len(window_sizes) > 1 or embed_dim % head_dim:
        raise _inconsistent(f"window sizes {sorted(window_sizes)}, head size {head_dim} for width {embed_dim}")
    return SamVisionConfig(
        hidden_size=embed_dim,
        output_channels=_shape(upstream, "image_encoder.neck.0.weight")[0],
        num_hidden_layers=len(blocks),
        num_attention_heads=embed_dim // head_dim,
        image_size=grid * patch,
        patch_size=patch,
        layer_norm_eps=SAM_VIT_LAYER_NORM_EPS,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in upstream,
        use_abs_pos=use_abs_pos,
        use_rel_pos=True,
        window_size=window_sizes.pop() if window_sizes else 0,
        global_attn_indexes=global_blocks,
        num_pos_feats=_shape(upstream, GAUSSIAN_KEY)[1],
        mlp_dim=_shape(upstream, "image_encoder.blocks.0.mlp.lin1.weight")[0],
    )


def _prompt_encoder_config(upstream: Mapping[str, Tensor], vision: SamVisionConfig) -> SamPromptEncoderConfig:
    hidden = _shape(upstream, "prompt_encoder.no_mask_embed.weight")[1]
    if hidden != vision.output_channels or hidden != 2 * vision.num_pos_feats:
        raise _inconsistent(
            f"prompt width {hidden}, image embedding width {vision.output_channels}, "
            f"{vision.num_pos_feats} positional frequencies"
        )
    points = _indices(upstream, r"prompt_encoder\.point_embeddings\.(\d+)\.weight")
    return SamPromptEncoderConfig(
        hidden_size=hidden,
        image_size=vision.image_size,
        patch_size=vision.patch_size,
        mask_input_channels=_shape(upstream, "prompt_encoder.mask_downscaling.3.weight")[0],
        num_point_embeddings=len(points) or 4,
        layer_norm_eps=SAM_VIT_LAYER_NORM_EPS,
    )


def _mask_decoder_config(upstream: Mapping[str, Tensor], prompt_width: int) -> SamMaskDecoderConfig:
    hidden = _shape(upstream, "mask_decoder.iou_token.weight")[1]
    layers = _indices(upstream, r"mask_decoder\.transformer\.layers\.(\d+)\.norm1\.weight")
    cross = "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"
    internal = _shape(upstream, cross)[0]
    if hidden != prompt_width or hidden % internal or internal % SAM_DECODER_HEADS:
        raise _inconsistent(f"decoder width {hidden}, prompt width {prompt_width}, attention width {internal}")
    return SamMaskDecoderConfig(
        hidden_size=hidden,
        mlp_dim=_shape(upstream, "mask_decoder.transformer.layers.0.mlp.lin1.weight")[0],
        num_hidden_layers=len(layers),
        num_attention_heads=SAM_DECODER_HEADS,
        attention_downsample_rate=hidden // internal,
        num_multimask_outputs=_shape(upstream, "mask_decoder.mask_tokens.weight")[0] - 1,
        iou_head_depth=_upstream_iou_head_depth(upstream),
        iou_head_hidden_dim=_shape(upstream, "mask_decoder.iou_prediction_head.layers.0.weight")[0],
        layer_norm_eps=SAM_DECODER_LAYER_NORM_EPS,
    )


def sam_config_from_state_dict(upstream: Mapping[str, Tensor]) -> SamConfig:
    """The `SamConfig` of original-layout SAM weights, every size read from tensor shapes.

    Read from shapes: ViT width, depth, patch, image size (pos-embed grid x patch), window size and
    global-attention blocks (rel-pos lengths), heads (width / rel-pos head size), MLP width, neck channels,
    prompt width, positional frequencies, mask_in_chans, point embeddings, decoder width, depth, MLP width,
    attention downsample rate (cross-attention q_proj width), mask tokens, IoU head depth and width.
    Not in any shape, so taken from the released SAMs: 8 decoder heads, layer-norm eps 1e-6 in the ViT and
    mask convs, 1e-5 in the decoder's two-way transformer (plain `nn.LayerNorm` there; transformers'
    default of 1e-6 would differ from the original), and image size 1024 if `pos_embed` is absent.
    Tensors may live on the `meta` device: only shapes are read.
    """
    vision = _vision_config(upstream)
    prompt = _prompt_encoder_config(upstream, vision)
    decoder = _mask_decoder_config(upstream, prompt.hidden_size)
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


# ---------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------


def _check_against_model(expected: Mapping[str, Tensor], weights: Mapping[str, Tensor]) -> None:
    """Missing, unexpected or mis-shaped weights, reported in the checkpoint's own (original) key names."""
    depth = _hf_iou_head_depth(expected)
    missing = sorted(hf_key_to_upstream(k, depth) for k in expected.keys() - weights.keys())
    unexpected = sorted(hf_key_to_upstream(k, depth) for k in weights.keys() - expected.keys())
    mis_shaped = sorted(
        f"{hf_key_to_upstream(k, depth)} {tuple(weights[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected.keys() & weights.keys()
        if weights[k].shape != expected[k].shape
    )
    problems = [
        f"{label}: {', '.join(dict.fromkeys(keys))}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped))
        if keys
    ]
    if problems:
        raise ModelFileError(
            "SAM weights do not fit the SAM their shapes describe; " + "; ".join(problems) + ".",
            "The checkpoint's SAM part is incomplete or damaged.",
        )


def build_sam(
    upstream: Mapping[str, Tensor],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> SamModel:
    """A `SamModel` in eval mode holding the given original-layout SAM weights, loaded strictly.

    The model is created on the `meta` device and the weights are assigned (not copied into a second
    allocation), so a ViT-H exists once. Tensors already in `dtype` on `device` are shared with the caller.
    Gradients are switched off (inference); call `requires_grad_(True)` to train.
    """
    config = sam_config_from_state_dict(upstream)
    with torch.device("meta"):
        model = SamModel(config)
    converted = {key: _converted(tensor, dtype, device) for key, tensor in upstream.items()}
    weights = upstream_to_hf_state_dict(converted)
    _check_against_model(model.state_dict(), weights)
    model.load_state_dict(weights, strict=True, assign=True)
    model.prompt_encoder.shared_embedding.positional_embedding = model.shared_image_embedding.positional_embedding
    model.requires_grad_(False)
    return model.eval()


def _converted(tensor: Tensor, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    return tensor.to(device=device, dtype=dtype) if tensor.is_floating_point() else tensor.to(device=device)


# ---------------------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------------------


def resized_shape(height: int, width: int, long_side: int = SAM_IMAGE_SIZE) -> tuple[int, int]:
    """SAM's ResizeLongestSide target (h, w): long side to `long_side`, aspect kept, rounded half up."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _uint8_views(images: np.ndarray | Tensor) -> np.ndarray:
    array = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or 0 in array.shape:
        raise BadInputError(
            f"SAM needs uint8 RGB images [views, H, W, 3]; got {array.dtype} {list(array.shape)}.",
            "Pass the rendered views (or the photo as one view) as 8-bit RGB.",
        )
    return array


def _resize_bilinear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear, as the original `ResizeLongestSide.apply_image` (through torchvision on a PIL image)."""
    height, width = size
    resized = [Image.fromarray(view).resize((width, height), Image.Resampling.BILINEAR) for view in array]
    return np.stack([np.asarray(view) for view in resized])


def preprocess(images: np.ndarray | Tensor, image_size: int = SAM_IMAGE_SIZE) -> tuple[Tensor, tuple[int, int]]:
    """uint8 RGB views [V, H, W, 3] -> (float32 pixel values [V, 3, S, S], resized (h, w)), as SAM expects.

    Long side resized to S (a no-op for S x S renders), normalised on 0-255 with SAM's mean/std, then
    zero-padded at the bottom/right, so the padding is 0 after normalisation exactly as in `Sam.preprocess`.
    """
    array = _uint8_views(images)
    size = resized_shape(array.shape[1], array.shape[2], image_size)
    if size != array.shape[1:3]:
        array = _resize_bilinear(array, size)
    pixels = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(SAM_PIXEL_STD).view(1, 3, 1, 1)
    pixels = pixels.sub_(mean).div_(std)  # in place: .float() made a fresh tensor
    if size != (image_size, image_size):  # square renders at SAM's size need no padding (and no copy)
        pixels = F.pad(pixels, (0, image_size - size[1], 0, image_size - size[0]))
    return pixels, size


def _model_tensor(sam: SamModel) -> Tensor:
    """A weight whose device and dtype inputs must follow."""
    return sam.mask_decoder.iou_token.weight


@torch.no_grad()
def encode_images(sam: SamModel, pixel_values: Tensor) -> Tensor:
    """Image embeddings [V, C, h, w] of preprocessed views, in one batch, in the model's dtype and device."""
    reference = _model_tensor(sam)
    return sam.vision_encoder(pixel_values.to(device=reference.device, dtype=reference.dtype)).last_hidden_state


def _check_decode_inputs(sam: SamModel, image_embeddings: Tensor, sparse_tokens: Tensor) -> None:
    size = sam.config.prompt_encoder_config.image_embedding_size  # type: ignore[union-attr]  # typed as its inputs (dict | None); __post_init__ makes it a config
    channels = sam.config.mask_decoder_config.hidden_size  # type: ignore[union-attr]  # typed as its inputs (dict | None); __post_init__ makes it a config
    if image_embeddings.ndim != 4 or tuple(image_embeddings.shape[1:]) != (channels, size, size):
        expected = f"[V, {channels}, {size}, {size}]"
        raise ValueError(f"image embeddings must be {expected}, got {list(image_embeddings.shape)}")
    if sparse_tokens.ndim != 2 or sparse_tokens.shape[0] == 0 or sparse_tokens.shape[1] != channels:
        raise ValueError(f"sparse tokens must be [T>=1, {channels}], got {list(sparse_tokens.shape)}")


def decode_views(
    sam: SamModel, image_embeddings: Tensor, sparse_tokens: Tensor, mask_decoder: torch.nn.Module | None = None
) -> Tensor:
    """Low-res mask logits [V, 1, 4h, 4w]: every view decoded with the same T sparse tokens.

    InteractVLM's tokens are the V camera-gated copies of one [SEG] embedding, and upstream relies on
    broadcasting a [1, T] token batch against V image embeddings (spec §2.6). Here the T tokens are expanded
    to one set per view, [V, T, C], which gives the same result without relying on broadcasting. No point,
    box or mask prompts: dense = `no_mask_embed`, and only mask token 0 (multimask_output=False).
    `mask_decoder` replaces SAM's own (the separate human/object decoders of "-DifDe" releases).
    """
    _check_decode_inputs(sam, image_embeddings, sparse_tokens)
    reference = _model_tensor(sam)
    views = image_embeddings.shape[0]
    tokens = sparse_tokens.to(reference).unsqueeze(0).expand(views, -1, -1)  # [V, T, C]: one copy per view
    _, dense = sam.prompt_encoder(input_points=None, input_labels=None, input_boxes=None, input_masks=None)
    positional = sam.get_image_wide_positional_embeddings()
    masks, _ = (mask_decoder or sam.mask_decoder)(
        image_embeddings=image_embeddings.to(reference),
        image_positional_embeddings=positional.expand(views, -1, -1, -1),
        sparse_prompt_embeddings=tokens.unsqueeze(1),  # [V, 1 prompt set, T, C]
        dense_prompt_embeddings=dense.expand(views, -1, -1, -1),
        multimask_output=False,
    )
    return masks[:, 0]


def postprocess_masks(
    low_res: Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    image_size: int = SAM_IMAGE_SIZE,
) -> Tensor:
    """Low-res logits [V, 1, h', w'] -> float32 logits [V, H, W] at the original image size.

    As SAM: bilinear (align_corners=False) to S x S, crop the padding away (keep `input_size`), bilinear to
    `original_size`. Cast to float32 first, as upstream does, so bf16/fp16 models still give float32 logits.
    """
    if low_res.ndim != 4 or low_res.shape[1] != 1:
        raise ValueError(f"low-res masks must be [V, 1, h, w], got {list(low_res.shape)}")
    masks = F.interpolate(low_res.float(), (image_size, image_size), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    masks = F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)
    return masks[:, 0]


# ---------------------------------------------------------------------------------------------------------
def vit_h_sam_config() -> SamConfig:
    """The released models' SAM ViT-H (spec §1.4), for building it with random weights (benchmarks)."""
    vision = SamVisionConfig(
        hidden_size=1280,
        output_channels=256,
        num_hidden_layers=32,
        num_attention_heads=16,
        image_size=SAM_IMAGE_SIZE,
        patch_size=16,
        layer_norm_eps=SAM_VIT_LAYER_NORM_EPS,
        window_size=14,
        global_attn_indexes=[7, 15, 23, 31],
        num_pos_feats=128,
        mlp_dim=5120,
    )
    prompt = SamPromptEncoderConfig(
        hidden_size=256,
        image_size=SAM_IMAGE_SIZE,
        patch_size=16,
        mask_input_channels=16,
        layer_norm_eps=SAM_VIT_LAYER_NORM_EPS,
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=256,
        mlp_dim=2048,
        num_hidden_layers=2,
        num_attention_heads=SAM_DECODER_HEADS,
        iou_head_hidden_dim=256,
        layer_norm_eps=SAM_DECODER_LAYER_NORM_EPS,
    )
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


# Tiny random SAM (tests, demo mode)
# ---------------------------------------------------------------------------------------------------------


def tiny_sam_config() -> SamConfig:
    """A SAM small enough for fast CPU runs at the real 1024 x 1024 input.

    Patch 32 gives a 32 x 32 grid; window 7 needs padding (like ViT-H's 14 on 64); block 1 is global;
    the decoder keeps ViT-H's 8 heads and downsample rate 2.
    """
    vision = SamVisionConfig(
        hidden_size=32,
        output_channels=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SAM_IMAGE_SIZE,
        patch_size=32,
        layer_norm_eps=SAM_VIT_LAYER_NORM_EPS,
        window_size=7,
        global_attn_indexes=[1],
        num_pos_feats=16,
        mlp_dim=64,
    )
    prompt = SamPromptEncoderConfig(hidden_size=32, image_size=SAM_IMAGE_SIZE, patch_size=32, mask_input_channels=8)
    decoder = SamMaskDecoderConfig(
        hidden_size=32,
        mlp_dim=64,
        num_hidden_layers=2,
        num_attention_heads=SAM_DECODER_HEADS,
        iou_head_hidden_dim=32,
        layer_norm_eps=SAM_DECODER_LAYER_NORM_EPS,
    )
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


_EMBEDDING_SUFFIXES = (
    "iou_token.weight",
    "mask_tokens.weight",
    "no_mask_embed.weight",
    "not_a_point_embed.weight",
)


# Scales the hypernetwork MLPs so random mask logits span a few units (contrasty demo masks), not +-0.5.
_MASK_LOGIT_GAIN = 2.0


def _random_weight(hf_key: str, shape: torch.Size, generator: torch.Generator) -> Tensor:
    """Random values that keep activations O(1) and leave no parameter at a degenerate 0/1 default."""
    noise = torch.randn(shape, generator=generator)
    if hf_key == HF_POSITIONAL_KEY or hf_key.endswith(_EMBEDDING_SUFFIXES) or ".point_embed." in hf_key:
        return noise  # SAM's gaussian matrix is N(0, 1); token embeddings are free vectors
    if "layer_norm" in hf_key:
        return 1.0 + 0.1 * noise if hf_key.endswith("weight") else 0.1 * noise
    if hf_key.endswith("bias"):
        return 0.05 * noise
    if "rel_pos" in hf_key or hf_key.endswith("pos_embed"):
        return 0.2 * noise
    gain = _MASK_LOGIT_GAIN if hf_key.startswith("mask_decoder.output_hypernetworks_mlps.") else 1.0
    return gain * noise / math.sqrt(math.prod(shape[1:]))


def tiny_sam_state_dict(seed: int) -> dict[str, Tensor]:
    """Random weights of `tiny_sam_config()` in original SAM key names (no prefix), float32, deterministic.

    Built from transformers' modules and renamed with the reverse mapping, so demo-mode generators do not
    need Meta's `segment_anything` package.
    """
    with torch.device("meta"):
        shapes = SamModel(tiny_sam_config()).state_dict()
    depth = _hf_iou_head_depth(shapes)
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, Tensor] = {}
    for hf_key, meta in shapes.items():
        key = hf_key_to_upstream(hf_key, depth)
        if key not in weights:  # the tied positional handle appears twice
            weights[key] = _random_weight(hf_key, meta.shape, generator)
    return weights
