"""Batched decoding with a KV cache: the engine behind `eval.generation.generate`.

One batch of left-padded prompts at a time: a prefill forward over the prompts, then one forward
per new token, each returning only the last position's logits. The attention masks are built
here (boolean [batch, 1, query, key] masks, which transformers takes as given), so transformers
never inspects tensors on the host between tokens.

Two caches (`cache=`):
  dynamic  transformers' DynamicCache; rows that finish leave the batch (their cache rows are
           dropped), so the forward shrinks as answers end.
  static   transformers' StaticCache, sized once for the longest prompt + max_new_tokens and reused
           by every batch (sorted longest first, so later batches fit). On CUDA the one-token step
           is captured as a CUDA graph once and replayed for every token of every batch; rows
           that finish keep their slot (the graph's shapes are fixed) and the batch ends when all
           rows have finished.
  auto     static on CUDA for SDPA models whose layers all use full attention, else dynamic.
           The environment variable JFT_DECODE_CACHE=dynamic|static overrides what auto picks
           (a troubleshooting switch for every command that generates; docs/evaluation.md).
Why not `model.generate`: its per-token Python work (logits processors, stopping criteria,
growing 2-D masks) dominated decoding of small models on a fast GPU (docs/benchmarks.md).
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from japanese_ft.eval.batching import padded_batch
from japanese_ft.train.structure import unwrap_causal_lm

CACHE_KINDS = ("auto", "dynamic", "static")


def _text_config(model):
    cfg = unwrap_causal_lm(model).config
    return cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg


def own_masks_ok(model) -> bool:
    """Our boolean SDPA masks fit: a transformers model on SDPA whose layers all use full attention."""
    lm = unwrap_causal_lm(model)
    cfg = _text_config(model)
    layer_types = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    return (type(lm).__module__.startswith("transformers.models.") and layer_types == {"full_attention"}
            and getattr(cfg, "_attn_implementation", None) == "sdpa")


def resolve_cache(cache: str, model) -> str:
    if cache not in CACHE_KINDS:
        raise ValueError(f"cache {cache!r}: choose one of {', '.join(CACHE_KINDS)}")
    if cache != "auto":
        return cache
    forced = os.environ.get("JFT_DECODE_CACHE", "")
    if forced:
        if forced not in ("dynamic", "static"):
            raise ValueError(f"JFT_DECODE_CACHE={forced!r}: choose dynamic or static")
        return forced
    on_cuda = next(model.parameters()).device.type == "cuda"
    return "static" if on_cuda and own_masks_ok(model) else "dynamic"


def auto_batch_size(model, prompt_lengths: list[int], max_new_tokens: int, cap: int = 512,
                    memory_fraction: float = 0.5, tokens_per_prefill: int = 1 << 18) -> int:
    """Prompts per batch from the free accelerator memory: the KV cache, one layer's prefill
    activations and the last-token logits of a row, for the longest prompt. CPU: 8."""
    n = max(1, len(prompt_lengths))
    device = next(model.parameters()).device
    if device.type != "cuda":
        return min(8, n)
    cfg = _text_config(model)
    width = max(prompt_lengths, default=1) + max_new_tokens
    nbytes = next(model.parameters()).element_size()
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    kv = 2 * cfg.num_hidden_layers * getattr(cfg, "num_key_value_heads", heads) * head_dim * nbytes * width
    activations = 2 * width * (4 * cfg.hidden_size + 3 * cfg.intermediate_size) * nbytes
    per_row = kv + activations + width * width + 16 * cfg.vocab_size  # + the boolean prefill mask, fp32 logits
    free, _ = torch.cuda.mem_get_info(device)
    fits = int(free * memory_fraction // per_row)
    return max(1, min(cap, n, fits, tokens_per_prefill // max(1, width)))


def greedy(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


def sampler(temperature: float, top_p: float, generator: torch.Generator | None) -> Callable:
    """Temperature + nucleus (top-p) sampling over fp32 probabilities."""

    def choose(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        if top_p < 1.0:
            p_sorted, order = probs.sort(dim=-1, descending=True)
            p_sorted[(p_sorted.cumsum(-1) - p_sorted) > top_p] = 0.0  # keep the smallest set reaching top_p
            probs = torch.zeros_like(probs).scatter_(-1, order, p_sorted)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return choose


@dataclass
class _Static:
    """A StaticCache and the buffers of its captured decode step, reused across batches."""

    cache: object
    batch: int
    length: int
    key_valid: torch.Tensor  # [batch, length] bool: which cache slots hold real tokens
    tokens: torch.Tensor  # [batch, 1] the step's input token
    positions: torch.Tensor  # [batch, 1] its position id
    graph: object = None
    logits: torch.Tensor | None = None  # the graph's output


class Decoder:
    """Decodes batches of token-id prompts; keeps the static cache and CUDA graph between batches."""

    def __init__(self, model, cache: str = "auto", use_graphs: bool = True) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.kind = resolve_cache(cache, model)
        self.own_masks = own_masks_ok(model)
        if self.kind == "static" and not self.own_masks:
            raise ValueError("cache='static' needs an SDPA model whose layers all use full attention")
        self.use_graphs = use_graphs and self.device.type == "cuda"
        params = inspect.signature(unwrap_causal_lm(model).forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.2x renamed it
        self.logits_to_keep = "logits_to_keep" in params
        self.static: _Static | None = None
        self.on_token: Callable[[int], None] | None = None  # set per decode() call (streaming)

    # ---- one forward ----
    def _forward(self, tokens, key_mask, positions, cache, query_len: int):
        """Last-position logits [batch, vocab]. `key_mask`: [batch, keys] bool of valid cache slots."""
        if self.own_masks:
            keys = key_mask.shape[1]
            if query_len == 1:
                mask = key_mask[:, None, None, :]
            else:  # prefill: causal over the prompt; a padding position sees itself (no empty rows)
                q = torch.arange(query_len, device=key_mask.device)[:, None]
                k = torch.arange(keys, device=key_mask.device)[None, :]
                mask = (k <= q)[None] & (key_mask[:, None, :] | (k == q)[None])
                mask = mask[:, None]
            attention = mask  # a 4-D mask is taken as given (no host-side checks in transformers)
        else:
            attention = key_mask.long()
        kwargs = {self.cache_arg: cache, "use_cache": True, "position_ids": positions, "attention_mask": attention}
        if self.logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=tokens, **kwargs)
        return out.logits[:, -1]

    def _new_cache(self, length: int):
        from transformers import DynamicCache, StaticCache

        config = unwrap_causal_lm(self.model).config
        if self.kind == "static":
            return StaticCache(config=config, max_cache_len=length)
        return DynamicCache(config=config)

    # ---- a batch ----
    def decode(self, rows: list[list[int]], max_new_tokens: int, pad_id: int, stop_ids: list[int],
               choose: Callable = greedy, on_token: Callable[[int], None] | None = None) -> list[list[int]]:
        """Generated token ids per row (up to max_new_tokens; a row may run past its first stop
        token -- the caller cuts there). `on_token(id)`: called with each new token as it is chosen
        (streaming; one row only)."""
        if on_token is not None and len(rows) != 1:
            raise ValueError("on_token streams one row; pass a single prompt")
        self.on_token = on_token
        ids, mask = padded_batch(rows, pad_id, side="left")
        ids, mask = ids.to(self.device), mask.to(self.device).bool()
        width = ids.shape[1]
        with torch.inference_mode():
            if self.kind == "static":
                return self._decode_static(ids, mask, width, max_new_tokens, stop_ids, choose, len(rows))
            return self._decode_dynamic(ids, mask, width, max_new_tokens, stop_ids, choose)

    def _decode_dynamic(self, ids, mask, width, max_new, stop_ids, choose) -> list[list[int]]:
        n = ids.shape[0]
        cache = self._new_cache(width + max_new)
        lengths = mask.sum(-1)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        key_mask = torch.cat([mask, torch.zeros(n, max_new, dtype=torch.bool, device=mask.device)], dim=1)
        stops = torch.tensor(stop_ids or [-1], device=ids.device)
        rows = torch.arange(n, device=ids.device)  # original row of each batch row
        out = torch.full((n, max_new), -1, dtype=torch.long, device=ids.device)
        nxt = choose(self._forward(ids, mask, positions, cache, width))
        for t in range(max_new):
            out[rows, t] = nxt
            if self.on_token is not None:
                self.on_token(int(nxt[0]))
            if t == max_new - 1:
                break
            done = torch.isin(nxt, stops)
            active = int((~done).sum())  # one host read per token
            if active == 0:
                break
            if active <= 3 * len(rows) // 4:  # drop finished rows once a quarter of the batch is done
                keep = (~done).nonzero().squeeze(1)
                cache.reorder_cache(keep)
                rows, nxt, lengths, key_mask = rows[keep], nxt[keep], lengths[keep], key_mask[keep]
            key_mask[:, width + t] = True
            logits = self._forward(nxt[:, None], key_mask[:, : width + t + 1], (lengths + t)[:, None], cache, 1)
            nxt = choose(logits)
        return [[tok for tok in row if tok >= 0] for row in out.tolist()]

    def _static_state(self, batch: int, length: int) -> _Static:
        st = self.static
        if st is None or st.batch != batch or st.length < length:
            self.static = None  # free the old cache (and graph) first
            kv = torch.zeros(batch, length, dtype=torch.bool, device=self.device)
            st = _Static(self._new_cache(length), batch, length, kv,
                         torch.zeros(batch, 1, dtype=torch.long, device=self.device),
                         torch.zeros(batch, 1, dtype=torch.long, device=self.device))
            self.static = st
        return st

    def _decode_static(self, ids, mask, width, max_new, stop_ids, choose, real_rows) -> list[list[int]]:
        batch = self.static.batch if self.static is not None and self.static.batch >= ids.shape[0] else ids.shape[0]
        if ids.shape[0] < batch:  # a short last batch: fill with copies of its first row (outputs dropped)
            extra = batch - ids.shape[0]
            ids, mask = torch.cat([ids, ids[:1].expand(extra, -1)]), torch.cat([mask, mask[:1].expand(extra, -1)])
        st = self._static_state(batch, width + max_new)
        st.cache.reset()
        st.key_valid.zero_()
        st.key_valid[:, :width] = mask
        lengths = mask.sum(-1)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        stops = torch.tensor(stop_ids or [-1], device=ids.device)
        out = torch.full((batch, max_new), -1, dtype=torch.long, device=ids.device)
        done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
        nxt = choose(self._forward(ids, st.key_valid, positions, st.cache, width))
        for t in range(max_new):
            out[:, t] = nxt
            if self.on_token is not None:
                self.on_token(int(nxt[0]))
            done |= torch.isin(nxt, stops)
            if t == max_new - 1 or bool(done[:real_rows].all()):  # one host read per token
                break
            st.key_valid[:, width + t] = True
            st.tokens.copy_(nxt[:, None])
            st.positions.copy_((lengths + t)[:, None])
            nxt = choose(self._step(st))
        return out[:real_rows].tolist()

    def _step(self, st: _Static) -> torch.Tensor:
        """The one-token forward: a CUDA graph replay once captured, else eager."""
        if st.graph is not None:
            st.graph.replay()
            return st.logits
        if not self.use_graphs:
            return self._forward(st.tokens, st.key_valid, st.positions, st.cache, 1)
        # First step of this cache: run it eagerly on a side stream (warm-up), capture the next one.
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            logits = self._forward(st.tokens, st.key_valid, st.positions, st.cache, 1)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                st.logits = self._forward(st.tokens, st.key_valid, st.positions, st.cache, 1)
            st.graph = graph
        except Exception as exc:  # capture needs a sync-free forward; fall back to eager steps
            warnings.warn(f"generation: CUDA graph capture failed ({type(exc).__name__}: {exc}); decoding eagerly", stacklevel=2)
            self.use_graphs = False
        return logits
