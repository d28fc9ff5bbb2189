"""A tiny LLaMA-like tokenizer the project trains itself, written in the InteractVLM release layout.

The real release ships LLaMA-2's SentencePiece `tokenizer.model` (32000 pieces) plus added tokens. Tests and
the demo need the same kind of folder without the licensed file, so this trains a small SentencePiece model
with LLaMA's settings (BPE, byte fallback, dummy prefix, identity normalisation, digits split, `<unk>`=0,
`<s>`=1, `</s>`=2, no pad piece) on a built-in corpus of our prompts, answers, body parts and object names,
and writes the files a transformers-4.31-era LLaMA tokenizer folder has (`tokenizer.model`,
`added_tokens.json`, `special_tokens_map.json`, `tokenizer_config.json`).

Training is deterministic (one thread, fixed corpus order) and takes well under a second.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from ivlm_core.fileio import atomic_path
from ivlm_core.localize import prompts as P

VOCAB_SIZE = 700  # 3 control + 256 byte pieces + learned merges: enough that template words are whole pieces
TOKEN_TYPES = ("Gen", "Gen-Hu-Obj")

OBJECT_LABELS = (
    "chair",
    "mug",
    "ball",
    "bench",
    "bottle",
    "bicycle",
    "tennis_racket",
    "skateboard",
    "surfboard",
    "sports_ball",
    "couch",
    "bed",
    "cup",
    "knife",
    "laptop",
    "umbrella",
    "motorcycle",
    "horse",
    "scene",
    "dining_table",
)
BODY_PARTS = (
    "head",
    "neck",
    "torso",
    "hips",
    "left hand",
    "right hand",
    "left arm",
    "right arm",
    "left forearm",
    "right forearm",
    "left foot",
    "right foot",
    "left leg",
    "right leg",
    "left thigh",
    "right thigh",
    "buttocks",
    "back",
    "leftHand",
    "rightHand",
    "leftFoot",
    "rightFoot",
)
AFFORDANCES = ("grasp", "sit", "lay", "support", "wrap_grasp", "contain", "open", "pour", "cut", "lift", "ride", "kick")


def _corpus() -> list[str]:
    """Sentences in a fixed order: the system text, every question per label, every answer template filled
    with a few parts/affordances, and the bare names. Seg tokens are left out (they are added tokens)."""
    lines = [P.SYSTEM_PROMPT]
    for label in OBJECT_LABELS:
        for style in P.PROMPT_STYLES:
            lines += [question.format(label=label) for question in P.QUESTIONS[style].values()]
    for i, template in enumerate(P.HCONTACT_PARTS_ANSWERS):
        parts = ", ".join(BODY_PARTS[i : i + 3])
        lines.append(template.format(body_parts=parts, seg="").rstrip(" ."))
    for i, template in enumerate(P.OAFFORD_AFFORD_ANSWERS + P.OAFFORD_AFFORD_OBJ_ANSWERS):
        affordance = AFFORDANCES[i % len(AFFORDANCES)]
        label = OBJECT_LABELS[i % len(OBJECT_LABELS)]
        lines.append(template.format(affordance=affordance, label=label, seg="").rstrip(" ."))
    for template in P.HCONTACT_SIMPLE_ANSWERS + P.OCONTACT_SIMPLE_ANSWERS:
        lines.append(template.format(seg="").rstrip(" ."))
    lines += [", ".join(BODY_PARTS), ", ".join(OBJECT_LABELS), ", ".join(AFFORDANCES), "USER: ASSISTANT: 0123456789"]
    return lines


def train_tiny_sentencepiece() -> bytes:
    """The serialized SentencePiece model proto (what `tokenizer.model` holds), trained deterministically."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        byte_fallback=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return buffer.getvalue()


def added_tokens_for(token_type: str, vocab_size: int) -> dict[str, int]:
    """The added tokens and their ids for `token_type`, in the release's order: LISA added `[SEG]`, `<im_start>`,
    `<im_end>` right after the SentencePiece vocabulary (32000-32002 on LLaMA); InteractVLM's `Gen-Hu-Obj`
    then appended `[HSEG]`, `[OSEG]` (32003, 32004)."""
    if token_type not in TOKEN_TYPES:
        raise ValueError(f"token_type must be one of {TOKEN_TYPES}, got {token_type!r}")
    names = [P.SEG_TOKEN, P.IM_START_TOKEN, P.IM_END_TOKEN]
    if token_type == "Gen-Hu-Obj":
        names += [P.HSEG_TOKEN, P.OSEG_TOKEN]
    return {name: vocab_size + i for i, name in enumerate(names)}


def _special(content: str) -> dict[str, object]:
    # How 4.31 serialises the AddedToken LlamaTokenizer makes of bos/eos/unk (lstrip/rstrip off).
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_tiny_tokenizer(folder: Path, token_type: str = "Gen") -> dict[str, int]:
    """Trains the tiny tokenizer and writes a release-format tokenizer folder; returns the added-token ids
    (`[SEG]` = SentencePiece vocab size, then `<im_start>`, `<im_end>`, and `[HSEG]`, `[OSEG]` for Gen-Hu-Obj)."""
    import sentencepiece as spm

    model = train_tiny_sentencepiece()
    vocab_size = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    added = added_tokens_for(token_type, vocab_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "tokenizer.model") as tmp:
        tmp.write_bytes(model)
    _write_json(folder / "added_tokens.json", added)
    _write_json(
        folder / "special_tokens_map.json",
        {
            "bos_token": _special("<s>"),
            "eos_token": _special("</s>"),
            "unk_token": _special("<unk>"),
            "pad_token": "<unk>",  # upstream sets pad_token = unk_token before saving
        },
    )
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "LlamaTokenizer",
            "add_bos_token": True,
            "add_eos_token": False,
            "bos_token": {"__type": "AddedToken", **_special("<s>")},
            "eos_token": {"__type": "AddedToken", **_special("</s>")},
            "unk_token": {"__type": "AddedToken", **_special("<unk>")},
            "pad_token": None,
            "clean_up_tokenization_spaces": False,
            "legacy": True,
            "model_max_length": 512,
            "padding_side": "right",
            "sp_model_kwargs": {},
        },
    )
    return added
