"""`jft report` glue: a report from training runs and evaluation results (and, optionally, a run manifest)."""

from __future__ import annotations

import shlex
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import summary_table


def run_report(runs: list[Path], results: list[Path], output: Path, manifest: Path | None, title: str | None) -> dict:
    from japanese_ft.report import write_report

    if not runs and not results:
        raise UserError("give at least one --run (training run directory) or --result (evaluation result file)")
    for r in runs:
        if not Path(r).is_dir():
            raise UserError(f"--run {r}: no such directory")
    if manifest is not None and not Path(manifest).is_file():
        raise UserError(f"--manifest {manifest}: no such file")
    args = ["jft", "report", *[a for r in runs for a in ("--run", str(r))], *[a for r in results for a in ("--result", str(r))],
            "--output", str(output)] + (["--manifest", str(manifest)] if manifest else []) + (["--title", title] if title else [])
    info = write_report(output, runs, results, manifest=manifest, title=title, command=shlex.join(args))
    summary_table(f"report -> {output}", [("markdown", info["md"]), ("html", info["html"] + " (open it in a browser)"),
                                          ("figures", ", ".join(info["plots"]) or "-"),
                                          ("inputs", f"{info['runs']} training runs, {info['results']} evaluation results")])
    return info
