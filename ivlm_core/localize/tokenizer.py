"""The release tokenizer, read with SentencePiece itself and encoding exactly as upstream did.

InteractVLM (and LISA/LLaVA before it) tokenised prompts with transformers 4.31's *slow* `LlamaTokenizer`
(`use_fast=False`, training and evaluation pass `legacy=True`) and LLaVA's `tokenizer_image_token`.
transformers 5 has no slow tokenizers, so `ReleaseTokenizer` re-implements the few rules our prompts touch
on top of the `sentencepiece` library, from the 4.31 sources (file/line numbers are transformers v4.31.0):

1. `tokenizer_image_token` (LLaVA `mm_utils.py`): split the prompt on `<image>`, tokenise every chunk with
   `tokenizer(chunk).input_ids` (so each starts with BOS), keep the first chunk's BOS only, and put
   `IMAGE_TOKEN_INDEX = -200` between chunks.
2. `tokenizer(chunk)` -> `PreTrainedTokenizer.tokenize` (`tokenization_utils.py` l.481-549):
   - the text is cut around every "no split" token with a trie that matches the longest token first
     (l.517). The no-split tokens are the added tokens of `added_tokens.json` plus the special tokens
     (`<s>`, `</s>`, `<unk>`, additional specials), which `sanitize_special_tokens` registers at load
     (`tokenization_utils_base.py` l.2077).
   - whitespace (Python's `str.strip` notion, so "\\n" too) next to such a token is removed (l.519-537):
     a token that is an `AddedToken` among the *special* tokens follows its own `lstrip`/`rstrip` flags;
     **every other no-split token strips both neighbours** ("We strip left and right by default"). The
     added tokens `[SEG]`, `<im_start>`, `<im_end>`, `[HSEG]`, `[OSEG]` are plain added tokens (LISA and
     InteractVLM call `add_tokens`, never `add_special_tokens`, and 4.31's `save_pretrained` writes no
     `additional_special_tokens` for them), so they strip both sides. LLaMA's `<s>`/`</s>`/`<unk>` are
     `AddedToken(lstrip=False, rstrip=False)` and strip nothing. Consequences for our prompt: the space in
     "USER: <im_start>" and the "\\n" in "<im_end>\\nWhich ..." never reach SentencePiece.
   - each remaining text piece goes to `LlamaTokenizer._tokenize` (`models/llama/tokenization_llama.py`
     l.177-196), which with `legacy=True` is just `sp_model.encode(text, out_type=str)`: SentencePiece adds
     its dummy prefix "▁" to *every* piece, including the one right after an added token. Pieces become ids
     with `piece_to_id`; added tokens take their `added_tokens.json` id.
   - `build_inputs_with_special_tokens` (l.253) prepends BOS (`add_bos_token=True`, `add_eos_token=False`).
3. Loading (`tokenization_utils_base.py` `_from_pretrained`, l.2017-2074): `special_tokens_map.json` values
   override the config's (a dict becomes an `AddedToken`, a plain string stays a string); the added tokens'
   ids must be consecutive from the SentencePiece vocabulary size ("Non-consecutive added token").

The ids of added tokens are never found by tokenising their text (LISA issue #55: "[SEG]" tokenises to
[29871, 32000]); they are the ones in `added_tokens.json`, checked against the ids `config.json` names.

`legacy=False` (which a folder's `tokenizer_config.json` may state, and which a loader that does not pass
`legacy=True` uses, e.g. upstream's `run_demo.py`) removes the dummy-prefix "▁" from the first piece of
every text piece that follows an added token, so "\nWhich" after `<im_end>` gives the piece "Which", or
`<unk>` where LLaMA has no such piece (LISA issue #193: "Birds" -> `<unk>`, "s"). Training used
`legacy=True`; `legacy=False` is not implemented here. `folder_legacy` reports what the folder says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivlm_core.errors import ModelFileError
from ivlm_core.localize.prompts import (
    HSEG_TOKEN,
    IM_END_TOKEN,
    IM_START_TOKEN,
    IMAGE_TOKEN,
    IMAGE_TOKEN_INDEX,
    ISEG_TOKEN,
    OSEG_TOKEN,
    SEG_TOKEN,
)

TOKENIZER_MODEL = "tokenizer.model"
ADDED_TOKENS = "added_tokens.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
TOKENIZER_CONFIG = "tokenizer_config.json"

# transformers 4.31 SpecialTokensMixin.SPECIAL_TOKENS_ATTRIBUTES, in its order (later AddedTokens win).
_SPECIAL_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
    "additional_special_tokens",
)
_LLAMA_DEFAULTS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
_RELEASE_HINT = (
    "Use the tokenizer files shipped in the InteractVLM release folder (tokenizer.model, added_tokens.json, "
    "special_tokens_map.json, tokenizer_config.json), unmodified, next to its config.json."
)


@dataclass(frozen=True)
class _Flags:
    """Whether a no-split token eats the whitespace on its left / right."""

    lstrip: bool
    rstrip: bool


_STRIP_BOTH = _Flags(True, True)


class ReleaseTokenizer:
    """A release folder's LLaMA tokenizer: SentencePiece plus the added tokens, encoding like transformers
    4.31's slow `LlamaTokenizer(legacy=True)` (see the module docstring for the exact rules). Build it with
    `ReleaseTokenizer.from_folder`, which checks the files against the model config."""

    def __init__(
        self,
        sp: Any,
        added_tokens: dict[str, int],
        special_tokens: dict[str, _Flags | None],
        bos_token: str,
        eos_token: str,
        unk_token: str,
        clean_up_tokenization_spaces: bool,
        folder_legacy: bool | None,
        seg_ids: dict[str, int | None],
    ) -> None:
        self._sp = sp
        self._added = dict(added_tokens)
        self._added_by_id = {i: t for t, i in added_tokens.items()}
        self._clean_up = clean_up_tokenization_spaces
        self.folder_legacy = folder_legacy
        self.bos_token, self.eos_token, self.unk_token = bos_token, eos_token, unk_token
        self._special_ids = {self._single_id(t) for t in special_tokens}
        # No-split tokens: added tokens strip both sides; special tokens follow their AddedToken flags.
        self._flags: dict[str, _Flags] = {t: _STRIP_BOTH for t in added_tokens}
        for token, flags in special_tokens.items():
            self._flags[token] = flags if flags is not None else _STRIP_BOTH
        # Longest first at each position, like 4.31's trie.
        ordered = sorted(self._flags, key=lambda t: (-len(t), t))
        self._splitter = re.compile("(" + "|".join(re.escape(t) for t in ordered) + ")")
        self.seg_token_idx = seg_ids["seg"]
        self.hseg_token_idx = seg_ids["hseg"]
        self.oseg_token_idx = seg_ids["oseg"]
        self.im_start_id = self._added[IM_START_TOKEN]
        self.im_end_id = self._added[IM_END_TOKEN]

    # --- loading -------------------------------------------------------------------------------------
    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        seg_token_idx: int,
        hseg_token_idx: int | None = None,
        oseg_token_idx: int | None = None,
        expected_vocab_size: int | None = None,
    ) -> ReleaseTokenizer:
        """Reads `folder`'s tokenizer files and checks them against the model config: `seg_token_idx`
        (and `hseg_token_idx`/`oseg_token_idx` for Gen-Hu-Obj) must be the ids `added_tokens.json` gives
        `[SEG]` (`[HSEG]`, `[OSEG]`; `[ISEG]` for Gen-Int), and `expected_vocab_size` (config `vocab_size`,
        the embedding rows) the SentencePiece pieces plus added tokens. Raises ModelFileError naming the
        file or field otherwise."""
        import sentencepiece as spm

        folder = Path(folder)
        model_path = folder / TOKENIZER_MODEL
        if not model_path.is_file():
            raise ModelFileError(f"The tokenizer file {model_path} is missing.", _RELEASE_HINT)
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(model_path.read_bytes())
        except (RuntimeError, OSError) as exc:
            raise ModelFileError(f"{model_path} is not a SentencePiece model ({exc}).", _RELEASE_HINT) from None
        pieces = sp.get_piece_size()

        added_path = folder / ADDED_TOKENS
        if not added_path.is_file():
            raise ModelFileError(
                f"The tokenizer file {added_path} is missing (it holds the ids of [SEG], <im_start>, <im_end>).",
                _RELEASE_HINT,
            )
        added = _read_json(added_path)
        if not all(isinstance(k, str) and type(v) is int for k, v in added.items()):
            raise ModelFileError(f"{added_path} must map token strings to integer ids.", _RELEASE_HINT)
        expected_id = pieces
        for token, index in sorted(added.items(), key=lambda kv: kv[1]):
            if index != expected_id:
                raise ModelFileError(
                    f"{added_path}: added token {token!r} has id {index}, but added tokens must follow the "
                    f"{pieces} SentencePiece pieces of {TOKENIZER_MODEL} consecutively (expected {expected_id}).",
                    _RELEASE_HINT,
                )
            if sp.piece_to_id(token) != sp.unk_id() or token == sp.id_to_piece(sp.unk_id()):
                raise ModelFileError(
                    f"{added_path}: {token!r} is already a piece of {TOKENIZER_MODEL}, so it cannot be an added token.",
                    _RELEASE_HINT,
                )
            expected_id += 1
        for token in (IM_START_TOKEN, IM_END_TOKEN):
            if token not in added:
                raise ModelFileError(
                    f"{added_path} has no {token} (the release prompts wrap the image in <im_start>/<im_end>).",
                    _RELEASE_HINT,
                )
        seg_ids = {
            "seg": _check_config_id(added, added_path, "seg_token_idx", seg_token_idx, (SEG_TOKEN,), True),
            "hseg": _check_config_id(added, added_path, "hseg_token_idx", hseg_token_idx, (HSEG_TOKEN, ISEG_TOKEN)),
            "oseg": _check_config_id(added, added_path, "oseg_token_idx", oseg_token_idx, (OSEG_TOKEN, ISEG_TOKEN)),
        }
        total = pieces + len(added)
        if expected_vocab_size is not None and expected_vocab_size != total:
            raise ModelFileError(
                f"config.json vocab_size is {expected_vocab_size}, but the tokenizer has {total} tokens "
                f"({pieces} in {TOKENIZER_MODEL} + {len(added)} in {ADDED_TOKENS}).",
                _RELEASE_HINT,
            )

        config_path = folder / TOKENIZER_CONFIG
        config = _read_json(config_path) if config_path.is_file() else {}
        if config.get("add_bos_token", True) is not True or config.get("add_eos_token", False) is not False:
            raise ModelFileError(
                f"{config_path}: add_bos_token must be true and add_eos_token false for a LLaMA release tokenizer.",
                _RELEASE_HINT,
            )
        if config.get("sp_model_kwargs"):
            raise ModelFileError(
                f"{config_path}: sp_model_kwargs {config['sp_model_kwargs']!r} would change SentencePiece's "
                "encoding (e.g. sampling); a release tokenizer has none.",
                _RELEASE_HINT,
            )
        map_path = folder / SPECIAL_TOKENS_MAP
        special_map = _read_json(map_path) if map_path.is_file() else {}
        special, names = _special_tokens(config, special_map)
        for token in special:
            in_sp = sp.id_to_piece(sp.piece_to_id(token)) == token
            if not in_sp and token not in added:
                raise ModelFileError(
                    f"{map_path}: special token {token!r} is neither a piece of {TOKENIZER_MODEL} nor in "
                    f"{ADDED_TOKENS}; transformers would give it a new id the model does not have.",
                    _RELEASE_HINT,
                )
        legacy = config.get("legacy")
        return cls(
            sp,
            added,
            special,
            names["bos_token"],
            names["eos_token"],
            names["unk_token"],
            bool(config.get("clean_up_tokenization_spaces", False)),
            legacy if isinstance(legacy, bool) else None,
            seg_ids,
        )

    # --- properties ----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """All token ids: SentencePiece pieces plus added tokens (the rows of the model's embedding;
        transformers' `len(tokenizer)`, not its `vocab_size`, which counts pieces only)."""
        return self._sp.get_piece_size() + len(self._added)

    @property
    def piece_count(self) -> int:
        """Pieces in tokenizer.model (32000 for LLaMA-2)."""
        return self._sp.get_piece_size()

    @property
    def bos_id(self) -> int:
        return self._single_id(self.bos_token)

    @property
    def eos_id(self) -> int:
        return self._single_id(self.eos_token)

    @property
    def unk_id(self) -> int:
        """Also the pad id: upstream sets `pad_token = unk_token`."""
        return self._single_id(self.unk_token)

    @property
    def added_tokens(self) -> dict[str, int]:
        return dict(self._added)

    def token_id(self, text: str) -> int:
        """The id of one added or special token ("[SEG]", "<im_end>", "</s>", ...), from the files, never by
        tokenising the text. Raises KeyError for anything else."""
        if text in self._added or text in self._flags:
            return self._single_id(text)
        raise KeyError(f"{text!r} is not an added or special token of this tokenizer")

    def _single_id(self, token: str) -> int:
        if token in self._added:
            return self._added[token]
        return self._sp.piece_to_id(token)

    # --- encoding ------------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """4.31's `tokenize(text)`: pieces and added-token strings, whitespace next to no-split tokens
        removed as described in the module docstring."""
        parts = self._splitter.split(text)
        # split() with one capture group alternates text, token, text, ...: odd indices are tokens.
        for i in range(1, len(parts), 2):
            flags = self._flags[parts[i]]
            if flags.rstrip and i + 1 < len(parts) and parts[i + 1]:
                parts[i + 1] = parts[i + 1].lstrip()
            if flags.lstrip and parts[i - 1]:
                parts[i - 1] = parts[i - 1].rstrip()
        out: list[str] = []
        for i, part in enumerate(parts):
            if not part:
                continue
            if i % 2:
                out.append(part)
            else:
                out.extend(self._sp.encode(part, out_type=str))
        return out

    def encode(self, text: str) -> list[int]:
        """`tokenizer(text).input_ids` in 4.31: BOS, then `encode_text(text)`."""
        return [self.bos_id, *self.encode_text(text)]

    def encode_text(self, text: str) -> list[int]:
        """`tokenizer(text, add_special_tokens=False).input_ids` in 4.31: the ids of `tokenize(text)`, no BOS
        (e.g. an answer as it follows "ASSISTANT:" in a training conversation)."""
        return [self._added[p] if p in self._added else self._sp.piece_to_id(p) for p in self.tokenize(text)]

    def encode_prompt(self, prompt: str) -> list[int]:
        """LLaVA's `tokenizer_image_token(prompt, tokenizer)`: the prompt split on `<image>`, each chunk
        encoded with BOS, BOS kept on the first chunk only, -200 (IMAGE_TOKEN_INDEX) between chunks."""
        chunks = [self.encode(chunk) for chunk in prompt.split(IMAGE_TOKEN)]
        ids = list(chunks[0])
        for chunk in chunks[1:]:
            ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(chunk[1:])
        return ids

    # --- decoding ------------------------------------------------------------------------------------
    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """4.31's `tokenizer.decode(ids)` (spaces_between_special_tokens=True): runs of pieces decoded by
        SentencePiece, added tokens written as their strings, parts joined by one space, `<s>`/`</s>`/`<unk>`
        written out (or dropped with `skip_special_tokens`). The -200 image sentinel is skipped (upstream
        removes it before decoding)."""
        sub_texts: list[str] = []
        run: list[str] = []
        for raw in ids:
            index = int(raw)
            if index == IMAGE_TOKEN_INDEX:
                continue
            if not 0 <= index < self.vocab_size:
                raise ValueError(f"token id {index} is outside this tokenizer's {self.vocab_size} ids")
            if skip_special_tokens and index in self._special_ids:
                continue
            if index in self._added_by_id:
                if run:
                    sub_texts.append(self._pieces_to_string(run))
                    run = []
                sub_texts.append(self._added_by_id[index])
            else:
                run.append(self._sp.id_to_piece(index))
        if run:
            sub_texts.append(self._pieces_to_string(run))
        text = " ".join(sub_texts)
        if self._clean_up:
            for before, after in (
                (" .", "."),
                (" ?", "?"),
                (" !", "!"),
                (" ,", ","),
                (" ' ", "'"),
                (" n't", "n't"),
                (" 'm", "'m"),
                (" 's", "'s"),
                (" 've", "'ve"),
                (" 're", "'re"),
            ):
                text = text.replace(before, after)
        return text

    def _pieces_to_string(self, pieces: list[str]) -> str:
        """LlamaTokenizer.convert_tokens_to_string: special tokens written out (a space before one that
        follows ordinary text), the pieces between them decoded by SentencePiece."""
        out, current, prev_special = "", [], False
        for i, piece in enumerate(pieces):
            if piece in self._flags:  # one of the special tokens (added tokens never reach here)
                if not prev_special and i != 0:
                    out += " "
                out += self._sp.decode_pieces(current) + piece
                prev_special, current = True, []
            else:
                current.append(piece)
                prev_special = False
        return out + self._sp.decode_pieces(current)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"Cannot read {path}: {exc}.", _RELEASE_HINT) from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} must hold a JSON object.", _RELEASE_HINT)
    return data


def _check_config_id(
    added: dict[str, int], path: Path, field: str, value: int | None, names: tuple[str, ...], required: bool = False
) -> int | None:
    """The config's id for a seg token, checked against `added_tokens.json`."""
    if value is None:
        if required:
            raise ModelFileError(f"config.json has no {field}.", _RELEASE_HINT)
        return None
    if type(value) is not int:
        raise ModelFileError(f"config.json {field} must be an integer, got {value!r}.", _RELEASE_HINT)
    found = [t for t, i in added.items() if i == value]
    if not found or found[0] not in names:
        in_file = {n: added[n] for n in names if n in added}
        raise ModelFileError(
            f"config.json {field} is {value}, but {path} gives "
            + (", ".join(f"{n}={i}" for n, i in in_file.items()) if in_file else f"no {' or '.join(names)}")
            + (f" (id {value} is {found[0]!r})" if found else "")
            + ".",
            "The tokenizer files and config.json must come from the same release folder: " + _RELEASE_HINT,
        )
    return value


def _special_tokens(config: dict[str, Any], special_map: dict[str, Any]) -> tuple[dict[str, _Flags | None], dict]:
    """The special tokens as 4.31 ends up with them: `tokenizer_config.json` values (LlamaTokenizer turns a
    plain bos/eos/unk/pad string into AddedToken(lstrip=False, rstrip=False)), then `special_tokens_map.json`
    values set over them (dict -> AddedToken, string stays a string). Returns {token: flags or None (a
    plain string: strips both sides)} and the token string per attribute."""
    values: dict[str, Any] = {}
    for name in _SPECIAL_ATTRIBUTES:
        value = config.get(name, _LLAMA_DEFAULTS.get(name))
        if name in ("bos_token", "eos_token", "unk_token", "pad_token") and isinstance(value, str):
            value = {"content": value, "lstrip": False, "rstrip": False}
        values[name] = value
    for name in _SPECIAL_ATTRIBUTES:
        if name in special_map and special_map[name] is not None:
            values[name] = special_map[name]
    flags: dict[str, _Flags | None] = {}
    names: dict[str, str] = {}
    for name in _SPECIAL_ATTRIBUTES:
        value = values[name]
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                continue
            if isinstance(item, dict):
                token = item.get("content")
                item_flags: _Flags | None = _Flags(bool(item.get("lstrip", False)), bool(item.get("rstrip", False)))
            else:
                token, item_flags = item, None
            if not isinstance(token, str) or not token:
                raise ModelFileError(f"Bad special token {name}: {item!r}.", _RELEASE_HINT)
            if name != "additional_special_tokens":
                names[name] = token
            if item_flags is not None or token not in flags:  # an AddedToken's flags win over a plain string
                flags[token] = item_flags if item_flags is not None else flags.get(token)
    return flags, names
