"""Load a fast (Rust) tokenizer for data preparation without importing transformers when possible."""

from __future__ import annotations

import json
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.tokens import EOS_CANDIDATES


def load_tokenizer_json(name_or_path: str, trust_remote_code: bool = False,
                        via_transformers: bool = False) -> tuple[str, str | None]:
    """Return (tokenizer.json text, eos token) for a local directory or a hub id.

    A local directory's tokenizer.json is read as is (no transformers import). `via_transformers`
    returns the Rust tokenizer that `AutoTokenizer` builds instead (it may rewrite the
    post-processor from tokenizer_config.json, e.g. `add_bos_token`).
    """
    path = Path(name_or_path)
    if path.is_dir() and (path / "tokenizer.json").exists() and not via_transformers:
        eos = None
        cfg = path / "tokenizer_config.json"
        if cfg.exists():
            eos = json.loads(cfg.read_text(encoding="utf-8")).get("eos_token")
            if isinstance(eos, dict):
                eos = eos.get("content")
        return (path / "tokenizer.json").read_text(encoding="utf-8"), eos
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: expected a tokenizer directory containing tokenizer.json")
    if path.is_dir() and not (path / "tokenizer.json").exists():
        raise UserError(f"{path}: no tokenizer.json in this directory")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # hub errors, offline, missing files
        raise UserError(f"--tokenizer {name_or_path}: cannot load ({exc.__class__.__name__}: {exc})") from None
    if not getattr(tok, "is_fast", False):
        raise UserError(f"--tokenizer {name_or_path}: only fast (Rust) tokenizers are supported")
    return tok.backend_tokenizer.to_str(), tok.eos_token


def resolve_eod_id(tokenizer, eos_token: str | None) -> int:
    """The id that ends each document: the configured EOS token, else a well-known one."""
    for candidate in ([eos_token] if eos_token else []) + list(EOS_CANDIDATES):
        tid = tokenizer.token_to_id(candidate)
        if tid is not None:
            return tid
    raise UserError("tokenizer has no end-of-document token; pass --no-eod or use a tokenizer with an EOS token")
