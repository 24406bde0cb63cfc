"""LoRA through PEFT: wrap a model, reload an adapter for training, merge an adapter for export."""

from __future__ import annotations

import hashlib
from pathlib import Path

from japanese_ft.errors import UserError


def _targets(target_modules):
    if isinstance(target_modules, str):
        return target_modules
    targets = list(target_modules)
    if targets == ["all-linear"]:
        return "all-linear"  # PEFT: every linear layer except the output head
    return targets


def apply_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.1, target_modules=("all-linear",)):
    """Freeze the base model and add LoRA adapters; returns the PeftModel."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=_targets(target_modules),
                        bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise UserError(f"lora.target_modules {list(target_modules)}: {exc}") from None


def load_adapter(model, adapter_dir: str | Path, trainable: bool = True):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)


BASE_RECORD = "base_model.json"

# Architecture fields that must agree between the adapter's base and --model.
SHAPE_FIELDS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)


def weights_fingerprint(model_dir: Path, chunk: int = 1 << 20) -> str:
    """Cheap identity of a checkpoint's weights: sizes plus the first and last MiB of every
    safetensors file. Copies of a checkpoint agree; a continued-pre-trained model does not."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        size = path.stat().st_size
        h.update(f"{path.name}:{size}".encode())
        with open(path, "rb") as fh:
            h.update(fh.read(chunk))
            if size > 2 * chunk:
                fh.seek(size - chunk)
                h.update(fh.read(chunk))
    return h.hexdigest()


def record_base(adapter_dir: str | Path, base: str) -> None:
    """Write BASE_RECORD next to a saved adapter: the base's resolved path, architecture fields and
    weights fingerprint, so the adapter can be checked against --model from any working directory
    (PEFT's base_model_name_or_path is the path as typed, often relative). Hub ids: path only."""
    import json

    base_p = Path(base).expanduser()
    record: dict = {"name_or_path": base}
    if (base_p / "config.json").exists():
        config = json.loads((base_p / "config.json").read_text(encoding="utf-8"))
        record.update(path=str(base_p.resolve()), config={k: config.get(k) for k in SHAPE_FIELDS if k in config},
                      fingerprint=weights_fingerprint(base_p))
    (Path(adapter_dir) / BASE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts, counting tied/shared tensors once."""
    seen = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def merge_adapter(base: str, adapter: str, output: str | Path, dtype: str = "auto", trust_remote_code: bool = False,
                  allow_pickle: bool = False) -> dict:
    """Base checkpoint + LoRA adapter -> merged HF checkpoint (safetensors) + tokenizer + generation config.

    The merge runs in fp32 and the result is saved in `dtype` ("auto": the base checkpoint's dtype).
    """
    import torch

    from japanese_ft.files import atomic_output, looks_local
    from japanese_ft.model.load import check_weights_format, load_model, save_hf_checkpoint
    from japanese_ft.runtime import stored_dtype, torch_dtype
    from japanese_ft.tokens import load_tokenizer

    base_p, adapter_p, output = Path(base), Path(adapter), Path(output)
    if not (adapter_p / "adapter_config.json").exists():
        raise UserError(f"--adapter {adapter_p}: no adapter_config.json here (point it at a lora run's final/ or a checkpoint)")
    if not base_p.exists() and looks_local(str(base)):
        raise UserError(f"--base {base}: not found")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output}: directory exists and is not empty")
    if dtype == "auto":
        dtype = stored_dtype(base_p)
    out_dtype = torch_dtype(dtype, "--dtype")
    check_weights_format(adapter_p, allow_pickle)  # adapter_model.bin only
    model = load_model(base, torch.float32, attn_implementation=None, trust_remote_code=trust_remote_code,
                       allow_pickle=allow_pickle, pickle_flag="--allow-pickle")
    peft_model = load_adapter(model, adapter_p, trainable=False)
    merged = peft_model.merge_and_unload()
    merged.to(out_dtype)
    tok_src = adapter_p if (adapter_p / "tokenizer_config.json").exists() else base
    tok = load_tokenizer(str(tok_src), trust_remote_code=trust_remote_code)
    with atomic_output(output, directory=True) as tmp:
        save_hf_checkpoint(merged, tok, tmp)
    return {"base": str(base), "adapter": str(adapter_p), "output": str(output), "dtype": dtype,
            "parameters": sum(p.numel() for p in merged.parameters())}
