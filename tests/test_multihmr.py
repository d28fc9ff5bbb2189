"""Multi-HMR loaded from a generated release-format checkpoint: the file format, every key mapped, and the network
re-computed step by step from the release's own weights (upstream names) by a plain, independent implementation
of the published design, in float64; then the checkpoint errors a user can meet."""

from __future__ import annotations

import argparse
import itertools
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ivlm_core.demo.tiny_multihmr import TINY, release_shapes, tiny_release, write_tiny_multihmr
from ivlm_core.errors import ModelFileError, ModelFilesMissingError
from ivlm_core.perceive.multihmr.convert_multihmr import (
    SMPLX_MODULE_KEYS,
    config_from_release,
    convert_state_dict,
    load_multihmr,
    read_release,
)

TOL = 2e-4  # float32 network against the float64 re-computation


@pytest.fixture(scope="module")
def release_file(tmp_path_factory) -> Path:
    return write_tiny_multihmr(tmp_path_factory.mktemp("multihmr") / "multiHMR_896_L.pt")


@pytest.fixture(scope="module")
def release(release_file):
    return read_release(release_file)


@pytest.fixture(scope="module")
def loaded(release_file):
    return load_multihmr(release_file)


@pytest.fixture(scope="module")
def raw(release) -> dict[str, torch.Tensor]:
    """The release's weights under upstream's names, in float64, for the re-computation."""
    return {k: v.double() for k, v in release.state.items()}


# --- the file -------------------------------------------------------------------------------------------------


def test_tiny_release_has_the_upstream_file_format(release_file):
    with pytest.raises(pickle.UnpicklingError):  # the args Namespace is a class: refused unless allowlisted
        torch.load(release_file, weights_only=True)
    with torch.serialization.safe_globals([argparse.Namespace]):
        obj = torch.load(release_file, weights_only=True)
    assert set(obj) == {"epoch", "iter", "model_state_dict", "args", "scaler", "best_val"}
    assert isinstance(obj["args"], argparse.Namespace) and obj["args"].img_size == [112, 112]
    assert obj["args"].train_return_type == "smplx" and obj["args"].backbone.startswith("dinov2_vit")
    assert {k: tuple(v.shape) for k, v in obj["model_state_dict"].items()} == release_shapes()


def test_config_from_args_and_shapes(release, loaded):
    config = config_from_release(release)
    assert (config.image_size, config.grid, config.backbone_hidden, config.backbone_layers) == (112, 8, 128, 2)
    assert (config.head_width, config.head_depth, config.head_heads, config.head_channels_per_head) == (64, 2, 2, 32)
    assert config.camera_channels == 99 and config.context_channels == 128 + 99
    assert config.backbone_position_grid == 5 and config.person_center == "head" and config.center_joint == 15
    model, report = loaded
    assert report.demo and report.ignored_keys == ["x_attention_head.init_betas_kid"]
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_every_release_key_is_mapped(release):
    config = config_from_release(release)
    ours, ignored = convert_state_dict(release.state, config, release.path)
    from ivlm_core.perceive.multihmr.modeling_multihmr import MultiHMRModel

    with torch.device("meta"):
        expected = set(MultiHMRModel(config).state_dict())
    assert set(ours) == expected and ignored == ["x_attention_head.init_betas_kid"]
    # stored weights arrive unchanged (exact: no arithmetic on them), the fused qkv split in order
    qkv = release.state["backbone.encoder.blocks.1.attn.qkv.weight"]
    assert torch.equal(ours["backbone.encoder.layer.1.attention.k_proj.weight"], qkv[128:256])
    assert torch.equal(ours["head.query_rows"], release.state["x_attention_head.cross_queries_x"])
    assert torch.equal(
        ours["head.layers.1.mlp.2.weight"],
        release.state["x_attention_head.transformer.transformer.layers.1.2.fn.net.3.weight"],
    )


def test_smpl_layer_arrays_are_ignored_and_unknown_keys_named(release, synthetic_body_files):
    from ivlm_core import paths
    from ivlm_core.body import load_body_model

    for pca in (True, False):
        body = load_body_model(
            "smplx", folder=paths.body_models_dir(synthetic_body_files.root), use_pca=pca, flat_hand_mean=not pca
        )
        assert set(body.model.state_dict()) <= SMPLX_MODULE_KEYS  # every array smplx's module holds
    config = config_from_release(release)
    extra = dict(release.state)
    extra["smpl_layer.neutral_10.bm_x.shapedirs"] = torch.zeros(3)
    extra["smpl_layer.neutral_11.bm_x.vertex_joint_selector.extra_joints_idxs"] = torch.zeros(3)
    _, ignored = convert_state_dict(extra, config, release.path)
    assert "smpl_layer.neutral_10.bm_x.shapedirs" in ignored and len(ignored) == 3
    for bad in (
        "smpl_layer.neutral_10.bm_x.not_smplx",
        "x_attention_head.new_head.weight",
        "backbone.encoder.blocks.0.attn.extra",
    ):
        with pytest.raises(ModelFileError, match=bad.replace(".", r"\.")):
            convert_state_dict({**release.state, bad: torch.zeros(1)}, config, release.path)


# --- the independent re-computation ----------------------------------------------------------------------------


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.special.erf(x / math.sqrt(2.0)))


def _softmax(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x - x.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def _bicubic_matrix(size_in: int, size_out: int, scale: float) -> torch.Tensor:
    """[out, in] weights of 1D bicubic resampling (Keys, A = -0.75, borders repeated), source index
    (dst + 0.5) / scale - 0.5: what DINOv2's interpolate(scale_factor=...) computes along one axis."""
    a = -0.75
    out = torch.zeros(size_out, size_in, dtype=torch.float64)
    for dst in range(size_out):
        src = (dst + 0.5) / scale - 0.5
        base = math.floor(src)
        t = src - base

        def near(x: float) -> float:  # |x| <= 1
            return ((a + 2) * x - (a + 3)) * x * x + 1

        def far(x: float) -> float:  # 1 < |x| < 2
            return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

        for offset, weight in zip((-1, 0, 1, 2), (far(t + 1), near(t), near(1 - t), far(2 - t)), strict=True):
            out[dst, min(max(base + offset, 0), size_in - 1)] += weight
    return out


def _reference_backbone(raw: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    """DINOv2 ViT: patches, class token, resampled positions, pre-norm blocks with layer scale, final norm."""
    p, g, d = TINY["patch"], TINY["img_size"] // TINY["patch"], TINY["hidden"]
    b = pixels.shape[0]
    patches = pixels.reshape(b, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, 3 * p * p)
    x = (
        patches @ raw["backbone.encoder.patch_embed.proj.weight"].reshape(d, -1).T
        + raw["backbone.encoder.patch_embed.proj.bias"]
    )
    x = torch.cat([raw["backbone.encoder.cls_token"].expand(b, 1, d), x], 1)
    stored = raw["backbone.encoder.pos_embed"][0]
    m = TINY["position_grid"]
    resample = _bicubic_matrix(m, g, (g + 0.1) / m)
    grid = stored[1:].reshape(m, m, d)
    positions = torch.einsum("im,mnd,jn->ijd", resample, grid, resample).reshape(g * g, d)
    x = x + torch.cat([stored[:1], positions])
    heads = d // 64
    for i in range(TINY["blocks"]):
        w = {k.split(f"blocks.{i}.")[1]: v for k, v in raw.items() if f"blocks.{i}." in k}
        h = _layer_norm(x, w["norm1.weight"], w["norm1.bias"], 1e-6)
        qkv = (h @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]).reshape(b, -1, 3, heads, 64)
        q, k, v = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
        attended = (_softmax(q @ k.transpose(-1, -2) / 8.0) @ v).transpose(1, 2).reshape(b, -1, d)
        x = x + w["ls1.gamma"] * (attended @ w["attn.proj.weight"].T + w["attn.proj.bias"])
        h = _layer_norm(x, w["norm2.weight"], w["norm2.bias"], 1e-6)
        mlp = _gelu(h @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"]) @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
        x = x + w["ls2.gamma"] * mlp
    x = _layer_norm(x, raw["backbone.encoder.norm.weight"], raw["backbone.encoder.norm.bias"], 1e-6)
    return x[:, 1:].reshape(b, g, g, d)


def _mlp(raw: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    hidden = torch.relu(x @ raw[f"{name}.0.weight"].T + raw[f"{name}.0.bias"])
    return hidden @ raw[f"{name}.2.weight"].T + raw[f"{name}.2.bias"]


def _reference_people(raw, features: torch.Tensor, k: torch.Tensor, threshold: float) -> list[dict]:
    """The published design, person by person, with upstream's weights (upstream key names)."""
    b, g, _, _ = features.shape
    p, size, bands = TINY["patch"], TINY["img_size"], TINY["bands"]
    scores = torch.sigmoid(_mlp(raw, "mlp_classif", features)[..., 0]).clamp(1e-4, 1 - 1e-4)
    people = []
    for n, i, j in itertools.product(range(b), range(g), range(g)):
        window = scores[n, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
        if scores[n, i, j] >= threshold and scores[n, i, j] >= window.max():  # a 3x3 local maximum
            people.append((n, i, j))
    freqs = [1.0 + f * (64 / 2 - 1.0) / (bands - 1) for f in range(bands)]
    context = torch.zeros(b, g, g, features.shape[-1] + 99, dtype=torch.float64)
    for n, i, j in itertools.product(range(b), range(g), range(g)):
        # upstream feeds (row, column) pixel centres to K^-1 in the (x, y) slots
        ray = torch.linalg.solve(k[n], torch.tensor([i * p + p // 2, j * p + p // 2, 1.0], dtype=torch.float64))
        sines = [math.sin(math.pi * ray[a] * f) for a in range(3) for f in freqs]
        cosines = [math.cos(math.pi * ray[a] * f) for a in range(3) for f in freqs]
        context[n, i, j] = torch.cat([features[n, i, j], ray, torch.tensor(sines + cosines, dtype=torch.float64)])
    hph = "x_attention_head."
    values = context.clone()
    for n, i, j in people:
        values[n, i, j] += raw[hph + "cross_values_x"][i] + raw[hph + "cross_values_y"][j]
    tokens = []
    for n, i, j in people:
        query = context[n, i, j] + raw[hph + "cross_queries_x"][i] + raw[hph + "cross_queries_y"][j]
        token = torch.cat([query, raw[hph + "init_body_pose"][0], raw[hph + "init_betas"][0], raw[hph + "init_cam"][0]])
        tokens.append(
            token @ raw[hph + "transformer.to_token_embedding.weight"].T
            + raw[hph + "transformer.to_token_embedding.bias"]
            + raw[hph + "transformer.pos_embedding"][0, 0]
        )
    x = torch.stack(tokens)
    heads, c = TINY["head_heads"], TINY["head_channels"]
    inner = heads * c
    for layer in range(TINY["head_depth"]):
        w = {k.split(f"layers.{layer}.")[1]: v for k, v in raw.items() if f"transformer.layers.{layer}." in k}
        h = _layer_norm(x, w["0.norm.weight"], w["0.norm.bias"], 1e-5)
        qkv = h @ w["0.fn.to_qkv.weight"].T
        update = torch.zeros_like(x)
        for a, (n, _, _) in enumerate(people):
            same = [r for r, (m, _, _) in enumerate(people) if m == n]  # people of the same image
            out = []
            for head in range(heads):
                q = qkv[a, head * c : (head + 1) * c]
                keys = qkv[same, inner + head * c : inner + (head + 1) * c]
                vals = qkv[same, 2 * inner + head * c : 2 * inner + (head + 1) * c]
                out.append(_softmax(keys @ q / math.sqrt(c)) @ vals)
            update[a] = torch.cat(out) @ w["0.fn.to_out.0.weight"].T + w["0.fn.to_out.0.bias"]
        x = x + update
        h = _layer_norm(x, w["1.norm.weight"], w["1.norm.bias"], 1e-5)
        update = torch.zeros_like(x)
        for a, (n, _, _) in enumerate(people):
            kv = values[n].reshape(g * g, -1) @ w["1.fn.to_kv.weight"].T
            q = h[a] @ w["1.fn.to_q.weight"].T
            out = []
            for head in range(heads):
                sl = slice(head * c, (head + 1) * c)
                weights = _softmax(kv[:, sl] @ q[sl] / math.sqrt(c))
                out.append(weights @ kv[:, inner + head * c : inner + (head + 1) * c])
            update[a] = torch.cat(out) @ w["1.fn.to_out.0.weight"].T + w["1.fn.to_out.0.bias"]
        x = x + update
        h = _layer_norm(x, w["2.norm.weight"], w["2.norm.bias"], 1e-5)
        x = (
            x
            + _gelu(h @ w["2.fn.net.0.weight"].T + w["2.fn.net.0.bias"]) @ w["2.fn.net.3.weight"].T
            + w["2.fn.net.3.bias"]
        )
    results = []
    focal_60 = size / (2 * math.tan(math.radians(30.0)))
    for a, (n, i, j) in enumerate(people):
        pose = x[a] @ raw[hph + "decpose.weight"].T + raw[hph + "decpose.bias"] + raw[hph + "init_body_pose"][0]
        rotations = []
        for r in range(53):
            a1, a2 = pose[6 * r : 6 * r + 3], pose[6 * r + 3 : 6 * r + 6]
            b1 = a1 / a1.norm()
            b2 = a2 - (b1 @ a2) * b1
            b2 = b2 / b2.norm()
            rotations.append(torch.stack([b1, b2, torch.linalg.cross(b1, b2)], 1))
        camera = x[a] @ raw[hph + "deccam.weight"].T + raw[hph + "deccam.bias"] + raw[hph + "init_cam"][0]
        depth = min(max(math.exp(float(camera[0]) * float(k[n, 0, 0]) / focal_60) - 1e-10, 0.0), 50.0)
        offset = _mlp(raw, "mlp_offset", features[n, i, j])
        center_px = (torch.tensor([j, i], dtype=torch.float64) + 0.5 + offset) * p
        center_cam = depth * torch.linalg.solve(k[n], torch.cat([center_px, torch.ones(1, dtype=torch.float64)]))
        results.append(
            {
                "index": (n, i, j),
                "score": float(scores[n, i, j]),
                "rotations": torch.stack(rotations),
                "betas": x[a] @ raw[hph + "decshape.weight"].T
                + raw[hph + "decshape.bias"]
                + raw[hph + "init_betas"][0],
                "expression": x[a] @ raw[hph + "decexpression.weight"].T
                + raw[hph + "decexpression.bias"]
                + raw[hph + "init_expression"][0],
                "depth": depth,
                "center_px": center_px,
                "center_cam": center_cam,
            }
        )
    return results


@pytest.fixture(scope="module")
def two_images():
    rng = np.random.default_rng(3)
    pixels = torch.tensor(rng.normal(0.0, 1.0, (2, 3, 112, 112)), dtype=torch.float32)
    k = torch.tensor(
        [
            [[95.0, 0.0, 56.0], [0.0, 95.0, 56.0], [0.0, 0.0, 1.0]],
            [[140.0, 0.0, 50.0], [0.0, 140.0, 61.0], [0.0, 0.0, 1.0]],
        ]
    )
    return pixels, k


def test_backbone_is_dinov2_with_the_release_weights(loaded, raw, two_images):
    model, _ = loaded
    pixels, _ = two_images
    with torch.no_grad():
        ours = model.encode(pixels).double()
    reference = _reference_backbone(raw, pixels.double())
    assert ours.shape == (2, 8, 8, 128)
    assert (ours - reference).abs().max() < TOL, (ours - reference).abs().max()


def test_head_computes_the_published_design_step_by_step(loaded, raw, two_images):
    model, _ = loaded
    pixels, k = two_images
    with torch.no_grad():
        out = model(pixels, k, threshold=0.3, nms_kernel=3)
    reference = _reference_people(raw, _reference_backbone(raw, pixels.double()), k.double(), 0.3)
    found = list(zip(out.batch.tolist(), out.rows.tolist(), out.cols.tolist(), strict=True))
    assert found == [r["index"] for r in reference]
    assert (
        len({n for n, _, _ in found}) == 2 and len(found) >= 4
    )  # several people in each image: self-attention matters
    for a, ref in enumerate(reference):
        assert abs(float(out.person_scores[a]) - ref["score"]) < TOL
        assert (out.rotations[a].double() - ref["rotations"]).abs().max() < TOL
        assert (out.betas[a].double() - ref["betas"]).abs().max() < TOL
        assert (out.expression[a].double() - ref["expression"]).abs().max() < TOL
        assert abs(float(out.depth[a]) - ref["depth"]) < TOL * ref["depth"]
        assert (out.centers_px[a].double() - ref["center_px"]).abs().max() < 1e-3
        assert (out.centers_cam[a].double() - ref["center_cam"]).abs().max() < TOL * ref["depth"]


def test_people_do_not_leak_across_images(loaded, two_images):
    """Self-attention mixes the people of one image only: the second image alone gives the same people."""
    model, _ = loaded
    pixels, k = two_images
    with torch.no_grad():
        both = model(pixels, k)
        alone = model(pixels[1:], k[1:])
    second = both.batch == 1
    assert torch.equal(both.rows[second], alone.rows) and torch.equal(both.cols[second], alone.cols)
    assert (both.rotations[second] - alone.rotations).abs().max() < 1e-4
    assert (both.centers_cam[second] - alone.centers_cam).abs().max() < 1e-4


def test_no_person_gives_empty_outputs(loaded, two_images):
    model, _ = loaded
    pixels, k = two_images
    with torch.no_grad():
        out = model(pixels, k, threshold=1.01)
    assert len(out.batch) == 0 and out.rotations.shape == (0, 53, 3, 3) and out.centers_cam.shape == (0, 3)
    with pytest.raises(ValueError, match=r"\[B, 3, 112, 112\]"):
        model(pixels[:, :, :100], k)


# --- files that are not what they should be ---------------------------------------------------------------------


class Hyperparameters:  # stands for any class a foreign checkpoint pickles; must never be built by the loader
    built = False

    def __setstate__(self, state: dict) -> None:
        Hyperparameters.built = True
        self.__dict__.update(state)


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_missing_file_says_where_to_get_and_put_it(tmp_path):
    (tmp_path / "multihmr").mkdir()
    (tmp_path / "multihmr" / "cameraHMR.ckpt").write_bytes(b"x")
    with pytest.raises(ModelFilesMissingError) as info:
        read_release(tmp_path / "multihmr" / "multiHMR_896_L.pt")
    assert "cameraHMR.ckpt" in info.value.message and "not read" in info.value.message
    assert "naverlabs.com" in info.value.hint and "multihmr" in info.value.hint and "non-commercial" in info.value.hint


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda r: {
                **r,
                "model_state_dict": {"encoder.cls_token": torch.zeros(1), "mlp_pose.0.weight": torch.zeros(1)},
            },
            "Anny body model",
        ),
        (lambda r: {"state_dict_model": r["model_state_dict"]}, "without its training args"),
        (
            lambda r: {"pytorch-lightning_version": "2.1.0", "state_dict": {"smpl_head.w": torch.zeros(1)}},
            "PyTorch Lightning",
        ),
        (lambda r: {"state_dict": {"backbone.w": torch.zeros(1)}, "meta": {"mmcv_version": "1.3"}}, "OpenMMLab"),
        (
            lambda r: {"blocks.0.attn.qkv.weight": torch.zeros(3), "cls_token": torch.zeros(1)},
            "bare ViT/DINOv2 weights",
        ),
        (lambda r: {**r, "model_state_dict": {"fc.weight": torch.zeros(1)}}, "weights are not Multi-HMR's"),
        (lambda r: [1, 2, 3], "a list object"),
    ],
)
def test_other_model_families_are_named(tmp_path, make, match):
    path = _save(tmp_path / "multiHMR_896_L.pt", make(tiny_release()))
    with pytest.raises(ModelFileError, match=match) as info:
        load_multihmr(path)
    assert "multiHMR_896_L.pt" in info.value.hint


def test_pickled_classes_are_refused_before_they_are_built(tmp_path):
    Hyperparameters.built = False
    hyper = Hyperparameters()
    hyper.lr = 1e-3
    path = _save(tmp_path / "multiHMR_896_L.pt", {**tiny_release(), "hyper_parameters": hyper})
    with pytest.raises(ModelFileError, match="needs Python classes to load .*Hyperparameters.*never run") as info:
        read_release(path)
    assert not Hyperparameters.built and "multiHMR_896_L.pt" in info.value.hint


def test_other_file_kinds_and_damage_are_named(tmp_path, release_file):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "multiHMR_896_L.pt"))
    with pytest.raises(ModelFileError, match="safetensors file"):
        read_release(tmp_path / "multiHMR_896_L.pt")
    truncated = tmp_path / "cut" / "multiHMR_896_L.pt"
    truncated.parent.mkdir()
    truncated.write_bytes(release_file.read_bytes()[: release_file.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="damaged, truncated") as info:
        read_release(truncated)
    assert "download it again" in info.value.hint


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r["model_state_dict"].pop("x_attention_head.deccam.bias"), r"missing 1: head\.camera_out\.bias"),
        (
            lambda r: r["model_state_dict"].pop("x_attention_head.decshape.weight"),
            r"x_attention_head\.decshape\.weight is missing",
        ),
        (
            lambda r: r["model_state_dict"].__setitem__("mlp_offset.2.weight", torch.zeros(3, 128)),
            r"wrong shape: center_offset\.2\.weight",
        ),
        (lambda r: setattr(r["args"], "backbone", "dinov2_vitl14_reg"), "not a DINOv2 ViT/14 without registers"),
        (lambda r: setattr(r["args"], "img_size", [112, 96]), "not one square input size"),
        (lambda r: setattr(r["args"], "person_center", "feet"), "person_center 'feet'"),
    ],
)
def test_inconsistent_releases_are_refused_with_the_reason(tmp_path, change, match):
    release = tiny_release()
    change(release)
    with pytest.raises(ModelFileError, match=match):
        load_multihmr(_save(tmp_path / "multiHMR_896_L.pt", release))
