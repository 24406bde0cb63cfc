"""Exact and near (MinHash over character 5-grams) document deduplication."""

from __future__ import annotations

import hashlib

import numpy as np

DEDUP_MODES = ("exact", "near", "none")


def exact_key(text: str) -> int:
    """64-bit content hash; identical texts get identical keys."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class ExactDeduplicator:
    """Remembers 64-bit hashes (about 60 bytes of RAM per unique document)."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def is_duplicate(self, key: int) -> bool:
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


_MERSENNE = np.uint64((1 << 61) - 1)


class MinHasher:
    """MinHash signatures of character n-gram sets, vectorized with numpy.

    Written here (not datasketch) because a per-shingle Python update loop is ~50x slower
    than this vectorized form on long Japanese articles.
    """

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.ngram = ngram
        self.a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)

    def shingle_hashes(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n = self.ngram
        if len(codes) < n:
            codes = np.concatenate([codes, np.zeros(n - len(codes), dtype=np.uint64)])
        h = np.zeros(len(codes) - n + 1, dtype=np.uint64)
        for k in range(n):  # polynomial rolling hash of each n-gram, wrapping mod 2**64
            h = h * np.uint64(1_000_003) + codes[k : len(codes) - n + 1 + k]
        h ^= h >> np.uint64(29)
        return np.unique(h & np.uint64(0x7FFFFFFF))  # 31-bit keys keep a*x+b below 2**63

    def signature(self, text: str) -> np.ndarray:
        x = self.shingle_hashes(text)
        # Chunk so the (shingles x permutations) matrix stays small for very long documents.
        sig = np.full(len(self.a), np.iinfo(np.uint64).max, dtype=np.uint64)
        for start in range(0, len(x), 4096):
            part = x[start : start + 4096, None]
            vals = (part * self.a[None, :] + self.b[None, :]) % _MERSENNE
            np.minimum(sig, vals.min(axis=0), out=sig)
        return sig


class NearDeduplicator:
    """LSH over MinHash bands; a candidate counts as duplicate if estimated Jaccard >= threshold."""

    def __init__(self, num_perm: int = 128, bands: int = 16, threshold: float = 0.8, ngram: int = 5) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be divisible by bands")
        self.hasher = MinHasher(num_perm=num_perm, ngram=ngram)
        self.bands = bands
        self.rows = num_perm // bands
        self.threshold = threshold
        self._buckets: list[dict[bytes, int]] = [dict() for _ in range(bands)]
        self._signatures: list[np.ndarray] = []

    def is_duplicate(self, signature: np.ndarray) -> bool:
        keys = [signature[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]
        for band, key in enumerate(keys):
            other = self._buckets[band].get(key)
            if other is not None and float(np.mean(self._signatures[other] == signature)) >= self.threshold:
                return True
        idx = len(self._signatures)
        self._signatures.append(signature)
        for band, key in enumerate(keys):
            self._buckets[band].setdefault(key, idx)
        return False
