"""Fail-fast checks that run before any model or data is loaded."""

from __future__ import annotations

from pathlib import Path

from japanese_ft.errors import UserError


def _looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") != 1 or Path(name).suffix != ""


def check_model_path(name: str, what: str = "model.name_or_path") -> None:
    p = Path(name).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").exists():
            raise UserError(f"{what}: {p} has no config.json (create one with `jft init-model` or point at an HF checkpoint)")
        return
    if _looks_local(name):
        raise UserError(f"{what}: {name} not found")


def model_max_positions(name: str, trust_remote_code: bool = False) -> int | None:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise UserError(f"model.name_or_path {name}: cannot read its config ({exc.__class__.__name__}: {exc})") from None
    return getattr(config, "max_position_embeddings", None)


def preflight(cfg, world_size: int) -> None:
    """Every check that needs no weights: batch arithmetic, paths, sequence length."""
    from japanese_ft.data.pretrain import check_token_prefixes
    from japanese_ft.data.sft import check_jsonl_paths

    t = cfg.train
    if t.global_batch_size % (t.micro_batch_size * world_size):
        raise UserError(
            f"train.global_batch_size ({t.global_batch_size}) is not divisible by train.micro_batch_size "
            f"({t.micro_batch_size}) x world size ({world_size})"
        )
    if t.eval_every < 0 or t.save_every < 0 or t.eval_batches < 0:
        raise UserError("train.eval_every, train.save_every and train.eval_batches must be >= 0")
    if t.keep_last < 1:
        raise UserError(f"train.keep_last must be >= 1, got {t.keep_last}")
    if t.warmup_steps < 0:
        raise UserError(f"train.warmup_steps must be >= 0, got {t.warmup_steps}")
    if cfg.mode == "cpt":
        check_token_prefixes(cfg.data.train, "data.train")
        if cfg.data.validation:
            check_token_prefixes(cfg.data.validation, "data.validation")
    else:
        check_jsonl_paths(cfg.data.train, "data.train")
        check_jsonl_paths(cfg.data.validation, "data.validation")
    check_model_path(cfg.model.name_or_path)
    tok = cfg.data.tokenizer
    if tok and _looks_local(tok) and not Path(tok).expanduser().exists():
        raise UserError(f"data.tokenizer: {tok} not found")
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir: {out} exists and is not a directory")
    max_pos = model_max_positions(cfg.model.name_or_path, cfg.model.trust_remote_code)
    needed = cfg.data.seq_length + (1 if cfg.mode == "cpt" else 0)  # cpt feeds seq_length + 1 tokens
    if max_pos is not None and needed > max_pos:
        raise UserError(
            f"data.seq_length ({cfg.data.seq_length}) is beyond the model's limit: max_position_embeddings = {max_pos}"
            + (" (cpt windows hold seq_length + 1 tokens)" if cfg.mode == "cpt" else "")
        )
