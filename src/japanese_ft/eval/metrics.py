"""Scores with llm-jp-eval semantics.

llm-jp-eval normalizes both the prediction and the gold answer with Unicode NFKC and then
uses fuzzywuzzy's `token_sort_ratio` for "char_f1". rapidfuzz implements the same algorithm
(non-alphanumerics -> spaces, lowercase, strip, sort whitespace tokens, then the
sequence-matcher ratio), but unlike fuzzywuzzy it does no preprocessing unless told to, so we
pass `processor=default_process` explicitly.
"""

from __future__ import annotations

import unicodedata

from rapidfuzz import fuzz
from rapidfuzz.utils import default_process


def normalize(text: str) -> str:
    """NFKC, as llm-jp-eval applies to predictions and gold answers."""
    return unicodedata.normalize("NFKC", text)


def char_f1(pred: str, gold: str) -> float:
    """llm-jp-eval char_f1: NFKC both, then token_sort_ratio / 100, in [0, 1].

    >>> char_f1("東京都", "東京")
    0.8
    """
    return fuzz.token_sort_ratio(normalize(pred), normalize(gold), processor=default_process) / 100.0


def exact_match(pred: str, gold: str) -> float:
    """1.0 when the NFKC-normalized, stripped strings are equal, else 0.0."""
    return float(normalize(pred).strip() == normalize(gold).strip())


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
