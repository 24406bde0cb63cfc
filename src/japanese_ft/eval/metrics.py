"""Scores with llm-jp-eval v1.3.0 semantics, equal to the reference to the last digit.

llm-jp-eval v1.3.0 NFKC-normalizes the prediction and the gold answer and scores
`fuzzywuzzy.fuzz.token_sort_ratio(pred, gold) / 100` (fuzzywuzzy 0.18.0 with
python-Levenshtein 0.21.1, as its lock file pins). That function, step by step:

1. delete the characters U+0080..U+00FF (`force_ascii=True` is the default; on Python 3 it
   only removes that Latin-1 block, nothing else);
2. replace every character matching `(?ui)\\W` (Python `re`, Unicode rules: anything that is
   not a letter, digit or `_`) with a space; lowercase (`str.lower`); strip;
3. split on whitespace, sort the tokens (code point order), join with one space, strip;
4. equal strings (two empty ones included) score 100; otherwise an empty side scores 0;
5. otherwise `int(round(100 * Levenshtein.ratio(a, b)))`: Python's round-half-to-even of the
   normalized Indel similarity, so the score is a whole percentage.

We reproduce steps 1-4 here; the ratio in step 5 is python-Levenshtein 0.21.1's `ratio`, which
is rapidfuzz's `Indel.normalized_similarity`, so we call that directly.
`tests/test_eval_metrics.py` pins values computed with the real fuzzywuzzy.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz.distance import Indel

_LATIN1_DELETED = dict.fromkeys(range(0x80, 0x100))  # fuzzywuzzy's asciidammit on Python 3
_NON_WORD = re.compile(r"(?ui)\W")  # fuzzywuzzy's StringProcessor regex, same flags


def normalize(text: str) -> str:
    """NFKC, as llm-jp-eval applies to predictions and gold answers."""
    return unicodedata.normalize("NFKC", text)


def token_sort_key(text: str) -> str:
    """fuzzywuzzy 0.18.0's `_process_and_sort(text, force_ascii=True)`: the string it compares."""
    processed = _NON_WORD.sub(" ", text.translate(_LATIN1_DELETED)).lower().strip()
    return " ".join(sorted(processed.split())).strip()


def token_sort_ratio(a: str, b: str) -> int:
    """fuzzywuzzy 0.18.0 `fuzz.token_sort_ratio(a, b)`: a whole number in 0..100."""
    a, b = token_sort_key(a), token_sort_key(b)
    if a == b:
        return 100
    if not a or not b:
        return 0
    return int(round(100 * Indel.normalized_similarity(a, b)))


def char_f1(pred: str, gold: str) -> float:
    """llm-jp-eval char_f1: token_sort_ratio of the NFKC forms / 100, a multiple of 0.01.

    >>> char_f1("東京都", "東京")
    0.8
    >>> char_f1("4 0 . 6 ℃", "40.6℃")  # compares "0 4 6 c" with "40 6c" (° is deleted)
    0.67
    """
    return token_sort_ratio(normalize(pred), normalize(gold)) / 100.0


def exact_match(pred: str, gold: str) -> float:
    """1.0 when the NFKC-normalized, stripped strings are equal, else 0.0."""
    return float(normalize(pred).strip() == normalize(gold).strip())


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
