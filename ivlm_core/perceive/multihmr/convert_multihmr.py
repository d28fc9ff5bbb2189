"""Loading a Multi-HMR release checkpoint (e.g. multiHMR_896_L.pt) without its research code, strictly.

The release is one `torch.save` file: {"epoch", "iter", "model_state_dict", "args", "scaler", "best_val"}
(upstream's train.py and demo.py), where `args` is the training script's `argparse.Namespace`, from which
upstream rebuilds the network. It is read with `torch.load(weights_only=True)`: no pickled code runs. The only
classes allowed besides tensors and plain containers are `argparse.Namespace` (the args) and numpy's scalar
and dtype constructors (numbers a training loop may store, e.g. `best_val`); anything else is refused before
it is built, and the error names it.

Every weight is mapped onto `MultiHMRModel` by the rules below, or is an error naming it. Documented ignores:
`smpl_layer.*` (the SMPL-X body model's own arrays, which upstream's model carries; we use the user's SMPL-X
file) and `x_attention_head.init_betas_kid` (the mean child shape, unused at inference). DINOv2's position
embeddings are stored for 518 px (37 x 37) and resampled once here to the release's input size with the
DINOv2 code's own rule (bicubic, scale factor (grid + 0.1) / 37), which upstream's backbone applied on every
forward pass; transformers' resampling differs (it uses the output size), so the backbone gets them ready made.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ivlm_core import paths
from ivlm_core.errors import ModelFileError, ModelFilesMissingError
from ivlm_core.perceive.multihmr.configuration_multihmr import PERSON_CENTERS, MultiHMRConfig
from ivlm_core.perceive.multihmr.modeling_multihmr import MultiHMRModel

RELEASE_FILENAME = paths.MULTIHMR_FILENAME
RELEASE_PAGE = "https://github.com/naver/multi-hmr (checkpoint table; CC BY-NC-SA 4.0, non-commercial)"
RELEASE_URL = "https://download.europe.naverlabs.com/ComputerVision/MultiHMR/multiHMR_896_L.pt"
DEMO_MARKER_ARG = "ivlm_generated"  # set in the args of the project's tiny random-weight stand-in only
POSITION_OFFSET = 0.1  # DINOv2's interpolate_offset
BACKBONE_NAME = re.compile(r"^dinov2_vit[sblg]14$")

# Plain values a training script stores beside the weights; numpy scalars under both numpy 1 and 2 names.
_NUMPY_SCALAR = np._core.multiarray.scalar  # type: ignore[attr-defined]
ALLOWED_GLOBALS: list[Any] = [
    argparse.Namespace,
    _NUMPY_SCALAR,
    (_NUMPY_SCALAR, "numpy.core.multiarray.scalar"),
    np.dtype,
]

# smplx's SMPLX module arrays and parameters: what a `smpl_layer.<name>.bm_x.` subtree may hold.
SMPLX_MODULE_KEYS = frozenset(
    (
        "J_regressor",
        "betas",
        "body_pose",
        "expr_dirs",
        "expression",
        "faces_tensor",
        "global_orient",
        "jaw_pose",
        "lbs_weights",
        "left_hand_components",
        "left_hand_mean",
        "left_hand_pose",
        "leye_pose",
        "lmk_bary_coords",
        "lmk_faces_idx",
        "parents",
        "pose_mean",
        "posedirs",
        "reye_pose",
        "right_hand_components",
        "right_hand_mean",
        "right_hand_pose",
        "shapedirs",
        "transl",
        "v_template",
        "vertex_joint_selector.extra_joints_idxs",
        "dynamic_lmk_faces_idx",
        "dynamic_lmk_bary_coords",
        "neck_kin_chain",
    )
)
_SMPL_LAYER = re.compile(r"^smpl_layer\.[A-Za-z0-9_]+\.bm_x\.(.+)$")
IGNORED_REASONS = {
    "smpl_layer": "the SMPL-X body model's own arrays (the user's SMPL-X file is used instead)",
    "x_attention_head.init_betas_kid": "the mean child shape (unused at inference)",
}

# ---- the key map -------------------------------------------------------------------------------------------

_BLOCK = re.compile(r"^backbone\.encoder\.blocks\.(\d+)\.(.+)$")
_BLOCK_PARTS = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.proj.weight": "attention.o_proj.weight",
    "attn.proj.bias": "attention.o_proj.bias",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_QKV_PARTS = {"attn.qkv.weight": "weight", "attn.qkv.bias": "bias"}  # split into q_proj / k_proj / v_proj
_HEAD_LAYER = re.compile(r"^x_attention_head\.transformer\.transformer\.layers\.(\d+)\.([012])\.(.+)$")
_HEAD_LAYER_PARTS = {
    ("0", "norm.weight"): "norm1.weight",
    ("0", "norm.bias"): "norm1.bias",
    ("0", "fn.to_qkv.weight"): "self_attn.qkv.weight",
    ("0", "fn.to_out.0.weight"): "self_attn.out.weight",
    ("0", "fn.to_out.0.bias"): "self_attn.out.bias",
    ("1", "norm.weight"): "norm2.weight",
    ("1", "norm.bias"): "norm2.bias",
    ("1", "fn.to_q.weight"): "cross_attn.q.weight",
    ("1", "fn.to_kv.weight"): "cross_attn.kv.weight",
    ("1", "fn.to_out.0.weight"): "cross_attn.out.weight",
    ("1", "fn.to_out.0.bias"): "cross_attn.out.bias",
    ("2", "norm.weight"): "norm3.weight",
    ("2", "norm.bias"): "norm3.bias",
    ("2", "fn.net.0.weight"): "mlp.0.weight",
    ("2", "fn.net.0.bias"): "mlp.0.bias",
    ("2", "fn.net.3.weight"): "mlp.2.weight",
    ("2", "fn.net.3.bias"): "mlp.2.bias",
}
_DIRECT = {
    "backbone.encoder.cls_token": "backbone.embeddings.cls_token",
    "backbone.encoder.mask_token": "backbone.embeddings.mask_token",
    "backbone.encoder.patch_embed.proj.weight": "backbone.embeddings.patch_embeddings.projection.weight",
    "backbone.encoder.patch_embed.proj.bias": "backbone.embeddings.patch_embeddings.projection.bias",
    "backbone.encoder.norm.weight": "backbone.layernorm.weight",
    "backbone.encoder.norm.bias": "backbone.layernorm.bias",
    "mlp_classif.0.weight": "person_score.0.weight",
    "mlp_classif.0.bias": "person_score.0.bias",
    "mlp_classif.2.weight": "person_score.2.weight",
    "mlp_classif.2.bias": "person_score.2.bias",
    "mlp_offset.0.weight": "center_offset.0.weight",
    "mlp_offset.0.bias": "center_offset.0.bias",
    "mlp_offset.2.weight": "center_offset.2.weight",
    "mlp_offset.2.bias": "center_offset.2.bias",
    # upstream's cross_queries_x / _values_x are indexed by the patch row, _y by the column
    "x_attention_head.cross_queries_x": "head.query_rows",
    "x_attention_head.cross_queries_y": "head.query_cols",
    "x_attention_head.cross_values_x": "head.value_rows",
    "x_attention_head.cross_values_y": "head.value_cols",
    "x_attention_head.transformer.to_token_embedding.weight": "head.token_in.weight",
    "x_attention_head.transformer.to_token_embedding.bias": "head.token_in.bias",
    "x_attention_head.decpose.weight": "head.pose_out.weight",
    "x_attention_head.decpose.bias": "head.pose_out.bias",
    "x_attention_head.decshape.weight": "head.betas_out.weight",
    "x_attention_head.decshape.bias": "head.betas_out.bias",
    "x_attention_head.deccam.weight": "head.camera_out.weight",
    "x_attention_head.deccam.bias": "head.camera_out.bias",
    "x_attention_head.decexpression.weight": "head.expression_out.weight",
    "x_attention_head.decexpression.bias": "head.expression_out.bias",
}
_FLATTENED = {  # stored with leading singleton dimensions ([1, n] or [1, 1, n]); ours are [n]
    "x_attention_head.transformer.pos_embedding": "head.token_offset",
    "x_attention_head.init_body_pose": "head.mean_pose",
    "x_attention_head.init_betas": "head.mean_betas",
    "x_attention_head.init_cam": "head.mean_camera",
    "x_attention_head.init_expression": "head.mean_expression",
}
POSITION_KEY = "backbone.encoder.pos_embed"


def our_keys(release_key: str) -> list[str] | None:
    """Our names for a release key (three for a fused qkv); None for a documented ignore; KeyError if unknown."""
    if release_key in _DIRECT:
        return [_DIRECT[release_key]]
    if release_key in _FLATTENED:
        return [_FLATTENED[release_key]]
    if release_key == POSITION_KEY:
        return ["backbone.embeddings.position_embeddings"]
    if release_key in IGNORED_REASONS:
        return None
    if (match := _SMPL_LAYER.match(release_key)) and match.group(1) in SMPLX_MODULE_KEYS:
        return None
    if match := _BLOCK.match(release_key):
        index, part = match.groups()
        prefix = f"backbone.encoder.layer.{index}."
        if part in _BLOCK_PARTS:
            return [prefix + _BLOCK_PARTS[part]]
        if part in _QKV_PARTS:
            return [f"{prefix}attention.{p}_proj.{_QKV_PARTS[part]}" for p in "qkv"]
    if match := _HEAD_LAYER.match(release_key):
        index, sub, part = match.groups()
        if (sub, part) in _HEAD_LAYER_PARTS:
            return [f"head.layers.{index}.{_HEAD_LAYER_PARTS[(sub, part)]}"]
    raise KeyError(release_key)


def resample_positions(stored: torch.Tensor, grid: int) -> torch.Tensor:
    """DINOv2 position embeddings [1, 1 + M*M, D] -> [1, 1 + grid*grid, D], as DINOv2's own code resamples them."""
    side = math.isqrt(stored.shape[1] - 1)
    if side == grid:
        return stored
    patches = stored[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = (grid + POSITION_OFFSET) / side
    resampled = F.interpolate(patches, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    resampled = resampled.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat([stored[:, :1].float(), resampled], dim=1).to(stored.dtype)


def convert_state_dict(
    state: dict[str, torch.Tensor], config: MultiHMRConfig, source: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Release weights -> ours (renamed, qkv split, position embeddings resampled), and the ignored keys."""
    ours: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    for key, tensor in state.items():
        try:
            names = our_keys(key)
        except KeyError:
            unknown.append(key)
            continue
        if names is None:
            ignored.append(key)
        elif len(names) == 3:
            for name, part in zip(names, tensor.chunk(3, dim=0), strict=True):
                ours[name] = part
        elif key == POSITION_KEY:
            ours[names[0]] = resample_positions(tensor, config.grid)
        elif key in _FLATTENED:
            ours[names[0]] = tensor.reshape(-1)
        else:
            ours[names[0]] = tensor
    if unknown:
        raise ModelFileError(
            f"{source.name}: {len(unknown)} weights match no part of Multi-HMR, e.g. {', '.join(sorted(unknown)[:5])}.",
            f"This is not a Multi-HMR SMPL-X release this software knows; use {RELEASE_FILENAME} from {RELEASE_PAGE}.",
        )
    return ours, ignored


# ---- reading the file ---------------------------------------------------------------------------------------


@dataclass
class ReleaseCheckpoint:
    """What a release file holds, read without running code."""

    path: Path
    args: dict[str, Any]  # the training script's argparse.Namespace, as a dict
    state: dict[str, torch.Tensor]  # upstream key -> tensor (memory-mapped when the file allows it)
    extras: dict[str, Any] = field(default_factory=dict)  # epoch, iter, scaler, best_val, ...

    @property
    def demo(self) -> bool:
        return bool(self.args.get(DEMO_MARKER_ARG))


def _file_kind(path: Path) -> str:
    """What the first bytes say the file is, for errors about files that are not a torch checkpoint."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK"):
        return "a zip archive"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file"
    if head.startswith(b"\x80"):
        return "a pickle file"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy file"
    return "an unknown file type"


def _refused_globals_family(names: list[str]) -> str:
    joined = " ".join(names)
    if "lightning" in joined or "omegaconf" in joined:
        return (
            "a PyTorch Lightning checkpoint (how other human-mesh models such as 4D-Humans/HMR 2.0 or CameraHMR "
            "are saved), not a Multi-HMR release"
        )
    if "mmcv" in joined or "mmengine" in joined:
        return "an OpenMMLab checkpoint (e.g. ViTPose or SMPLer-X), not a Multi-HMR release"
    return "not a Multi-HMR release (those hold only weights, numbers and the training args)"


def identify_family(obj: object) -> str | None:
    """None for a Multi-HMR SMPL-X release; otherwise what the loaded object looks like instead."""
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__} object, not a checkpoint dictionary"
    keys = [k for k in obj if isinstance(k, str)]
    if "model_state_dict" in obj and isinstance(obj["model_state_dict"], dict):
        state_keys = [k for k in obj["model_state_dict"] if isinstance(k, str)]
        if any(k.startswith(("mlp_pose.", "body_model.", "dec_to_token.")) for k in state_keys):
            return (
                "a Multi-HMR checkpoint for the Anny body model (e.g. multiHMR_672_L_anny), which predicts Anny, "
                "not SMPL-X"
            )
        if not any(k.startswith("x_attention_head.") for k in state_keys) or not any(
            k.startswith("backbone.encoder.") for k in state_keys
        ):
            return (
                f"a checkpoint whose weights are not Multi-HMR's (e.g. {', '.join(sorted(state_keys)[:3]) or 'none'})"
            )
        if "args" not in obj:
            return "a Multi-HMR checkpoint without its stored training args"
        return None
    if "state_dict_model" in obj:
        return (
            "an early Multi-HMR 672 checkpoint saved without its training args (download it again; upstream issue #25)"
        )
    if "pytorch-lightning_version" in obj:
        return "a PyTorch Lightning checkpoint (e.g. 4D-Humans/HMR 2.0 or CameraHMR), not a Multi-HMR release"
    if "state_dict" in obj and "meta" in obj:
        return "an OpenMMLab checkpoint (e.g. ViTPose or SMPLer-X), not a Multi-HMR release"
    if keys and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sample = ", ".join(sorted(keys)[:3])
        if any(k.startswith(("blocks.", "patch_embed.")) for k in keys):
            return f"bare ViT/DINOv2 weights ({sample}, ...), not a Multi-HMR release"
        return f"a bare state dict ({sample}, ...), not a Multi-HMR release"
    return f"a dictionary with keys {', '.join(sorted(keys)[:6]) or '(none)'}, not a Multi-HMR release"


def missing_release_error(path: Path) -> ModelFilesMissingError:
    folder = path.parent
    others = sorted(p.name for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    found = f" The folder holds {', '.join(others[:5])}, which is not read (only {path.name} is)." if others else ""
    return ModelFilesMissingError(
        f"Multi-HMR checkpoint {path.name} not found in {folder}.{found}",
        f"Optional: download {RELEASE_FILENAME} ({RELEASE_URL}; licence CC BY-NC-SA 4.0, non-commercial) and put it "
        f"at {path}. Without it the body is fitted from keypoints alone.",
    )


def read_release(path: Path) -> ReleaseCheckpoint:
    """Reads a release file safely and checks it is Multi-HMR for SMPL-X. Raises ModelFilesMissingError or
    ModelFileError (saying what the file is instead when it is another model family)."""
    path = Path(path)
    if not path.is_file():
        raise missing_release_error(path)
    hint = f"Use {RELEASE_FILENAME} as downloaded from {RELEASE_PAGE}."
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):  # legacy (non-zip) torch files cannot be mapped
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            refused = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            refused = []
        if refused:
            raise ModelFileError(
                f"{path.name} needs Python classes to load ({', '.join(refused[:4])}), which are never run here: "
                f"it is {_refused_globals_family(refused)}.",
                hint,
            ) from exc
        raise ModelFileError(f"{path.name} is not a PyTorch checkpoint ({_file_kind(path)}; {exc}).", hint) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelFileError(
            f"{path.name} cannot be read as a PyTorch checkpoint ({_file_kind(path)}): it is damaged, truncated or "
            f"another kind of file ({str(exc).splitlines()[0][:160]}).",
            hint + " If the download was cut short, download it again.",
        ) from exc
    family = identify_family(obj)
    if family is not None:
        raise ModelFileError(f"{path.name} is {family}.", hint)
    args = obj["args"]
    if not isinstance(args, argparse.Namespace):
        raise ModelFileError(f"{path.name}: its 'args' is a {type(args).__name__}, not the training arguments.", hint)
    state = obj["model_state_dict"]
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelFileError(f"{path.name}: model_state_dict holds non-tensor entries ({bad[:3]}).", hint)
    extras = {k: v for k, v in obj.items() if k not in ("args", "model_state_dict")}
    return ReleaseCheckpoint(path, vars(args).copy(), state, extras)


# ---- the configuration from args and shapes ----------------------------------------------------------------


def _arg(args: dict[str, Any], name: str, default: Any) -> Any:
    """An args value, with upstream Model's default when the release did not store it."""
    return args.get(name, default)


def config_from_release(release: ReleaseCheckpoint) -> MultiHMRConfig:
    """The architecture: switches from the stored args (upstream's defaults where absent), sizes from shapes."""
    args, state, name = release.args, release.state, release.path.name
    hint = f"Use {RELEASE_FILENAME} as downloaded from {RELEASE_PAGE}."

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise ModelFileError(f"{name}: the weight {key} is missing.", hint + " The file may be incomplete.")
        return tuple(state[key].shape)

    backbone = _arg(args, "backbone", "dinov2_vitb14")
    if not isinstance(backbone, str) or not BACKBONE_NAME.match(backbone):
        raise ModelFileError(f"{name}: backbone {backbone!r} is not a DINOv2 ViT/14 without registers.", hint)
    size = _arg(args, "img_size", 896)
    sizes = list(size) if isinstance(size, list | tuple) else [size]
    if not sizes or any(not isinstance(s, int) for s in sizes) or len(set(sizes)) != 1:
        raise ModelFileError(f"{name}: img_size {size!r} is not one square input size.", hint)
    if _arg(args, "camera_embedding", "geometric") != "geometric":
        raise ModelFileError(
            f"{name}: camera_embedding {args.get('camera_embedding')!r}; only 'geometric' exists.", hint
        )
    person_center = _arg(args, "person_center", "head")
    if person_center not in PERSON_CENTERS:
        raise ModelFileError(
            f"{name}: person_center {person_center!r} is not one of {', '.join(PERSON_CENTERS)}.", hint
        )
    heads = int(_arg(args, "xat_num_heads", 8))
    hidden = shape("backbone.encoder.cls_token")[-1]
    q_rows = shape("x_attention_head.transformer.transformer.layers.0.1.fn.to_q.weight")[0]
    if heads <= 0 or q_rows % heads:
        raise ModelFileError(f"{name}: {q_rows} attention channels do not split into {heads} heads.", hint)
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    layers = {int(m.group(1)) for k in state if (m := _HEAD_LAYER.match(k))}
    positions = shape(POSITION_KEY)[1] - 1
    mlp_rows = shape("backbone.encoder.blocks.0.mlp.fc1.weight")[0]
    if math.isqrt(positions) ** 2 != positions or not blocks or not layers or mlp_rows % hidden:
        raise ModelFileError(f"{name}: the backbone or head weights are incomplete or of unknown shapes.", hint)
    try:
        config = MultiHMRConfig(
            image_size=sizes[0],
            patch_size=shape("backbone.encoder.patch_embed.proj.weight")[-1],
            backbone_hidden=hidden,
            backbone_layers=max(blocks) + 1,
            backbone_mlp_ratio=mlp_rows // hidden,
            backbone_position_grid=math.isqrt(positions),
            camera_bands=int(_arg(args, "camera_embedding_num_bands", 16)),
            camera_max_resolution=int(_arg(args, "camera_embedding_max_resolution", 64)),
            head_width=shape("x_attention_head.transformer.to_token_embedding.weight")[0],
            head_depth=max(layers) + 1,
            head_heads=heads,
            head_channels_per_head=q_rows // heads,
            head_mlp=shape("x_attention_head.transformer.transformer.layers.0.2.fn.net.0.weight")[0],
            num_betas=shape("x_attention_head.decshape.weight")[0],
            person_center=person_center,
            nearness=bool(_arg(args, "nearness", True)),
        )
    except ValueError as exc:
        raise ModelFileError(f"{name}: {exc}.", hint) from exc
    if config.num_betas not in (10, 11):
        raise ModelFileError(
            f"{name}: {config.num_betas} shape coefficients; Multi-HMR uses 10 (or 11 with kids).", hint
        )
    return config


# ---- building the model ------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What loading did, for logs, notes and tests."""

    path: Path
    config: MultiHMRConfig
    ignored_keys: list[str]
    demo: bool
    dtype: torch.dtype
    device: torch.device


def load_multihmr(
    path: Path, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[MultiHMRModel, LoadReport]:
    """The network from a release file, every weight accounted for. Raises ModelFilesMissingError / ModelFileError."""
    release = read_release(Path(path))
    config = config_from_release(release)
    tensors, ignored = convert_state_dict(release.state, config, release.path)
    with torch.device("meta"):
        model = MultiHMRModel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise ModelFileError(
            f"{release.path.name}: the weights do not fit the Multi-HMR network its args and shapes describe"
            + (f"; missing {len(missing)}: {', '.join(missing[:5])}" if missing else "")
            + (f"; unexpected {len(unexpected)}: {', '.join(unexpected[:5])}" if unexpected else "")
            + (
                f"; wrong shape: {', '.join(f'{k} {tuple(tensors[k].shape)} vs {expected[k]}' for k in wrong[:3])}"
                if wrong
                else ""
            )
            + ".",
            f"The file is damaged or not a release this software knows; use {RELEASE_FILENAME} from {RELEASE_PAGE}.",
        )
    device = torch.device(device)
    model.load_state_dict({k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}, strict=True, assign=True)
    model.requires_grad_(False)
    model.eval()
    return model, LoadReport(release.path, config, ignored, release.demo, dtype, device)
