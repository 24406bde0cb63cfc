"""Tokenizers and HF causal LMs in and out: loading, random init from a preset, saving.

Weights are always written as safetensors; `trust_remote_code` is passed through only when the
config asks for it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.text.chat import CHATML_TEMPLATE, IM_END

_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False, chat_template: bool = True):
    """AutoTokenizer; with `chat_template`, set jft's ChatML template when the tokenizer has none."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except Exception as exc:  # missing files, hub/offline errors
        raise UserError(f"tokenizer {name_or_path}: cannot load ({exc.__class__.__name__}: {exc})") from None
    if chat_template and not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
    return tok


def token_id(tokenizer, token: str) -> int | None:
    """Id of a single (special) token, or None when the vocabulary lacks it."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return int(tid)


def eos_id(tokenizer) -> int | None:
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    for cand in _EOS_CANDIDATES:
        tid = token_id(tokenizer, cand)
        if tid is not None:
            return tid
    return None


def pad_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    tid = eos_id(tokenizer)
    return 0 if tid is None else tid


def end_of_turn_token(tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant message (`<|im_end|>`,
    `<|eot_id|>`, `<end_of_turn>`, ...), or None without a template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    marker = "\ue000jft\ue001"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # templates may reject this conversation (jinja errors of any kind)
        return None
    if marker not in text:
        return None
    after = text.split(marker, 1)[1]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    for tid in tokenizer(after, add_special_tokens=False)["input_ids"][:3]:
        if tid in special:
            return tokenizer.convert_ids_to_tokens(int(tid))
    return None


def stop_token_ids(tokenizer) -> list[int]:
    """End-of-turn first (`<|im_end|>`), then the tokenizer's EOS: generation stops at either."""
    ids = []
    for tid in (token_id(tokenizer, IM_END), eos_id(tokenizer)):
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids


def generation_config_for(tokenizer, model_config=None):
    from transformers import GenerationConfig

    stops = stop_token_ids(tokenizer)
    gen = GenerationConfig(
        eos_token_id=stops if len(stops) > 1 else (stops[0] if stops else None),
        pad_token_id=pad_id(tokenizer),
        bos_token_id=getattr(model_config, "bos_token_id", None),
    )
    return gen


def resolve_dtype(name: str):
    import torch

    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
             "float32": torch.float32, "fp32": torch.float32}
    if name not in table:
        raise UserError(f"dtype {name!r}: choose bfloat16, float16 or float32")
    return table[name]


def stored_dtype(model_dir: str | Path, default: str = "float32") -> str:
    """The dtype a local checkpoint's config.json records (`dtype`, or `torch_dtype` before transformers 5)."""
    cfg_path = Path(model_dir) / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}
    return str(cfg.get("dtype") or cfg.get("torch_dtype") or default).replace("torch.", "")


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
    torch_dtype = resolve_dtype(dtype) if isinstance(dtype, str) else dtype
    kwargs = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"model {name_or_path}: cannot load ({exc.__class__.__name__}: {exc})") from None


def save_hf_checkpoint(model, tokenizer, out_dir: str | Path, state_dict=None) -> Path:
    """model (safetensors) + config + generation_config (stops at <|im_end|>) + tokenizer."""
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
    if dtype == "auto":
        dtype = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32").replace("torch.", "")
    torch_dtype = resolve_dtype(dtype)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.to(torch_dtype)
    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_hf_checkpoint(model, tok, tmp)
    if output.exists():
        output.rmdir()  # empty (checked above)
    os.replace(tmp, output)
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
