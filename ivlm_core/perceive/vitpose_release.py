"""ViTPose whole-body (COCO-WholeBody, 133 keypoints) from the original release, run through transformers' VitPose.

Which checkpoint. The Hugging Face hub's ViTPose models (`usyd-community/vitpose-base-simple`, and the ViTPose+
`vitpose-plus-*` ones) were converted with a single head: ViTPose+'s backbone keeps all six dataset experts
(COCO, AI Challenger, MPII, AP-10K, APT-36K, COCO-WholeBody) and picks one by `dataset_index`, but transformers'
converter kept only the main COCO-17 head, so none of them predicts whole-body keypoints. The original ViTPose
repository (github.com/ViTAE-Transformer/ViTPose, Apache-2.0) releases ViTPose++ multi-task checkpoints,
`vitpose+_{small,base,large,huge}.pth` (README, "ViTPose++" rows; OneDrive links), which hold the whole-body head
as `associate_keypoint_heads.4` (133 channels, a classic two-deconvolution decoder) next to the COCO head and
the other three; and its `tools/model_split.py` cuts such a file into per-dataset files (`wholebody.pth`: the
whole-body expert merged into the MLP, the whole-body head as the main head). Both are read here, so the user
only downloads the release file: it is unpickled with `weights_only` (no code runs), every key is mapped onto
`VitPoseForPoseEstimation` (the MoE backbone with 6 experts and the classic decoder with 133 outputs, run with
dataset index 5) or belongs to a known part that is dropped (the other datasets' heads; the experts a split file
still carries), and anything else, or any missing weight, is an error that names it. A Hugging Face-format
folder with a 133-keypoint config (a conversion of one's own) loads as well.

Sizes come from the weights (width, depth, MLP ratio, expert width); the attention head count, which weights
do not show, from the ViTPose sizes (S/B 12 heads, L/H 16), or from the file's `meta` for generated demo files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

from ivlm_core.errors import ModelFileError
from ivlm_core.perceive.coco import COCO_WHOLEBODY_KEYPOINTS, NUM_WHOLEBODY_KEYPOINTS
from ivlm_core.torch_files import load_checkpoint

RELEASE_FILES = ("vitpose+_huge.pth", "vitpose+_large.pth", "vitpose+_base.pth", "vitpose+_small.pth", "wholebody.pth")
REPOSITORY = "https://github.com/ViTAE-Transformer/ViTPose"
WHOLEBODY_DATASET_INDEX = 5  # ViTPose++ dataset order: COCO, AIC, MPII, AP-10K, APT-36K, COCO-WholeBody
WHOLEBODY_HEAD = "associate_keypoint_heads.4."  # associate heads are datasets 1..5
OTHER_HEADS = ("keypoint_head.", *(f"associate_keypoint_heads.{i}." for i in range(4)))
HEADS_BY_WIDTH = {384: 12, 768: 12, 1024: 16, 1280: 16}  # ViTPose-S/B/L/H
DEMO_MARKER_KEY = "ivlm_tiny_demo"
_BLOCK = re.compile(r"^backbone\.blocks\.(\d+)\.(.+)$")
_HEAD_PARTS = {
    "deconv_layers.0.weight": "deconv1.weight",
    "deconv_layers.1": "batchnorm1",
    "deconv_layers.3.weight": "deconv2.weight",
    "deconv_layers.4": "batchnorm2",
    "final_layer": "conv",
}
_BLOCK_PARTS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def download_hint(folder: Path) -> str:
    return (
        f"Download a ViTPose++ checkpoint (vitpose+_base.pth, or _small/_large/_huge; Apache-2.0) from the ViTPose "
        f"README ({REPOSITORY}, table 'ViTPose++', OneDrive links; it is not on the Hugging Face hub) into {folder}. "
        "The COCO-17 folder perception/vitpose is used when this one is absent."
    )


def find_release(folder: Path) -> Path | None:
    """The release file in `folder` (largest model first), or None."""
    for name in RELEASE_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass(frozen=True)
class LoadedRelease:
    model: VitPoseForPoseEstimation
    dataset_index: int | None  # the whole-body expert's index for MoE backbones; None for plain ones
    is_demo: bool


def load_release(path: Path, dtype: torch.dtype = torch.float32) -> LoadedRelease:
    """A ViTPose++ (or split whole-body) release file as a 133-keypoint VitPoseForPoseEstimation."""
    hint = download_hint(path.parent)
    checkpoint = load_checkpoint(path, "a ViTPose release checkpoint", hint)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path} has no state_dict of tensors: it is not a ViTPose checkpoint.", hint)
    meta = checkpoint.get("meta") if isinstance(checkpoint.get("meta"), dict) else {}
    config = release_config(state, meta, path, hint)
    width = config.backbone_config.hidden_size  # type: ignore[union-attr]  # typed as its inputs (dict | None); __post_init__ makes it a config
    ours = map_release_keys(state, width, path, hint)
    model = VitPoseForPoseEstimation(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    wrong = sorted(k for k in set(expected) & set(ours) if expected[k].shape != ours[k].shape)
    if missing or wrong:
        raise ModelFileError(
            f"{path} does not hold a complete whole-body ViTPose: missing {missing[:5]}, mis-shaped {wrong[:5]}.", hint
        )
    model.load_state_dict(ours, strict=True)
    model = model.to(dtype).eval()  # type: ignore[arg-type]  # @wraps on PreTrainedModel.to: typeshed's _Wrapped does not bind self
    demo = bool(meta.get(DEMO_MARKER_KEY))
    if demo:  # kept in the config, so a save_pretrained copy of a generated file stays flagged as DEMO
        setattr(model.config, DEMO_MARKER_KEY, meta[DEMO_MARKER_KEY])
    moe = config.backbone_config.num_experts > 1  # type: ignore[union-attr]  # typed as its inputs (dict | None); __post_init__ makes it a config
    return LoadedRelease(model, WHOLEBODY_DATASET_INDEX if moe else None, demo)


def release_config(state: dict[str, torch.Tensor], meta: dict, path: Path, hint: str) -> VitPoseConfig:
    """The VitPose config the weights describe (sizes read from their shapes)."""
    try:
        patch = state["backbone.patch_embed.proj.weight"]
        positions = state["backbone.pos_embed"].shape[1] - 1
        fc1 = state["backbone.blocks.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise ModelFileError(f"{path} lacks {exc.args[0]}: it is not a ViTPose checkpoint.", hint) from exc
    width, patch_size = patch.shape[0], patch.shape[-1]
    depth = 1 + max(int(m.group(1)) for key in state if (m := _BLOCK.match(key)))
    experts = sorted({int(k.split(".")[5]) for k in state if ".mlp.experts." in k})
    head = WHOLEBODY_HEAD if any(k.startswith(WHOLEBODY_HEAD) for k in state) else "keypoint_head."
    outputs = state.get(head + "final_layer.weight")
    if outputs is None or outputs.shape[0] != NUM_WHOLEBODY_KEYPOINTS:
        found = None if outputs is None else outputs.shape[0]
        raise ModelFileError(
            f"{path} has no COCO-WholeBody head ({NUM_WHOLEBODY_KEYPOINTS} outputs; found {found}): it is not a "
            "ViTPose++ or whole-body checkpoint (COCO-17 models go in perception/vitpose).",
            hint,
        )
    heads = HEADS_BY_WIDTH.get(width) or meta.get("num_attention_heads")
    if not heads:
        raise ModelFileError(
            f"{path} has width {width}, which is none of ViTPose's sizes (384, 768, 1024, 1280).", hint
        )
    moe = head == WHOLEBODY_HEAD and experts
    if positions % (256 // patch_size) or positions != (256 // patch_size) * (192 // patch_size):
        raise ModelFileError(f"{path} was trained for another input size ({positions} patches, not 256x192).", hint)
    # (a plain ViT without experts keeps the config's default: transformers checks the field's type)
    experts_size: dict[str, Any] = (
        {"part_features": state[f"backbone.blocks.0.mlp.experts.{experts[0]}.weight"].shape[0]} if moe else {}
    )
    backbone = VitPoseBackboneConfig(  # type: ignore[call-arg]  # out_indices: a **kwargs of __post_init__, not typed
        image_size=[256, 192],
        patch_size=[patch_size, patch_size],
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=int(heads),
        mlp_ratio=fc1.shape[0] // width,
        qkv_bias=True,
        layer_norm_eps=1e-6,
        out_indices=[depth],
        num_experts=len(experts) if moe else 1,
        **experts_size,
    )
    names = dict(enumerate(COCO_WHOLEBODY_KEYPOINTS))
    return VitPoseConfig(
        backbone_config=backbone, use_simple_decoder=False, id2label=names, label2id={v: k for k, v in names.items()}
    )


def map_release_keys(state: dict[str, torch.Tensor], width: int, path: Path, hint: str) -> dict[str, torch.Tensor]:
    """Release keys -> VitPoseForPoseEstimation keys (qkv split into query, key, value); known parts of other datasets
    dropped; an error naming any key that is neither."""
    multi_task = any(k.startswith(WHOLEBODY_HEAD) for k in state)
    head = WHOLEBODY_HEAD if multi_task else "keypoint_head."
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith(head):
            rest = key[len(head) :]
            part = next((p for p in _HEAD_PARTS if rest == p or rest.startswith(p + ".")), None)
            if part is None:
                unknown.append(key)
                continue
            out["head." + _HEAD_PARTS[part] + rest[len(part) :]] = value
        elif multi_task and key.startswith(OTHER_HEADS):
            continue  # the COCO, AIC, MPII, AP-10K and APT-36K heads
        elif key in ("backbone.patch_embed.proj.weight", "backbone.patch_embed.proj.bias"):
            out["backbone.embeddings.patch_embeddings.projection." + key.rsplit(".", 1)[1]] = value
        elif key == "backbone.pos_embed":
            out["backbone.embeddings.position_embeddings"] = value
        elif key.startswith("backbone.last_norm."):
            out["backbone.layernorm." + key.rsplit(".", 1)[1]] = value
        elif key == "backbone.cls_token":
            continue  # unused by ViTPose (transformers' converter drops it too)
        elif match := _BLOCK.match(key):
            if not _map_block(out, int(match.group(1)), match.group(2), value, width, multi_task):
                unknown.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ModelFileError(
            f"{path} has {len(unknown)} weights a whole-body ViTPose does not have (e.g. {', '.join(unknown[:5])}).",
            hint,
        )
    return out


def _map_block(out: dict, layer: int, rest: str, value: torch.Tensor, width: int, multi_task: bool) -> bool:
    prefix = f"backbone.encoder.layer.{layer}."
    if rest.startswith("attn.qkv."):
        leaf = rest.rsplit(".", 1)[1]
        for i, name in enumerate(("query", "key", "value")):
            out[f"{prefix}attention.attention.{name}.{leaf}"] = value[i * width : (i + 1) * width]
        return True
    if rest.startswith("mlp.experts."):
        if multi_task:
            out[prefix + rest] = value
        return True  # a split file keeps them unused: its fc2 already holds the chosen expert
    for part, ours in _BLOCK_PARTS.items():
        if rest.startswith(part + "."):
            out[prefix + ours + rest[len(part) :]] = value
            return True
    return False
