"""Japanese sentence splitting that respects 「」『』（）() and other bracket nesting."""

from __future__ import annotations

_OPEN = "「『（(［[【〔〈《｛{"
_CLOSE = "」』）)］]】〕〉》｝}"
_ENDERS = "。！？!?"
_TRAILERS = "」』）)］]】〕〉》｝}!?！？。．…"


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences at 。！？ (and newlines) outside brackets.

    A terminator inside 「…。」 or （…。） does not end the sentence; a closing bracket or
    another terminator right after the terminator stays with the sentence. Unbalanced
    closers are ignored, and an unclosed opener is given up at the end of its line so that
    one stray 「 cannot swallow a whole article.
    """
    sentences: list[str] = []
    for line in text.split("\n"):
        sentences.extend(_split_line(line))
    return sentences


def _split_line(line: str) -> list[str]:
    out: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in _ENDERS and depth == 0:
            j = i + 1
            while j < n and line[j] in _TRAILERS and line[j] not in _OPEN:
                if line[j] in _CLOSE:
                    depth = max(0, depth - 1)
                j += 1
            piece = line[start:j].strip()
            if piece:
                out.append(piece)
            start = j
            i = j
            continue
        i += 1
    tail = line[start:].strip()
    if tail:
        if depth > 0 and out == [] and any(c in _ENDERS for c in tail):
            # Unclosed bracket: fall back to splitting without bracket awareness.
            return _split_flat(tail)
        out.append(tail)
    return out


def _split_flat(line: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(line):
        if ch in _ENDERS:
            out.append(line[start : i + 1].strip())
            start = i + 1
    if line[start:].strip():
        out.append(line[start:].strip())
    return [s for s in out if s]
