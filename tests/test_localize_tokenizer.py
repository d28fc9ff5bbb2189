"""Prompts and the release tokenizer: exact prompt strings per mode, token ids as transformers 4.31's slow
LlamaTokenizer(legacy=True) + LLaVA's tokenizer_image_token produced them, ids of added tokens from the files.

The expected ids are built here independently of ivlm_core's tokenizer: straight from SentencePiece's own
`encode` of the prompt's known text pieces, following the documented 4.31 rules (BOS once, whitespace
next to added tokens dropped, the dummy prefix on every piece, -200 for the image).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import sentencepiece as spm

from ivlm_core.demo.tiny_tokenizer import VOCAB_SIZE, train_tiny_sentencepiece, write_tiny_tokenizer
from ivlm_core.errors import BadInputError, ModelFileError
from ivlm_core.localize import prompts as P
from ivlm_core.localize.tokenizer import ReleaseTokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions."
)
# Spec §2.3, byte for byte ({} = the object label).
Q_HCONTACT = "Which body parts are in contact with the {}? Segment these contact areas."
Q_H2D = "Segment the area on the human's body that is in direct contact with the {} in this image."
Q_OAFFORD = (
    "What type of affordance does the human-object interaction suggest? Then, segment the area on the {} "
    "where the human is making contact."
)
LABELS = [
    "chair",
    "tennis_racket",
    "Sports_Ball",
    "  mug ",
    "hot dog",
    "naïve-café",
    "日本刀",
    "it's",
    "3d_printed_vase",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, int]]]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {kind: (root / kind, write_tiny_tokenizer(root / kind, kind)) for kind in ("Gen", "Gen-Hu-Obj")}


def _load(folder: Path, ids: dict[str, int]) -> ReleaseTokenizer:
    return ReleaseTokenizer.from_folder(
        folder, seg_token_idx=ids["[SEG]"], hseg_token_idx=ids.get("[HSEG]"), oseg_token_idx=ids.get("[OSEG]")
    )


@pytest.fixture(scope="module")
def gen(folders) -> ReleaseTokenizer:
    return _load(*folders["Gen"])


def _all_prompts() -> list[tuple[str, str, str, str]]:
    return [
        (mode, label, style, P.contact_prompt(mode, label, style))
        for style in P.PROMPT_STYLES
        for mode in P.MODES
        for label in LABELS
    ]


# --- prompts -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", P.PROMPT_STYLES)
def test_prompt_strings_are_byte_exact(style: str) -> None:
    head = SYSTEM + " USER: <im_start><image><im_end>\n"
    oafford = Q_OAFFORD.format("tennis_racket")
    if style == "upstream_demo":  # pitfall P8: run_demo.py's literal '"...",'
        oafford = '"' + oafford + '",'
    expected = {
        "hcontact": head + Q_HCONTACT.format("tennis_racket") + " ASSISTANT:",
        "h2dcontact": head + Q_H2D.format("tennis_racket") + " ASSISTANT:",
        "oafford": head + oafford + " ASSISTANT:",
        "ocontact": head + oafford + " ASSISTANT:",
    }
    for mode, text in expected.items():
        assert P.contact_prompt(mode, "Tennis_Racket ", style) == text
    assert P.question_for("oafford", "mug", "upstream_demo").startswith('"What type')
    assert P.question_for("oafford", "mug", "upstream_demo").endswith('contact.",')
    assert P.question_for("oafford", "mug") == Q_OAFFORD.format("mug")
    assert not P.contact_prompt("hcontact", "mug").endswith(" ")


def test_label_rules() -> None:
    assert P.label_from_filename("tennis_racket__000000041045.jpg") == "tennis_racket"
    assert P.label_from_filename(Path("/data/imgs/Sports_Ball__12__x.png")) == "sports_ball"
    assert P.normalize_label("  Dining_Table\t") == "dining_table"
    with pytest.raises(BadInputError, match="no '__'") as info:
        P.label_from_filename("chair.jpg")
    assert "<label>__<id>" in info.value.hint
    bad = [
        "",
        "   ",
        "\n",
        "chair\nsofa",
        "cup\rmug",
        "a\x00b",
        "a\u2028b",
        "a<image>",
        "mug [SEG]",
        "[seg]",
        "<im_end>",
        "x</s>",
        "y" * 101,
    ]
    for label in bad:
        with pytest.raises(BadInputError) as info:
            P.normalize_label(label)
        assert info.value.hint and info.value.code == "BAD_INPUT"
    with pytest.raises(BadInputError, match="empty"):
        P.label_from_filename("__0001.jpg")
    with pytest.raises(BadInputError, match="mode"):
        P.question_for("pose", "chair")
    with pytest.raises(BadInputError, match="style"):
        P.question_for("hcontact", "chair", "fancy")


# The upstream answer templates (utils/utils.py), with the seg token placeholders as upstream writes them.
UPSTREAM_PARTS = [
    "The contacting body parts are {body_parts}, and the contact region is [HTOKEN].",
    "The involved body parts are {body_parts}, with the contact mask at [HTOKEN].",
    "Contact occurs at {body_parts}, with the contact points shown at [HTOKEN].",
    "The body parts in contact are {body_parts}, with contact mask at [HTOKEN].",
    "Body parts: {body_parts}, contact mask: [HTOKEN].",
]
UPSTREAM_AFFORD = [
    "The affordance type is {affordance}, and the contact region is [OTOKEN].",
    "This interaction suggests an affordance of {affordance}, and the object contact region is [OTOKEN].",
    "The contact points indicate an affordance of {affordance}, with the mask at [OTOKEN].",
    "This shows an affordance type of {affordance}, with contact at [OTOKEN].",
    "Affordance: {affordance}, contact mask: [OTOKEN].",
]
UPSTREAM_AFFORD_OBJ = [
    "The affordance type is {affordance} with {class_name}, and the contact region is [OTOKEN].",
    "This interaction suggests an affordance of {affordance} with {class_name}, "
    "and the object contact region is [OTOKEN].",
    "The contact points indicate an affordance of {affordance} with {class_name}, with the mask at [OTOKEN].",
    "This shows an affordance type of {affordance} with {class_name}, with contact at [OTOKEN].",
    "Affordance: {affordance} with {class_name}, contact mask: [OTOKEN].",
]


def test_answer_templates_match_upstream() -> None:
    assert [t.format(body_parts="{body_parts}", seg="[HTOKEN]") for t in P.HCONTACT_PARTS_ANSWERS] == UPSTREAM_PARTS
    assert [t.format(affordance="{affordance}", seg="[OTOKEN]") for t in P.OAFFORD_AFFORD_ANSWERS] == UPSTREAM_AFFORD
    obj = P.OAFFORD_AFFORD_OBJ_ANSWERS
    filled = [t.format(affordance="{affordance}", label="{class_name}", seg="[OTOKEN]") for t in obj]
    assert filled == UPSTREAM_AFFORD_OBJ


@pytest.mark.parametrize("seg", ["[SEG]", "[HSEG]"])
def test_parse_body_parts_from_every_template(seg: str) -> None:
    for template in UPSTREAM_PARTS:
        for parts in (["buttocks"], ["left hand", "right hand"], ["leftFoot", "rightFoot", "hips"]):
            answer = template.format(body_parts=", ".join(parts)).replace("[HTOKEN]", seg)
            assert P.parse_body_parts(answer) == parts, answer
            # As upstream decodes it: the whole sequence, a space before ".", "</s>" at the end.
            decoded = f"<s>{SYSTEM} USER: <im_start> <im_end> question? ASSISTANT: " + answer.replace(
                seg + ".", seg + " .</s>"
            )
            parsed = P.parse_answer(decoded)
            assert parsed.body_parts == parts and parsed.seg_tokens == [seg] and parsed.affordance is None
    assert P.parse_body_parts("Sure, the human contact region is [SEG].") is None
    assert P.parse_body_parts("The contacting body parts are , and the contact region is [SEG].") is None
    assert P.parse_body_parts("The contacting body parts are hands, and the contact region is") is None  # no seg


def test_parse_affordance_from_every_template() -> None:
    for template in UPSTREAM_AFFORD + UPSTREAM_AFFORD_OBJ:
        for affordance in ("grasp", "wrap_grasp", "sit"):
            answer = template.format(affordance=affordance, class_name="tennis_racket").replace("[OTOKEN]", "[OSEG]")
            assert P.parse_affordance(answer) == affordance, answer
            assert P.parse_affordance("ASSISTANT: " + answer.lower().replace("[oseg]", "[OSEG]")) == affordance
    assert P.parse_affordance("Sure, the object contact region is [SEG].") is None
    both = (
        "Body parts: left hand, contact mask: [HSEG]. The affordance type is grasp, and the contact region is [OSEG]."
    )
    parsed = P.parse_answer(both)
    assert parsed == P.ParsedAnswer(["left hand"], "grasp", ["[HSEG]", "[OSEG]"])


# --- tokenizer: ids ----------------------------------------------------------------------------------
def _expected_ids(sp: spm.SentencePieceProcessor, prompt: str, ids: dict[str, int]) -> list[int]:
    """Independent construction for our prompt shape `<text> <im_start><image><im_end>\\n<text>`: SentencePiece
    ids of the two text pieces (whitespace next to the added tokens removed), BOS first, -200 for the image."""
    before, after = prompt.split("<im_start><image><im_end>")
    first = sp.encode(before.rstrip(), out_type=int)  # the " " before <im_start> is stripped
    second = sp.encode(after.lstrip(), out_type=int)  # the "\n" after <im_end> is stripped
    return [sp.bos_id(), *first, ids["<im_start>"], -200, ids["<im_end>"], *second]


@pytest.mark.parametrize("kind", ["Gen", "Gen-Hu-Obj"])
def test_every_prompt_encodes_like_upstream(folders, kind: str) -> None:
    folder, ids = folders[kind]
    tok = _load(folder, ids)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    for mode, label, style, prompt in _all_prompts():
        got = tok.encode_prompt(prompt)
        assert got == _expected_ids(sp, prompt, ids), (mode, label, style)
        assert got[0] == sp.bos_id() == 1 and got.count(1) == 1
        assert got.count(-200) == 1
        at = got.index(-200)
        assert got[at - 1] == ids["<im_start>"] and got[at + 1] == ids["<im_end>"]
        assert got.count(ids["<im_start>"]) == got.count(ids["<im_end>"]) == 1
        assert ids["[SEG]"] not in got and all(0 <= i < tok.vocab_size for i in got if i != -200)
        # The question chunk decodes back to the question with its label (only the "\n" before it is gone).
        assert sp.decode(got[at + 2 :]) == prompt.split("<im_end>\n")[1]


def test_added_token_ids_come_from_the_files(tmp_path: Path, folders) -> None:
    folder, ids = folders["Gen-Hu-Obj"]
    tok = _load(folder, ids)
    assert ids == {
        "[SEG]": VOCAB_SIZE,
        "<im_start>": VOCAB_SIZE + 1,
        "<im_end>": VOCAB_SIZE + 2,
        "[HSEG]": VOCAB_SIZE + 3,
        "[OSEG]": VOCAB_SIZE + 4,
    }
    assert {t: tok.token_id(t) for t in ids} == ids
    assert (tok.seg_token_idx, tok.hseg_token_idx, tok.oseg_token_idx) == (ids["[SEG]"], ids["[HSEG]"], ids["[OSEG]"])
    assert (tok.bos_id, tok.eos_id, tok.unk_id) == (1, 2, 0)
    assert (tok.vocab_size, tok.piece_count) == (VOCAB_SIZE + 5, VOCAB_SIZE)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    assert len(sp.encode("[SEG]")) > 1  # the string itself would not give the id
    assert tok.encode("[SEG]") == [1, ids["[SEG]"]] and tok.encode(" [OSEG]") == [1, ids["[OSEG]"]]
    assert tok.encode_text("Sure, [SEG].") == [*sp.encode("Sure,"), ids["[SEG]"], *sp.encode(".")]
    with pytest.raises(KeyError):
        tok.token_id("chair")

    # Another (consistent) id assignment in the files is followed, not re-derived.
    other = tmp_path / "other"
    shutil.copytree(folders["Gen"][0], other)
    swapped = {"<im_start>": VOCAB_SIZE, "<im_end>": VOCAB_SIZE + 1, "[SEG]": VOCAB_SIZE + 2}
    (other / "added_tokens.json").write_text(json.dumps(swapped))
    tok2 = ReleaseTokenizer.from_folder(other, seg_token_idx=VOCAB_SIZE + 2)
    assert tok2.token_id("[SEG]") == VOCAB_SIZE + 2
    prompt = P.contact_prompt("hcontact", "chair")
    assert tok2.encode_prompt(prompt) == _expected_ids(sp, prompt, swapped)


def _broken(tmp_path: Path, folders, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(folders["Gen-Hu-Obj"][0], folder)
    return folder


def test_bad_folders_raise_model_file_error(tmp_path: Path, folders) -> None:
    ok = dict(seg_token_idx=VOCAB_SIZE, hseg_token_idx=VOCAB_SIZE + 3, oseg_token_idx=VOCAB_SIZE + 4)

    folder = _broken(tmp_path, folders, "no_model")
    (folder / "tokenizer.model").unlink()
    with pytest.raises(ModelFileError, match="tokenizer.model") as info:
        ReleaseTokenizer.from_folder(folder, **ok)
    assert "release folder" in info.value.hint and info.value.code == "MODEL_FILE_INVALID"

    folder = _broken(tmp_path, folders, "garbage_model")
    (folder / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="tokenizer.model"):
        ReleaseTokenizer.from_folder(folder, **ok)

    folder = _broken(tmp_path, folders, "no_added")
    (folder / "added_tokens.json").unlink()
    with pytest.raises(ModelFileError, match="added_tokens.json"):
        ReleaseTokenizer.from_folder(folder, **ok)

    # Config and files disagree: the error names the file and the config field.
    folder = _broken(tmp_path, folders, "mismatch")
    with pytest.raises(
        ModelFileError, match=rf"seg_token_idx is {VOCAB_SIZE + 1}.*added_tokens\.json.*\[SEG\]={VOCAB_SIZE}"
    ):
        ReleaseTokenizer.from_folder(folder, **{**ok, "seg_token_idx": VOCAB_SIZE + 1})
    with pytest.raises(ModelFileError, match=r"oseg_token_idx.*added_tokens\.json"):
        ReleaseTokenizer.from_folder(folder, **{**ok, "oseg_token_idx": VOCAB_SIZE + 3})
    with pytest.raises(ModelFileError, match=r"hseg_token_idx.*no \[HSEG\]"):
        ReleaseTokenizer.from_folder(folders["Gen"][0], seg_token_idx=VOCAB_SIZE, hseg_token_idx=VOCAB_SIZE + 3)
    with pytest.raises(ModelFileError, match="vocab_size is 32005"):
        ReleaseTokenizer.from_folder(folder, **ok, expected_vocab_size=32005)
    assert ReleaseTokenizer.from_folder(folder, **ok, expected_vocab_size=VOCAB_SIZE + 5).vocab_size == VOCAB_SIZE + 5

    added = json.loads((folder / "added_tokens.json").read_text())
    (folder / "added_tokens.json").write_text(json.dumps({**added, "[SEG]": 32000}))
    with pytest.raises(ModelFileError, match="consecutively"):
        ReleaseTokenizer.from_folder(folder, **{**ok, "seg_token_idx": 32000})
    (folder / "added_tokens.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="added_tokens.json"):
        ReleaseTokenizer.from_folder(folder, **ok)

    folder = _broken(tmp_path, folders, "sampling")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "sp_model_kwargs": {"enable_sampling": True}}))
    with pytest.raises(ModelFileError, match="sp_model_kwargs"):
        ReleaseTokenizer.from_folder(folder, **ok)


# --- tokenizer: whitespace around added tokens --------------------------------------------------------
def test_whitespace_next_to_added_tokens_is_dropped(gen: ReleaseTokenizer, folders) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(folders["Gen"][0] / "tokenizer.model"))
    im_start, im_end, seg = gen.im_start_id, gen.im_end_id, gen.seg_token_idx
    # The "\n" after <im_end> never reaches SentencePiece, and the next word keeps its dummy-prefix "▁".
    assert gen.encode("<im_end>\nWhich body") == [1, im_end, *sp.encode("Which body")]
    assert gen.encode("<im_end>\nWhich body") != [1, im_end, *sp.encode("\nWhich body")]
    assert gen.tokenize("<im_end>\nWhich")[1] == sp.encode("Which", out_type=str)[0]
    assert sp.encode("Which", out_type=str)[0].startswith("▁")
    # The space before <im_start> goes too; all whitespace (tabs, newlines, U+3000) on both sides.
    assert gen.encode("USER: <im_start>") == [1, *sp.encode("USER:"), im_start]
    assert gen.encode("a \t\n[SEG]\n\u3000 b") == [1, *sp.encode("a"), seg, *sp.encode("b")]
    assert gen.encode("a[SEG]b") == gen.encode("a [SEG] b")
    assert gen.encode("<im_start> <im_end>") == [1, im_start, im_end]
    # LLaMA's own special tokens are AddedToken(lstrip=False, rstrip=False): they keep the spaces beside them.
    assert gen.encode("hi </s> there") == [1, *sp.encode("hi "), 2, *sp.encode(" there")]
    # `<image>` is not a token: outside encode_prompt it is plain text.
    assert len(gen.encode("<image>")) > 2


def test_special_token_flags_from_special_tokens_map(tmp_path: Path, folders) -> None:
    """A token listed in special_tokens_map.json as an AddedToken follows its lstrip/rstrip flags (4.31's rule
    for special tokens); as a plain string it strips both sides like any added token."""
    folder = tmp_path / "flags"
    shutil.copytree(folders["Gen"][0], folder)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    special = json.loads((folder / "special_tokens_map.json").read_text())
    keep = {"content": "<im_start>", "lstrip": False, "normalized": True, "rstrip": True, "single_word": False}
    special["additional_special_tokens"] = [keep, "<im_end>"]
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    tok = ReleaseTokenizer.from_folder(folder, seg_token_idx=VOCAB_SIZE)
    assert tok.encode("USER: <im_start> x") == [1, *sp.encode("USER: "), tok.im_start_id, *sp.encode("x")]
    assert tok.encode("a <im_end> b") == [1, *sp.encode("a"), tok.im_end_id, *sp.encode("b")]
    # with skip_special_tokens the additional specials go too (4.31 decode)
    assert tok.decode(tok.encode("a<im_start>b"), skip_special_tokens=True) == "a b"


def test_decode_like_upstream(gen: ReleaseTokenizer) -> None:
    prompt = P.contact_prompt("hcontact", "tennis_racket")
    question = Q_HCONTACT.format("tennis_racket")
    # 4.31 decode: added tokens joined by single spaces, the stripped "\n" is gone, the sentinel skipped.
    expected = f"<s>{SYSTEM} USER: <im_start> <im_end> {question} ASSISTANT:"
    assert gen.decode(gen.encode_prompt(prompt)) == expected
    assert gen.decode(gen.encode_prompt(prompt), skip_special_tokens=True) == expected[3:]
    answer = gen.encode("The contacting body parts are left hand, right hand, and the contact region is [SEG].")
    text = gen.decode([*gen.encode_prompt(prompt), *answer[1:], gen.eos_id])
    # 4.31 writes " " + ".</s>" after "[SEG]" and joins with another space (upstream then replaces "  " by " ").
    assert text.endswith("the contact region is [SEG]  .</s>")
    assert P.parse_answer(text) == P.ParsedAnswer(["left hand", "right hand"], None, ["[SEG]"])
    with pytest.raises(ValueError, match="outside"):
        gen.decode([gen.vocab_size])


def test_real_llama_system_prefix_ids() -> None:
    """With a real InteractVLM/LISA release folder (IVLM_RELEASE_TOKENIZER_DIR), the prompt's first chunk
    must give the ids printed in LISA issue #193 (https://github.com/JIA-Lab-research/LISA/issues/193) for
    the same llava_v1 system text and "USER: <im_start><image><im_end>"."""
    folder = os.environ.get("IVLM_RELEASE_TOKENIZER_DIR")
    if not folder:
        pytest.skip("set IVLM_RELEASE_TOKENIZER_DIR to a release folder to compare with real LLaMA-2 ids")
    public = [
        1,
        319,
        13563,
        1546,
        263,
        12758,
        5199,
        322,
        385,
        23116,
        21082,
        20255,
        29889,
        450,
        20255,
        4076,
        8444,
        29892,
        13173,
        29892,
        322,
        1248,
        568,
        6089,
        304,
        278,
        5199,
        29915,
        29879,
        5155,
        29889,
        3148,
        1001,
        29901,
        32001,
        -200,
        32002,
    ]
    config = json.loads((Path(folder) / "config.json").read_text())
    tok = ReleaseTokenizer.from_folder(
        Path(folder),
        seg_token_idx=config["seg_token_idx"],
        hseg_token_idx=config.get("hseg_token_idx"),
        oseg_token_idx=config.get("oseg_token_idx"),
    )
    ids = tok.encode_prompt(P.contact_prompt("hcontact", "chair"))
    assert ids[: len(public)] == public


# --- tiny tokenizer ---------------------------------------------------------------------------------
def test_tiny_tokenizer_folder(tmp_path: Path, folders) -> None:
    model = train_tiny_sentencepiece()
    assert model == train_tiny_sentencepiece()  # deterministic
    assert model == (folders["Gen"][0] / "tokenizer.model").read_bytes()
    sp = spm.SentencePieceProcessor(model_proto=model)
    assert sp.get_piece_size() == VOCAB_SIZE
    assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<0x00>"]
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert sp.encode("ŋ", out_type=str)[1:] == ["<0xC5>", "<0x8B>"]  # byte fallback
    assert sp.encode("chair", out_type=str)[0].startswith("▁")  # dummy prefix

    ids = write_tiny_tokenizer(tmp_path / "t", "Gen")
    assert ids == {"[SEG]": VOCAB_SIZE, "<im_start>": VOCAB_SIZE + 1, "<im_end>": VOCAB_SIZE + 2}
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "added_tokens.json",
        "special_tokens_map.json",
        "tokenizer.model",
        "tokenizer_config.json",
    ]
    assert json.loads((tmp_path / "t" / "added_tokens.json").read_text()) == ids
    config = json.loads((tmp_path / "t" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "LlamaTokenizer" and config["model_max_length"] == 512
    assert config["padding_side"] == "right" and config["add_bos_token"] and not config["add_eos_token"]
    assert json.loads((tmp_path / "t" / "special_tokens_map.json").read_text())["pad_token"] == "<unk>"
    tok = ReleaseTokenizer.from_folder(tmp_path / "t", seg_token_idx=ids["[SEG]"], expected_vocab_size=VOCAB_SIZE + 3)
    assert tok.folder_legacy is True and tok.token_id("<im_end>") == ids["<im_end>"]
    with pytest.raises(ValueError, match="token_type"):
        write_tiny_tokenizer(tmp_path / "u", "Gen-Int")
