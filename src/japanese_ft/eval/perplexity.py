"""Perplexity and bits per character over a token file (PREFIX.bin/.idx) or JSONL texts.

Token stream: documents are concatenated in order, each ending with the EOD token (token
files already contain it unless they were written with --no-eod; JSONL texts get it appended),
exactly like the packed pre-training windows. One EOD is prepended so that the first token of
the first document is predicted in the same conditions as every other document start; every
token of the data is then scored exactly once.

Windowing (training's): windows of `seq_length` inputs predicting the next token. With
`stride == seq_length` (the default) consecutive windows share one token, i.e. each is a
Megatron sample of seq_length+1 tokens. With a smaller stride the windows overlap and only
the last `stride` targets of each window are scored, so every target gets at least
seq_length-stride tokens of context (lower, less pessimistic perplexity). The stride is reported.

bits_per_char = total NLL (nats) / ln 2 / characters, where characters are counted on the text
the tokens decode to (special tokens removed). Decoding is exact for byte-level BPE, so token
files and JSONL give the same count for the same (normalized) text, and numbers compare across
tokenizers.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from japanese_ft.errors import UserError
from japanese_ft.tokens import eos_id


def is_token_file(data: str | Path) -> bool:
    return Path(f"{data}.bin").exists() and Path(f"{data}.idx").exists()


def stream_from_jsonl(paths, tokenizer, text_key: str = "text", limit: int | None = None) -> tuple[np.ndarray, int, int]:
    """(token ids with a leading EOD, characters, documents) from JSONL(.gz) files or directories."""
    from japanese_ft.data.corpus import iter_records

    def bad(loc, reason):
        raise UserError(f"{loc}: {reason}")

    eod = eos_id(tokenizer)
    chunks: list[list[int]] = [[eod]] if eod is not None else []
    chars = docs = 0
    for rec, _loc in iter_records(list(paths), text_key=text_key, strict=True, on_malformed=bad):
        if limit is not None and docs >= limit:
            break
        ids = tokenizer(rec[text_key], add_special_tokens=False)["input_ids"]
        if eod is not None:
            ids = ids + [eod]
        chunks.append(ids)
        chars += len(tokenizer.decode(ids, skip_special_tokens=True))
        docs += 1
    if docs == 0:
        raise UserError(f"{', '.join(map(str, paths))}: no documents with a {text_key!r} field")
    return np.fromiter((t for c in chunks for t in c), dtype=np.int64), chars, docs


def stream_from_token_file(prefix, tokenizer, limit: int | None = None) -> tuple[np.ndarray, int, int]:
    """(token ids with a leading EOD, characters, documents) from a Megatron token file."""
    from japanese_ft.data.token_file import TokenFile

    try:
        tf = TokenFile(prefix)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    n = len(tf) if limit is None else min(limit, len(tf))
    if n == 0 or tf.tokens == 0:
        raise UserError(f"{prefix}: token file is empty")
    end = (int(tf.pointers[n - 1]) // tf.dtype.itemsize + int(tf.lengths[n - 1])) if n < len(tf) else tf.tokens
    ids = np.asarray(tf.flat[:end], dtype=np.int64)
    chars = 0
    for i in range(n):
        chars += len(tokenizer.decode(tf[i].tolist(), skip_special_tokens=True))
    eod = eos_id(tokenizer)
    if eod is not None:
        ids = np.concatenate([np.array([eod], dtype=np.int64), ids])
    return ids, chars, n


def window_plan(n_tokens: int, seq_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, scored) per window over a stream of n_tokens: inputs ids[begin:end], targets
    ids[begin+1:end+1], of which the last `scored` count. Every target is scored exactly once."""
    if seq_length < 1 or not 1 <= stride <= seq_length:
        raise UserError(f"need 1 <= stride <= seq_length, got stride {stride}, seq_length {seq_length}")
    plan = []
    last = n_tokens - 1  # index of the last target
    prev_end = 0
    begin = 0
    while prev_end < last:
        end = min(begin + seq_length, last)
        plan.append((begin, end, end - prev_end))
        prev_end = end
        begin += stride
    return plan


def stream_nll(
    model,
    ids: np.ndarray,
    seq_length: int,
    stride: int | None = None,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
    chunk_size: int | None = None,
) -> tuple[float, int, list[dict]]:
    """(total NLL in nats, scored tokens, per-window records) over a token stream.

    Scored through `train.loss.causal_lm_row_nll` (the training loss's chunked head): no
    [batch, window, vocab] logits are ever held, only one chunk of `chunk_size` tokens."""
    import torch

    from japanese_ft.eval.batching import pad, sorted_batches
    from japanese_ft.train.loss import IGNORE_INDEX, causal_lm_row_nll

    stride = seq_length if stride is None else stride
    if len(ids) < 2:
        raise UserError("need at least two tokens to compute perplexity")
    plan = window_plan(len(ids), seq_length, stride)
    device = next(model.parameters()).device
    windows = []
    for group in sorted_batches([e - b for b, e, _ in plan], batch_size):
        spans = [plan[k] for k in group]
        inputs = pad([ids[b:e] for b, e, _ in spans], 0)
        targets = pad([np.concatenate([np.full(e - b - k, IGNORE_INDEX), ids[e - k + 1 : e + 1]]) for b, e, k in spans],
                      IGNORE_INDEX)
        with torch.inference_mode():
            sums, _ = causal_lm_row_nll(model, inputs.to(device), targets.to(device), chunk_size=chunk_size)
        for k, (b, e, scored), s in zip(group, spans, sums.tolist()):
            windows.append({"window": k, "begin": b, "end": e, "scored_tokens": scored, "nll": s / scored, "_sum": s})
        if progress is not None:
            progress(len(group))
    windows.sort(key=lambda w: w["window"])
    total = sum(w.pop("_sum") for w in windows)
    return total, sum(w["scored_tokens"] for w in windows), windows


def _peak_memory(device) -> dict:
    """Peak memory of this evaluation (CUDA: allocated by torch) or of the process (CPU: RSS)."""
    import torch

    if device.type == "cuda":
        return {"peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
    import resource

    return {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _read_stream(model, tokenizer, paths, limit, text_key):
    """(ids, characters, documents, kind) from a token-file prefix or JSONL path(s)."""
    if len(paths) == 1 and is_token_file(paths[0]):
        ids, chars, docs = stream_from_token_file(paths[0], tokenizer, limit)
        vocab = model.get_input_embeddings().weight.shape[0]
        if int(ids.max()) >= vocab:
            raise UserError(f"{paths[0]}: token id {int(ids.max())} is outside the model's vocabulary ({vocab}); "
                            "was it prepared with another tokenizer?")
        return ids, chars, docs, "token_file"
    for p in paths:
        if not Path(p).exists() and not Path(str(p)).suffix:
            raise UserError(f"--data {p}: neither PREFIX.bin/.idx nor a JSONL file")
    ids, chars, docs = stream_from_jsonl(paths, tokenizer, text_key, limit)
    return ids, chars, docs, "jsonl"


def evaluate_perplexity(
    model,
    tokenizer,
    data,
    seq_length: int = 2048,
    stride: int | None = None,
    batch_size: int = 4,
    limit: int | None = None,
    text_key: str = "text",
    progress_factory=None,
) -> tuple[dict, list[dict]]:
    """(summary, per-window records) for `data`: a token-file prefix or JSONL path(s)."""
    paths = data if isinstance(data, (list, tuple)) else [data]
    max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if max_pos and seq_length > max_pos:
        raise UserError(f"--seq-length {seq_length} exceeds the model's max_position_embeddings {max_pos}")
    ids, chars, docs, kind = _read_stream(model, tokenizer, paths, limit, text_key)
    stride = seq_length if stride is None else stride
    n_windows = len(window_plan(len(ids), seq_length, stride))
    device = next(model.parameters()).device
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    if progress_factory is not None:
        with progress_factory("perplexity", n_windows) as update:
            total, count, windows = stream_nll(model, ids, seq_length, stride, batch_size, update)
    else:
        total, count, windows = stream_nll(model, ids, seq_length, stride, batch_size)
    seconds = time.perf_counter() - t0
    nll = total / count
    summary = {
        "task": "perplexity",
        "data": [str(p) for p in paths],
        "data_kind": kind,
        "documents": docs,
        "tokens": count,
        "characters": chars,
        "nll": nll,
        "perplexity": math.exp(nll),
        "bits_per_char": total / math.log(2) / chars if chars else None,
        "seq_length": seq_length,
        "stride": stride,
        "windows": len(windows),
        "seconds": round(seconds, 3),
        "tokens_per_s": round(count / seconds, 1) if seconds > 0 else None,
        **_peak_memory(device),
    }
    return summary, windows
