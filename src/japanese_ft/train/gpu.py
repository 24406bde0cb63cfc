"""GPU speed helpers used by the training loop and benchmarks/train_throughput.py.

Measured on H100/H200 (docs/benchmarks.md): what pays for Qwen2.5-0.5B-class models is
`torch.compile` of each decoder layer (one compiled graph reused by all layers, so compiling takes
seconds, not minutes), the chunked linear cross-entropy of `train/loss.py` (no full fp32 logits)
and the larger micro-batch the freed memory allows. Everything here is a no-op on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from japanese_ft.train.loss import unwrap_causal_lm


def decoder_layer_modules(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of an HF causal LM (inside PEFT / compile wrappers)."""
    lm = unwrap_causal_lm(model)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else getattr(lm, "model", None)
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers):
        return list(layers)
    names = set()
    for m in lm.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    return [m for m in lm.modules() if type(m).__name__ in names]


def configure_dynamo(max_layers: int = 64) -> None:
    """Static shapes (no surprise dynamic recompiles) and room for one graph per shape and layer."""
    import torch._dynamo as dynamo

    dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 64)
    if hasattr(dynamo.config, "accumulated_cache_size_limit"):
        dynamo.config.accumulated_cache_size_limit = max(dynamo.config.accumulated_cache_size_limit, 8 * max_layers)


def compile_layers(model: nn.Module, mode: str | None = None, fullgraph: bool = False) -> int:
    """`layer.compile()` each decoder layer in place; returns how many were compiled.

    Compiling the layers (not the whole model) keeps the model's module tree unchanged, so
    FSDP2's `fully_shard`, PEFT and `causal_lm_loss` see the usual structure, and the same graph
    serves every layer.
    """
    layers = decoder_layer_modules(model)
    if not layers:
        return 0
    configure_dynamo(len(layers))
    kwargs = {"fullgraph": fullgraph}
    if mode and mode != "default":
        kwargs["mode"] = mode
    for layer in layers:
        layer.compile(**kwargs)
    return len(layers)


def cuda_speed_defaults() -> None:
    """Process-wide CUDA settings that only help: TF32 for any fp32 matmul, cuDNN autotune."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def peak_memory_gib(device=None) -> dict:
    if not torch.cuda.is_available():
        return {}
    return {
        "peak_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
    }


def resolve_attn_implementation(name: str, device_type: str, packed: bool) -> str:
    """`model.attn_implementation: auto` -> flex_attention for packed rows on CUDA, else sdpa.

    Packed rows carry several examples; transformers derives a block-diagonal mask from the
    restarting position ids. With sdpa that mask is dense (no flash kernel); flex attention skips
    the masked blocks: +20 % tokens/s on packed SFT (docs/benchmarks.md). Flex attention has no
    CPU backward, so CPU stays on sdpa. Any explicit name is returned unchanged.
    """
    if name != "auto":
        return name
    return "flex_attention" if packed and device_type == "cuda" else "sdpa"
