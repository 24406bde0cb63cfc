"""init-model / train / export glue: arguments in, library call, one-screen summary out."""

from __future__ import annotations

import os
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import console, count_progress, quiet_libraries, summary_table


def _human(n: float) -> str:
    for unit in ("", "K", "M", "B"):
        if abs(n) < 1000:
            return f"{n:,.1f}{unit}" if unit else f"{n:,.0f}"
        n /= 1000
    return f"{n:,.1f}T"


def run_init_model(preset: str, tokenizer: str, output: Path, seed: int, dtype: str) -> None:
    from japanese_ft.model.presets import PRESETS

    if preset not in PRESETS:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype {dtype!r}: choose auto, float32, bfloat16 or float16")
    if not Path(tokenizer).exists() and tokenizer.startswith((".", "/", "~")):
        raise UserError(f"--tokenizer {tokenizer}: not found")
    quiet_libraries()
    from japanese_ft.model.load import init_model

    info = init_model(preset, tokenizer, output, seed=seed, dtype=dtype)
    summary_table(
        f"init-model -> {info['output']}",
        [
            ("preset", info["preset"]),
            ("parameters", f"{info['parameters']:,} ({_human(info['parameters'])})"),
            ("vocab size", f"{info['vocab_size']:,} (tokenizer {info['tokenizer_size']:,}, padded to a multiple of 64)"),
            ("dtype", info["dtype"]),
            ("generation stops at", info["eos_token_id"]),
        ],
    )


def run_train(mode: str, config: Path | None, overrides: list[str]) -> int:
    from japanese_ft.config import MODES, load_run_config

    if mode not in MODES:
        raise UserError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if config is None:
        raise UserError("--config FILE.yaml is required (see configs/)")
    cfg = load_run_config(config, overrides, mode)  # unknown keys and bad values fail here
    quiet_libraries()
    from japanese_ft.train.loop import train

    with count_progress(cfg.mode, cfg.train.max_steps) as bar:
        result = train(cfg, console=console, progress=bar)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    rows = [
        ("mode", f"{cfg.mode} ({cfg.model.name_or_path})"),
        ("status", result.status),
        ("steps", f"{result.step} / {cfg.train.max_steps}"),
        ("parameters", f"{result.trainable_params:,} trainable of {result.total_params:,}"),
        ("devices", f"{result.world_size} x {result.device.split(':')[0]}"),
        ("final train loss", f"{result.loss:.4f}" if result.loss is not None else "-"),
        ("final val loss", f"{result.val_loss:.4f}" if result.val_loss is not None else "-"),
        ("tokens", f"{result.tokens:,}"),
        ("time", f"{result.seconds:.1f} s ({result.tokens_per_s:,.0f} tokens/s)"),
    ]
    train_stats = result.data.get("train") if isinstance(result.data.get("train"), dict) else None
    if train_stats:
        rows.append(("examples", f"{train_stats['examples']:,} of {train_stats['records']:,} records "
                     f"(dropped too long {train_stats['dropped_too_long']}, truncated {train_stats['truncated']}, "
                     f"no answer {train_stats['dropped_no_answer']}); {train_stats['rows']:,} rows"))
    rows += [
        ("checkpoint", result.checkpoint or "-"),
        ("final", result.final_dir or "- (stopped early; re-run the same command to resume)"),
        ("metrics", f"{cfg.output_dir}/metrics.jsonl, tensorboard/, training_curve.png"),
    ]
    summary_table(f"jft train {cfg.mode} -> {cfg.output_dir}", rows)
    return 0


def run_export(base: str, adapter: Path, output: Path, dtype: str) -> None:
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype {dtype!r}: choose auto, float32, bfloat16 or float16")
    if not adapter.exists():
        raise UserError(f"--adapter {adapter}: not found")
    if not Path(base).exists() and base.startswith((".", "/", "~")):
        raise UserError(f"--base {base}: not found")
    quiet_libraries()
    from japanese_ft.model.lora import merge_adapter

    info = merge_adapter(base, str(adapter), output, dtype=dtype)
    summary_table(
        f"export -> {info['output']}",
        [("base", info["base"]), ("adapter", info["adapter"]), ("parameters", f"{info['parameters']:,}"), ("dtype", info["dtype"])],
    )
