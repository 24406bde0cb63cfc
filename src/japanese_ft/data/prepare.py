"""`prepare-corpus`: LLM-jp JSONL -> normalized, filtered, deduplicated -> Megatron token files.

The main process reads raw lines and makes every keep/drop decision in input order; workers
(spawned processes) parse, clean, filter and tokenize batches. Results come back in order and
at most `2 x workers` batches are in flight, so memory is bounded and the output is identical
for any worker count.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from japanese_ft.data.corpus import (
    Location,
    Malformed,
    count_lines,
    expand_inputs,
    iter_lines,
    note_malformed,
    parse_record,
    shard_range,
)
from japanese_ft.data.token_file import TokenFileWriter, dtype_for_vocab
from japanese_ft.data.tokenizer_files import load_tokenizer_json, resolve_eod_id
from japanese_ft.errors import UserError
from japanese_ft.files import write_json
from japanese_ft.text.dedup import ExactDeduplicator, MinHasher, NearDeduplicator, exact_key
from japanese_ft.text.normalize import clean, normalize
from japanese_ft.text.quality import QualityConfig, check_quality

BATCH_BYTES = 1 << 20


@dataclass
class PrepareOptions:
    tokenizer: str
    text_key: str = "text"
    normalize: str = "nfc"
    clean: str = "whitespace"  # or "none": no whitespace cleanup (Megatron's preprocess_data.py does none)
    add_special_tokens: bool = False  # BOS/EOS of the tokenizer's post-processor, as tokenizer(text).input_ids
    quality: QualityConfig | None = None
    dedup: str = "exact"
    eod: bool = True
    workers: int = 1
    strict: bool = False
    shard: tuple[int, int] | None = None


@dataclass
class PrepareStats:
    documents_in: int = 0
    documents_written: int = 0
    dropped: dict = field(default_factory=dict)
    malformed_lines: int = 0
    malformed_examples: list = field(default_factory=list)
    tokens: int = 0
    characters: int = 0
    chars_per_token: float = 0.0
    input_bytes: int = 0
    seconds: float = 0.0
    mb_per_s: float = 0.0
    workers: int = 1
    normalize: str = "nfc"
    clean: str = "whitespace"
    add_special_tokens: bool = False
    dedup: str = "exact"
    filter: bool = False
    eod: bool = True
    shard: str | None = None
    dtype: str = ""
    inputs: list = field(default_factory=list)


# ---- worker side -------------------------------------------------------------------------

_W: dict = {}


def _die_with_parent(parent_pid: int) -> None:
    """A worker exits when prepare-corpus dies, even by SIGKILL, and leaves Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent catches Ctrl-C and stops the pool
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    else:
        import threading

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(tokenizer_json: str | None, opts: dict, single_thread: bool, parent_pid: int | None = None) -> None:
    """Set up a worker. `tokenizer_json` None: the tokenizer was inherited through fork."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    if single_thread:
        os.environ["RAYON_NUM_THREADS"] = "1"  # one Rust thread per worker process
    if tokenizer_json is not None:
        from tokenizers import Tokenizer

        _W["tok"] = Tokenizer.from_str(tokenizer_json)
    _W["opts"] = opts
    _W["minhash"] = MinHasher() if opts["dedup"] == "near" else None


def _process_batch(lines: list[bytes]) -> dict:
    """Parse, clean, filter and tokenize one batch; decisions that need global state stay in main."""
    opts = _W["opts"]
    quality = QualityConfig(**opts["quality"]) if opts["quality"] is not None else None
    malformed: list[tuple[int, str]] = []
    dropped: Counter = Counter()
    kept_idx, texts, keys, sigs = [], [], [], []
    n_valid = 0
    for i, raw in enumerate(lines):
        rec = parse_record(raw, opts["text_key"])
        if rec is None:
            continue
        if isinstance(rec, Malformed):
            malformed.append((i, str(rec)))
            continue
        n_valid += 1
        text = normalize(rec[opts["text_key"]], opts["normalize"])
        if opts["clean"] == "whitespace":
            text = clean(text)
        if not text:
            dropped["empty"] += 1
            continue
        if quality is not None:
            reason = check_quality(text, quality)
            if reason:
                dropped[reason] += 1
                continue
        kept_idx.append(i)
        texts.append(text)
        keys.append(exact_key(text) if opts["dedup"] != "none" else 0)
        if _W["minhash"] is not None:
            sigs.append(_W["minhash"].signature(text))
    lengths = np.zeros(len(texts), dtype=np.int64)
    tokens = b""
    if texts:
        tokens = _tokenize(texts, lengths, opts)
    return {
        "n_valid": n_valid,
        "malformed": malformed,
        "dropped": dropped,
        "kept_idx": kept_idx,
        "keys": keys,
        "sigs": sigs,
        "chars": [len(t) for t in texts],
        "lengths": lengths,
        "tokens": tokens,
    }


def _tokenize(texts: list[str], lengths: np.ndarray, opts: dict) -> bytes:
    """Token bytes of all texts (each + EOD); fills lengths. Very long documents go in pieces."""
    from japanese_ft.data.long_documents import LONG_CHARS, encode_long

    tok, eod, dtype = _W["tok"], opts["eod_id"], np.dtype(opts["dtype"])
    long = {j for j, t in enumerate(texts) if opts["split_long"] and len(t) > LONG_CHARS}
    short = [j for j in range(len(texts)) if j not in long]
    encodings = dict(zip(short, tok.encode_batch([texts[j] for j in short], add_special_tokens=opts["add_special_tokens"])))
    parts: list[np.ndarray] = []
    flat: list[int] = []
    for j in range(len(texts)):
        if j in long:
            if flat:
                parts.append(np.asarray(flat, dtype=dtype))
                flat = []
            ids = encode_long(tok, texts[j], dtype)
            parts.append(ids)
            if eod is not None:
                flat.append(eod)
        else:
            ids = encodings.pop(j).ids
            flat.extend(ids)
            if eod is not None:
                flat.append(eod)
        lengths[j] = len(ids) + (eod is not None)
    parts.append(np.asarray(flat, dtype=dtype))
    return b"".join(p.tobytes() for p in parts)


# ---- main side ---------------------------------------------------------------------------


def _batches(line_iter, batch_bytes: int | None = None):
    batch_bytes = batch_bytes or BATCH_BYTES
    lines: list[bytes] = []
    locs: list[Location] = []
    size = 0
    for raw, loc in line_iter:
        lines.append(raw)
        locs.append(loc)
        size += len(raw)
        if size >= batch_bytes:
            yield lines, locs, size
            lines, locs, size = [], [], 0
    if lines:
        yield lines, locs, size


def _ordered_map(fn, batches, workers: int, tokenizer_json: str, opts: dict):
    """Like Pool.imap but with at most 2 x workers batches in flight (bounded memory).

    Expects `_W["tok"]` built in this process. On Linux workers are forked and inherit it (building
    Qwen's tokenizer takes ~0.6 s per process); the parent has not run the tokenizer in parallel, so
    no Rust threads exist to be forked. Elsewhere workers are spawned and build their own.
    """
    if workers <= 1:
        _init_worker(None, opts, False)
        for lines, locs, size in batches:
            yield fn(lines), locs, size
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if sys.platform == "linux":
        ctx, initargs = mp.get_context("fork"), (None, opts, True, os.getpid())
    else:
        ctx, initargs = mp.get_context("spawn"), (tokenizer_json, opts, True, os.getpid())
    # An executor (not Pool): a worker that dies raises BrokenProcessPool instead of hanging.
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=initargs)
    try:
        pending: deque = deque()
        for lines, locs, size in batches:
            pending.append((pool.submit(fn, lines), locs, size))
            if len(pending) >= 2 * workers:
                fut, l, s = pending.popleft()
                yield fut.result(), l, s
        while pending:
            fut, l, s = pending.popleft()
            yield fut.result(), l, s
    except BaseException:  # Ctrl-C, an error, or the consumer stopped: do not wait for queued batches
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.terminate()
        raise
    pool.shutdown(wait=True)


def _build_tokenizer(opts: PrepareOptions):
    """Build the tokenizer into `_W["tok"]`; return (tokenizer.json text, EOD id or None, dtype, split_long)."""
    # With special tokens, take the tokenizer as transformers builds it: it may rewrite the
    # post-processor (add_bos_token/add_eos_token), and Megatron calls transformers' tokenizer(text).
    tokenizer_json, eos = load_tokenizer_json(opts.tokenizer, via_transformers=opts.add_special_tokens)
    from tokenizers import Tokenizer

    _W["tok"] = tok = Tokenizer.from_str(tokenizer_json)  # the only build on Linux: workers fork from here
    eod_id = resolve_eod_id(tok, eos) if opts.eod else None
    from japanese_ft.data.long_documents import can_split

    split_long = can_split(tok, tokenizer_json, opts.add_special_tokens)
    return tokenizer_json, eod_id, dtype_for_vocab(tok.get_vocab_size(with_added_tokens=True)), split_long


def _worker_opts(opts: PrepareOptions, eod_id: int | None, dtype: np.dtype, split_long: bool = False) -> dict:
    """The options every worker needs, as plain data (they cross a process boundary)."""
    return {
        "text_key": opts.text_key,
        "normalize": opts.normalize,
        "clean": opts.clean,
        "add_special_tokens": opts.add_special_tokens,
        "quality": asdict(opts.quality) if opts.quality is not None else None,
        "dedup": opts.dedup,
        "eod_id": eod_id,
        "dtype": dtype.str,
        "split_long": split_long,
    }


def prepare_corpus(inputs: list[str], output_prefix: str | Path, opts: PrepareOptions, progress=None) -> PrepareStats:
    """Run the whole pipeline; returns the stats also written to `PREFIX.stats.json`. The prefix
    is locked (`.NAME.jft-lock` beside it): a second run on it stops at once, naming the holder."""
    from japanese_ft.files import OutputLock

    files = expand_inputs(inputs)
    prefix = Path(output_prefix)
    with OutputLock(prefix.with_name(f".{prefix.name}.jft-lock"), f"--output-prefix {output_prefix}"):
        return _prepare_corpus(files, output_prefix, opts, progress)


def _prepare_corpus(files: list[Path], output_prefix: str | Path, opts: PrepareOptions, progress=None) -> PrepareStats:
    tokenizer_json, eod_id, dtype, split_long = _build_tokenizer(opts)

    start_line, stop_line = 0, None
    if opts.shard is not None:
        total_lines = count_lines(files)
        start_line, stop_line = shard_range(total_lines, opts.shard)

    worker_opts = _worker_opts(opts, eod_id, dtype, split_long)
    stats = PrepareStats(
        workers=opts.workers,
        normalize=opts.normalize,
        clean=opts.clean,
        add_special_tokens=opts.add_special_tokens,
        dedup=opts.dedup,
        filter=opts.quality is not None,
        eod=opts.eod,
        shard=f"{opts.shard[0]}/{opts.shard[1]}" if opts.shard else None,
        dtype=str(dtype),
        inputs=[str(f) for f in files],
    )
    exact = ExactDeduplicator() if opts.dedup in ("exact", "near") else None
    near = NearDeduplicator() if opts.dedup == "near" else None
    dropped: Counter = Counter()
    t0 = time.perf_counter()
    writer = TokenFileWriter(output_prefix, dtype)
    try:
        batches = _batches(iter_lines(files, start_line, stop_line))
        for res, locs, size in _ordered_map(_process_batch, batches, opts.workers, tokenizer_json, worker_opts):
            stats.input_bytes += size
            stats.documents_in += res["n_valid"]
            dropped.update(res["dropped"])
            for i, reason in res["malformed"]:
                note_malformed(stats, locs[i], reason, opts.strict)
            _write_kept(res, writer, exact, near, dropped, stats)
            if progress is not None:
                progress(size, stats.documents_in)
        if stats.documents_in == 0:
            raise UserError(f"{', '.join(map(str, files))}: no valid documents in the input")
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    stats.seconds = round(time.perf_counter() - t0, 3)
    stats.dropped = dict(sorted(dropped.items()))
    stats.tokens = writer.tokens
    stats.documents_written = writer.documents
    stats.chars_per_token = round(stats.characters / stats.tokens, 4) if stats.tokens else 0.0
    stats.mb_per_s = round(stats.input_bytes / 1e6 / max(stats.seconds, 1e-9), 3)
    write_json(f"{output_prefix}.stats.json", asdict(stats))
    return stats


def _write_kept(res: dict, writer: TokenFileWriter, exact, near, dropped: Counter, stats: PrepareStats) -> None:
    lengths = res["lengths"]
    if not len(lengths):
        return
    keep = np.ones(len(lengths), dtype=bool)
    for j, key in enumerate(res["keys"]):
        if exact is not None and exact.is_duplicate(key):
            keep[j] = False
            dropped["duplicate_exact"] += 1
        elif near is not None and near.is_duplicate(res["sigs"][j]):
            keep[j] = False
            dropped["duplicate_near"] += 1
    chars = np.asarray(res["chars"], dtype=np.int64)
    stats.characters += int(chars[keep].sum())
    if keep.all():
        writer.add_raw(res["tokens"], lengths)
        return
    flat = np.frombuffer(res["tokens"], dtype=writer.dtype)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for j in np.flatnonzero(keep):
        writer.add_document(flat[offsets[j] : offsets[j + 1]])


