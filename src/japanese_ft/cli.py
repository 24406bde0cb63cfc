"""The `jft` command line: parse arguments, call the library, print a summary.

No logic lives here that a test would need; every command is a library function first.
User errors (`UserError`) print one line and exit 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from japanese_ft.errors import UserError

app = typer.Typer(
    help="jft: adapt open LLMs to Japanese - corpus preparation, continual pre-training, SFT/LoRA, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _STATE["debug"] = debug


# ---- corpus commands (foundation) ----------------------------------------------------------


@app.command("prepare-corpus")
def prepare_corpus_cmd(
    inputs: List[Path] = typer.Argument(..., help="JSONL / JSONL.gz files or directories of them."),
    tokenizer: str = typer.Option(..., "--tokenizer", help="Tokenizer directory or hub id."),
    output_prefix: Path = typer.Option(..., "--output-prefix", help="Writes PREFIX.bin, PREFIX.idx, PREFIX.stats.json."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field holding the document text."),
    normalize: str = typer.Option("nfc", "--normalize", help="Unicode normalization: nfc, nfkc or none."),
    filter_: bool = typer.Option(False, "--filter", help="Apply the Swallow-style quality rules."),
    filter_option: List[str] = typer.Option([], "--filter-option", help="Override a quality threshold, KEY=VALUE (repeatable)."),
    dedup: str = typer.Option("exact", "--dedup", help="exact, near (MinHash over character 5-grams) or none."),
    no_eod: bool = typer.Option(False, "--no-eod", help="Do not end each document with the EOD token."),
    workers: int = typer.Option(1, "--workers", help="Tokenizer worker processes (output is identical for any count)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Process slice K of N of the input, e.g. 2/8."),
) -> None:
    """Normalize, filter, deduplicate and tokenize a JSONL corpus into Megatron .bin/.idx files."""
    from japanese_ft.commands.corpus import run_prepare_corpus

    run_prepare_corpus(
        inputs, tokenizer, output_prefix, text_key, normalize, filter_, filter_option, dedup, not no_eod, workers, strict, shard
    )


@app.command("merge-corpus")
def merge_corpus_cmd(
    prefixes: List[Path] = typer.Argument(..., help="Token-file prefixes to concatenate, in order."),
    output_prefix: Path = typer.Option(..., "--output-prefix", help="Prefix of the merged .bin/.idx."),
    dedup: str = typer.Option("auto", "--dedup", help="auto (from the inputs' stats), exact or none."),
) -> None:
    """Concatenate token files (dropping exact duplicates across shards when they were deduplicated)."""
    from japanese_ft.commands.corpus import run_merge_corpus

    run_merge_corpus(prefixes, output_prefix, dedup)


@app.command("inspect-corpus")
def inspect_corpus_cmd(
    prefix: Path = typer.Argument(..., help="Token-file prefix (PREFIX.bin/.idx)."),
    show: Optional[int] = typer.Option(None, "--show", help="Decode document K."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer for --show."),
) -> None:
    """Print document/token counts of a token file and optionally decode one document."""
    from japanese_ft.commands.corpus import run_inspect_corpus

    run_inspect_corpus(prefix, show, tokenizer)


# ---- Q&A data commands (issue 3) ------------------------------------------------------------


@app.command("build-qa")
def build_qa_cmd(
    inputs: List[Path] = typer.Argument(..., help="JSONL / JSONL.gz article files or directories of them."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Writes DIR/training.jsonl, DIR/validation.jsonl, DIR/stats.json."),
    seed: int = typer.Option(42, "--seed", help="Chooses phrasings and the train/validation split (same seed, same bytes)."),
    validation_ratio: float = typer.Option(0.05, "--validation-ratio", help="Share of articles (not pairs) put in validation."),
    chunk_chars: int = typer.Option(800, "--chunk-chars", help="Target size of the sentence-aligned chunks."),
    max_input_chars: int = typer.Option(200, "--max-input-chars", help="Drop pairs whose question is longer."),
    min_output_chars: int = typer.Option(50, "--min-output-chars", help="Drop pairs whose answer is shorter."),
    max_output_chars: int = typer.Option(1500, "--max-output-chars", help="Drop pairs whose answer is longer."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field holding the article text."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
    exclude_squad: List[Path] = typer.Option([], "--exclude-squad", help="Skip articles whose title is in this SQuAD JSON (repeatable), e.g. the JSQuAD eval set."),
) -> None:
    """Turn Wikipedia-style articles into question/answer pairs for SFT."""
    from japanese_ft.commands.qa import run_build_qa

    run_build_qa(inputs, output_dir, seed, validation_ratio, chunk_chars, max_input_chars, min_output_chars,
                 max_output_chars, text_key, strict, exclude_squad)


@app.command("convert-squad")
def convert_squad_cmd(
    file: Path = typer.Argument(..., help="SQuAD v1.1/v2.0 JSON, e.g. jsquad-valid-v1.3.json."),
    output: Path = typer.Option(..., "--output", help="Output JSONL: {input: 文章:…\\n質問:…, output: first answer, meta}."),
    keep_title: bool = typer.Option(False, "--keep-title", help="Keep JSQuAD's 'title [SEP] ' context prefix."),
) -> None:
    """Convert SQuAD-format reading comprehension (JSQuAD) to {"input","output"} SFT records."""
    from japanese_ft.commands.qa import run_convert_squad

    run_convert_squad(file, output, strip_title=not keep_title)


@app.command("download-corpus")
def download_corpus_cmd(
    name: str = typer.Argument(..., help="Corpus name: ja_wiki (LLM-jp Corpus v3 Japanese Wikipedia)."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Directory for the downloaded files."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Mirror or local server to fetch from instead of the LLM-jp GitLab."),
    files: List[str] = typer.Option([], "--files", help="Only these file names (repeatable or comma-separated), e.g. train_0.jsonl.gz."),
    sha256: List[str] = typer.Option([], "--sha256", help="Expected checksum NAME=HEX (repeatable) or @SHA256SUMS file."),
    retries: int = typer.Option(5, "--retries", help="Retries per file after a broken connection or server error."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds without data before a connection counts as broken."),
) -> None:
    """Download corpus files with resume (HTTP Range), retries and size/checksum checks."""
    from japanese_ft.commands.qa import run_download_corpus

    run_download_corpus(name, output_dir, base_url, files, sha256, retries, timeout)


# ---- model and training commands (issue 4) --------------------------------------------------


# ---- evaluation and generation commands (issue 5) -------------------------------------------


# ---- demo, doctor, status (issue 6) ---------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: run the app, turning UserError into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, standalone_mode=False)
    except UserError as exc:
        if debug:
            raise
        from japanese_ft.ui import error

        error(str(exc))
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        from japanese_ft.ui import error

        error("interrupted")
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
