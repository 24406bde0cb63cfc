"""Tokenizers and HF causal LMs in and out: loading, random init from a preset, saving.

Weights are always written as safetensors; `trust_remote_code` is passed through only when the
config asks for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import atomic_output
from japanese_ft.runtime import stored_dtype, torch_dtype
from japanese_ft.tokens import eos_id, generation_config_for, load_tokenizer

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_weights_format(name_or_path: str | Path, allow_pickle: bool, flag: str | None = "--allow-pickle") -> None:
    """A local directory with pickle weights (pytorch_model.bin ...) and no .safetensors is refused
    unless allow_pickle: unpickling a file can run code. Hub ids are checked by transformers."""
    p = Path(name_or_path)
    if allow_pickle or not p.is_dir() or any(p.glob("*.safetensors")):
        return
    pickles = sorted(f.name for f in p.iterdir() if f.suffix in _PICKLE_SUFFIXES and f.is_file())
    if pickles:
        convert = f"convert them with `jft import-model {p} --output NEW_DIR --allow-pickle`"
        raise UserError(f"{p}: weights only as pickle ({', '.join(pickles[:3])}), and jft loads safetensors only "
                        f"(unpickling can run code); {convert}" + (f", or pass {flag} if you trust the file" if flag else ""))


def load_model(name_or_path: str, dtype="float32", attn_implementation: str | None = "sdpa", trust_remote_code: bool = False,
               allow_pickle: bool = False, pickle_flag: str | None = None):
    """AutoModelForCausalLM from a local directory or hub id, weights in `dtype`; safetensors only
    unless allow_pickle (then transformers also reads pytorch_model.bin, with torch.load(weights_only=True))."""
    from transformers import AutoModelForCausalLM

    check_weights_format(name_or_path, allow_pickle, pickle_flag)
    kwargs = {"dtype": torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"model {name_or_path}: cannot load ({exc.__class__.__name__}: {exc})") from None


def save_hf_checkpoint(model, tokenizer, out_dir: str | Path, state_dict=None) -> Path:
    """model (safetensors) + config + generation_config (stops at `tokens.stop_token_ids`) + tokenizer."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {} if state_dict is None else {"state_dict": state_dict}
    model.save_pretrained(str(out_dir), **kwargs)
    generation_config_for(tokenizer, model.config).save_pretrained(str(out_dir))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out_dir))
    return out_dir


def init_model(preset: str, tokenizer_path: str, output: str | Path, seed: int = 0, dtype: str = "auto",
               trust_remote_code: bool = False) -> dict:
    """Randomly initialise a Qwen2-architecture model from a preset and save it as an HF checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    from japanese_ft.model.presets import preset_config

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output}: directory exists and is not empty")
    tok = load_tokenizer(tokenizer_path, trust_remote_code=trust_remote_code)
    config = preset_config(preset, len(tok), eos_id(tok))
    dtype = stored_dtype(config) if dtype == "auto" else dtype
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.to(torch_dtype(dtype, "--dtype"))
    with atomic_output(output, directory=True) as tmp:
        save_hf_checkpoint(model, tok, tmp)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "preset": preset,
        "parameters": n_params,
        "vocab_size": config.vocab_size,
        "tokenizer_size": len(tok),
        "dtype": dtype,
        "output": str(output),
        "eos_token_id": json.loads((output / "generation_config.json").read_text())["eos_token_id"],
    }
