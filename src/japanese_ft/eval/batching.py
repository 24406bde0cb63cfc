"""Length-sorted, padded batches: the one rule that generation, log-likelihood and perplexity share.

Sequences are grouped longest first (a stable sort, so equal lengths keep their order): each batch
holds similar lengths and pads little, and if memory runs out it does so on the first batch.
Generation pads on the left (every row's next token sits in the last column); scoring pads on
the right (under causal attention, padding after a token never changes that token's output, so
scoring needs no attention mask).
"""

from __future__ import annotations

from typing import Sequence


def sorted_batches(lengths: Sequence[int], batch_size: int, sort: bool = True) -> list[list[int]]:
    """Indices into `lengths`, in batches of at most `batch_size`, longest first when `sort`."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else list(range(len(lengths)))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def pad(rows: Sequence[Sequence[int]], value: int, side: str = "right", width: int | None = None):
    """[len(rows), width] int64 tensor of `rows` padded with `value` on `side`."""
    import torch

    width = max((len(r) for r in rows), default=0) if width is None else width
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            t = torch.as_tensor(r, dtype=torch.long)
            if side == "left":
                out[i, width - len(r) :] = t
            else:
                out[i, : len(r)] = t
    return out


def padded_batch(rows: Sequence[Sequence[int]], pad_id: int, side: str = "right", width: int | None = None):
    """(input_ids, attention_mask) for `rows`, padded with `pad_id` on `side`."""
    ids = pad(rows, pad_id, side, width)
    mask = pad([[1] * len(r) for r in rows], 0, side, ids.shape[1])
    return ids, mask
