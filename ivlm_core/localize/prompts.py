"""InteractVLM's prompts: the llava_v1 conversation, the question asked per contact mode, the object label,
and parsing of the model's answer.

Where every piece comes from (upstream = saidwivedi/InteractVLM at 79b4bf2, spec §1.2 and §2.2-2.3):

- The conversation is LLaVA's `conv_llava_v1` (`model/llava/conversation.py`): system text below, roles
  ("USER", "ASSISTANT"), separator style TWO with sep " " and sep2 "</s>". `run_demo.py` appends the user
  message `"<image>\\n" + question` (with `<image>` replaced by `<im_start><image><im_end>`, because
  `use_mm_start_end` is on) and an empty assistant message, then calls `get_prompt()`. For style TWO that
  builds `system + sep`, then `role + ": " + message + seps[i % 2]` for a non-empty message and just
  `role + ":"` for the empty one. So the inference prompt is
  `<system> USER: <im_start><image><im_end>\\n<question> ASSISTANT:` with nothing after the colon.
- The questions are the first entries of `utils/utils.py`'s question lists, exactly as `run_demo.py` uses
  them (the demo hard-codes these strings, see `QUESTIONS`).
- The object label is the image file name up to the first "__", lower-cased, underscores kept
  (`tennis_racket__000000041045.jpg` -> `tennis_racket`); training also lower-cased every class name.
- The answer templates are `utils/utils.py`'s `HCONTACT_PARTS_ANSWER_LIST`, `OAFFORD_AFFORD_ANSWER_LIST`
  and `OAFFORD_AFFORD_OBJ_ANSWER_LIST` (plus the `simple` lists), with `[HTOKEN]`/`[OTOKEN]` standing for
  whichever seg token the model's token type uses.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath

from ivlm_core.errors import BadInputError

# --- llava_v1 conversation template (LLaVA `conv_llava_v1`) -------------------------------------------
SYSTEM_PROMPT = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
ROLES = ("USER", "ASSISTANT")
SEP = " "  # after the system text and after each user message
SEP2 = "</s>"  # after each assistant message (never reached at inference: the assistant message is empty)

IMAGE_TOKEN = "<image>"  # replaced by the -200 sentinel when tokenising, then by the CLIP features
IM_START_TOKEN = "<im_start>"
IM_END_TOKEN = "<im_end>"
IMAGE_TOKEN_INDEX = -200
SEG_TOKEN = "[SEG]"
HSEG_TOKEN = "[HSEG]"
OSEG_TOKEN = "[OSEG]"
ISEG_TOKEN = "[ISEG]"  # the degenerate `Gen-Int` token type (unused by the releases)
SEG_TOKENS = (SEG_TOKEN, HSEG_TOKEN, OSEG_TOKEN, ISEG_TOKEN)
# Strings the tokenizer treats as single tokens (or LLaVA as the image slot): a label must not contain them.
RESERVED_STRINGS = (IMAGE_TOKEN, IM_START_TOKEN, IM_END_TOKEN, "<im_patch>", *SEG_TOKENS, "<s>", "</s>", "<unk>")

# --- questions (spec §2.3) -----------------------------------------------------------------------------
MODES = ("hcontact", "h2dcontact", "oafford", "ocontact")
PROMPT_STYLES = ("clean", "upstream_demo")

HCONTACT_PARTS_QUESTION = "Which body parts are in contact with the {label}? Segment these contact areas."
H2DCONTACT_QUESTION = "Segment the area on the human's body that is in direct contact with the {label} in this image."
OAFFORD_AFFORD_QUESTION = (
    "What type of affordance does the human-object interaction suggest? "
    "Then, segment the area on the {label} where the human is making contact."
)
# Pitfall P8: `run_demo.py` writes the object question as '"What type ... contact.",' inside a Python string,
# so the released demo sends a stray leading double quote and a trailing '",' to the model. The training
# templates (OAFFORD_AFFORD_QUESTION_LIST[0]) have neither. "clean" asks what the model was trained on;
# "upstream_demo" reproduces the released demo byte for byte, to compare against its published outputs.
UPSTREAM_DEMO_OAFFORD_QUESTION = '"' + OAFFORD_AFFORD_QUESTION + '",'

QUESTIONS: dict[str, dict[str, str]] = {
    "clean": {
        "hcontact": HCONTACT_PARTS_QUESTION,
        "h2dcontact": H2DCONTACT_QUESTION,
        "oafford": OAFFORD_AFFORD_QUESTION,
        "ocontact": OAFFORD_AFFORD_QUESTION,
    },
    "upstream_demo": {
        "hcontact": HCONTACT_PARTS_QUESTION,
        "h2dcontact": H2DCONTACT_QUESTION,
        "oafford": UPSTREAM_DEMO_OAFFORD_QUESTION,
        "ocontact": UPSTREAM_DEMO_OAFFORD_QUESTION,
    },
}

# --- answer templates (utils/utils.py); {seg} is the seg token --------------------------------------------
HCONTACT_PARTS_ANSWERS = (
    "The contacting body parts are {body_parts}, and the contact region is {seg}.",
    "The involved body parts are {body_parts}, with the contact mask at {seg}.",
    "Contact occurs at {body_parts}, with the contact points shown at {seg}.",
    "The body parts in contact are {body_parts}, with contact mask at {seg}.",
    "Body parts: {body_parts}, contact mask: {seg}.",
)
OAFFORD_AFFORD_ANSWERS = (
    "The affordance type is {affordance}, and the contact region is {seg}.",
    "This interaction suggests an affordance of {affordance}, and the object contact region is {seg}.",
    "The contact points indicate an affordance of {affordance}, with the mask at {seg}.",
    "This shows an affordance type of {affordance}, with contact at {seg}.",
    "Affordance: {affordance}, contact mask: {seg}.",
)
# The `afford_obj` variant names the object after the affordance: "... {affordance} with {label}, ...".
OAFFORD_AFFORD_OBJ_ANSWERS = tuple(
    t.replace("{affordance},", "{affordance} with {label},") for t in OAFFORD_AFFORD_ANSWERS
)
HCONTACT_SIMPLE_ANSWERS = (
    "It is {seg}.",
    "Sure, the human contact region is {seg}.",
    "Sure, the contact points on human is {seg}.",
    "Sure, the contact mask is {seg}.",
    "{seg}.",
)
OCONTACT_SIMPLE_ANSWERS = (
    "It is {seg}.",
    "Sure, the object contact region is {seg}.",
    "Sure, the contact points on object is {seg}.",
    "Sure, the contact mask is {seg}.",
    "{seg}.",
)

MAX_LABEL_CHARS = 100
DETECTOR_DELIMITERS = (".", "?")  # Grounding DINO's text encoder splits its prompt into phrases at these
_LABEL_HINT = 'Pass a short object name such as "chair" or "tennis_racket" (one line, no special tokens).'


def check_label(label: str) -> str:
    """The object label with surrounding whitespace stripped (case kept), or BadInputError saying why not.

    The one rule for labels: perception (the detector's phrase), the contact prompts and the server's submit
    check all apply it, so a label the pipeline cannot use is refused before any work is done.
    """
    if not isinstance(label, str):
        raise BadInputError(f"The object label must be text, got {type(label).__name__}.", _LABEL_HINT)
    text = label.strip()
    if not text:
        raise BadInputError("An empty label cannot name an object.", _LABEL_HINT)
    if len(text) > MAX_LABEL_CHARS:
        raise BadInputError(
            f"The object label is {len(text)} characters long (at most {MAX_LABEL_CHARS}).", _LABEL_HINT
        )
    bad = [c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    if bad:
        raise BadInputError(
            f"The object label {text!r} contains a line break or control character ({bad[0]!r}); it would "
            "split the one-line question.",
            _LABEL_HINT,
        )
    if not any(unicodedata.category(c)[0] in "LNS" for c in text):  # letters, digits or symbols
        raise BadInputError(f"The object label {text!r} has no visible letter, digit or symbol.", _LABEL_HINT)
    if any(d in text for d in DETECTOR_DELIMITERS):
        raise BadInputError(
            f"The object label {text!r} contains '.' or '?', which separate phrases in the detector's prompt.",
            "Remove the punctuation, e.g. 'coffee mug' instead of 'coffee mug.'.",
        )
    lowered = text.lower()
    for reserved in RESERVED_STRINGS:
        if reserved.lower() in lowered:
            raise BadInputError(
                f"The object label {text!r} contains {reserved!r}, which the model reads as a special token.",
                _LABEL_HINT,
            )
    return text


def normalize_label(label: str) -> str:
    """The object label as InteractVLM saw it in training: `check_label`, then lower-cased (underscores kept)."""
    return check_label(label).lower()


def label_from_filename(name: str | PurePath) -> str:
    """Upstream's rule (`run_demo.py`): the file name up to the first "__", lower-cased, underscores kept,
    e.g. `tennis_racket__000000041045.jpg` -> `tennis_racket`. Only the last path component is used."""
    base = PurePath(name).name
    if "__" not in base:
        raise BadInputError(
            f"Cannot read an object label from the file name {base!r}: it has no '__'.",
            "Name the image <label>__<id>.<ext> (e.g. chair__0001.jpg), or pass the label explicitly.",
        )
    return normalize_label(base.split("__", 1)[0])


def question_for(mode: str, label: str, prompt_style: str = "clean") -> str:
    """The question InteractVLM's demo asks for `mode` (hcontact, h2dcontact, oafford, ocontact), with the
    normalised label inserted. `prompt_style` "upstream_demo" keeps pitfall P8's stray quotes."""
    if prompt_style not in PROMPT_STYLES:
        raise BadInputError(f"Unknown prompt style {prompt_style!r}.", f"Use one of {', '.join(PROMPT_STYLES)}.")
    if mode not in MODES:
        raise BadInputError(f"Unknown contact mode {mode!r}.", f"Use one of {', '.join(MODES)}.")
    return QUESTIONS[prompt_style][mode].format(label=normalize_label(label))


def build_prompt(question: str) -> str:
    """The llava_v1 inference prompt around `question`: what `conv.get_prompt()` returns after the user message
    `<im_start><image><im_end>\\n{question}` and an empty assistant message."""
    user_message = IM_START_TOKEN + IMAGE_TOKEN + IM_END_TOKEN + "\n" + question
    return SYSTEM_PROMPT + SEP + ROLES[0] + ": " + user_message + SEP + ROLES[1] + ":"


def contact_prompt(mode: str, label: str, prompt_style: str = "clean") -> str:
    """`build_prompt(question_for(mode, label, prompt_style))`: the full text fed to the tokenizer."""
    return build_prompt(question_for(mode, label, prompt_style))


# --- answer parsing ------------------------------------------------------------------------------------
_SEG_PATTERN = r"\s*\[(?:SEG|HSEG|OSEG|ISEG)\]"


def _template_regex(template: str, slot: str) -> re.Pattern[str]:
    """A regex for one answer template up to its seg token: literal text matched case-insensitively with any
    run of whitespace for a space, the slot captured lazily, `{label}` matched as any text. What follows the
    seg token is not matched (4.31's decode writes "[SEG] ." with a space, the model may stop early)."""
    head = template[: template.index("{seg}")]
    out = []
    for piece in re.split(r"(\{\w+\})", head):
        if piece == "{" + slot + "}":
            out.append(r"(?P<slot>.*?)")
        elif piece == "{label}":
            out.append(r".+?")
        else:
            out.append(r"\s+".join(re.escape(word) for word in piece.split(" ")))
    out.append(_SEG_PATTERN)
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


_PARTS_REGEXES = tuple(_template_regex(t, "body_parts") for t in HCONTACT_PARTS_ANSWERS)
# The `afford_obj` forms first, so "grasp with mug" gives "grasp"; no known affordance name contains " with ".
_AFFORD_REGEXES = tuple(_template_regex(t, "affordance") for t in OAFFORD_AFFORD_OBJ_ANSWERS + OAFFORD_AFFORD_ANSWERS)


def _answer_text(text: str) -> str:
    """The assistant's part of a decoded sequence: upstream decodes prompt and answer together, so keep
    what follows the last "ASSISTANT:"."""
    marker = ROLES[1] + ":"
    return text.rsplit(marker, 1)[1] if marker in text else text


def parse_body_parts(text: str) -> list[str] | None:
    """The contacting body parts a `parts` answer names before its seg token ("The contacting body parts are
    left hand, right hand, and the contact region is [SEG]." -> ["left hand", "right hand"]), trying each of
    the 5 training paraphrases; None when the answer follows none of them or names no part."""
    answer = _answer_text(text)
    for regex in _PARTS_REGEXES:
        match = regex.search(answer)
        if match:
            parts = [p.strip() for p in match.group("slot").split(",")]
            parts = [p for p in parts if p]
            return parts or None
    return None


def parse_affordance(text: str) -> str | None:
    """The affordance type an object answer names ("The affordance type is grasp, and the contact region is
    [SEG]." -> "grasp"; the `afford_obj` form "... is grasp with mug, and ..." also gives "grasp"), trying
    each training paraphrase; None when the answer follows none of them or names none."""
    answer = _answer_text(text)
    for regex in _AFFORD_REGEXES:
        match = regex.search(answer)
        if match:
            return match.group("slot").strip() or None
    return None


@dataclass(frozen=True)
class ParsedAnswer:
    """What the model said besides its seg tokens."""

    body_parts: list[str] | None
    affordance: str | None
    seg_tokens: list[str]  # in order of appearance, e.g. ["[SEG]"] or ["[HSEG]", "[OSEG]"]


def parse_answer(text: str) -> ParsedAnswer:
    """Body parts, affordance and seg tokens from a decoded answer (see parse_body_parts, parse_affordance)."""
    answer = _answer_text(text)
    seg_tokens = re.findall(r"\[(?:SEG|HSEG|OSEG|ISEG)\]", answer)
    return ParsedAnswer(parse_body_parts(answer), parse_affordance(answer), seg_tokens)


# --- the longest answer (what the generation cap must allow) ----------------------------------------------
# SMPL's 24-part vertex segmentation (the names of `smpl_vert_segmentation.json`, public with SMPL); the `parts`
# answers list the parts a contact covers (upstream merges some of them; listing all 24 is the upper bound).
SMPL_PART_NAMES = (
    "hips",
    "leftUpLeg",
    "rightUpLeg",
    "spine",
    "leftLeg",
    "rightLeg",
    "spine1",
    "leftFoot",
    "rightFoot",
    "spine2",
    "leftToeBase",
    "rightToeBase",
    "neck",
    "leftShoulder",
    "rightShoulder",
    "head",
    "leftArm",
    "rightArm",
    "leftForeArm",
    "rightForeArm",
    "leftHand",
    "rightHand",
    "leftHandIndex1",
    "rightHandIndex1",
)
LONGEST_AFFORDANCE = "wrap_grasp"  # the longest affordance name of LEMON/PIAD
ANSWER_CAP_MARGIN = 1.25  # the cap allows 25 % more than the longest answer, plus a few tokens
ANSWER_CAP_EXTRA = 8


def longest_answers(label: str = "x" * MAX_LABEL_CHARS) -> list[str]:
    """Each answer template filled with the most it can hold: every SMPL part, the longest affordance, the longest
    label, with the longest seg token. The generation cap is derived from these (`answer_token_cap`)."""
    parts = ", ".join(SMPL_PART_NAMES)
    filled = [t.format(body_parts=parts, seg=HSEG_TOKEN) for t in HCONTACT_PARTS_ANSWERS]
    filled += [t.format(affordance=LONGEST_AFFORDANCE, label=label, seg=HSEG_TOKEN) for t in OAFFORD_AFFORD_OBJ_ANSWERS]
    filled += [t.format(seg=HSEG_TOKEN) for t in HCONTACT_SIMPLE_ANSWERS + OCONTACT_SIMPLE_ANSWERS]
    return filled


def answer_token_cap(count_tokens) -> int:
    """The most new tokens generation should allow: the longest answer in tokens (by `count_tokens`, the release
    tokenizer's count, + 1 for `</s>`) times ANSWER_CAP_MARGIN plus ANSWER_CAP_EXTRA. A cut answer would read as
    "no contact", so the cap errs long; it only costs time when a model rambles."""
    longest = max(count_tokens(answer) for answer in longest_answers()) + 1
    return int(longest * ANSWER_CAP_MARGIN) + ANSWER_CAP_EXTRA


def estimated_llama_tokens(text: str) -> int:
    """A stand-in count for planning without the release tokenizer: LLaMA-2's SentencePiece splits this text (camel-
    case part names, punctuation) into about one token per 2.5 characters; the cap errs long either way."""
    return int(len(text) / 2.5) + 1
