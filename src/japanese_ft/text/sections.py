"""Paragraphs, headings and sentence spans of a plain-text article.

LLM-jp `ja_wiki` records join paragraphs with "\\n". Some sources keep section headings as
their own short lines ("歴史", "地理"). `split_sections` turns such a text into paragraphs,
each tagged with the heading it sits under, and every paragraph carries the character spans
of its sentences (from `split_sentences`, so 「…。」 and （…。） are never split), so callers
can cut text at sentence boundaries by slicing the original paragraph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from japanese_ft.text.sentences import split_sentences

HEADING_MAX_CHARS = 25
_SENTENCE_END = "。！？!?．"


@dataclass
class Paragraph:
    """One paragraph; `spans` are (start, end) character offsets of its sentences in `text`."""

    text: str
    heading: str | None = None
    spans: list[tuple[int, int]] = field(default_factory=list)


def sentence_spans(paragraph: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of one line, so `paragraph[s:e]` is a whole sentence.

    Slicing the original (instead of joining split pieces) keeps the text between sentences,
    such as the space after "?" in Latin text, exactly as it was.
    """
    spans: list[tuple[int, int]] = []
    cursor = 0
    for sentence in split_sentences(paragraph):
        start = paragraph.find(sentence, cursor)
        if start < 0:  # cannot happen for a single line; be safe and stop rather than misalign
            break
        end = start + len(sentence)
        spans.append((start, end))
        cursor = end
    return spans


def is_heading(line: str, next_line: str | None) -> bool:
    """A heading is a short line with no sentence terminator, followed by a prose paragraph."""
    line = line.strip()
    if not line or len(line) > HEADING_MAX_CHARS or next_line is None:
        return False
    if any(c in _SENTENCE_END for c in line) or line[-1] in "、,:：":
        return False
    nxt = next_line.strip()
    return len(nxt) > len(line) and any(c in _SENTENCE_END for c in nxt)


def split_sections(text: str) -> tuple[list[Paragraph], list[str]]:
    """Split `text` into paragraphs (heading lines removed) and the list of headings found.

    Each paragraph records the most recent heading above it (None for the lead).
    """
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    paragraphs: list[Paragraph] = []
    headings: list[str] = []
    current: str | None = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if is_heading(line, nxt):
            current = line
            headings.append(line)
            continue
        spans = sentence_spans(line)
        if spans:
            paragraphs.append(Paragraph(line, current, spans))
    return paragraphs, headings
