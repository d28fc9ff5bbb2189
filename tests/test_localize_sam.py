"""SAM on transformers (`ivlm_core.localize.sam`) against Meta's original Segment Anything.

Key mapping both ways, architecture inferred from shapes (ViT-H on the meta device, nothing allocated),
strict loading, fp32 numerics equal to the original (tiny random weights at the real 1024 input), the
explicit per-view token expansion against upstream's broadcasting, and bf16 post-processing to float32.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from transformers import SamModel

from ivlm_core.errors import BadInputError, ModelFileError
from ivlm_core.localize.sam import (
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    UPSTREAM_SAM_PREFIX,
    build_sam,
    decode_views,
    encode_images,
    hf_key_to_upstream,
    hf_to_upstream_state_dict,
    postprocess_masks,
    preprocess,
    resized_shape,
    sam_config_from_state_dict,
    tiny_sam_config,
    tiny_sam_state_dict,
    upstream_key_to_hf,
    upstream_to_hf_state_dict,
)

# The tiny original SAM: patch 32 -> 32x32 grid at the real 1024 input, window 7 (padded, like ViT-H's 14 on
# 64), block 1 global, decoder width 32 with ViT-H's 8 heads. Same sizes as `tiny_sam_config()`.
TINY = {
    "embed": 32,
    "depth": 2,
    "heads": 2,
    "patch": 32,
    "window": 7,
    "global_blocks": (1,),
    "mlp_ratio": 2.0,
    "out": 32,
    "mask_in": 8,
}
TINY_DECODER = {"dim": 32, "depth": 2, "mlp": 64, "heads": 8, "iou_hidden": 32}
GRID = 1024 // TINY["patch"]
ATOL = 1e-5


def _original_modeling() -> types.ModuleType:
    """Meta's `segment_anything.modeling`, imported without running the package `__init__`.

    `import segment_anything` runs its `__init__`, which imports the predictor and, through
    `utils/transforms.py`, torchvision, which cannot be installed here. The model classes need none of it,
    so a bare package module whose `__path__` is the installed package folder (found by `find_spec`, which
    does not execute `__init__`) is registered, and the `modeling` subpackage is imported from it.
    """
    if "segment_anything" not in sys.modules:
        spec = importlib.util.find_spec("segment_anything")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("Meta's segment_anything (a test-only dev dependency) is not installed")
        package = types.ModuleType("segment_anything")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["segment_anything"] = package
    return importlib.import_module("segment_anything.modeling")


# Learned vectors (not layers): unit-variance noise keeps them O(1) like the trained ones.
_FREE_VECTORS = (
    "iou_token.weight",
    "mask_tokens.weight",
    "no_mask_embed.weight",
    "not_a_point_embed.weight",
    "positional_encoding_gaussian_matrix",
)


def _randomise(module: nn.Module, seed: int) -> None:
    """Overwrite every parameter and buffer: default zeros/ones (LayerNorms, rel-pos, pos-embed) hide bugs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            noise = torch.randn(tensor.shape, generator=generator)
            if "rel_pos" in name:
                value = 0.3 * noise
            elif name.endswith(_FREE_VECTORS) or "point_embeddings" in name or "pos_embed" in name:
                value = noise
            elif tensor.ndim == 1:
                value = 1.0 + 0.2 * noise if name.endswith("weight") else 0.1 * noise
            else:
                value = noise / tensor[0].numel() ** 0.5
            tensor.copy_(value)


@dataclass
class Original:
    modeling: types.ModuleType
    sam: nn.Module  # the original `Sam` wrapping the three modules below
    state_dict: dict[str, torch.Tensor]

    @property
    def encoder(self) -> nn.Module:
        return self.sam.image_encoder

    @property
    def prompt(self) -> nn.Module:
        return self.sam.prompt_encoder

    @property
    def decoder(self) -> nn.Module:
        return self.sam.mask_decoder


def _tiny_original_sam(modeling: types.ModuleType) -> nn.Module:
    encoder = modeling.ImageEncoderViT(
        img_size=1024,
        patch_size=TINY["patch"],
        embed_dim=TINY["embed"],
        depth=TINY["depth"],
        num_heads=TINY["heads"],
        mlp_ratio=TINY["mlp_ratio"],
        out_chans=TINY["out"],
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),  # as build_sam.py
        use_rel_pos=True,
        window_size=TINY["window"],
        global_attn_indexes=TINY["global_blocks"],
    )
    prompt = modeling.PromptEncoder(
        embed_dim=TINY["out"],
        image_embedding_size=(GRID, GRID),
        input_image_size=(1024, 1024),
        mask_in_chans=TINY["mask_in"],
    )
    transformer = modeling.TwoWayTransformer(
        depth=TINY_DECODER["depth"],
        embedding_dim=TINY_DECODER["dim"],
        mlp_dim=TINY_DECODER["mlp"],
        num_heads=TINY_DECODER["heads"],
    )
    decoder = modeling.MaskDecoder(
        num_multimask_outputs=3,
        transformer=transformer,
        transformer_dim=TINY_DECODER["dim"],
        iou_head_depth=3,
        iou_head_hidden_dim=TINY_DECODER["iou_hidden"],
    )
    return modeling.Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder).eval()


@pytest.fixture(scope="module")
def original() -> Original:
    modeling = _original_modeling()
    torch.manual_seed(0)
    sam = _tiny_original_sam(modeling)
    _randomise(sam, seed=1)
    return Original(modeling, sam, dict(sam.state_dict()))


@pytest.fixture(scope="module")
def ours(original: Original) -> SamModel:
    return build_sam(original.state_dict, torch.float32, "cpu")


@pytest.fixture(scope="module")
def view_embeddings(original: Original) -> torch.Tensor:
    """Original image embeddings of 4 random views, the common input of both decoders."""
    generator = torch.Generator().manual_seed(2)
    pixels = torch.randn(4, 3, 1024, 1024, generator=generator)
    with torch.no_grad():
        return original.encoder(pixels)


def _camera_gated_tokens(views: int, channels: int, seed: int) -> torch.Tensor:
    """One [SEG] embedding times V per-view sigmoid gates: InteractVLM's sparse tokens [V, C]."""
    generator = torch.Generator().manual_seed(seed)
    seg = torch.randn(1, channels, generator=generator)
    return seg * torch.sigmoid(torch.randn(views, channels, generator=generator))


def _original_decode_one_view(original: Original, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """LISA's call: empty sparse from the prompt encoder, text tokens appended, one view, mask token 0."""
    sparse, dense = original.prompt(points=None, boxes=None, masks=None)
    sparse = torch.cat([sparse, tokens.unsqueeze(0)], dim=1)
    masks, _ = original.decoder(
        image_embeddings=embedding.unsqueeze(0),
        image_pe=original.prompt.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    return masks


# ------------------------------------------------------------------------------------------------------
# Numerics against the original
# ------------------------------------------------------------------------------------------------------


def test_image_embeddings_match_original(original: Original, ours: SamModel) -> None:
    generator = torch.Generator().manual_seed(3)
    photo = torch.randint(0, 256, (1, 600, 900, 3), generator=generator, dtype=torch.uint8)
    pixels, input_size = preprocess(photo)  # padded bottom rows exercise the zero padding
    assert input_size == (683, 1024)
    with torch.no_grad():
        expected = original.encoder(pixels)
    got = encode_images(ours, pixels)
    assert got.shape == expected.shape == (1, TINY["out"], GRID, GRID)
    assert (got - expected).abs().max().item() < ATOL


@pytest.mark.parametrize(("views", "tokens"), [(4, 4), (1, 1), (4, 2)])
def test_decode_matches_original_view_by_view(
    original: Original, ours: SamModel, view_embeddings: torch.Tensor, views: int, tokens: int
) -> None:
    embeddings = view_embeddings[:views]
    sparse = _camera_gated_tokens(tokens, TINY_DECODER["dim"], seed=4)
    with torch.no_grad():
        expected = torch.cat([_original_decode_one_view(original, e, sparse) for e in embeddings])
        got = decode_views(ours, embeddings, sparse)
    assert got.shape == expected.shape == (views, 1, 4 * GRID, 4 * GRID)
    assert expected.std().item() > 0.01  # a meaningful comparison, not of constants
    assert (got - expected).abs().max().item() < ATOL


@pytest.mark.parametrize(
    ("input_size", "original_size"),
    [((1024, 1024), (1024, 1024)), ((768, 1024), (480, 640)), ((1024, 683), (1500, 1000))],
)
def test_postprocess_matches_original(
    original: Original, ours: SamModel, view_embeddings: torch.Tensor, input_size, original_size
) -> None:
    with torch.no_grad():
        low_res = decode_views(ours, view_embeddings, _camera_gated_tokens(4, TINY_DECODER["dim"], seed=5))
        expected = original.sam.postprocess_masks(low_res, input_size, original_size)[:, 0]
    got = postprocess_masks(low_res, input_size, original_size)
    assert got.dtype == torch.float32 and got.shape == (4, *original_size)
    assert (got - expected).abs().max().item() < ATOL


def test_explicit_expansion_equals_upstream_broadcast(
    original: Original, ours: SamModel, view_embeddings: torch.Tensor
) -> None:
    """Upstream passes one token set [1, V, C] with V image embeddings and lets the first token->image
    attention broadcast it; every view then decodes the same V tokens. Our explicit expansion must agree."""
    tokens = _camera_gated_tokens(4, TINY_DECODER["dim"], seed=6)
    with torch.no_grad():
        sparse, dense = original.prompt(points=None, boxes=None, masks=None)
        sparse = torch.cat([sparse, tokens.unsqueeze(0)], dim=1)  # [1, V, C]: n_seg = 1
        broadcast, _ = original.decoder(
            image_embeddings=view_embeddings,  # [V, C, h, w] against a token batch of 1
            image_pe=original.prompt.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        got = decode_views(ours, view_embeddings, tokens)
    assert broadcast.shape == got.shape == (4, 1, 4 * GRID, 4 * GRID)
    assert (got - broadcast).abs().max().item() < ATOL


def test_views_in_one_batch_equal_views_one_at_a_time(ours: SamModel, view_embeddings: torch.Tensor) -> None:
    tokens = _camera_gated_tokens(4, TINY_DECODER["dim"], seed=7)
    with torch.no_grad():
        batched = decode_views(ours, view_embeddings, tokens)
        single = torch.cat([decode_views(ours, view_embeddings[v : v + 1], tokens) for v in range(4)])
    # Batch size changes the matmul blocking: 1.1e-6 measured on an AMD EPYC, so the module's ATOL, not 1e-6.
    assert (batched - single).abs().max().item() < ATOL
    assert (batched[0] - batched[1]).abs().max().item() > 1e-3  # views differ: the batch is not collapsed


# ------------------------------------------------------------------------------------------------------
# Preprocessing
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1024, 1024), (1024, 1024)), ((480, 640), (768, 1024)), ((333, 500), (682, 1024)), ((1500, 1000), (1024, 683))],
)
def test_resized_shape_is_resize_longest_side(size, expected) -> None:
    assert resized_shape(*size) == expected


def test_preprocess_square_render_is_normalisation_only(original: Original) -> None:
    generator = torch.Generator().manual_seed(8)
    renders = torch.randint(0, 256, (4, 1024, 1024, 3), generator=generator, dtype=torch.uint8)
    pixels, input_size = preprocess(renders.numpy())
    assert input_size == (1024, 1024) and pixels.dtype == torch.float32 and pixels.shape == (4, 3, 1024, 1024)
    expected = torch.stack([original.sam.preprocess(view.permute(2, 0, 1).float()) for view in renders])
    # (x - mean) / std computed by two implementations: normalised values in [-2.2, 2.7], 1e-6 is a few ulps.
    torch.testing.assert_close(pixels, expected, rtol=0.0, atol=1e-6)


def test_preprocess_photo_resizes_with_pil_bilinear_and_pads(original: Original) -> None:
    rng = np.random.default_rng(9)
    photo = rng.integers(0, 256, (1, 480, 640, 3), dtype=np.uint8)
    pixels, input_size = preprocess(photo)
    assert input_size == (768, 1024)
    resized = np.asarray(Image.fromarray(photo[0]).resize((1024, 768), Image.Resampling.BILINEAR))
    expected = original.sam.preprocess(torch.from_numpy(resized.copy()).permute(2, 0, 1).float())
    torch.testing.assert_close(pixels[0], expected, rtol=0.0, atol=1e-6)  # same resized bytes, then as above
    assert torch.count_nonzero(pixels[:, :, 768:]) == 0
    mean = torch.tensor(SAM_PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(SAM_PIXEL_STD).view(3, 1, 1)
    assert torch.allclose(pixels[0, :, :768] * std + mean, torch.from_numpy(resized.copy()).permute(2, 0, 1).float())


@pytest.mark.parametrize(
    "bad", [np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.uint8)]
)
def test_preprocess_rejects_non_rgb8_views(bad: np.ndarray) -> None:
    with pytest.raises(BadInputError):
        preprocess(bad)


# ------------------------------------------------------------------------------------------------------
# Key mapping, inferred architecture, strict loading
# ------------------------------------------------------------------------------------------------------


def _vit_h_meta_state_dict() -> dict[str, torch.Tensor]:
    """Every ViT-H tensor of a release's SAM (spec §1.8), as shapes on the meta device (no allocation)."""
    shapes: dict[str, tuple[int, ...]] = {
        "image_encoder.pos_embed": (1, 64, 64, 1280),
        "image_encoder.patch_embed.proj.weight": (1280, 3, 16, 16),
        "image_encoder.patch_embed.proj.bias": (1280,),
    }
    for i in range(32):
        block = f"image_encoder.blocks.{i}."
        extent = 64 if i in (7, 15, 23, 31) else 14
        for norm in ("norm1", "norm2"):
            shapes |= {f"{block}{norm}.weight": (1280,), f"{block}{norm}.bias": (1280,)}
        shapes |= {
            f"{block}attn.rel_pos_h": (2 * extent - 1, 80),
            f"{block}attn.rel_pos_w": (2 * extent - 1, 80),
            f"{block}attn.qkv.weight": (3840, 1280),
            f"{block}attn.qkv.bias": (3840,),
            f"{block}attn.proj.weight": (1280, 1280),
            f"{block}attn.proj.bias": (1280,),
            f"{block}mlp.lin1.weight": (5120, 1280),
            f"{block}mlp.lin1.bias": (5120,),
            f"{block}mlp.lin2.weight": (1280, 5120),
            f"{block}mlp.lin2.bias": (1280,),
        }
    shapes |= {
        "image_encoder.neck.0.weight": (256, 1280, 1, 1),
        "image_encoder.neck.1.weight": (256,),
        "image_encoder.neck.1.bias": (256,),
        "image_encoder.neck.2.weight": (256, 256, 3, 3),
        "image_encoder.neck.3.weight": (256,),
        "image_encoder.neck.3.bias": (256,),
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, 128),
        "prompt_encoder.not_a_point_embed.weight": (1, 256),
        "prompt_encoder.mask_downscaling.0.weight": (4, 1, 2, 2),
        "prompt_encoder.mask_downscaling.0.bias": (4,),
        "prompt_encoder.mask_downscaling.1.weight": (4,),
        "prompt_encoder.mask_downscaling.1.bias": (4,),
        "prompt_encoder.mask_downscaling.3.weight": (16, 4, 2, 2),
        "prompt_encoder.mask_downscaling.3.bias": (16,),
        "prompt_encoder.mask_downscaling.4.weight": (16,),
        "prompt_encoder.mask_downscaling.4.bias": (16,),
        "prompt_encoder.mask_downscaling.6.weight": (256, 16, 1, 1),
        "prompt_encoder.mask_downscaling.6.bias": (256,),
        "prompt_encoder.no_mask_embed.weight": (1, 256),
    }
    shapes |= {f"prompt_encoder.point_embeddings.{i}.weight": (1, 256) for i in range(4)}

    def attention(prefix: str, internal: int) -> dict[str, tuple[int, ...]]:
        out = {f"{prefix}.{p}_proj.weight": (internal, 256) for p in "qkv"}
        out |= {f"{prefix}.{p}_proj.bias": (internal,) for p in "qkv"}
        return out | {f"{prefix}.out_proj.weight": (256, internal), f"{prefix}.out_proj.bias": (256,)}

    for i in range(2):
        layer = f"mask_decoder.transformer.layers.{i}"
        shapes |= attention(f"{layer}.self_attn", 256)
        shapes |= attention(f"{layer}.cross_attn_token_to_image", 128)
        shapes |= attention(f"{layer}.cross_attn_image_to_token", 128)
        shapes |= {f"{layer}.norm{n}.{p}": (256,) for n in range(1, 5) for p in ("weight", "bias")}
        shapes |= {
            f"{layer}.mlp.lin1.weight": (2048, 256),
            f"{layer}.mlp.lin1.bias": (2048,),
            f"{layer}.mlp.lin2.weight": (256, 2048),
            f"{layer}.mlp.lin2.bias": (256,),
        }
    shapes |= attention("mask_decoder.transformer.final_attn_token_to_image", 128)
    shapes |= {
        "mask_decoder.transformer.norm_final_attn.weight": (256,),
        "mask_decoder.transformer.norm_final_attn.bias": (256,),
        "mask_decoder.iou_token.weight": (1, 256),
        "mask_decoder.mask_tokens.weight": (4, 256),
        "mask_decoder.output_upscaling.0.weight": (256, 64, 2, 2),
        "mask_decoder.output_upscaling.0.bias": (64,),
        "mask_decoder.output_upscaling.1.weight": (64,),
        "mask_decoder.output_upscaling.1.bias": (64,),
        "mask_decoder.output_upscaling.3.weight": (64, 32, 2, 2),
        "mask_decoder.output_upscaling.3.bias": (32,),
    }
    for head, out in [(f"output_hypernetworks_mlps.{i}", 32) for i in range(4)] + [("iou_prediction_head", 4)]:
        for layer, (rows, cols) in enumerate([(256, 256), (256, 256), (out, 256)]):
            shapes[f"mask_decoder.{head}.layers.{layer}.weight"] = (rows, cols)
            shapes[f"mask_decoder.{head}.layers.{layer}.bias"] = (rows,)
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_vit_h_config_inferred_from_shapes_on_meta() -> None:
    config = sam_config_from_state_dict(_vit_h_meta_state_dict())
    vision, prompt, decoder = config.vision_config, config.prompt_encoder_config, config.mask_decoder_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1280, 32, 16)
    assert (vision.patch_size, vision.image_size, vision.window_size) == (16, 1024, 14)
    assert list(vision.global_attn_indexes) == [7, 15, 23, 31]
    assert (vision.mlp_dim, vision.output_channels, vision.num_pos_feats) == (5120, 256, 128)
    assert vision.layer_norm_eps == 1e-6
    assert (prompt.hidden_size, prompt.image_embedding_size, prompt.mask_input_channels) == (256, 64, 16)
    assert (decoder.hidden_size, decoder.num_hidden_layers, decoder.mlp_dim, decoder.num_attention_heads) == (
        256,
        2,
        2048,
        8,
    )
    assert (decoder.attention_downsample_rate, decoder.iou_head_depth, decoder.iou_head_hidden_dim) == (2, 3, 256)
    assert decoder.num_multimask_outputs + 1 == 4
    assert decoder.layer_norm_eps == 1e-5  # the original two-way transformer's nn.LayerNorm default


def test_vit_h_meta_state_dict_is_the_original_vit_h() -> None:
    """The hand-written ViT-H shapes above are exactly those of Meta's build_sam_vit_h."""
    _original_modeling()
    build = importlib.import_module("segment_anything.build_sam")
    with torch.device("meta"):
        reference = build.build_sam_vit_h().state_dict()
    fake = _vit_h_meta_state_dict()
    assert {k: tuple(v.shape) for k, v in fake.items()} == {k: tuple(v.shape) for k, v in reference.items()}


def test_full_vit_h_maps_onto_sam_model_and_back() -> None:
    upstream = _vit_h_meta_state_dict()
    hf = upstream_to_hf_state_dict(upstream)
    with torch.device("meta"):
        expected = SamModel(sam_config_from_state_dict(upstream)).state_dict()
    assert {k: tuple(v.shape) for k, v in hf.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    back = hf_to_upstream_state_dict(hf)
    assert list(back) == list(upstream) and all(back[k] is upstream[k] for k in upstream)
    model = build_sam(upstream, torch.bfloat16, "meta")  # strict load of all 594 tensors, nothing allocated
    assert not model.training
    positional = model.shared_image_embedding.positional_embedding
    assert model.prompt_encoder.shared_embedding.positional_embedding is positional


def test_round_trip_of_every_original_key(original: Original) -> None:
    back = hf_to_upstream_state_dict(upstream_to_hf_state_dict(original.state_dict))
    assert list(back) == list(original.state_dict)
    assert all(back[k] is original.state_dict[k] for k in back)
    for key in original.state_dict:
        assert hf_key_to_upstream(upstream_key_to_hf(key)) == key


@pytest.mark.parametrize(
    "key",
    [
        "image_encoder.blocks.0.attn.extra",
        "mask_decoder.human_mask_decoder.iou_token.weight",
        "uncertainty.mlp.0.weight",
        UPSTREAM_SAM_PREFIX + "image_encoder.pos_embed",  # the caller strips the prefix
        "image_encoder.neck.0.bias",  # the neck convolutions have no bias
    ],
)
def test_unknown_upstream_key_raises_naming_it(key: str) -> None:
    weights = {**tiny_sam_state_dict(0), key: torch.zeros(1)}
    with pytest.raises(ModelFileError, match=re.escape(key)):
        upstream_to_hf_state_dict(weights)
    with pytest.raises(ModelFileError, match=re.escape(key)):
        build_sam(weights)


def test_unknown_hf_key_raises_naming_it() -> None:
    with pytest.raises(ModelFileError, match=r"vision_encoder\.layers\.0\.attn\.extra"):
        hf_key_to_upstream("vision_encoder.layers.0.attn.extra")


def test_strict_loading_names_missing_and_unexpected_keys() -> None:
    weights = tiny_sam_state_dict(0)
    missing = "image_encoder.blocks.1.mlp.lin2.bias"
    unexpected = "mask_decoder.output_hypernetworks_mlps.4.layers.0.weight"  # the model has 4 mask tokens
    with pytest.raises(ModelFileError, match="missing: " + re.escape(missing)):
        build_sam({k: v for k, v in weights.items() if k != missing})
    with pytest.raises(ModelFileError, match="unexpected: " + re.escape(unexpected)):
        build_sam({**weights, unexpected: torch.zeros(32, 32)})
    reshaped = {**weights, "image_encoder.blocks.1.mlp.lin1.bias": torch.zeros(7)}
    with pytest.raises(ModelFileError, match=r"wrong shape: image_encoder\.blocks\.1\.mlp\.lin1\.bias"):
        build_sam(reshaped)


# ------------------------------------------------------------------------------------------------------
# Tiny random SAM and precision
# ------------------------------------------------------------------------------------------------------


def test_tiny_state_dict_is_an_original_sam_state_dict(original: Original) -> None:
    tiny = tiny_sam_state_dict(0)
    assert {k: tuple(v.shape) for k, v in tiny.items()} == {k: tuple(v.shape) for k, v in original.state_dict.items()}
    fresh = _tiny_original_sam(original.modeling)
    fresh.load_state_dict(tiny, strict=True)  # loads into Meta's modules under their own names
    inferred = sam_config_from_state_dict(tiny).to_dict()
    assert inferred == tiny_sam_config().to_dict()


def test_tiny_state_dict_is_seeded_and_not_degenerate() -> None:
    first, again, other = tiny_sam_state_dict(0), tiny_sam_state_dict(0), tiny_sam_state_dict(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["mask_decoder.mask_tokens.weight"], other["mask_decoder.mask_tokens.weight"])
    gaussian = first["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert gaussian.std().item() > 0.5
    assert first["image_encoder.blocks.1.attn.rel_pos_h"].abs().max().item() > 0
    model = build_sam(first)
    renders = np.random.default_rng(10).integers(0, 256, (4, 1024, 1024, 3), dtype=np.uint8)
    pixels, input_size = preprocess(renders)
    with torch.no_grad():
        logits = postprocess_masks(
            decode_views(model, encode_images(model, pixels), _camera_gated_tokens(4, 32, 11)), input_size, (256, 256)
        )
    assert logits.std().item() > 0.3
    assert 0.05 < (logits > 0).float().mean().item() < 0.95
    assert (logits[0] - logits[1]).abs().max().item() > 0.1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_gives_float32_logits(dtype: torch.dtype, original: Original) -> None:
    model = build_sam(original.state_dict, dtype, "cpu")
    assert model.mask_decoder.iou_token.weight.dtype == dtype
    photo = np.random.default_rng(12).integers(0, 256, (1, 480, 640, 3), dtype=np.uint8)
    pixels, input_size = preprocess(photo)
    with torch.no_grad():
        embeddings = encode_images(model, pixels)
        low_res = decode_views(model, embeddings, _camera_gated_tokens(1, 32, 13))
    assert embeddings.dtype == dtype and low_res.dtype == dtype
    logits = postprocess_masks(low_res, input_size, (480, 640))
    assert logits.dtype == torch.float32 and logits.shape == (1, 480, 640)
    assert torch.isfinite(logits).all()


def test_explicit_vit_h_config_equals_the_one_inferred_from_release_shapes() -> None:
    from ivlm_core.localize.sam import vit_h_sam_config

    inferred, explicit = sam_config_from_state_dict(_vit_h_meta_state_dict()), vit_h_sam_config()
    for part in ("vision_config", "prompt_encoder_config", "mask_decoder_config"):
        a, b = getattr(inferred, part).to_dict(), getattr(explicit, part).to_dict()
        differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k != "transformers_version"}
        assert not differing, (part, {k: (a.get(k), b.get(k)) for k in differing})
