"""Unicode normalization and whitespace cleanup for Japanese text."""

from __future__ import annotations

import re
import unicodedata

NORMALIZATIONS = ("nfc", "nfkc", "none")

# NFKC folds FULLWIDTH TILDE (～, U+FF5E) to ASCII "~"; in Japanese it is a wave dash
# ("5月～7月"), so we keep it. WAVE DASH (〜, U+301C) is already NFKC-stable.
_PROTECTED = "～"
_PROTECTED_SPLIT = re.compile(f"([{_PROTECTED}])")

_MANY_NEWLINES = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"[ \t\u00a0]{2,}")
_IDEOGRAPHIC_SPACE_RUNS = re.compile("\u3000{2,}")
_TRAILING_SPACE = re.compile(r"[ \t\u00a0\u3000]+\n")


def normalize(text: str, form: str = "nfc") -> str:
    """Return `text` in Unicode form `nfc`, `nfkc` or unchanged (`none`).

    NFKC turns half-width katakana into full-width (ｶﾞ -> ガ) and full-width ASCII into
    ASCII (１２３ -> 123), but unlike neologdn's defaults it never deletes or rewrites
    the wave dashes 〜 and ～.
    """
    if form == "nfc":
        return unicodedata.normalize("NFC", text)
    if form == "nfkc":
        if _PROTECTED not in text:
            return unicodedata.normalize("NFKC", text)
        parts = _PROTECTED_SPLIT.split(text)
        return "".join(p if p == _PROTECTED else unicodedata.normalize("NFKC", p) for p in parts)
    if form == "none":
        return text
    raise ValueError(f"unknown normalization {form!r}; choose one of {', '.join(NORMALIZATIONS)}")


def clean(text: str) -> str:
    """Collapse runs of spaces and 3+ newlines, drop trailing spaces, strip the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("\n", text)
    text = _SPACE_RUNS.sub(" ", text)
    text = _IDEOGRAPHIC_SPACE_RUNS.sub("\u3000", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()
