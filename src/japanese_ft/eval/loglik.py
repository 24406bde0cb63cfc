"""Log-likelihood of continuations given contexts, batched (right padding, longest first).

Scored with the training loss's chunked head (`train.loss.causal_lm_row_nll`): only one chunk of
logits exists at a time, never [batch, tokens, vocab] fp32 logits."""

from __future__ import annotations

from typing import Callable, Sequence


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation are tokenized separately (as lm-evaluation-harness does), so the
    continuation's tokens are the same whatever the context. Both are plain text (`tokens.plain_ids`)."""
    from japanese_ft.tokens import plain_ids

    ctx = plain_ids(tokenizer, context, add_special_tokens=True)
    cont = plain_ids(tokenizer, continuation)
    if not cont:
        raise ValueError(f"empty continuation for context {context[:40]!r}")
    return ctx, cont


def continuation_logprobs(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    chunk_size: int | None = None,
) -> list[tuple[float, int]]:
    """(sum of log p(continuation token | everything before), continuation token count) per pair."""
    import torch

    from japanese_ft import tokens
    from japanese_ft.eval.batching import pad, sorted_batches
    from japanese_ft.train.loss import IGNORE_INDEX, causal_lm_row_nll

    encoded = [encode_pair(tokenizer, c, x) for c, x in pairs]
    if any(not ctx for ctx, _ in encoded):
        raise ValueError("context must encode to at least one token")
    seqs = [c + x for c, x in encoded]
    # position t predicts token t+1: the continuation's tokens are the targets of positions n_ctx-1 ...
    targets = [[IGNORE_INDEX] * (len(c) - 1) + list(x) + [IGNORE_INDEX] for c, x in encoded]
    device = next(model.parameters()).device
    pad_id = tokens.pad_id(tokenizer)
    out: list[tuple[float, int] | None] = [None] * len(seqs)
    for idx in sorted_batches([len(s) for s in seqs], batch_size):
        ids = pad([seqs[i] for i in idx], pad_id).to(device)
        tgt = pad([targets[i] for i in idx], IGNORE_INDEX).to(device)
        with torch.inference_mode():
            sums, counts = causal_lm_row_nll(model, ids, tgt, chunk_size=chunk_size)
        for i, s, n in zip(idx, sums.tolist(), counts.tolist()):
            out[i] = (-s, int(n))
        if progress is not None:
            progress(len(idx))
    return out  # type: ignore[return-value]
