"""Fail-fast checks that run before any model or data is loaded: the ones that read files.

The checks that need no file live in `RunConfig.validate` (config.py), which runs first.
"""

from __future__ import annotations

from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import looks_local


def check_model_path(name: str, what: str = "model.name_or_path") -> None:
    p = Path(name).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").exists():
            raise UserError(f"{what}: {p} has no config.json (create one with `jft init-model` or point at an HF checkpoint)")
        return
    if looks_local(name):
        raise UserError(f"{what}: {name} not found")


def check_output_dir(path: str, what: str = "output_dir") -> None:
    """The directory can be created: it is one, or is missing below a directory (not a file)."""
    out = Path(path).expanduser()
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{what}: {p} exists and is not a directory" + (f" (cannot create {out})" if p != out else ""))
            return


def model_max_positions(name: str, trust_remote_code: bool = False) -> int | None:
    from transformers import AutoConfig

    from japanese_ft.errors import one_line

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise UserError(f"model.name_or_path {name}: cannot read its config ({one_line(exc)})") from None
    return getattr(config, "max_position_embeddings", None)


def preflight(cfg, world_size: int) -> None:
    """Every check that needs no weights: batch arithmetic over the processes, paths, sequence length."""
    from japanese_ft.data.pretrain import check_token_prefixes
    from japanese_ft.data.sft import check_jsonl_paths
    from japanese_ft.tokens import check_tokenizer_source

    t = cfg.train
    if t.global_batch_size % (t.micro_batch_size * world_size):
        raise UserError(
            f"train.global_batch_size ({t.global_batch_size}) is not divisible by train.micro_batch_size "
            f"({t.micro_batch_size}) x world size ({world_size})"
        )
    if cfg.mode == "cpt":
        check_token_prefixes(cfg.data.train, "data.train")
        if cfg.data.validation:
            check_token_prefixes(cfg.data.validation, "data.validation")
    else:
        check_jsonl_paths(cfg.data.train, "data.train")
        check_jsonl_paths(cfg.data.validation, "data.validation")
    check_model_path(cfg.model.name_or_path)
    if cfg.data.tokenizer:
        check_tokenizer_source(cfg.data.tokenizer, "data.tokenizer")
    else:
        check_tokenizer_source(cfg.model.name_or_path, "model.name_or_path (its tokenizer; or set data.tokenizer)")
    check_output_dir(cfg.output_dir)
    max_pos = model_max_positions(cfg.model.name_or_path, cfg.model.trust_remote_code)
    needed = cfg.data.seq_length + (1 if cfg.mode == "cpt" else 0)  # cpt feeds seq_length + 1 tokens
    if max_pos is not None and needed > max_pos:
        raise UserError(
            f"data.seq_length ({cfg.data.seq_length}) is beyond the model's limit: max_position_embeddings = {max_pos}"
            + (" (cpt windows hold seq_length + 1 tokens)" if cfg.mode == "cpt" else "")
        )
