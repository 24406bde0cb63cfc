"""Swallow-corpus-style quality rules for Japanese documents.

Each rule has a threshold in `QualityConfig`; `check_quality` returns the name of the first
rule a document breaks (used as the drop reason) or None when it passes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, fields

from japanese_ft.text.sentences import split_sentences

_JAPANESE = re.compile(r"[\u3041-\u309f\u30a0-\u30ff\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\u3005\u30fc]")
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_KATAKANA = re.compile(r"[\u30a1-\u30fa\u30fc\uff66-\uff9f]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class QualityConfig:
    min_japanese_chars: int = 100
    min_hiragana_fraction: float = 0.2
    max_katakana_fraction: float = 0.5
    max_top_2gram_fraction: float = 0.20
    max_top_3gram_fraction: float = 0.18
    max_top_4gram_fraction: float = 0.16
    max_duplicate_10gram_fraction: float = 0.40
    max_duplicate_line_fraction: float = 0.30
    min_avg_sentence_chars: float = 10.0
    max_avg_sentence_chars: float = 250.0
    max_sentence_chars: int = 1000

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "QualityConfig":
        """Build from `key=value` strings, rejecting unknown keys with the list of known ones."""
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        for key, raw in options.items():
            if key not in known:
                raise ValueError(f"unknown filter option {key!r}; known: {', '.join(known)}")
            caster = int if known[key] in (int, "int") else float
            try:
                values[key] = caster(raw)
            except ValueError:
                raise ValueError(f"filter option {key}={raw!r} is not a number") from None
        return cls(**values)


def _top_ngram_fraction(chars: str, n: int) -> float:
    if len(chars) < n:
        return 0.0
    counts = Counter(chars[i : i + n] for i in range(len(chars) - n + 1))
    _, top = counts.most_common(1)[0]
    return top * n / len(chars) if top > 1 else 0.0


def _duplicate_ngram_fraction(chars: str, n: int) -> float:
    """Fraction of characters covered by n-grams that occur more than once (Gopher-style)."""
    if len(chars) < n:
        return 0.0
    grams = [chars[i : i + n] for i in range(len(chars) - n + 1)]
    counts = Counter(grams)
    covered = bytearray(len(chars))
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i : i + n] = b"\x01" * n
    return sum(covered) / len(chars)


def _duplicate_line_fraction(text: str) -> float:
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if len(lines) < 2:
        return 0.0
    counts = Counter(lines)
    return sum(c for c in counts.values() if c > 1) / len(lines)


def check_quality(text: str, cfg: QualityConfig) -> str | None:
    """Return the first rule `text` breaks, e.g. "too_few_japanese_chars", or None."""
    n_ja = len(_JAPANESE.findall(text))
    if n_ja < cfg.min_japanese_chars:
        return "too_few_japanese_chars"
    chars = _SPACE.sub("", text)
    total = max(1, len(chars))
    if len(_HIRAGANA.findall(chars)) / total < cfg.min_hiragana_fraction:
        return "low_hiragana_fraction"
    if len(_KATAKANA.findall(chars)) / total > cfg.max_katakana_fraction:
        return "high_katakana_fraction"
    if _duplicate_line_fraction(text) > cfg.max_duplicate_line_fraction:
        return "duplicate_lines"
    for n, limit in ((2, cfg.max_top_2gram_fraction), (3, cfg.max_top_3gram_fraction), (4, cfg.max_top_4gram_fraction)):
        if _top_ngram_fraction(chars, n) > limit:
            return f"top_{n}gram_repetition"
    if _duplicate_ngram_fraction(chars, 10) > cfg.max_duplicate_10gram_fraction:
        return "duplicate_10gram_repetition"
    sentences = split_sentences(text)
    if sentences:
        lengths = [len(s) for s in sentences]
        avg = sum(lengths) / len(lengths)
        if avg < cfg.min_avg_sentence_chars:
            return "short_sentences"
        if avg > cfg.max_avg_sentence_chars:
            return "long_sentences"
        if max(lengths) > cfg.max_sentence_chars:
            return "very_long_sentence"
    return None
