"""The plain Hugging Face eager baseline that the training benchmarks compare jft against.

What a user of transformers would write without jft: fp32 weights + bf16 autocast (CUDA), SDPA,
the model's own loss (`model(labels=...)`, full fp32 logits), fused AdamW, gradient clipping at
1.0, gradient accumulation. LoRA: PEFT `get_peft_model` on a bf16 base (CUDA) with fp32 adapters.
Nothing here uses the jft engine (train/): this is the reference.
"""

from __future__ import annotations

import torch

from japanese_ft.data.sft import IGNORE_INDEX  # the label convention only; nothing of the engine


def load_model(model_dir: str, mode: str, device: torch.device, attn: str = "sdpa", seed: int = 0,
               lora_r: int = 16, lora_alpha: int = 32, lora_dropout: float = 0.1):
    """(model, trainable parameters) from a saved HF checkpoint; the same seed as the engine's run
    is set right before loading so LoRA adapters start identical."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    lora = mode == "lora"
    dtype = torch.bfloat16 if lora and device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=attn)
    model.config.use_cache = False
    if lora:
        import peft

        cfg = peft.LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules="all-linear",
                              task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, cfg)
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    model.to(device).train()
    return model, [p for p in model.parameters() if p.requires_grad]


def optimizer(params, device: torch.device, lr: float = 3e-4, betas=(0.9, 0.95), weight_decay: float = 0.1):
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=1e-8,
                             fused=device.type == "cuda")


def label_tokens(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def step(model, opt, params, micro_batches: list[dict], device: torch.device, lr: float) -> tuple[float, float]:
    """One optimizer step over `micro_batches` (dicts with input_ids, labels, optional
    attention_mask / position_ids). Returns (mean token loss, gradient norm); syncs."""
    total_targets = sum(label_tokens(b["labels"]) for b in micro_batches)
    for g in opt.param_groups:
        g["lr"] = lr
    total = torch.zeros((), device=device, dtype=torch.float32)
    for b in micro_batches:
        inputs = {k: v.to(device, non_blocking=True) for k, v in b.items() if k != "num_tokens"}
        n = label_tokens(b["labels"])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(**inputs, use_cache=False)
            loss_sum = out.loss.float() * n
        (loss_sum / total_targets).backward()
        total += loss_sum.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=device.type == "cuda")
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(total) / max(total_targets, 1), float(grad_norm)
