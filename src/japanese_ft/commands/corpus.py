"""prepare-corpus / merge-corpus / inspect-corpus glue."""

from __future__ import annotations

import json
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import byte_progress, console, summary_table


def run_prepare_corpus(inputs, tokenizer, output_prefix, text_key, normalize, use_filter, filter_options, dedup, eod, workers, strict, shard,
                       clean="whitespace", add_special_tokens=False):
    from japanese_ft.data.corpus import expand_inputs, parse_shard, progress_total
    from japanese_ft.data.prepare import PrepareOptions, prepare_corpus
    from japanese_ft.text.dedup import DEDUP_MODES
    from japanese_ft.text.normalize import CLEANUPS, NORMALIZATIONS

    if normalize not in NORMALIZATIONS:
        raise UserError(f"--normalize {normalize!r}: choose one of {', '.join(NORMALIZATIONS)}")
    if clean not in CLEANUPS:
        raise UserError(f"--clean {clean!r}: choose one of {', '.join(CLEANUPS)}")
    if dedup not in DEDUP_MODES:
        raise UserError(f"--dedup {dedup!r}: choose one of {', '.join(DEDUP_MODES)}")
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    quality = _quality_config(filter_options) if use_filter or filter_options else None
    options = PrepareOptions(
        tokenizer=tokenizer,
        text_key=text_key,
        normalize=normalize,
        clean=clean,
        add_special_tokens=add_special_tokens,
        quality=quality,
        dedup=dedup,
        eod=eod,
        workers=workers,
        strict=strict,
        shard=parse_shard(shard),
    )
    files = expand_inputs(inputs)
    total = progress_total(files) if options.shard is None else None  # a shard reads only a slice
    with byte_progress("prepare-corpus", total) as update:
        stats = prepare_corpus([str(p) for p in inputs], output_prefix, options, progress=lambda n, docs: update(n, f"{docs:,} docs"))
    for example in stats.malformed_examples:
        console.print(f"[yellow]malformed line[/] {example}", highlight=False)
    dropped = ", ".join(f"{k}={v}" for k, v in stats.dropped.items()) or "none"
    summary_table(
        f"prepare-corpus -> {output_prefix}.bin/.idx",
        [
            ("documents in", f"{stats.documents_in:,}"),
            ("documents written", f"{stats.documents_written:,}"),
            ("dropped", dropped),
            ("processing", f"normalize {stats.normalize}, clean {stats.clean}, dedup {stats.dedup}, "
                           f"special tokens {'on' if stats.add_special_tokens else 'off'}, EOD {'on' if stats.eod else 'off'}"),
            ("malformed lines", f"{stats.malformed_lines:,}"),
            ("tokens", f"{stats.tokens:,} ({stats.dtype})"),
            ("characters", f"{stats.characters:,}"),
            ("chars/token", stats.chars_per_token),
            ("time", f"{stats.seconds:.1f} s at {stats.mb_per_s:.2f} MB/s with {stats.workers} worker(s)"),
            ("stats", f"{output_prefix}.stats.json"),
        ],
    )
    return stats


def _quality_config(filter_options):
    from japanese_ft.text.quality import QualityConfig

    opts = {}
    for item in filter_options:
        if "=" not in item:
            raise UserError(f"--filter-option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        opts[k.strip()] = v.strip()
    try:
        return QualityConfig.from_options(opts)
    except ValueError as exc:
        raise UserError(f"--filter-option: {exc}") from None


def run_merge_corpus(prefixes, output_prefix, dedup):
    from japanese_ft.data.token_file import merge_token_files

    if dedup not in ("auto", "exact", "none"):
        raise UserError(f"--dedup {dedup!r}: choose auto, exact or none")
    if dedup == "auto":
        modes = set()
        for p in prefixes:
            stats_path = Path(f"{p}.stats.json")
            modes.add(json.loads(stats_path.read_text())["dedup"] if stats_path.exists() else "none")
        use = bool(modes) and "none" not in modes
    else:
        use = dedup == "exact"
    try:
        result = merge_token_files(prefixes, output_prefix, dedup=use)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    summary_table(
        f"merge-corpus -> {output_prefix}.bin/.idx",
        [("inputs", len(prefixes)), ("documents", f"{result['documents']:,}"), ("tokens", f"{result['tokens']:,}"),
         ("cross-shard duplicates dropped", result["duplicates_dropped"]), ("dedup", "exact" if use else "none")],
    )


def run_inspect_corpus(prefix, show, tokenizer):
    import numpy as np

    from japanese_ft.data.token_file import TokenFile

    try:
        tf = TokenFile(prefix)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    lengths = np.asarray(tf.lengths)
    rows = [
        ("documents", f"{len(tf):,}"),
        ("tokens", f"{int(lengths.sum()):,}"),
        ("dtype", str(tf.dtype)),
        ("tokens/document", f"mean {lengths.mean():.1f}, min {lengths.min()}, max {lengths.max()}" if len(tf) else "-"),
    ]
    stats_path = Path(f"{prefix}.stats.json")
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        rows.append(("chars/token", stats.get("chars_per_token")))
        rows.append(("dropped", stats.get("dropped")))
    summary_table(f"{prefix}", rows)
    if show is not None:
        if tokenizer is None:
            raise UserError("--show needs --tokenizer to decode the document")
        if not (0 <= show < len(tf)):
            raise UserError(f"--show {show}: document index out of range (0..{len(tf) - 1})")
        from tokenizers import Tokenizer

        from japanese_ft.data.tokenizer_files import load_tokenizer_json

        tok = Tokenizer.from_str(load_tokenizer_json(tokenizer)[0])
        ids = [int(x) for x in tf[show]]
        from japanese_ft.ui import out, terminal_safe

        out.print(f"--- document {show} ({len(ids)} tokens) ---", highlight=False)
        out.print(terminal_safe(tok.decode(ids, skip_special_tokens=False)), highlight=False, markup=False)
