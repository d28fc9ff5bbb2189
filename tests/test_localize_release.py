"""Releases in the real layout (generated tiny ones) through the real loader: every variant, equivalence with a
direct computation of the spec, conversion to safetensors, the SAM embedding cache, and bad input."""

import json
import shutil

import numpy as np
import pytest
import torch
from greedy_margin import assert_argmax_is_safe, assert_greedy_tokens_agree

from ivlm_core import paths
from ivlm_core.cli import main
from ivlm_core.demo.tiny_release import VARIANTS
from ivlm_core.errors import BadInputError, ModelFileError, ModelFilesMissingError
from ivlm_core.lift.canonical_body import load_canonical_body_views
from ivlm_core.localize import prompts, sam
from ivlm_core.localize.checkpoint import CONVERTED_MARKER, load_network
from ivlm_core.localize.config import load_release_config
from ivlm_core.localize.generation import generate_with_cache, generate_without_cache
from ivlm_core.localize.localizer import Localizer
from ivlm_core.render.views import HUMAN_VIEWS

EXPECTED_KIND = {
    "interactvlm-3d-hcontact-damon": "hcontact",
    "interactvlm-3d-hcontact-damon-fix": "hcontact",
    "interactvlm-3d-hcontact-damon-noParts": "hcontact",
    "interactvlm-3d-hcontact-wScene-damon-lemon-rich": "hcontact-wScene",
    "interactvlm-3d-oafford-lemon-piad": "oafford",
    "interactvlm-3d-hcontact-ocontact": "hcontact-ocontact",
    "interactvlm-2d-hcontact": "h2dcontact",
}


@pytest.fixture(scope="module")
def body_views(synthetic_body_files):
    root = synthetic_body_files.root
    return load_canonical_body_views(paths.interactvlm_data_dir(root), paths.body_models_dir(root))


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return (rng.random((300, 420, 3)) * 255).astype(np.uint8)


def _views_for(mode, body_views):
    if mode == "hcontact":
        return body_views.sam_images
    if mode in ("oafford", "ocontact"):
        return body_views.overlay_images  # any 4 renders of the right size will do for the network
    return None


EXPECTED_MODES = {
    "interactvlm-3d-hcontact-damon": ("hcontact",),
    "interactvlm-3d-hcontact-damon-fix": ("hcontact",),
    "interactvlm-3d-hcontact-damon-noParts": ("hcontact",),
    "interactvlm-3d-hcontact-wScene-damon-lemon-rich": ("hcontact",),
    "interactvlm-3d-oafford-lemon-piad": ("oafford", "ocontact"),
    "interactvlm-3d-hcontact-ocontact": ("hcontact", "oafford", "ocontact"),
    "interactvlm-2d-hcontact": ("h2dcontact",),
}
# What each tiny release's scripted answer says (tiny_release.VARIANTS[...].answer).
EXPECTED_BODY_PARTS = {
    name: ["left hand"] if "body parts are left hand" in v.answer else None for name, v in VARIANTS.items()
}
EXPECTED_AFFORDANCE = {
    name: "grasp" if "affordance type of grasp" in v.answer else None for name, v in VARIANTS.items()
}


@pytest.fixture(scope="module")
def variant_localizer(tiny_models):
    """One Localizer per release for the whole module (each costs a load)."""
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = Localizer.from_folders(tiny_models.releases[name], tiny_models.clip, dtype=torch.float32)
        return loaded[name]

    return get


def test_every_model_zoo_variant_is_covered():
    assert set(EXPECTED_MODES) == set(VARIANTS) == set(EXPECTED_KIND)
    assert any(EXPECTED_BODY_PARTS.values()) and any(EXPECTED_AFFORDANCE.values())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_model_zoo_variant_loads_with_its_modes(variant_localizer, name):
    localizer = variant_localizer(name)
    assert localizer.network.config.release_kind == EXPECTED_KIND[name]
    assert localizer.is_demo
    assert localizer.supported_modes() == EXPECTED_MODES[name]


@pytest.mark.parametrize(("name", "mode"), [(name, mode) for name, modes in EXPECTED_MODES.items() for mode in modes])
def test_every_model_zoo_variant_localizes_each_mode(variant_localizer, body_views, photo, name, mode):
    localizer = variant_localizer(name)
    result = localizer.localize(photo, "Chair ", mode, views=_views_for(mode, body_views))
    assert result.label == "chair"
    assert result.found_contact, result.text
    expected_shape = (1, 300, 420) if mode == "h2dcontact" else (4, 1024, 1024)
    assert tuple(result.logits.shape) == expected_shape and result.logits.dtype == torch.float32
    assert torch.isfinite(result.logits).all() and result.logits.std() > 0
    assert result.seg_token in ("[SEG]", "[HSEG]", "[OSEG]")
    assert "</s>" not in result.text and "  " not in result.text
    assert result.body_parts == EXPECTED_BODY_PARTS[name]
    assert result.affordance == EXPECTED_AFFORDANCE[name]


def test_composed_forward_equals_a_direct_computation_of_the_spec(tiny_models, body_views, photo):
    """Every step redone by hand from the raw weights, in fp32 (SAM itself is checked against Meta's code)."""
    name = "interactvlm-3d-hcontact-damon"
    localizer = Localizer.from_folders(tiny_models.releases[name], tiny_models.clip, dtype=torch.float32)
    result = localizer.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    net, tok = localizer.network, localizer.tokenizer
    with torch.no_grad():
        # 1. CLIP penultimate layer, CLS dropped, one Linear; spliced at the sentinel (+255 positions).
        pixels = localizer.image_processor(images=photo, return_tensors="pt")["pixel_values"]
        hidden = net.vision_tower(pixels, output_hidden_states=True).hidden_states[-2][0, 1:]
        assert hidden.shape[0] == 256
        features = hidden @ net.mm_projector.weight.T + net.mm_projector.bias
        ids = tok.encode_prompt(prompts.contact_prompt("hcontact", "chair"))
        at = ids.index(prompts.IMAGE_TOKEN_INDEX)
        table = net.llm.model.embed_tokens.weight
        prompt = torch.cat([table[ids[:at]], features, table[ids[at + 1 :]]])[None]
        assert prompt.shape[1] == len(ids) - 1 + 256
        # 2. Teacher-forced full-sequence pass (no cache) over prompt + answer; the state predicting [SEG].
        answer = result.token_ids
        seg_at = answer.index(tok.seg_token_idx)
        full = torch.cat([prompt, table[answer[:seg_at]][None]], dim=1)
        state = net.llm.model(inputs_embeds=full).last_hidden_state[0, -1]
        assert_argmax_is_safe(net.llm.lm_head.weight @ state, tok.seg_token_idx)
        # 3. text_hidden_fcs, then the vi_v1 gate per view with its own camera vector.
        fcs = net.text_hidden_fcs[0]
        emb = torch.relu(state @ fcs[0].weight.T + fcs[0].bias) @ fcs[2].weight.T + fcs[2].bias
        enc = net.cam_pose_encoder
        cams = torch.tensor(HUMAN_VIEWS.camera_vectors())
        gated = []
        for v in range(4):
            base = torch.relu(enc.spatial_encoder[2](torch.relu(enc.spatial_encoder[0](cams[v]))))
            gated.append(emb * torch.sigmoid(enc.view_transforms[v](base)))
        tokens = torch.stack(gated)
        # 4. SAM: the 4 views, each shown all 4 gated tokens; logits upsampled to 1024 in float32.
        pixels_sam, size = sam.preprocess(body_views.sam_images)
        low = sam.decode_views(net.sam, sam.encode_images(net.sam, pixels_sam), tokens)
        logits = sam.postprocess_masks(low, size, (1024, 1024))
    assert torch.allclose(result.logits, logits, atol=1e-5)


def test_cached_and_uncached_generation_agree_on_a_release(tiny_models, photo):
    localizer = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-hcontact-damon-fix"], tiny_models.clip, dtype=torch.float32
    )
    net, tok = localizer.network, localizer.tokenizer
    with torch.no_grad():
        embeds = net.prompt_embeddings(
            tok.encode_prompt(prompts.contact_prompt("hcontact", "cup")), localizer._photo_features(photo)
        )
    args = {"max_new_tokens": 32, "eos_token_id": tok.eos_id, "seg_token_ids": net.config.seg_token_ids}
    cached, uncached = generate_with_cache(net.llm, embeds, **args), generate_without_cache(net.llm, embeds, **args)
    assert_greedy_tokens_agree(net.llm, embeds, uncached.tokens, cached.tokens)
    assert cached.seg_index == uncached.seg_index
    assert torch.allclose(cached.seg_state, uncached.seg_state, atol=1e-5)


def test_canonical_sam_embeddings_are_computed_once(tiny_models, body_views, photo, monkeypatch):
    localizer = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-hcontact-damon"], tiny_models.clip, dtype=torch.float32
    )
    calls = []
    original = sam.encode_images
    monkeypatch.setattr(sam, "encode_images", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = localizer.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    second = localizer.localize(photo[::-1].copy(), "bench", "hcontact", views=body_views.sam_images)
    assert len(calls) == 1
    assert first.logits.shape == second.logits.shape


def test_bf16_gives_float32_logits(tiny_models, body_views, photo):
    localizer = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-hcontact-damon"], tiny_models.clip, dtype=torch.bfloat16
    )
    assert localizer.network.llm.lm_head.weight.dtype == torch.bfloat16
    assert next(localizer.network.sam.parameters()).dtype == torch.bfloat16
    result = localizer.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    assert result.found_contact and result.logits.dtype == torch.float32 and torch.isfinite(result.logits).all()


def test_documented_keys_are_ignored(tiny_models):
    _, report = load_network(
        tiny_models.releases["interactvlm-3d-hcontact-damon"], tiny_models.clip, dtype=torch.float32
    )
    assert report.ignored_keys and all(k.endswith("rotary_emb.inv_freq") for k in report.ignored_keys)


def test_conversion_to_safetensors_gives_identical_results(tiny_models, body_views, photo, tmp_path):
    source = tiny_models.releases["interactvlm-3d-hcontact-ocontact"]
    out = tmp_path / "converted"
    assert main(["convert-release", str(source), str(out), "--dtype", "float32"]) == 0
    assert (out / CONVERTED_MARKER).is_file() and list(out.glob("*.safetensors"))
    assert not list(out.glob("*.bin"))
    original = Localizer.from_folders(source, tiny_models.clip, dtype=torch.float32)
    converted = Localizer.from_folders(out, tiny_models.clip, dtype=torch.float32)
    assert converted.report.converted
    # Stored weights: bit-identical. Computed outputs: CPU kernels may take other paths for memory that is
    # mapped or aligned differently (seen on AVX-512 machines), so they are compared with tolerances.
    weights, again = original.network.state_dict(), converted.network.state_dict()
    assert list(weights) == list(again) and all(torch.equal(weights[k], again[k]) for k in weights)
    a = original.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    b = converted.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    net, tok = original.network, original.tokenizer
    with torch.no_grad():
        embeds = net.prompt_embeddings(tok.encode_prompt(a.prompt), original._photo_features(photo))
    assert_greedy_tokens_agree(net.llm, embeds, a.token_ids, b.token_ids)
    # Mask logits here are O(1-10); float32 kernel-path differences stay below 1e-5 of that.
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-4)


# ---- bad input -----------------------------------------------------------------------------------------------


@pytest.fixture
def copy_release(tiny_models, tmp_path):
    def make(name="interactvlm-3d-hcontact-damon"):
        target = tmp_path / name
        shutil.copytree(tiny_models.releases[name], target)
        return target

    return make


def _edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_missing_folder_and_missing_config(tmp_path, tiny_models):
    with pytest.raises(ModelFilesMissingError, match="does not exist") as info:
        load_network(tmp_path / "nowhere", tiny_models.clip)
    assert "interactvlm.is.tue.mpg.de" in info.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFilesMissingError, match="config.json is missing"):
        load_network(tmp_path / "empty", tiny_models.clip)


def test_partial_and_corrupt_shards_name_the_file(copy_release, tiny_models):
    folder = copy_release()
    (folder / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(
        ModelFileError, match="pytorch_model-00002-of-00002.bin listed in pytorch_model.bin.index.json is missing"
    ):
        load_network(folder, tiny_models.clip)
    folder = copy_release("interactvlm-3d-hcontact-damon-fix")
    shard = folder / "pytorch_model-00001-of-00002.bin"
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="pytorch_model-00001-of-00002.bin cannot be read") as info:
        load_network(folder, tiny_models.clip)
    assert "Re-extract" in info.value.hint


def test_a_shard_carrying_code_is_refused(copy_release, tiny_models):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/ivlm-pwned",))

    folder = copy_release()
    torch.save({"model.norm.weight": Evil()}, folder / "pytorch_model-00002-of-00002.bin", pickle_module=pickle)
    with pytest.raises(ModelFileError, match="pytorch_model-00002-of-00002.bin"):
        load_network(folder, tiny_models.clip)
    assert not os.path.exists("/tmp/ivlm-pwned")


def test_wrong_vocabulary_size_is_named(copy_release, tiny_models):
    folder = copy_release()
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    _edit_config(folder, vocab_size=vocab + 2)
    with pytest.raises(
        ModelFileError, match=rf"embed_tokens.weight has {vocab} rows but config.json says vocab_size = {vocab + 2}"
    ):
        load_network(folder, tiny_models.clip)


@pytest.mark.parametrize("view_type", ["4MV-Z_Vitru_wScene", "4MV-Z_Vitru_FootGround", "4MV-Z_Vitru_mv2"])
def test_both_scene_view_type_names_are_accepted(copy_release, view_type):
    folder = copy_release()
    _edit_config(folder, hC_sam_view_type=view_type)
    assert load_release_config(folder).human_view_type == view_type


def test_unknown_view_type_is_named(copy_release):
    folder = copy_release()
    _edit_config(folder, hC_sam_view_type="4MV-Z_Vitru_v9")
    with pytest.raises(ModelFileError, match="hC_sam_view_type '4MV-Z_Vitru_v9' is not a view set we know"):
        load_release_config(folder)


def test_unmapped_and_missing_keys_fail_loudly(copy_release, tiny_models):
    folder = copy_release()
    shard = folder / "pytorch_model-00001-of-00002.bin"
    state = torch.load(shard, weights_only=True)
    state["model.visual_model.fusion.q_proj.weight"] = torch.zeros(2, 2)
    torch.save(state, shard)
    with pytest.raises(ModelFileError, match="model.visual_model.fusion.q_proj.weight"):
        load_network(folder, tiny_models.clip)
    folder = copy_release("interactvlm-3d-hcontact-damon-fix")
    for shard in folder.glob("*.bin"):
        state = torch.load(shard, weights_only=True)
        state.pop("model.text_hidden_fcs.0.2.weight", None)
        torch.save(state, shard)
    with pytest.raises(ModelFileError, match="missing 1: text_hidden_fcs.0.2.weight"):
        load_network(folder, tiny_models.clip)


def test_missing_clip_folder_names_the_hub_model(tiny_models, tmp_path):
    with pytest.raises(ModelFilesMissingError, match="CLIP vision tower is missing") as info:
        load_network(tiny_models.releases["interactvlm-3d-hcontact-damon"], tmp_path / "clip")
    assert "openai/clip-vit-large-patch14" in info.value.hint


def test_bad_requests(tiny_models, body_views, photo):
    localizer = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-hcontact-damon"], tiny_models.clip, dtype=torch.float32
    )
    with pytest.raises(BadInputError, match="label"):
        localizer.localize(photo, "   ", "hcontact", views=body_views.sam_images)
    with pytest.raises(BadInputError, match="does not do oafford") as info:
        localizer.localize(photo, "chair", "oafford", views=body_views.sam_images)
    assert "oafford-lemon-piad" in info.value.hint
    with pytest.raises(BadInputError, match="needs the 4 rendered views"):
        localizer.localize(photo, "chair", "hcontact")
    with pytest.raises(BadInputError, match="8-bit"):
        localizer.localize(photo.astype(np.float32), "chair", "hcontact", views=body_views.sam_images)
    with pytest.raises(BadInputError, match="unknown contact mode"):
        localizer.localize(photo, "chair", "hcontactt", views=body_views.sam_images)


def test_separate_decoder_checkpoints_with_duplicated_keys_load(copy_release, tiny_models, body_views, photo):
    """P26: "-DifDe" releases alias human/object decoders to SAM's at init, so their keys appear twice."""
    folder = copy_release()
    _edit_config(folder, token_type="Gen-DifDe")
    shard = folder / "pytorch_model-00001-of-00002.bin"
    state = torch.load(shard, weights_only=True)
    other = torch.load(folder / "pytorch_model-00002-of-00002.bin", weights_only=True)
    decoder = {k: v for k, v in {**state, **other}.items() if k.startswith("model.visual_model.mask_decoder.")}
    for branch in ("human", "object"):
        state.update({k.replace("mask_decoder.", f"{branch}_mask_decoder.", 1): v.clone() for k, v in decoder.items()})
    torch.save(state, shard)
    index = json.loads((folder / "pytorch_model.bin.index.json").read_text())
    index["weight_map"].update({k: shard.name for k in state})
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    localizer = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32)
    assert localizer.network.config.separate_decoders
    assert localizer.network.mask_decoder_for("human") is localizer.network.human_mask_decoder
    result = localizer.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    plain = Localizer.from_folders(
        tiny_models.releases["interactvlm-3d-hcontact-damon"], tiny_models.clip, dtype=torch.float32
    )
    reference = plain.localize(photo, "chair", "hcontact", views=body_views.sam_images)
    assert torch.allclose(result.logits, reference.logits, atol=1e-6)  # same weights in the human decoder
