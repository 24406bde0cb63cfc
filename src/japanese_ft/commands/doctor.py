"""`jft doctor` glue: run the checks, print one table, a fix line per problem."""

from __future__ import annotations

from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import out

_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]", "info": "[blue]info[/]"}


def run_doctor(tokenizer: str | None, model: str | None, path: Path) -> int:
    from rich.markup import escape
    from rich.table import Table

    from japanese_ft.doctor import exit_code, run_checks
    from japanese_ft.ui import quiet_libraries

    quiet_libraries()
    checks = run_checks(tokenizer, model, path)
    table = Table(title="jft doctor", title_justify="left", show_lines=False)
    table.add_column("check", style="bold cyan")
    table.add_column("", justify="center")
    table.add_column("detail")
    for c in checks:
        table.add_row(escape(c.name), _MARK.get(c.status, c.status), escape(c.detail))
    out.print(table)
    problems = [c for c in checks if c.fix and c.status in ("warn", "fail")]
    if problems:
        out.print("[bold]fixes[/]")
        for c in problems:
            out.print(f"  {escape(c.name)}: {escape(c.fix)}", highlight=False)
    code = exit_code(checks)
    if code:
        failed = ", ".join(c.name for c in checks if c.status == "fail")
        # UserError: one line on stderr and exit code 2 (the CLI's convention for a failed request)
        raise UserError(f"requested check failed: {failed}")
    if not problems:
        out.print("all good", highlight=False)
    return code
