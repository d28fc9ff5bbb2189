"""A release's `config.json`: the fields that decide the network, checked, with InteractVLM's model zoo.

Spec §1.7 and §1.10. Release configs are LLaVA configs (model_type "llava") written by transformers 4.31
plus InteractVLM's fields. Sizes come from the config and are cross-checked against the weights later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivlm_core.errors import ModelFileError, ModelFilesMissingError

INTERACTVLM_SITE = "https://interactvlm.is.tue.mpg.de"
CONFIG_FILE = "config.json"

# Config names for the canonical human views (spec P12: `_wScene` was renamed `_FootGround` upstream; `_mv2`
# only changed how training masks were made). All share one geometry, so they resolve to the same views.
HUMAN_VIEW_TYPES = {
    "4MV-Z_Vitru": "human",
    "4MV-Z_Vitru_mv2": "human",
    "4MV-Z_Vitru_wScene": "human",
    "4MV-Z_Vitru_FootGround": "human",
}
OBJECT_VIEW_TYPES = {"4MV-Z_HM": "object", "4MV-Z_HM_BM": "object"}
TOKEN_TYPES = ("Gen", "Gen-Hu-Obj", "Gen-Int")
CAMERA_ENCODERS = ("simple", "view_index", "vi_v1")


def _hint_download(folder: Path) -> str:
    return (
        f"Download the InteractVLM release (registration at {INTERACTVLM_SITE}) and unzip it so that "
        f"{folder} holds config.json, the pytorch_model-*.bin shards with their index, and the tokenizer files."
    )


@dataclass(frozen=True)
class ReleaseConfig:
    """What the loader needs from a release's config.json. Field names follow the spec's tables."""

    folder: Path
    raw: dict[str, Any]
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    max_position_embeddings: int
    rope_theta: float
    token_type: str  # "Gen", "Gen-Hu-Obj" or "Gen-Int" (a "-DifDe" suffix is kept in separate_decoders)
    separate_decoders: bool
    seg_token_idx: int
    hseg_token_idx: int | None
    oseg_token_idx: int | None
    img_emb_len: int
    num_views: int
    camera_conditioned: bool
    camera_encoder: str
    human_view_type: str | None
    object_view_type: str | None
    human_contact: bool  # hC_loss_weight > 0: the release lifts human contact
    object_contact: bool  # oC_loss_weight > 0: the release lifts object contact
    human_question_type: str
    object_question_type: str
    mm_hidden_size: int
    vision_select_layer: int
    out_dim: int
    bos_token_id: int
    eos_token_id: int

    @property
    def is_2d(self) -> bool:
        """The 2D human-contact model segments the photo itself (one view)."""
        return self.num_views == 1

    @property
    def release_kind(self) -> str:
        """Which model-zoo entry this config looks like (spec §1.10)."""
        if self.is_2d:
            return "h2dcontact"
        if self.token_type == "Gen-Hu-Obj":
            return "hcontact-ocontact"
        if self.human_contact and self.human_view_type in ("4MV-Z_Vitru_wScene", "4MV-Z_Vitru_FootGround"):
            return "hcontact-wScene"
        if self.human_contact:
            return "hcontact"
        return "oafford"

    @property
    def seg_token_ids(self) -> tuple[int, ...]:
        """Token ids that carry a segmentation embedding, in the order upstream checks them."""
        ids = [self.seg_token_idx]
        if self.token_type in ("Gen-Hu-Obj", "Gen-Int"):
            ids += [i for i in (self.hseg_token_idx, self.oseg_token_idx) if i is not None]
        return tuple(ids)


def _field(raw: dict, path: Path, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in raw or raw[name] is None:
        if default is ...:
            raise ModelFileError(
                f"{path}: the field '{name}' is missing.",
                "This does not look like an InteractVLM release config; re-extract the release zip.",
            )
        return default
    value = raw[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ModelFileError(
            f"{path}: the field '{name}' is {value!r}, expected {getattr(kind, '__name__', kind)}.",
            "Re-extract the release zip; the config appears edited or damaged.",
        )
    return value


def load_release_config(folder: Path) -> ReleaseConfig:
    """Reads and checks `<folder>/config.json`. Errors name the file and the field, and say how to fix it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFilesMissingError(f"InteractVLM release folder {folder} does not exist.", _hint_download(folder))
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelFilesMissingError(
            f"{path} is missing: {folder} is not a complete release folder.", _hint_download(folder)
        )
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}).", "Re-extract the release zip.") from exc
    token_type = _field(raw, path, "token_type", str, "Gen")
    base_type = token_type.replace("-DifDe", "")
    if base_type not in TOKEN_TYPES:
        raise ModelFileError(
            f"{path}: token_type '{token_type}' is not one of {', '.join(TOKEN_TYPES)} (optionally with -DifDe).",
            "Re-extract the release zip.",
        )
    num_views = _field(raw, path, "multiview_channels", int, 4)
    camera_conditioned = bool(_field(raw, path, "multiview_cam_cond", bool, False))
    camera_encoder = _field(raw, path, "cam_encoder_type", str, "simple")
    if camera_conditioned and camera_encoder not in CAMERA_ENCODERS:
        raise ModelFileError(
            f"{path}: cam_encoder_type '{camera_encoder}' is not one of {', '.join(CAMERA_ENCODERS)}.",
            "Re-extract the release zip.",
        )
    human_view_type = _field(raw, path, "hC_sam_view_type", str, None)
    object_view_type = _field(raw, path, "oC_sam_view_type", str, None)
    human_contact = float(_field(raw, path, "hC_loss_weight", (int, float), 0.0)) > 0
    object_contact = float(_field(raw, path, "oC_loss_weight", (int, float), 0.0)) > 0
    for name, value, known, used in (
        ("hC_sam_view_type", human_view_type, HUMAN_VIEW_TYPES, human_contact),
        ("oC_sam_view_type", object_view_type, OBJECT_VIEW_TYPES, object_contact),
    ):
        if used and num_views > 1 and value not in known:
            raise ModelFileError(
                f"{path}: {name} '{value}' is not a view set we know ({', '.join(known)}).",
                "Re-extract the release zip, or report the name if the release is newer than this software.",
            )
    seg = _field(raw, path, "seg_token_idx", int)
    hseg = _field(raw, path, "hseg_token_idx", int, None)
    oseg = _field(raw, path, "oseg_token_idx", int, None)
    if base_type in ("Gen-Hu-Obj", "Gen-Int") and (hseg is None or oseg is None):
        raise ModelFileError(
            f"{path}: token_type {token_type} needs hseg_token_idx and oseg_token_idx.", "Re-extract the release zip."
        )
    hidden = _field(raw, path, "hidden_size", int)
    heads = _field(raw, path, "num_attention_heads", int)
    return ReleaseConfig(
        folder=folder,
        raw=raw,
        hidden_size=hidden,
        num_hidden_layers=_field(raw, path, "num_hidden_layers", int),
        num_attention_heads=heads,
        num_key_value_heads=_field(raw, path, "num_key_value_heads", int, heads),
        intermediate_size=_field(raw, path, "intermediate_size", int),
        vocab_size=_field(raw, path, "vocab_size", int),
        rms_norm_eps=float(_field(raw, path, "rms_norm_eps", (int, float), 1e-5)),
        max_position_embeddings=_field(raw, path, "max_position_embeddings", int, 4096),
        rope_theta=float(_field(raw, path, "rope_theta", (int, float), 10000.0)),
        token_type=base_type,
        separate_decoders=token_type.endswith("-DifDe"),
        seg_token_idx=seg,
        hseg_token_idx=hseg,
        oseg_token_idx=oseg,
        img_emb_len=_field(raw, path, "img_emb_len", int, 255),
        num_views=num_views,
        camera_conditioned=camera_conditioned,
        camera_encoder=camera_encoder,
        human_view_type=human_view_type,
        object_view_type=object_view_type,
        human_contact=human_contact,
        object_contact=object_contact,
        human_question_type=_field(raw, path, "hC_question_type", str, "parts"),
        object_question_type=_field(raw, path, "oC_question_type", str, "afford"),
        mm_hidden_size=_field(raw, path, "mm_hidden_size", int, 1024),
        vision_select_layer=_field(raw, path, "mm_vision_select_layer", int, -2),
        out_dim=_field(raw, path, "out_dim", int, 256),
        bos_token_id=_field(raw, path, "bos_token_id", int, 1),
        eos_token_id=_field(raw, path, "eos_token_id", int, 2),
    )


RELEASE_ROLES = {  # which model-zoo kinds can fill a role in the pipeline
    "human": ("hcontact", "hcontact-wScene"),
    "object": ("oafford",),
    "joint": ("hcontact-ocontact",),
}
_ROLE_WORDS = {
    "human": "the human-contact release (e.g. interactvlm-3d-hcontact-damon-fix)",
    "object": "the object-affordance release (interactvlm-3d-oafford-lemon-piad)",
    "joint": "the joint human+object release (interactvlm-3d-hcontact-ocontact, [HSEG]/[OSEG] tokens)",
}


def check_release_role(config: ReleaseConfig, role: str) -> None:
    """Raises ModelFileError when the release in `config.folder` is not the kind `role` needs: a joint release where
    a single-mode one is expected, a single-mode one where the joint one is expected, or the wrong single mode."""
    kind = config.release_kind
    if kind in RELEASE_ROLES[role]:
        return
    what = next((words for name, words in _ROLE_WORDS.items() if kind in RELEASE_ROLES[name]), f"a '{kind}' release")
    if role == "joint":
        hint = "Put the joint release (token_type Gen-Hu-Obj) in this folder, or choose a 'separate' configuration."
    elif kind in RELEASE_ROLES["joint"]:
        hint = "The joint release answers both modes with one model: choose a 'joint' configuration instead."
    else:
        hint = f"Put {_ROLE_WORDS[role]} in this folder."
    raise ModelFileError(
        f"{config.folder} holds {what} (token_type {config.token_type}), but it is used as {_ROLE_WORDS[role]}.", hint
    )
