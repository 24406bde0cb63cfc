"""Console output shared by the commands: progress bars and summary tables (Rich)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

console = Console(stderr=True)
out = Console()


@contextmanager
def byte_progress(description: str, total: int | None):
    """A bar counting bytes (MB, MB/s, ETA) plus a free-text field for documents."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total, extra="")

        def update(advance: int, extra: str = "") -> None:
            progress.update(task, advance=advance, extra=extra)

        yield update


@contextmanager
def count_progress(description: str, total: int | None):
    """A bar counting items (steps, questions) with ETA and a free-text field."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[extra]}"),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total, extra="")

        def update(advance: int = 1, extra: str | None = None) -> None:
            if extra is None:
                progress.update(task, advance=advance)
            else:
                progress.update(task, advance=advance, extra=extra)

        yield update


def summary_table(title: str, rows: list[tuple[str, object]]) -> None:
    """Print a two-column key/value table to stdout (plain text: "[chat]" stays text, not markup)."""
    from rich.markup import escape

    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows:
        table.add_row(escape(str(key)), escape(str(value)))
    out.print(table)


def quiet_libraries() -> None:
    """Silence transformers/peft chatter (progress bars, FutureWarnings) so our own bars and
    summaries stay readable. Idempotent; called by commands that load models."""
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|peft|torch)\..*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # transformers missing or its logging API changed: stay noisy, not broken
        pass


def error(message: str) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # "[gguf]" stays text


_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def terminal_safe(text: str) -> str:
    """Control characters (ESC, C1, DEL ...) and bidi overrides as visible escapes (\\x1b, \\u202e);
    newlines and tabs stay, so corpus text cannot move the cursor, recolour or rewrite the terminal."""
    def esc(ch: str) -> str:
        o = ord(ch)
        if ch in "\n\t" or not (o < 0x20 or 0x7F <= o <= 0x9F or o in _BIDI):
            return ch
        return f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}"

    return "".join(map(esc, text))

