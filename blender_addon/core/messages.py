"""Text the user reads: whole sentences (what happened, then what to do), and lines wrapped to the sidebar.

Standard library only: `textwrap` does the wrapping; Blender's labels never wrap by themselves, they cut.
"""

from __future__ import annotations

import re
import textwrap

_LOWER_FIRST_WORD = re.compile(r"^[a-z]+(?=[\s,;:])")  # "nothing listens ..." but not "sports_ball has ..."
_END = (".", "!", "?")
# A Blender sidebar label at UI scale 1 fits about one character per 7 pixels of region width (Inter, 11 pt,
# mixed text); slightly narrow on purpose, so a wrapped line is never cut at its end.
CHAR_PX = 7.0
LABEL_MARGIN_PX = 48.0  # the panel's borders and a label's icon


def sentence(text: str) -> str:
    """`text` as one or more whole sentences: stripped, a lowercase first word capitalised, a full stop added.

    Only a first word of plain lowercase letters is capitalised, so names and paths that open a message
    ("sports_ball has no vertices", "/tmp/x is missing") keep their spelling."""
    text = " ".join(text.split())
    if not text:
        return ""
    if _LOWER_FIRST_WORD.match(text):
        text = text[0].upper() + text[1:]
    return text if text.endswith(_END) else text + "."


def join_sentences(*parts: str) -> str:
    """The non-empty parts as sentences, one after another."""
    return " ".join(s for s in (sentence(p) for p in parts) if s)


def chars_for_width(width_px: float, ui_scale: float = 1.0) -> int:
    """How many characters a label of a region `width_px` wide shows (at least 20)."""
    usable = width_px - LABEL_MARGIN_PX * ui_scale
    return max(20, int(usable / (CHAR_PX * max(ui_scale, 0.1))))


def wrap(text: str, width: int) -> list[str]:
    """`text` cut into lines of at most `width` characters at spaces (a longer word, e.g. a path, is split);
    its own line breaks are kept. An empty text gives no lines."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, width=max(width, 1), break_on_hyphens=False) or [""])
    while lines and not lines[-1]:
        lines.pop()
    return lines
