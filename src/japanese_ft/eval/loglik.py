"""Log-likelihood of continuations given contexts, batched (right padding, longest first)."""

from __future__ import annotations

from typing import Callable, Sequence


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation are tokenized separately (as lm-evaluation-harness does), so the
    continuation's tokens are the same whatever the context."""
    ctx = tokenizer(context, add_special_tokens=True)["input_ids"]
    cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    if not cont:
        raise ValueError(f"empty continuation for context {context[:40]!r}")
    return ctx, cont


def continuation_logprobs(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:
    """(sum of log p(continuation token | everything before), continuation token count) per pair."""
    import torch

    encoded = [encode_pair(tokenizer, c, x) for c, x in pairs]
    seqs = [c + x for c, x in encoded]
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[tuple[float, int] | None] = [None] * len(seqs)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
            mask[row, : len(seqs[i])] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, i in enumerate(idx):
            n_ctx, n_cont = len(encoded[i][0]), len(encoded[i][1])
            # logits at position t predict token t+1; the first continuation token is at n_ctx
            first = n_ctx - 1
            if first < 0:
                raise ValueError("context must encode to at least one token")
            rows = logits[row, first : first + n_cont].float().log_softmax(-1)
            targets = torch.tensor(encoded[i][1], device=rows.device)
            out[i] = (float(rows.gather(-1, targets[:, None]).sum()), n_cont)
        if progress is not None:
            progress(len(idx))
    return out  # type: ignore[return-value]
