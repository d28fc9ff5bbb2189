"""The language model in 8-bit and 4-bit (bitsandbytes), the static-cache decoder, the joint release's role checks
and the answer cap, all through the real loader and Localizer on the generated tiny releases.

Tolerances (stated here, measured in benchmarks/bench_quantize.py): quantising only the decoder layers must keep
the generated tokens identical (the tiny releases' answers have a wide top-2 margin), the seg state's cosine to
the unquantised one >= 0.999 (int8) / 0.99 (nf4), and the 4 views' masks (logit > 0) within IoU 0.98 of it.
"""

import importlib

import numpy as np
import pytest
import torch

from ivlm_core.errors import ModelFileError
from ivlm_core.localize import prompts, quantize
from ivlm_core.localize.generation import StaticDecoder, generate_with_cache
from ivlm_core.localize.localizer import Localizer
from ivlm_core.pipeline.plan import HUMAN_RELEASE, JOINT_RELEASE, OBJECT_RELEASE

COSINE = {"int8": 0.999, "nf4": 0.99}
MASK_IOU = 0.98


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(3)
    photo = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    views = (rng.random((4, 1024, 1024, 3)) * 255).astype(np.uint8)
    return photo, views


def _seg_state(localizer: Localizer, photo: np.ndarray, mode: str) -> torch.Tensor:
    net = localizer.network
    prompt = localizer.tokenizer.encode_prompt(prompts.contact_prompt(mode, "chair"))
    with torch.inference_mode():
        embeddings = net.prompt_embeddings(prompt, localizer._photo_features(photo))
        generation = generate_with_cache(
            net.llm,
            embeddings,
            max_new_tokens=64,
            eos_token_id=localizer.tokenizer.eos_id,
            seg_token_ids=net.config.seg_token_ids,
        )
    assert generation.found_seg
    return generation.seg_state.float()


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


@pytest.mark.parametrize("precision", ["int8", "nf4"])
def test_quantised_language_model_keeps_tokens_seg_state_and_masks(tiny_models, inputs, precision) -> None:
    photo, views = inputs
    folder = tiny_models.releases[HUMAN_RELEASE]
    reference = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    quantised = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32, llm_precision=precision)
    layer = quantised.network.llm.model.layers[0]
    assert type(layer.mlp.down_proj).__name__ == ("Linear8bitLt" if precision == "int8" else "Linear4bit")
    assert type(quantised.network.llm.lm_head) is torch.nn.Linear  # heads stay unquantised, as upstream
    assert quantised.report.llm_precision == precision
    assert quantize.weight_bytes(quantised.network.llm.model.layers) < quantize.weight_bytes(
        reference.network.llm.model.layers
    )
    a = reference.localize(photo, "chair", "hcontact", views=views)
    b = quantised.localize(photo, "chair", "hcontact", views=views)
    assert a.token_ids == b.token_ids and a.text == b.text and b.found_contact
    cosine = torch.nn.functional.cosine_similarity(
        _seg_state(reference, photo, "hcontact"), _seg_state(quantised, photo, "hcontact"), 0
    )
    assert cosine >= COSINE[precision], cosine
    assert b.logits.dtype == torch.float32 and _iou(a.logits, b.logits) >= MASK_IOU


def test_joint_release_serves_both_modes_through_one_localizer(tiny_models, inputs) -> None:
    from ivlm_core.pipeline.plan import configuration_named
    from ivlm_core.pipeline.reconstruct import _localizers

    photo, views = inputs
    human, target = _localizers(
        configuration_named("joint-nf4"),
        [tiny_models.releases[JOINT_RELEASE]],
        tiny_models.clip,
        "cpu",
        torch.float32,
        1,
    )
    assert human is target and human.sam_batch == 1 and human.report.llm_precision == "nf4"
    assert set(human.supported_modes()) >= {"hcontact", "ocontact"}
    for mode in ("hcontact", "ocontact"):
        result = human.localize(photo, "mug", mode, views=views)
        assert (
            result.found_contact and result.seg_token in ("[HSEG]", "[OSEG]") and result.logits.shape == (4, 1024, 1024)
        )


@pytest.mark.parametrize(
    ("release", "role", "expected"),
    [
        (JOINT_RELEASE, "human", "joint human+object release"),
        (JOINT_RELEASE, "object", "joint human+object release"),
        (HUMAN_RELEASE, "joint", "human-contact release"),
        (OBJECT_RELEASE, "human", "object-affordance release"),
    ],
)
def test_a_release_in_the_wrong_role_is_refused_before_loading(tiny_models, release, role, expected) -> None:
    with pytest.raises(ModelFileError) as info:
        Localizer.from_folders(tiny_models.releases[release], tiny_models.clip, dtype=torch.float32, role=role)
    assert expected in info.value.message and "used as" in info.value.message and info.value.hint


def test_missing_quantisation_library_names_the_package_and_the_fallback(monkeypatch) -> None:
    real = importlib.import_module

    def without_bitsandbytes(name: str, *args):
        if name == "bitsandbytes":
            raise ImportError("No module named 'bitsandbytes'")
        return real(name, *args)

    monkeypatch.setattr(quantize.importlib, "import_module", without_bitsandbytes)
    with pytest.raises(quantize.QuantizationUnavailableError) as info:
        quantize.bitsandbytes_module("cpu")
    assert info.value.code == "QUANTIZATION_UNAVAILABLE"
    assert "bitsandbytes" in info.value.message and "pip install bitsandbytes" in info.value.hint
    assert "unquantised configuration" in info.value.hint


def test_quantisation_library_without_kernels_for_the_device_is_a_clear_error(monkeypatch) -> None:
    def no_kernels(*args, **kwargs):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(quantize, "quantized_linear", no_kernels)
    with pytest.raises(quantize.QuantizationUnavailableError) as info:
        quantize.bitsandbytes_module("cpu")
    assert "no working 4-bit kernels for cpu" in info.value.message and "no kernel image" in info.value.message
    assert "unquantised configuration" in info.value.hint


def test_answer_cut_by_the_cap_is_reported_not_taken_for_no_contact(tiny_models, inputs) -> None:
    from ivlm_core.pipeline.contact import NO_CONTACT_TOKEN

    photo, views = inputs
    folder = tiny_models.releases[HUMAN_RELEASE]
    full = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    assert full.max_new_tokens >= prompts.answer_token_cap(lambda text: len(full.tokenizer.encode_text(text)))
    assert full.max_new_tokens > 100  # every SMPL part listed still fits (prompts.longest_answers)
    short = Localizer(full.network, full.tokenizer, full.image_processor, full.report, max_new_tokens=4)
    result = short.localize(photo, "chair", "hcontact", views=views)
    assert not result.found_contact and result.stopped_at_cap and len(result.token_ids) == 4
    assert "4-token cap" in result.cap_note and "unknown" in result.cap_note and result.cap_note != NO_CONTACT_TOKEN
    assert not full.localize(photo, "chair", "hcontact", views=views).stopped_at_cap


def test_static_cache_compiled_decoder_gives_the_dynamic_paths_tokens_and_seg_state(tiny_models, inputs) -> None:
    """torch.compile with the aot_eager backend: the same graph capture as inductor without its C++ code
    generation (minutes on a 2-core CPU); the GPU check runs inductor with CUDA graphs."""
    photo, views = inputs
    folder = tiny_models.releases[HUMAN_RELEASE]
    dynamic = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    static = Localizer(
        dynamic.network,
        dynamic.tokenizer,
        dynamic.image_processor,
        dynamic.report,
        decoder="static",
        compile_backend="aot_eager",
    )
    a = dynamic.localize(photo, "chair", "hcontact", views=views)
    b = static.localize(photo, "chair", "hcontact", views=views)
    assert isinstance(static._static, StaticDecoder) and static._static.compiled
    assert a.token_ids == b.token_ids and b.found_contact
    assert torch.allclose(a.logits, b.logits, atol=1e-3, rtol=1e-3)
    c = static.localize(photo, "mug", "hcontact", views=views)  # a second request reuses the cache and the graph
    assert c.token_ids == dynamic.localize(photo, "mug", "hcontact", views=views).token_ids


def test_static_decoder_seg_state_matches_within_tolerance() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    llm = LlamaForCausalLM(
        LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    ).eval()
    prompt = torch.randn(1, 20, 64)
    forced = [11, 12, 13, 7, 2]
    reference = generate_with_cache(
        llm, prompt, max_new_tokens=0, eos_token_id=2, seg_token_ids=(7,), forced_tokens=forced
    )
    decoder = StaticDecoder(llm, 32, compile=False)
    got = decoder.generate(prompt, max_new_tokens=0, eos_token_id=2, seg_token_ids=(7,), forced_tokens=forced)
    assert got.tokens == reference.tokens and got.seg_index == reference.seg_index == 3
    assert torch.allclose(got.seg_state, reference.seg_state, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="exceed the static cache"):
        decoder.generate(prompt, max_new_tokens=13, eos_token_id=-1, seg_token_ids=())


def test_convert_on_start_converts_a_release_in_place_once_with_progress(tmp_path, tiny_models, inputs, caplog) -> None:
    import logging
    import shutil

    from ivlm_core import paths
    from ivlm_core.localize.checkpoint import CONVERTED_MARKER
    from ivlm_core.localize.convert import convert_releases_once

    photo, views = inputs
    folder = paths.interactvlm_release_dir(HUMAN_RELEASE, tmp_path)
    shutil.copytree(tiny_models.releases[HUMAN_RELEASE], folder)
    before = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    with caplog.at_level(logging.INFO, logger="ivlm.convert"):
        assert convert_releases_once([HUMAN_RELEASE], tmp_path) == [folder]
    assert (folder / CONVERTED_MARKER).is_file() and list(folder.glob("*.safetensors")) and list(folder.glob("*.bin"))
    assert "100%" in caplog.text and "converted" in caplog.text
    after = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    assert after.report.converted and not before.report.converted
    a = before.localize(photo, "chair", "hcontact", views=views)
    b = after.localize(photo, "chair", "hcontact", views=views)
    assert a.token_ids == b.token_ids and torch.allclose(a.logits, b.logits, atol=1e-5)
    assert convert_releases_once([HUMAN_RELEASE], tmp_path) == []  # once: later starts read the safetensors
