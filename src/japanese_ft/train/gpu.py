"""GPU speed settings of the training engine: what to compile, how, and the matmul/optimizer knobs.

`SpeedOptions` gathers the levers that `benchmarks/train_throughput.py --mode levers` sweeps; its
defaults are what `jft train` uses. Measured on H100/H200 (docs/benchmarks.md): what pays for
Qwen2.5-0.5B-class models is `torch.compile` of each decoder layer (one compiled graph reused by
all layers, so compiling takes seconds, not minutes), the chunked linear cross-entropy of
`train/loss.py` (no full fp32 logits) and the larger micro-batch the freed memory allows.
Compilation and these settings apply on CUDA only; CPU runs stay eager.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from japanese_ft.train.structure import decoder_layers, unwrap_causal_lm


@dataclass
class SpeedOptions:
    """Engine levers (CUDA). `compile`: "layers" (each decoder layer), "decoder" (the whole decoder
    body as one graph; single process only) or "none". `compile_mode`: torch.compile's mode
    ("default", "max-autotune-no-cudagraphs", "reduce-overhead" = CUDA graphs)."""

    compile: str = "layers"
    compile_mode: str = "default"
    loss_chunk_size: int = 4096  # tokens per chunk of the linear cross-entropy
    fused_optimizer: bool = True  # fused AdamW kernel (False: foreach)
    matmul_precision: str = "high"  # bf16 runs: torch.set_float32_matmul_precision ("high" = TF32 for fp32 matmuls)
    fsdp_reshard_after_forward: bool | None = None  # None: reshard only if the bf16 weights are > 10% of GPU memory


def configure_dynamo(max_layers: int = 64) -> None:
    """Room for one graph per shape and layer (static shapes: no surprise dynamic recompiles)."""
    import torch._dynamo as dynamo

    dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 64)
    if hasattr(dynamo.config, "accumulated_cache_size_limit"):
        dynamo.config.accumulated_cache_size_limit = max(dynamo.config.accumulated_cache_size_limit, 8 * max_layers)


def compile_model(model: nn.Module, scope: str = "layers", mode: str = "default", fullgraph: bool = False) -> int:
    """Compile in place; returns the number of compiled modules.

    "layers" compiles every decoder layer (`layer.compile()`): the module tree stays unchanged, so
    FSDP2, PEFT and `causal_lm_loss` see the usual structure, and one graph serves every layer.
    "decoder" compiles the decoder body (embeddings, all layers, final norm) as one module.
    """
    if scope == "none":
        return 0
    kwargs = {"fullgraph": fullgraph}
    if mode and mode != "default":
        kwargs["mode"] = mode
    if scope == "decoder":
        lm = unwrap_causal_lm(model)
        decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else getattr(lm, "model", None)
        if decoder is None:
            raise ValueError("compile scope 'decoder': the model has no decoder module")
        configure_dynamo(1)
        decoder.compile(**kwargs)
        return 1
    if scope != "layers":
        raise ValueError(f"compile scope {scope!r}: choose layers, decoder or none")
    layers = decoder_layers(model)
    configure_dynamo(len(layers))
    for layer in layers:
        layer.compile(**kwargs)
    return len(layers)


def apply_matmul_settings(options: SpeedOptions) -> None:
    """Process-wide matmul precision for fp32 matmuls (TF32 when "high"); bf16 autocast matmuls
    are unaffected. No cuDNN setting is touched: the models here use no convolutions."""
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision(options.matmul_precision)


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
