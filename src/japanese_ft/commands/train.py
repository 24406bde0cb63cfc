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
    from japanese_ft.tokens import check_tokenizer_source

    check_tokenizer_source(tokenizer, "--tokenizer")
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
    return info


def run_train_tokenizer(inputs, output: Path, vocab_size: int, min_frequency: int, text_key: str) -> dict:
    from japanese_ft.data.corpus import iter_records
    from japanese_ft.model.tokenizer import train_bpe_tokenizer

    if vocab_size < 300:
        raise UserError(f"--vocab-size must be >= 300 (256 byte tokens + specials + merges), got {vocab_size}")
    if min_frequency < 1:
        raise UserError(f"--min-frequency must be >= 1, got {min_frequency}")
    texts = [rec[text_key] for rec, _ in iter_records([str(p) for p in inputs], text_key)]
    if not texts:
        raise UserError(f"{', '.join(str(p) for p in inputs)}: no documents to train on")
    info = train_bpe_tokenizer(texts, output, vocab_size=vocab_size, min_frequency=min_frequency)
    info.update(documents=len(texts), characters=sum(len(t) for t in texts))
    summary_table(
        f"train-tokenizer -> {info['output']}",
        [("vocab size", f"{info['vocab_size']:,} (byte-level BPE, ChatML chat template)"),
         ("special tokens", ", ".join(info["special_tokens"])),
         ("trained on", f"{info['documents']:,} documents, {info['characters']:,} characters")],
    )
    return info


def run_train(mode: str, config: Path | None, overrides: list[str]) -> int:
    from japanese_ft.config import MODES, load_run_config

    if mode not in MODES:
        raise UserError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if config is None and not overrides:
        raise UserError("give --config FILE.yaml (see configs/) and/or key=value settings")
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
        ("devices", f"{result.world_size} x {result.device.split(':')[0]}"
                    + (f", {result.cpu_threads}" if result.cpu_threads else "")),
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
    for split, stats in result.data.items():
        if isinstance(stats, dict) and stats.get("malformed"):
            rows.append((f"malformed ({split})", f"{stats['malformed']:,} records skipped; first: {stats['malformed_examples'][0]}"))
    rows += [
        ("checkpoint", result.checkpoint or "-"),
        ("final", result.final_dir or "- (stopped early; re-run the same command to resume)"),
        ("metrics", f"{cfg.output_dir}/metrics.jsonl, training_curve.png"
                    + (", tensorboard/" if (Path(cfg.output_dir) / "tensorboard").is_dir() else
                       " (no TensorBoard events: pip install \"japanese-ft[tensorboard]\")")),
    ]
    summary_table(f"jft train {cfg.mode} -> {cfg.output_dir}", rows)
    return 0


def run_export(base: str, adapter: Path, output: Path, dtype: str, allow_pickle: bool = False) -> None:
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype {dtype!r}: choose auto, float32, bfloat16 or float16")
    if not adapter.exists():
        raise UserError(f"--adapter {adapter}: not found")
    from japanese_ft.files import looks_local

    if not Path(base).exists() and looks_local(base):
        raise UserError(f"--base {base}: not found")
    quiet_libraries()
    from japanese_ft.model.lora import merge_adapter

    info = merge_adapter(base, str(adapter), output, dtype=dtype, allow_pickle=allow_pickle)
    summary_table(
        f"export -> {info['output']}",
        [("base", info["base"]), ("adapter", info["adapter"]), ("parameters", f"{info['parameters']:,}"), ("dtype", info["dtype"])],
    )
    return info


def run_import_model(source: str, output: Path, dtype: str, trust_remote_code: bool, allow_pickle: bool = False) -> dict:
    from japanese_ft.model.importing import DTYPES

    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    quiet_libraries()
    from japanese_ft.model.importing import import_model

    with console.status(f"importing {source}"):
        info = import_model(source, output, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    stops = ", ".join(str(i) for i in info["stop_token_ids"])
    summary_table(
        f"import-model -> {info['output']}",
        [
            ("source", f"{info['source']} ({info['kind']})"),
            ("architecture", f"{info['architecture']} ({info['model_type']}, {info['layers']} layers, hidden {info['hidden_size']})"),
            ("parameters", f"{info['parameters']:,} ({_human(info['parameters'])})"
                           + (", tied embeddings" if info["tied_embeddings"] else "")),
            ("vocabulary", f"{info['vocab_size']:,} (tokenizer {info['tokenizer_size']:,})"),
            ("context length", f"{info['context_length']:,}" if info["context_length"] else "-"),
            ("dtype", info["dtype"]),
            ("chat template", "yes" if info["chat_template"] else "none (jft trains with ChatML)"),
            ("generation stops at", f"{info['end_of_turn'] or '-'} / EOS {info['eos_token']} (ids {stops})"),
            ("Japanese chars/token", f"{info['chars_per_token']:.2f} on the built-in sample "
                                     f"({info['sample_chars']:,} characters, {info['sample_tokens']:,} tokens)"),
            ("time", f"{info['seconds']:.1f} s"),
            ("next", f"jft eval jsquad --model {info['output']} --data FILE  |  jft chat --model {info['output']}"),
        ],
    )
    return info
