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
