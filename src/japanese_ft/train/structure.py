"""Finding the parts of a Hugging Face causal LM inside its wrappers.

The training code meets models wrapped in `torch.compile` (``_orig_mod``), PEFT
(``get_base_model()``), DDP (``.module``) and FSDP2 (the module itself, with a mixed-in class).
This module is the one place that knows how to see through them: the loss, the per-layer
compile, FSDP2 sharding and checkpointing all ask here.
"""

from __future__ import annotations

from torch import nn


def is_fsdp(module: nn.Module) -> bool:
    """True for a module sharded with FSDP2's `fully_shard`."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch < 2.6
        try:
            from torch.distributed._composable.fsdp import FSDPModule
        except ImportError:  # pragma: no cover - no distributed support at all
            return False
    return isinstance(module, FSDPModule)


def is_ddp(module: nn.Module) -> bool:
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(module, DistributedDataParallel)


def unwrap(model: nn.Module) -> nn.Module:
    """Strip `torch.compile` and DDP wrappers (FSDP2 modules are not wrappers)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
        elif is_ddp(model):
            model = model.module
        else:
            return model


def unwrap_causal_lm(model: nn.Module) -> nn.Module:
    """The HF ``*ForCausalLM`` inside compile/DDP/PEFT wrappers (LoRA layers stay injected)."""
    model = unwrap(model)
    if hasattr(model, "get_base_model") and callable(model.get_base_model):
        model = unwrap(model.get_base_model())
    return model


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, in order: ``get_decoder().layers`` when the model has it, else the
    modules whose class HF lists in ``_no_split_modules``."""
    lm = unwrap_causal_lm(model)
    decoder = None
    if hasattr(lm, "get_decoder"):
        try:
            decoder = lm.get_decoder()
        except Exception:  # some remote-code models raise instead of returning None
            decoder = None
    layers = getattr(decoder if decoder is not None else getattr(lm, "model", None), "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers):
        return list(layers)
    names: set[str] = set()
    for m in lm.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    return [m for m in lm.modules() if type(m).__name__ in names]


def lm_parts(model: nn.Module):
    """(causal_lm, decoder, head_module, head_attr_name) or None when the structure is unknown
    (then callers fall back to ``model(...).logits``)."""
    lm = unwrap_causal_lm(model)
    head = None
    if hasattr(lm, "get_output_embeddings"):
        try:
            head = lm.get_output_embeddings()
        except Exception:
            head = None
    if type(head) is not nn.Linear or getattr(head, "bias", None) is not None:
        return None  # e.g. a LoRA-wrapped head or a biased head: use the generic path
    head_name = next((n for n, m in lm.named_children() if m is head), None)
    decoder = None
    if hasattr(lm, "get_decoder"):
        try:
            decoder = lm.get_decoder()
        except Exception:
            decoder = None
    if decoder is None:
        decoder = getattr(lm, "model", None)
    if not isinstance(decoder, nn.Module) or decoder is lm or head_name is None:
        return None
    return lm, decoder, head, head_name
