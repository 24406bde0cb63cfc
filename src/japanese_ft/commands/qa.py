"""build-qa / convert-squad / download-corpus glue: options in, library call, summary out."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import byte_progress, console, summary_table


def _squad_titles(paths: list[Path]) -> frozenset:
    from japanese_ft.data.qa import display_title
    from japanese_ft.data.squad import load_squad

    titles = set()
    for path in paths:
        for article in load_squad(path)["data"]:
            title = article.get("title") if isinstance(article, dict) else None
            if isinstance(title, str) and title:
                titles.update((title, display_title(title)))
    return frozenset(titles)


def run_build_qa(inputs, output_dir, seed, validation_ratio, chunk_chars, max_input_chars, min_output_chars,
                 max_output_chars, text_key, strict, exclude_squad=(), report=None):
    from japanese_ft.data.corpus import expand_inputs, progress_total
    from japanese_ft.data.qa import QAOptions, build_qa

    opts = QAOptions(
        seed=seed,
        validation_ratio=validation_ratio,
        chunk_chars=chunk_chars,
        max_input_chars=max_input_chars,
        min_output_chars=min_output_chars,
        max_output_chars=max_output_chars,
        text_key=text_key,
        strict=strict,
        exclude_titles=_squad_titles(list(exclude_squad)) if exclude_squad else frozenset(),
    )
    opts.check()
    files = expand_inputs(inputs)
    with byte_progress("build-qa", progress_total(files)) as update:
        stats = build_qa([str(p) for p in inputs], output_dir, opts, progress=lambda n, arts: update(n, f"{arts:,} articles"),
                         report=report)
    for example in stats.malformed_examples:
        console.print(f"[yellow]malformed line[/] {example}", highlight=False)
    out = Path(output_dir)
    kinds = ", ".join(f"{k}={v:,}" for k, v in stats.pairs.items())
    dropped = ", ".join(f"{k}={v:,}" for k, v in stats.dropped.items()) or "none"
    rows = [
        ("articles in", f"{stats.articles_in:,}"),
        ("articles used", f"{stats.articles_used:,}"),
        ("pairs per kind", kinds),
        ("training", f"{stats.training_pairs:,} pairs from {stats.training_articles:,} articles -> {out / 'training.jsonl'}"),
        ("validation", f"{stats.validation_pairs:,} pairs from {stats.validation_articles:,} articles -> {out / 'validation.jsonl'}"),
        ("dropped", dropped),
        ("text repairs", ", ".join(f"{k}={v:,}" for k, v in stats.repaired.items()) or "none"),
        ("sentences left out", ", ".join(f"{k}={v:,}" for k, v in stats.sentences_left_out.items()) or "none"),
        ("malformed lines", f"{stats.malformed_lines:,}"),
        ("time", f"{stats.seconds:.1f} s"),
        ("stats", str(out / "stats.json") + (f", report {report}" if report else "")),
    ]
    summary_table(f"build-qa -> {out}", rows)
    if stats.articles_used == 0:
        console.print("[yellow]warning:[/] no pairs were written; see 'dropped' above", highlight=False)
    elif validation_ratio > 0 and stats.validation_pairs == 0:
        console.print("[yellow]warning:[/] no article fell into validation; use more input or a larger --validation-ratio",
                      highlight=False)
    return stats


def _print_malformed(stats) -> list[tuple[str, str]]:
    """Print the first malformed entries; the summary row, when there were any."""
    from rich.markup import escape

    for example in stats.malformed_examples:
        console.print(f"[yellow]malformed[/] {escape(example)}", highlight=False)
    return [("malformed (skipped)", f"{stats.malformed:,}")] if stats.malformed else []


def run_convert_squad(file, output, strip_title=True, style="plain", strict=False):
    from japanese_ft.data.squad import convert_squad

    stats = convert_squad(file, output, strip_title=strip_title, style=style, strict=strict)
    layout = ("the llm-jp-eval JSQuAD prompt of jft eval jsquad (0-shot, ends in '### 応答:\\n')" if style == "llm-jp-eval"
              else "文章:{context}\\n質問:{question}")
    summary_table(
        f"convert-squad -> {output}",
        [
            ("questions", f"{stats.questions:,}"),
            ("records written", f"{stats.written:,}"),
            ("unanswerable skipped", f"{stats.unanswerable_skipped:,}"),
            ("articles / passages", f"{stats.articles:,} / {stats.contexts:,}"),
            ("input layout", layout),
            ("train with", "data.chat_template=none (plain text, scored in the raw format)" if style == "llm-jp-eval"
             else "the chat template (data.chat_template=auto)"),
            *_print_malformed(stats),
        ],
    )
    return stats


def run_squad_articles(file, output, strip_title=True, strict=False):
    from japanese_ft.data.squad import squad_articles

    stats = squad_articles(file, output, strip_title=strip_title, strict=strict)
    summary_table(
        f"convert-squad --articles -> {output}",
        [
            ("articles written", f"{stats.articles:,}"),
            ("paragraphs", f"{stats.paragraphs_written:,} written of {stats.paragraphs:,} "
                           f"(repeated {stats.duplicate_paragraphs:,}, empty {stats.empty_paragraphs:,})"),
            ("characters", f"{stats.characters:,}"),
            *_print_malformed(stats),
            ("document", '{"text": paragraphs joined by \\n, "meta": {"id", "title", "url"}}'),
            ("next", f"jft prepare-corpus {output} --tokenizer MODEL --output-prefix PREFIX  |  jft build-qa {output} --output-dir DIR"),
        ],
    )
    return stats


@contextmanager
def _download_progress():
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=console, disable=not console.is_terminal,
    )
    with progress:
        def for_file(name: str):
            task = progress.add_task(name, total=None)

            def update(advance: int, total: int | None) -> None:
                progress.update(task, advance=advance, total=total)

            return update

        yield for_file


def run_download_corpus(name, output_dir, base_url, files, sha256, retries, timeout):
    from japanese_ft.data.download import download_corpus, get_corpus, parse_checksums

    corpus = get_corpus(name)
    if retries < 0:
        raise UserError(f"--retries must be >= 0, got {retries}")
    checksums = parse_checksums(list(sha256 or []))
    with _download_progress() as progress_for:
        results = download_corpus(
            name, output_dir, base_url=base_url, files=list(files or []) or None, sha256=checksums,
            retries=retries, timeout=timeout, progress_for=progress_for,
        )
    total = sum(r.bytes for r in results)
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary_table(
        f"download-corpus {name} -> {output_dir}",
        [
            ("source", (base_url or corpus.base_url).rstrip("/")),
            ("files", ", ".join(f"{k}={v}" for k, v in counts.items())),
            ("bytes", f"{total:,} ({total / 1e6:,.1f} MB)"),
            ("verified", ", ".join(sorted({r.verified for r in results}))),
            ("next", f"jft prepare-corpus {output_dir} --tokenizer TOKENIZER --output-prefix PREFIX"),
        ],
    )
    return results
