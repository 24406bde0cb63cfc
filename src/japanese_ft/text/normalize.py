"""Unicode normalization and whitespace cleanup for Japanese text."""

from __future__ import annotations

import re
import unicodedata

NORMALIZATIONS = ("nfc", "nfkc", "none")
CLEANUPS = ("whitespace", "none")  # `clean()` below, or the text exactly as read

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
        return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
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
    # Cheap substring tests first: most documents need none of the regex passes (hot path).
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if " \n" in text or "\t\n" in text or "\u3000\n" in text or "\xa0\n" in text:
        text = _TRAILING_SPACE.sub("\n", text)
    if "  " in text or "\t" in text or "\xa0" in text:
        text = _SPACE_RUNS.sub(" ", text)
    if "\u3000\u3000" in text:
        text = _IDEOGRAPHIC_SPACE_RUNS.sub("\u3000", text)
    if "\n\n\n" in text:
        text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()
