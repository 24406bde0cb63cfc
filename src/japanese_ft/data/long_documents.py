"""Tokenize very long documents in pieces, so one 50 MB document does not need GBs of memory.

A fast tokenizer keeps per-byte alignments and per-token strings and offsets for the whole text it
encodes (about 300 bytes per character for Qwen2.5), so `prepare-corpus` cuts documents longer than
`LONG_CHARS` at safe boundaries and concatenates the pieces' ids.

Safe boundary: right after a single "\\n" between two non-space characters. For byte-level BPE
tokenizers (GPT-2's ByteLevel regex, or a Split regex + ByteLevel as Qwen2.5 / Llama 3) such a
newline always ends a pre-token and the next character starts one, and BPE never merges across
pre-tokens, so the pieces' ids equal the whole document's ids (tests/test_prepare_corpus.py checks
it). Other tokenizers (SentencePiece/Metaspace, add-prefix-space) and `--add-special-tokens` keep
whole-document tokenization, as does a document with no such newline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import numpy as np

LONG_CHARS = 1 << 17  # documents longer than this (characters) are tokenized in pieces of about this size
GROUP = 4  # pieces encoded per encode_batch call (parallel in Rust, bounded memory)
_BOUNDARY = re.compile(r"(?<=\S)\n(?=\S)")
_NORMALIZERS = {"NFC", "NFKC", "NFD", "NFKD"}
_PROBE = "日本語の文。\nEnglish words, 12345 and more\n「括弧」\nend  \n\nnext\n\tindented\nlast"


def _structure_ok(spec: dict) -> bool:
    """Byte-level pre-tokenizer without a prefix space and a Unicode-form normalizer (or none)."""
    norm = spec.get("normalizer")
    norms = [] if norm is None else norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm]
    if any(n.get("type") not in _NORMALIZERS for n in norms):
        return False
    pre = spec.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if not kinds or kinds[-1] != "ByteLevel" or any(k not in ("Split", "ByteLevel", "Digits") for k in kinds):
        return False
    return not any(p.get("add_prefix_space") for p in parts if p.get("type") == "ByteLevel")


def can_split(tokenizer, tokenizer_json: str, add_special_tokens: bool) -> bool:
    """Whether long documents may be tokenized in pieces (structure check plus a probe text)."""
    if add_special_tokens or not _structure_ok(json.loads(tokenizer_json)):
        return False
    whole = tokenizer.encode(_PROBE, add_special_tokens=False).ids
    pieces = [i for p in pieces_of(_PROBE, 8) for i in tokenizer.encode(p, add_special_tokens=False).ids]
    return whole == pieces


def pieces_of(text: str, size: int | None = None) -> Iterator[str]:
    """Consecutive pieces of about `size` (LONG_CHARS) characters, each ending at a safe boundary or the end."""
    size = size or LONG_CHARS
    start = 0
    while len(text) - start > size:
        m = _BOUNDARY.search(text, start + size)
        if m is None:
            break
        yield text[start : m.end()]
        start = m.end()
    yield text[start:]


def encode_long(tokenizer, text: str, dtype: np.dtype) -> np.ndarray:
    """Ids of `text` without special tokens, encoded a few pieces at a time."""
    out, group = [], []
    for piece in pieces_of(text):
        group.append(piece)
        if len(group) == GROUP:
            out.extend(np.asarray(e.ids, dtype=dtype) for e in tokenizer.encode_batch(group, add_special_tokens=False))
            group = []
    if group:
        out.extend(np.asarray(e.ids, dtype=dtype) for e in tokenizer.encode_batch(group, add_special_tokens=False))
    return np.concatenate(out) if out else np.zeros(0, dtype=dtype)
