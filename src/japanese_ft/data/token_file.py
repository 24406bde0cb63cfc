"""Megatron `MMIDIDX` v1 token files: `PREFIX.bin` (token ids) + `PREFIX.idx` (index).

The index layout matches megatron.core.datasets.indexed_dataset:
  9-byte magic b"MMIDIDX\\x00\\x00", <Q version=1, <B dtype code, <Q sequence count,
  <Q document count, int32 sequence lengths, int64 byte pointers, int64 document indices.
Each document here is one sequence, so document indices are 0..N.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from japanese_ft.files import publish, temp_path

_MAGIC = b"MMIDIDX\x00\x00"
_VERSION = 1
_DTYPE_CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
_CODE_DTYPES = {v: k for k, v in _DTYPE_CODES.items()}


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (Megatron's rule: vocab < 65500), else int32."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def bin_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.bin")


def idx_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.idx")


class TokenFileWriter:
    """Streams documents into `PREFIX.bin.tmp`; `finish()` writes the index and renames both.

    Until `finish()` returns there is never a `.bin`/`.idx` pair under the final names, and an
    older pair at the same prefix is removed first so a stale index never meets a new .bin.
    """

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        if self.dtype not in _DTYPE_CODES:
            raise ValueError(f"unsupported dtype {self.dtype}")
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._bin_tmp = temp_path(bin_path(self.prefix))
        self._fh = open(self._bin_tmp, "wb")
        self._lengths: list[np.ndarray] = []
        self._pending: list[int] = []
        self.tokens = 0

    def add_document(self, ids) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        self._fh.write(arr.tobytes(order="C"))
        self._pending.append(len(arr))
        self.tokens += len(arr)
        if len(self._pending) >= 65536:
            self._flush_lengths()

    def add_raw(self, data: bytes, lengths) -> None:
        """Append already-encoded documents: `data` holds the concatenated ids in this dtype."""
        self._fh.write(data)
        lengths = np.asarray(lengths, dtype=np.int64)
        self._flush_lengths()
        self._lengths.append(lengths.astype(np.int32))
        self.tokens += int(lengths.sum())

    def _flush_lengths(self) -> None:
        if self._pending:
            self._lengths.append(np.asarray(self._pending, dtype=np.int32))
            self._pending = []

    @property
    def documents(self) -> int:
        return sum(len(x) for x in self._lengths) + len(self._pending)

    def finish(self) -> None:
        self._flush_lengths()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int32)
        final_idx = idx_path(self.prefix)
        idx_tmp = temp_path(final_idx)
        write_index(idx_tmp, self.dtype, lengths)
        final_idx.unlink(missing_ok=True)  # never a new .bin beside the old .idx
        publish(self._bin_tmp, bin_path(self.prefix))
        publish(idx_tmp, final_idx)

    def abort(self) -> None:
        """Close and delete the temporary files (used when a run fails or is interrupted)."""
        if not self._fh.closed:
            self._fh.close()
        for p in (self._bin_tmp, temp_path(idx_path(self.prefix))):
            p.unlink(missing_ok=True)


def write_index(path: Path, dtype: np.dtype, lengths: np.ndarray) -> None:
    lengths = np.asarray(lengths, dtype=np.int32)
    pointers = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1].astype(np.int64) * np.dtype(dtype).itemsize, out=pointers[1:])
    doc_idx = np.arange(len(lengths) + 1, dtype=np.int64)
    with open(path, "wb") as fh:
        fh.write(_MAGIC)
        fh.write(struct.pack("<Q", _VERSION))
        fh.write(struct.pack("<B", _DTYPE_CODES[np.dtype(dtype)]))
        fh.write(struct.pack("<Q", len(lengths)))
        fh.write(struct.pack("<Q", len(doc_idx)))
        fh.write(lengths.tobytes(order="C"))
        fh.write(pointers.tobytes(order="C"))
        fh.write(doc_idx.tobytes(order="C"))
        fh.flush()
        os.fsync(fh.fileno())


class TokenFile:
    """Read-only memory map over `PREFIX.bin/.idx`; `tf[i]` is document i as a numpy view."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        ipath, bpath = idx_path(prefix), bin_path(prefix)
        for p in (ipath, bpath):
            if not p.exists():
                raise FileNotFoundError(f"{p}: token file not found (expected PREFIX.bin and PREFIX.idx)")
        with open(ipath, "rb") as fh:
            header = fh.read(9 + 8 + 1 + 8 + 8)
        if len(header) < 34 or header[:9] != _MAGIC:
            raise ValueError(f"{ipath}: not a Megatron MMIDIDX index")
        version, = struct.unpack("<Q", header[9:17])
        if version != _VERSION:
            raise ValueError(f"{ipath}: unsupported index version {version}")
        self.dtype = _CODE_DTYPES[header[17]]
        n_seq, = struct.unpack("<Q", header[18:26])
        n_doc, = struct.unpack("<Q", header[26:34])
        idx = np.memmap(ipath, mode="r", dtype=np.uint8)
        off = 34
        self.lengths = np.frombuffer(idx, dtype=np.int32, count=n_seq, offset=off)
        off += 4 * n_seq
        self.pointers = np.frombuffer(idx, dtype=np.int64, count=n_seq, offset=off)
        off += 8 * n_seq
        self.document_indices = np.frombuffer(idx, dtype=np.int64, count=n_doc, offset=off)
        size = bpath.stat().st_size
        self.tokens = size // self.dtype.itemsize
        self._bin = np.memmap(bpath, mode="r", dtype=self.dtype) if size else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.pointers[i]) // self.dtype.itemsize
        return self._bin[start : start + int(self.lengths[i])]

    @property
    def flat(self) -> np.ndarray:
        """All tokens of all documents, concatenated, as one memory-mapped array."""
        return self._bin


def merge_token_files(prefixes: list[str | Path], out_prefix: str | Path, dedup: bool = False) -> dict:
    """Concatenate token files in order. With `dedup`, drop documents whose token sequence
    already appeared (byte-level BPE is lossless, so equal tokens <=> equal cleaned text)."""
    import hashlib

    files = [TokenFile(p) for p in prefixes]
    dtypes = {f.dtype for f in files}
    if len(dtypes) != 1:
        raise ValueError(f"cannot merge token files of different dtypes: {sorted(map(str, dtypes))}")
    writer = TokenFileWriter(out_prefix, files[0].dtype)
    seen: set[bytes] = set()
    dropped = 0
    try:
        for tf in files:
            if not dedup:
                writer.add_raw(np.asarray(tf.flat).tobytes(), tf.lengths)
                continue
            for i in range(len(tf)):
                doc = tf[i]
                key = hashlib.blake2b(doc.tobytes(), digest_size=16).digest()
                if key in seen:
                    dropped += 1
                    continue
                seen.add(key)
                writer.add_document(doc)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return {"documents": writer.documents, "tokens": writer.tokens, "duplicates_dropped": dropped}
