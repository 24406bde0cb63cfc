"""Fixed-length training windows over Megatron token files, with blends and a resumable position.

Like Megatron's GPTDataset, each token file is cut into windows of `seq_length + 1` tokens that
run across document boundaries (the EOD tokens written by prepare-corpus separate documents);
window j covers tokens [j*seq_length, j*seq_length + seq_length + 1), so consecutive windows share
one token and every token except the first is a prediction target exactly once per epoch.

The *global stream* of windows is fixed by the seed and independent of the number of ranks:
  - blends (`"0.7 path/a"`, `"0.3 path/b"`): the stream is cut into blocks of `block_size` windows;
    each block takes round(weight * block_size) windows from every source (largest remainder), in
    that source's own shuffled order (reshuffled every time the source wraps around), and the
    block is shuffled;
  - rank r of W reads stream positions r, r+W, r+2W, ... so W ranks together read exactly the
    windows one rank would, and a step's global batch is the same for any W.
`state_dict()` holds the number of windows consumed by all ranks together.
No torch import at module level: `batch()` imports it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from japanese_ft.data.token_file import TokenFile, bin_path, idx_path
from japanese_ft.errors import UserError


@dataclass(frozen=True)
class Source:
    weight: float
    prefix: str


def parse_sources(items: list[str]) -> list[Source]:
    """`["0.7 a", "0.3 b"]` or `["a", "b"]` (equal weights) -> normalised Source list.

    A single string may also hold the whole Megatron-style list: `"0.7 a 0.3 b"`.
    """
    tokens: list[str] = []
    for item in items:
        tokens.extend(str(item).split())
    if not tokens:
        raise UserError("data.train: no token files given")

    def is_number(s: str) -> bool:
        try:
            float(s)
            return True
        except ValueError:
            return False

    pairs: list[tuple[float, str]] = []
    if is_number(tokens[0]):
        if len(tokens) % 2:
            raise UserError(f"blend {' '.join(tokens)!r}: expected 'WEIGHT PREFIX' pairs")
        for w, p in zip(tokens[::2], tokens[1::2]):
            if not is_number(w) or is_number(p):
                raise UserError(f"blend {' '.join(tokens)!r}: expected 'WEIGHT PREFIX' pairs")
            pairs.append((float(w), p))
    else:
        if any(is_number(t) for t in tokens):
            raise UserError(f"blend {' '.join(tokens)!r}: give a weight for every prefix or for none")
        pairs = [(1.0, p) for p in tokens]
    if any(w < 0 for w, _ in pairs) or sum(w for w, _ in pairs) <= 0:
        raise UserError(f"blend {' '.join(tokens)!r}: weights must be >= 0 and not all zero")
    total = sum(w for w, _ in pairs)
    return [Source(w / total, p) for w, p in pairs]


def check_token_prefixes(items: list[str], what: str = "data.train") -> list[Source]:
    sources = parse_sources(items)
    for s in sources:
        for p in (bin_path(s.prefix), idx_path(s.prefix)):
            if not p.exists():
                hint = " (cpt reads token files: run `jft prepare-corpus` first)" if s.prefix.endswith((".jsonl", ".gz", ".json")) else ""
                raise UserError(f"{what}: {p} not found{hint}")
    return sources


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    raw = [w * total for w in weights]
    counts = [int(np.floor(r)) for r in raw]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - raw[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class PackedWindows:
    """Deterministic, resumable stream of `seq_length + 1`-token windows for one rank."""

    def __init__(self, sources, seq_length: int, seed: int = 1234, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, block_size: int | None = None) -> None:
        if isinstance(sources, (str, Path)):
            sources = [str(sources)]
        if sources and not isinstance(sources[0], Source):
            sources = parse_sources(list(sources))
        self.sources: list[Source] = [s for s in sources if s.weight > 0]
        self.seq_length = int(seq_length)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle = shuffle
        self.files = [TokenFile(s.prefix) for s in self.sources]
        self.n_windows = [max(0, (tf.tokens - 1) // self.seq_length) for tf in self.files]
        for s, n, tf in zip(self.sources, self.n_windows, self.files):
            if n == 0:
                raise UserError(f"{s.prefix}: {tf.tokens} tokens is too few for one window of seq_length+1 = {self.seq_length + 1}")
        self.block_size = int(block_size or sum(self.n_windows))
        self.block_counts = _largest_remainder([s.weight for s in self.sources], self.block_size)
        self.consumed = 0  # windows consumed by all ranks together

    def __len__(self) -> int:
        """Windows in one block (one pass over the data for an unweighted list of files)."""
        return self.block_size

    # ---- the global stream ----
    @lru_cache(maxsize=8)  # noqa: B019 (one dataset per run: the cache living as long as it is the point)
    def _source_perm(self, i: int, epoch: int) -> np.ndarray:
        n = self.n_windows[i]
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, 1, i, epoch]).permutation(n)

    @lru_cache(maxsize=4)  # noqa: B019 (as above)
    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(source index, index in that source's stream) for every position of block b."""
        src = np.concatenate([np.full(c, i, dtype=np.int64) for i, c in enumerate(self.block_counts)])
        pos = np.concatenate([b * c + np.arange(c, dtype=np.int64) for c in self.block_counts])
        if self.shuffle:
            order = np.random.default_rng([self.seed, 2, b]).permutation(len(src))
            src, pos = src[order], pos[order]
        return src, pos

    def locate(self, k: int) -> tuple[int, int]:
        """(source index, window index in that file) of global stream position k."""
        src, pos = self._block(k // self.block_size)
        i, j = int(src[k % self.block_size]), int(pos[k % self.block_size])
        n = self.n_windows[i]
        return i, int(self._source_perm(i, j // n)[j % n])

    def window(self, k: int) -> np.ndarray:
        i, w = self.locate(k)
        start = w * self.seq_length
        return np.asarray(self.files[i].flat[start : start + self.seq_length + 1], dtype=np.int64)

    # ---- this rank's view ----
    def next_windows(self, n: int) -> np.ndarray:
        """This rank's next n windows, [n, seq_length + 1]; advances the global position by n*W."""
        ks = [self.consumed + j * self.world_size + self.rank for j in range(n)]
        self.consumed += n * self.world_size
        return np.stack([self.window(k) for k in ks])

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        return self.next_windows(1)[0]

    def next_batch(self, n: int) -> dict:
        """Micro-batch of n windows as torch tensors. The model reads all seq_length+1 tokens and is
        scored on seq_length predictions (labels == input_ids, shifted inside the loss)."""
        import torch

        ids = torch.from_numpy(self.next_windows(n))
        return {"input_ids": ids, "labels": ids.clone()}

    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "seed": self.seed, "seq_length": self.seq_length}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seq_length", self.seq_length) != self.seq_length:
            raise UserError(f"cannot resume: checkpoint data seq_length {state['seq_length']} != {self.seq_length}")
        consumed = int(state["consumed"])
        if consumed % self.world_size:
            raise UserError(f"cannot resume: {consumed} consumed windows do not divide over {self.world_size} ranks")
        self.consumed = consumed
