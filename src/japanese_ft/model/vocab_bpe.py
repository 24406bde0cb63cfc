"""Continued byte-level BPE: learn Japanese tokens on top of a base tokenizer, without the model.

The new merges continue the base BPE. Every new merge ranks after every base merge, so at encode
time the base merges run first and the new merges then act on the *base segmentation*. They are
therefore learned from that segmentation: each pre-token of the corpus (base normalizer and
pre-tokenizer) is encoded with the base model, each base id becomes one private code point
(chr(0x10000 + id), never a surrogate), and the `tokenizers` BpeTrainer learns merges over those
words. The learned merges are mapped back to byte-level token strings.

A new merge is kept only when its result contains a byte that starts a character in U+3000-U+9FFF
(kana, kanji, CJK punctuation: lead bytes E3-E9) or the pair EF BC/BD/BE (full- and half-width
forms U+FF00-U+FFBF). Such a merge can only fire on text that contains one of those characters,
so text without them (English, code, other scripts, emoji) tokenizes exactly as before.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from japanese_ft.errors import UserError

PRIVATE_BASE = 0x10000  # base id -> chr(PRIVATE_BASE + id); ids up to 1,048,575 fit below U+10FFFF
SUPPORTED = ("byte-level BPE tokenizers (GPT-2 style, as in Qwen2/2.5/3, Llama 3, SmolLM, GPT-NeoX, Mistral Nemo); "
             "SentencePiece/Unigram, WordPiece and BPE with byte fallback (Llama 2, Mistral 7B, Gemma) are not supported")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which `tokenizers`' ByteLevel uses."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_TO_CHAR = _bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _TO_CHAR.items()}


def token_bytes(token: str) -> bytes:
    """The raw bytes of a byte-level token string ("ãģĵ" -> b"\\xe3\\x81\\x93")."""
    return bytes(_CHAR_TO_BYTE[c] for c in token)


def display_token(token: str) -> str:
    """Readable form of a byte-level token: its text, with partial characters as \\xNN and newlines as \\n."""
    text = token_bytes(token).decode("utf-8", errors="backslashreplace")
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


_LEAD_CHARS = frozenset(_TO_CHAR[b] for b in range(0xE3, 0xEA))  # lead bytes of U+3000-U+9FFF
_WIDTH_PAIRS = tuple(_TO_CHAR[0xEF] + _TO_CHAR[b] for b in (0xBC, 0xBD, 0xBE))  # U+FF00-U+FFBF


def is_japanese_token(token: str) -> bool:
    """True when a byte-level token holds a lead byte of U+3000-U+9FFF (kana, kanji, CJK punctuation)
    or the EF BC/BD/BE start of a full- or half-width form (U+FF00-U+FFBF)."""
    return not _LEAD_CHARS.isdisjoint(token) or any(pair in token for pair in _WIDTH_PAIRS)


def _components(obj, kind: str) -> list[dict]:
    if not obj:
        return []
    if obj.get("type") == "Sequence":
        return [c for sub in obj.get(kind, []) for c in _components(sub, kind)]
    return [obj]


def check_byte_level_bpe(tok_json: dict, name: str) -> None:
    """UserError unless the tokenizer is a byte-level BPE (BPE model, ByteLevel pre-tokenizer and decoder)."""
    model = tok_json.get("model", {})
    kind = model.get("type")
    pre = [c.get("type") for c in _components(tok_json.get("pre_tokenizer"), "pretokenizers")]
    dec = [c.get("type") for c in _components(tok_json.get("decoder"), "decoders")]
    if kind != "BPE":
        what = f"a {kind} tokenizer" if kind else "not a BPE tokenizer"
    elif model.get("byte_fallback"):
        what = "a BPE tokenizer with byte fallback (SentencePiece style)"
    elif "ByteLevel" not in pre or "ByteLevel" not in dec:
        what = f"a BPE tokenizer without a ByteLevel pre-tokenizer and decoder (pre-tokenizer {pre or None}, decoder {dec or None})"
    elif model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        what = "a BPE tokenizer with subword prefixes/suffixes"
    else:
        return
    raise UserError(f"tokenizer {name}: {what}; extend-vocab supports {SUPPORTED}")


def _merge_pair(merge) -> tuple[str, str]:
    if isinstance(merge, str):  # the older "a b" form of tokenizer.json
        a, b = merge.split(" ")
        return a, b
    return merge[0], merge[1]


class CorpusWords:
    """Counts the corpus's Japanese pre-tokens in base-id form (one private character per base id);
    pre-tokens of a single base token are left out (nothing to merge)."""

    def __init__(self, base) -> None:
        import numpy as np

        self.base = base
        vocab = base.get_vocab(with_added_tokens=False)
        size = max(vocab.values()) + 1
        self.japanese = np.zeros(size + 1, dtype=bool)  # the last slot stands for added tokens
        for tok, tid in vocab.items():
            self.japanese[tid] = is_japanese_token(tok)
        self.model_size = size
        self.words: Counter = Counter()
        self.occurrences = 0

    def add(self, texts: list[str]) -> None:
        """Encode a batch with the base tokenizer (Rust, parallel) and count its Japanese words."""
        import numpy as np

        # Literal special-token text in the corpus stays text (as in jft's SFT encoding).
        before, self.base.encode_special_tokens = self.base.encode_special_tokens, True
        try:
            encodings = self.base.encode_batch(texts, add_special_tokens=False)
        finally:
            self.base.encode_special_tokens = before
        for enc in encodings:
            ids = np.asarray(enc.ids, dtype=np.int64)
            if len(ids) < 2:
                continue
            word = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
            flags = self.japanese[np.minimum(ids, self.model_size)]
            starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
            ends = np.r_[starts[1:], len(ids)]
            japanese = np.logical_or.reduceat(flags, starts)
            usable = japanese & (ends - starts > 1)
            if ids.max() >= self.model_size:  # an added token inside a word: leave that word out
                usable &= ~np.logical_or.reduceat(ids >= self.model_size, starts)
            if not usable.any():
                continue
            # Vectorised: code points of the kept words, a space between words, decoded as UTF-32.
            keep = np.repeat(usable, ends - starts)
            codes = ids[keep] + PRIVATE_BASE
            kept_starts = np.cumsum(np.r_[0, (ends - starts)[usable]])[1:-1]
            codes = np.insert(codes, kept_starts, 0x20).astype("<u4")
            pieces = codes.tobytes().decode("utf-32-le").split(" ")
            self.words.update(pieces)
            self.occurrences += len(pieces)


def learn_merges(words: Counter, n_merges: int, min_frequency: int) -> list[tuple[str, str]]:
    """BpeTrainer over base-id words; returns up to `n_merges` merges in private-character form."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    alphabet = {c for w in words for c in w}
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + n_merges, min_frequency=min_frequency, show_progress=False)

    def chunks(size: int = 4096):
        batch = []
        for word, count in words.items():
            batch.append(" ".join([word] * count))
            if len(batch) >= size:
                yield " ".join(batch)
                batch = []
        if batch:
            yield " ".join(batch)

    tok.train_from_iterator(chunks(), trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [_merge_pair(m) for m in merges[:n_merges]]


@dataclass
class Extension:
    """What a continued BPE adds: merges (byte-level strings, in rank order) and new tokens (in id order)."""

    first_id: int
    merges: list[tuple[str, str]]
    tokens: list[str]
    learned: int = 0  # merges the trainer produced
    not_japanese: int = 0  # dropped: the result has no Japanese bytes
    unreachable: int = 0  # dropped: a part depends on a dropped merge
    already_merged: int = 0  # the pair is already a merge (base or new)
    existing_result: int = 0  # appended merge whose result is an existing token


def map_back(learned: list[tuple[str, str]], base_json: dict, add: int, first_id: int) -> Extension:
    """Private-character merges -> byte-level merges, keeping the first `add` new Japanese tokens."""
    vocab = base_json["model"]["vocab"]
    id_to_token = {i: t for t, i in vocab.items()}

    def real(s: str) -> str:
        return "".join(id_to_token[ord(c) - PRIVATE_BASE] for c in s)

    have = set(vocab)
    pairs = {_merge_pair(m) for m in base_json["model"]["merges"]}
    ext = Extension(first_id=first_id, merges=[], tokens=[], learned=len(learned))
    reachable = set()  # private-form tokens the extended BPE can build (single base ids always can)
    for a, b in learned:
        if (len(a) > 1 and a not in reachable) or (len(b) > 1 and b not in reachable):
            ext.unreachable += 1
            continue
        ra, rb = real(a), real(b)
        result = ra + rb
        if not is_japanese_token(result):
            ext.not_japanese += 1
            continue
        if (ra, rb) in pairs:
            ext.already_merged += 1
            reachable.add(a + b)
            continue
        if result in have:
            ext.existing_result += 1
        else:
            if len(ext.tokens) >= add:
                break
            ext.tokens.append(result)
            have.add(result)
        ext.merges.append((ra, rb))
        pairs.add((ra, rb))
        reachable.add(a + b)
    return ext


def contiguous_model_vocab(base_json: dict, name: str) -> dict[str, int]:
    """The base BPE vocabulary with every added token placed at its own id (0..N-1, no gaps).

    `tokenizers` re-numbers added tokens that are missing from the model vocabulary to follow it, so
    new model tokens appended after them would move them; listing them in the vocabulary keeps ids.
    """
    vocab = dict(base_json["model"]["vocab"])
    for added in base_json.get("added_tokens", []):
        content, tid = added["content"], int(added["id"])
        if vocab.setdefault(content, tid) != tid:
            raise UserError(f"tokenizer {name}: added token {content!r} has id {tid} but the vocabulary says {vocab[content]}")
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        missing = sorted(set(range(ids[-1] + 1)) - set(ids))[:5]
        raise UserError(f"tokenizer {name}: token ids are not contiguous (no token has id {missing}); extend-vocab "
                        "appends new ids after the last one and needs 0..N-1")
    return vocab


def build_extended(base, base_json: dict, ext: Extension, name: str):
    """tokenizer.json of the extended tokenizer (dict) and its `tokenizers.Tokenizer`; `base` is the
    base `tokenizers.Tokenizer` that `base_json` describes."""
    from tokenizers import Tokenizer

    vocab = contiguous_model_vocab(base_json, name)
    if ext.first_id != len(vocab):
        raise ValueError(f"new ids must start at {len(vocab)}, got {ext.first_id}")
    inserted = set(vocab) - set(base_json["model"]["vocab"])
    if base_json["model"].get("ignore_merges") and inserted:
        for content in sorted(inserted):
            pieces = [p for p, _ in base.pre_tokenizer.pre_tokenize_str(content)] if base.pre_tokenizer else [content]
            if pieces == [content]:  # a literal of it in text would now map straight to the control token
                raise UserError(f"tokenizer {name}: added token {content!r} survives pre-tokenization whole and the "
                                "BPE ignores merges for whole words; its id could not be kept safely")
    for k, tok in enumerate(ext.tokens):
        vocab[tok] = ext.first_id + k
    out = dict(base_json, model=dict(base_json["model"]))
    out["model"]["vocab"] = vocab
    merges = base_json["model"]["merges"]
    if merges and isinstance(merges[0], str):
        merges = [list(_merge_pair(m)) for m in merges]
    out["model"]["merges"] = merges + [list(m) for m in ext.merges]
    tokenizer = Tokenizer.from_str(json.dumps(out, ensure_ascii=False))
    for added in base_json.get("added_tokens", []):  # our own invariant, not user input
        if tokenizer.token_to_id(added["content"]) != added["id"]:
            raise RuntimeError(f"added token {added['content']!r} moved from id {added['id']}")
    return out, tokenizer


def decompose(base, token: str) -> list[int]:
    """Base ids a (new) byte-level token string splits into under the base BPE."""
    return [t.id for t in base.model.tokenize(token)]


def iter_batches(texts: Iterable[str], size: int = 512):
    batch = []
    for text in texts:
        batch.append(text)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
