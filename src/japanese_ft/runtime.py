"""Where tensors live and in what precision: dtype names and `resolve_device`.

One spelling for dtypes everywhere (configs, `--dtype` options, checkpoints): torch's names,
`bfloat16`, `float16`, `float32`. The short forms `bf16`, `fp16`, `fp32` are accepted as aliases
(the old spelling of `train.precision`) and mean the same. Light at import time: torch is imported
by the functions that return torch objects only.
"""

from __future__ import annotations

import json
from pathlib import Path

from japanese_ft.errors import UserError

DTYPES = ("bfloat16", "float16", "float32")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16", "float": "float32"}
DEVICES = ("auto", "cpu", "cuda")


def dtype_name(name: str, what: str = "dtype", allowed: tuple[str, ...] = DTYPES) -> str:
    """The canonical name of `name` (aliases resolved; "torch." prefix dropped), or a UserError
    naming `what` and the choices."""
    key = str(name).replace("torch.", "")
    key = DTYPE_ALIASES.get(key, key)
    if key not in allowed:
        raise UserError(f"{what}: {name!r} is not one of {', '.join(allowed)}")
    return key


def torch_dtype(name, what: str = "dtype"):
    """torch.dtype for a name (or a torch.dtype, returned as is)."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    return getattr(torch, dtype_name(name, what))


def resolve_dtype(name: str, device: str, what: str = "--dtype"):
    """torch.dtype; "auto" is bfloat16 on a GPU that supports it and float32 elsewhere."""
    import torch

    name = dtype_name(name, what, ("auto",) + DTYPES)
    if name == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def stored_dtype(config_or_dir, default: str = "float32") -> str:
    """The dtype a checkpoint records: a config object's or a local directory's config.json
    (`dtype`, or `torch_dtype` before transformers 5); `default` when it records none we know."""
    if isinstance(config_or_dir, (str, Path)):
        cfg_path = Path(config_or_dir) / "config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else {}
        value = cfg.get("dtype") or cfg.get("torch_dtype")
    else:
        value = getattr(config_or_dir, "dtype", None) or getattr(config_or_dir, "torch_dtype", None)
    name = DTYPE_ALIASES.get(str(value).replace("torch.", ""), str(value).replace("torch.", ""))
    return name if value is not None and name in DTYPES else default


def resolve_device(device: str = "auto", what: str = "--device") -> str:
    """"auto" is cuda when a GPU is visible, else cpu; asking for CUDA without one is a UserError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{what} {device}: CUDA is not available on this machine")
    return device
