"""Causal-LM loss that never builds the full ``[tokens, vocab]`` fp32 logits.

``causal_lm_loss(model, input_ids, labels, ...)`` returns ``(loss_sum, n_tokens)``: the fp32 sum
of next-token cross-entropies over label positions != IGNORE_INDEX (after the usual causal shift; labels
follow the Hugging Face convention and have the same length as ``input_ids``), and the number of
such tokens as a tensor. Dividing by a count gathered over all gradient-accumulation micro-batches
(and ranks) gives a correctly normalized loss.

How: run the decoder body to get the final hidden states, keep only the positions that carry a
label, then walk them in chunks of ``chunk_size`` tokens. Per chunk the logits are one matmul in
the autocast dtype (bf16 on GPU), the cross-entropy is computed in fp32, and -- when gradients are
needed -- the gradient with respect to the logits is formed right away and folded into the
gradients of the hidden states and the head weight (the "fused linear cross-entropy" trick). So
forward and backward memory are one chunk of logits, and the head matmul is never recomputed.
On CUDA the per-chunk elementwise part (fp32 log-softmax, gradient, cast back) is one
``torch.compile``-fused kernel, which reads the bf16 logits twice instead of materializing fp32
copies of them.

Evaluation uses the same rule without gradients: ``causal_lm_row_nll`` returns per-row sums of
-log p over the label positions (perplexity windows, multiple-choice continuations), chunk by
chunk, so evaluation never holds [batch, tokens, vocab] fp32 logits either.

Model structures understood (`train/structure.py`): plain HF causal LMs, PEFT, ``torch.compile``
(compile the decoder *layers* in place if you want compiled speed with this loss), DDP and FSDP2
(their root forward runs with the head swapped for an identity, so their hooks all fire).
Anything else falls back to ``model(...).logits`` with an ordinary fp32 CE.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os

import torch
import torch.nn.functional as F
from torch import nn

from japanese_ft.data.sft import IGNORE_INDEX
from japanese_ft.train.structure import is_ddp, is_fsdp, lm_parts


@contextlib.contextmanager
def _head_replaced_by_identity(lm: nn.Module, head_name: str):
    head = getattr(lm, head_name)
    lm._modules[head_name] = nn.Identity()
    try:
        yield head
    finally:
        lm._modules[head_name] = head


# ---- chunked linear + cross-entropy ---------------------------------------------------------


def _ce_chunk_per_token(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """fp32 logsumexp(logits) - logits[target], per row."""
    x = logits.float()
    return torch.logsumexp(x, dim=-1) - x.gather(1, targets[:, None]).squeeze(1)


def _ce_chunk_eager(logits: torch.Tensor, targets: torch.Tensor, want_grad: bool):
    """fp32 CE sum over a chunk and (optionally) d(sum)/d(logits) in the logits' dtype."""
    x = logits.float()
    lse = torch.logsumexp(x, dim=-1)
    tgt = x.gather(1, targets[:, None]).squeeze(1)
    loss = (lse - tgt).sum()
    if not want_grad:
        return loss, None
    p = torch.exp(x - lse[:, None])
    cols = torch.arange(x.shape[1], device=x.device)
    grad = torch.where(cols[None, :] == targets[:, None], p - 1.0, p)
    return loss, grad.to(logits.dtype)


def _ce_chunk_loss_only(logits: torch.Tensor, targets: torch.Tensor):
    return _ce_chunk_eager(logits, targets, False)[0]


def _ce_chunk_with_grad(logits: torch.Tensor, targets: torch.Tensor):
    return _ce_chunk_eager(logits, targets, True)


_COMPILED: dict[str, object] = {}
_COMPILE_FAILED = False


def _ce_kernels(device: torch.device):
    """(loss_only, with_grad) callables; torch.compile-fused on CUDA when available."""
    global _COMPILE_FAILED
    if device.type != "cuda" or _COMPILE_FAILED or os.environ.get("JFT_CE_COMPILE", "1") == "0":
        return _ce_chunk_loss_only, _ce_chunk_with_grad
    if not _COMPILED:
        _COMPILED["loss"] = torch.compile(_ce_chunk_loss_only, dynamic=True)
        _COMPILED["grad"] = torch.compile(_ce_chunk_with_grad, dynamic=True)
    return _COMPILED["loss"], _COMPILED["grad"]


class _ChunkedLinearCE(torch.autograd.Function):
    """sum_i CE(h_i @ W^T, t_i), computed chunk by chunk; gradients formed during forward."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, compute_dtype):
        global _COMPILE_FAILED
        need_h = ctx.needs_input_grad[0]
        need_w = ctx.needs_input_grad[1]
        want_grad = need_h or need_w
        w = weight.to(compute_dtype)
        h_all = hidden.to(compute_dtype)
        n = h_all.shape[0]
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(h_all) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        loss_fn, grad_fn = _ce_kernels(hidden.device)
        for start in range(0, n, chunk_size):
            h = h_all[start : start + chunk_size]
            t = targets[start : start + chunk_size]
            logits = h @ w.t()
            try:
                if want_grad:
                    part, g = grad_fn(logits, t)
                else:
                    part, g = loss_fn(logits, t), None
            except Exception:
                if grad_fn is _ce_chunk_with_grad:
                    raise
                _COMPILE_FAILED = True  # compiled kernel unavailable here: eager from now on
                import warnings

                warnings.warn("causal_lm_loss: the compiled cross-entropy kernel failed; using eager ops", stacklevel=2)
                loss_fn, grad_fn = _ce_chunk_loss_only, _ce_chunk_with_grad
                part, g = _ce_chunk_eager(logits, t, want_grad)
            loss += part
            del logits
            if g is not None:
                if need_h:
                    grad_h[start : start + chunk_size] = g @ w
                if need_w:
                    grad_w += (g.t() @ h).float()
                del g
        ctx.save_for_backward(
            grad_h if need_h else torch.empty(0),
            grad_w if need_w else torch.empty(0),
        )
        ctx.hidden_dtype = hidden.dtype
        ctx.weight_dtype = weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = gw = None
        if ctx.needs_input_grad[0]:
            gh = (grad_h.float() * grad_out).to(ctx.hidden_dtype)
        if ctx.needs_input_grad[1]:
            gw = (grad_w * grad_out).to(ctx.weight_dtype)
        return gh, gw, None, None, None


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    dev = hidden.device.type
    try:
        if torch.is_autocast_enabled(dev):
            return torch.get_autocast_dtype(dev)
    except TypeError:  # older torch: no device argument
        if dev == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        if dev == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
    return weight.dtype


def _tiled_nll(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, vocab_block: int) -> torch.Tensor:
    """-log softmax(hidden @ weight.T)[target] per row, over [rows, vocab_block] logit tiles (they
    stay in cache) with a running max and sum per row (the online logsumexp)."""
    rows, vocab = hidden.shape[0], weight.shape[0]
    buf = torch.empty(rows, min(vocab_block, vocab), dtype=torch.float32)
    top = torch.full((rows,), float("-inf"))
    total = torch.zeros(rows)
    wt = weight.t()
    for v in range(0, vocab, vocab_block):
        x = torch.mm(hidden, wt[:, v : v + vocab_block], out=buf[:, : min(vocab_block, vocab - v)])
        new_top = torch.maximum(top, x.amax(1))
        total.mul_(torch.exp(top - new_top))
        # terms more than 80 below the max are < 2e-35 of it: clamping keeps exp off its very slow
        # denormal path without changing any fp32 sum
        total.add_(x.sub_(new_top[:, None]).clamp_(min=-80.0).exp_().sum(1))
        top = new_top
    return total.log_().add_(top).sub_((hidden * weight.index_select(0, targets)).sum(1))


def _per_token_cpu_fp32(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int,
                        vocab_block: int = 512) -> torch.Tensor:
    """The CPU fp32 case: chunks of `chunk_size` rows spread over one Python thread per core, each
    running single-threaded torch ops on cache-sized tiles. Measured on a shared 2-core CPU
    (docs/benchmarks.md): 2x the whole-vocabulary chunks, whose every pass went to memory, and
    far better than small multi-threaded ops, whose thread barriers stall when the cores are busy."""
    from concurrent.futures import ThreadPoolExecutor

    n = hidden.shape[0]
    out = torch.empty(n, dtype=torch.float32)
    threads = torch.get_num_threads()

    @torch.inference_mode()
    def work(start: int) -> None:
        end = min(start + chunk_size, n)
        out[start:end] = _tiled_nll(hidden[start:end], weight, targets[start:end], vocab_block)

    if threads == 1:
        for start in range(0, n, chunk_size):
            work(start)
        return out
    torch.set_num_threads(1)  # process-wide: parallelism comes from the Python threads meanwhile
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(work, range(0, n, chunk_size)))
    finally:
        torch.set_num_threads(threads)
    return out


@torch.no_grad()
def linear_cross_entropy_per_token(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int = 1024
) -> torch.Tensor:
    """fp32 CE(hidden @ weight.T, targets) per token [N], chunk by chunk (no gradient)."""
    dtype = _compute_dtype(hidden, weight)
    if hidden.device.type == "cpu" and dtype == torch.float32:
        return _per_token_cpu_fp32(hidden.float(), weight.float(), targets, max(1, int(chunk_size)))
    w = weight.to(dtype)
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], max(1, int(chunk_size))):
        logits = hidden[start : start + chunk_size].to(dtype) @ w.t()
        out[start : start + chunk_size] = _ce_chunk_per_token(logits, targets[start : start + chunk_size])
    return out


def linear_cross_entropy_sum(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int = 4096
) -> torch.Tensor:
    """fp32 sum of CE(hidden @ weight.T, targets) for 2-D hidden [N, H], targets [N] (all valid)."""
    try:
        from torch.distributed.tensor import DTensor

        if isinstance(weight, DTensor):
            weight = weight.full_tensor()
    except Exception:  # pragma: no cover
        pass
    dtype = _compute_dtype(hidden, weight)
    if not torch.is_grad_enabled():
        hidden, weight = hidden.detach(), weight.detach()
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        return _ChunkedLinearCE.apply(hidden, weight, targets, max(1, int(chunk_size)), dtype)


# ---- public entry point ----------------------------------------------------------------------


def _shifted_targets(labels: torch.Tensor) -> torch.Tensor:
    """targets[b, t] = labels[b, t + 1]; the last position of each row gets IGNORE_INDEX."""
    pad = torch.full_like(labels[..., :1], IGNORE_INDEX)
    return torch.cat([labels[..., 1:], pad], dim=-1)


def _strip_compile(model: nn.Module) -> nn.Module:
    while isinstance(getattr(model, "_orig_mod", None), nn.Module):
        model = model._orig_mod
    return model


@functools.lru_cache(maxsize=None)
def _takes_mask_mapping(decoder_class: type) -> bool:
    """transformers decoders that accept a ready {layer type: mask} mapping (Qwen2 and kin)."""
    try:
        return "causal_mask_mapping" in inspect.getsource(decoder_class.forward)
    except (OSError, TypeError):
        return False


def _plainly_causal(lm: nn.Module, decoder: nn.Module) -> bool:
    """True when an empty mask mapping means plain causal attention: a transformers decoder that
    takes mask mappings, whose layers all use full attention through SDPA or flash attention
    (their kernels then take `is_causal`)."""
    config = getattr(lm, "config", None)
    impl = getattr(config, "_attn_implementation", None) or ""
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    return (type(decoder).__module__.startswith("transformers.models.") and layer_types == {"full_attention"}
            and (impl == "sdpa" or impl.startswith("flash_attention")) and _takes_mask_mapping(type(decoder)))


def final_hidden_states(model: nn.Module, input_ids, attention_mask=None, position_ids=None):
    """(final hidden states [B, T, H], output head) without computing the logits, or None when the
    model's structure is unknown (see `structure.lm_parts`)."""
    parts = lm_parts(model)
    if parts is None:
        return None
    lm, decoder, head, head_name = parts
    kwargs = {"input_ids": input_ids, "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    elif position_ids is None and _plainly_causal(lm, decoder):
        # Unpadded, unpacked rows: hand the decoder its (empty) mask mapping, so transformers does not
        # probe the default position ids for packed sequences -- a device-to-host sync per call.
        kwargs["attention_mask"] = {"full_attention": None}
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    outer = _strip_compile(model)
    if is_fsdp(lm) or is_fsdp(outer) or is_ddp(outer):
        # Run the root forward (so FSDP2 unshards/reshards, DDP prepares its gradient buckets, and
        # both register their backward hooks) with the head swapped for an identity: ".logits" is
        # then the final hidden state.
        with _head_replaced_by_identity(lm, head_name):
            out = outer(**kwargs)
        return (out.logits if hasattr(out, "logits") else out[0]), head
    out = decoder(**kwargs)
    return (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]), head


def _model_logits(model, input_ids, attention_mask, position_ids):
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return out.logits if hasattr(out, "logits") else out[0]


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Flat indices of the positions whose shifted label counts. Computing them on the host
    (labels are still CPU tensors in the loader) spares the device a `nonzero` sync."""
    return (_shifted_targets(labels).reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)


def causal_lm_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    position_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    chunk_size: int = 4096,
    positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp32 sum of token CEs over shifted labels != IGNORE_INDEX, number of such tokens as a tensor).

    ``attention_mask`` (2-D padding mask or a 4-D/block mask) and ``position_ids`` (e.g. reset per
    packed document) are passed to the model unchanged. ``positions``, when given, must be
    ``target_positions(labels)`` (on the labels' device); computed on the host, it spares the
    device a ``nonzero`` sync.
    """
    targets = _shifted_targets(labels).reshape(-1)
    found = final_hidden_states(model, input_ids, attention_mask, position_ids)
    if found is None:
        logits = _model_logits(model, input_ids, attention_mask, position_ids)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets, ignore_index=IGNORE_INDEX,
                               reduction="sum")
        return loss, (targets != IGNORE_INDEX).sum()
    hidden, head = found
    if positions is not None:
        idx, count = positions, torch.tensor(positions.numel())  # the count is known on the host
    else:
        idx = target_positions(labels)
        count = (targets != IGNORE_INDEX).sum()
    flat = hidden.reshape(-1, hidden.shape[-1])
    if idx.numel() == flat.shape[0]:
        h, t = flat, targets
    else:
        h, t = flat.index_select(0, idx), targets.index_select(0, idx)
    if h.shape[0] == 0:
        return hidden.sum().float() * 0.0, count
    return linear_cross_entropy_sum(h, head.weight, t, chunk_size), count


# ---- per-row log-likelihood for evaluation ---------------------------------------------------


def eval_chunk_size(vocab_size: int, device_type: str = "cpu") -> int:
    """Tokens per chunk: on CPU 512 (its fp32 path is tiled over the vocabulary, 1 MiB per tile and
    thread); on an accelerator as many as keep one chunk of fp32 logits within 1 GiB."""
    if device_type == "cpu":
        return 512
    return max(16, 2**30 // (4 * max(1, vocab_size)))


def causal_lm_row_nll(
    model: nn.Module,
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: (fp32 sum of -log p(target), number of targets), where ``targets[b, t]`` is the
    token that position t predicts (already shifted; IGNORE_INDEX where nothing is scored).

    The rule of `causal_lm_loss` (chunked head, fp32 log-softmax) without the gradient: perplexity
    and multiple-choice scoring use it, so no [batch, tokens, vocab] fp32 logits ever exist; one
    chunk of `chunk_size` tokens (default `eval_chunk_size`) does.
    """
    rows, width = targets.shape
    flat_targets = targets.reshape(-1)
    idx = (flat_targets != IGNORE_INDEX).nonzero().squeeze(1)
    row_of = torch.div(idx, width, rounding_mode="floor")
    counts = torch.bincount(row_of, minlength=rows)
    with torch.no_grad():
        found = final_hidden_states(model, input_ids, attention_mask, position_ids)
        if found is None:
            logits = _model_logits(model, input_ids, attention_mask, position_ids)
            nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]).index_select(0, idx),
                                  flat_targets.index_select(0, idx), reduction="none")
        else:
            hidden, head = found
            h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, idx)
            chunk = chunk_size or eval_chunk_size(head.weight.shape[0], h.device.type)
            nll = linear_cross_entropy_per_token(h, head.weight, flat_targets.index_select(0, idx), chunk)
    sums = torch.zeros(rows, dtype=torch.float32, device=nll.device).index_add_(0, row_of.to(nll.device), nll.float())
    return sums, counts
