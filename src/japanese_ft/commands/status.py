"""`jft status RUN_DIR [--watch]`: one screen about a training run (or a table of the runs in a directory)."""

from __future__ import annotations

import time
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import console, out


def _f(v, nd=4) -> str:
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def render_run(st):
    from rich.table import Table

    from japanese_ft.train.status import fmt_duration

    table = Table(title=f"jft status {st.run_dir}", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    pct = f" ({100 * st.progress:.0f} %)" if st.progress is not None else ""
    rows = [
        ("state", st.state),
        ("mode", f"{st.mode or '?'} ({st.model or '?'})"),
        ("step", f"{st.step} / {st.max_steps if st.max_steps else '?'}{pct}"),
        ("loss", _f(st.loss)),
        ("val loss", f"{_f(st.val_loss)} at step {st.val_step} (best {_f(st.best_val_loss)})" if st.val_loss is not None else "-"),
        ("lr", f"{st.lr:.2e}" if st.lr is not None else "-"),
        ("tokens", f"{st.tokens:,}"),
        ("tokens/s", f"{st.tokens_per_s:,.0f} (last logged steps)" if st.tokens_per_s else "-"),
        ("ETA", fmt_duration(st.eta_seconds) if st.eta_seconds is not None else ("done" if st.state == "finished" else "-")),
        ("last update", f"{fmt_duration(st.last_update_age_s)} ago" if st.last_update_age_s is not None else "-"),
    ]
    if st.checkpoints:
        cks = ", ".join(f"step {c.step} ({_size(c.bytes)}{'' if c.complete else ', being written'})" for c in st.checkpoints)
    else:
        cks = "none yet"
    rows.append(("checkpoints", cks))
    rows.append(("final", st.final_dir or "-"))
    if st.hint:
        rows.append(("note", st.hint))
    for k, v in rows:
        table.add_row(k, v)
    return table


def render_many(statuses):
    from rich.table import Table

    from japanese_ft.train.status import fmt_duration

    # Short headers and wrapped (never cut) cells: the table stays readable at 80 columns.
    table = Table(title="runs", title_justify="left")
    for col, just in (("run", "left"), ("state", "left"), ("mode", "left"), ("step", "right"), ("loss", "right"),
                      ("val", "right"), ("tok/s", "right"), ("ETA", "right"), ("ckpts", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for st in statuses:
        table.add_row(Path(st.run_dir).name, st.state, st.mode or "?", f"{st.step}/{st.max_steps or '?'}", _f(st.loss, 3),
                      _f(st.val_loss, 3), f"{st.tokens_per_s:,.0f}" if st.tokens_per_s else "-",
                      fmt_duration(st.eta_seconds) if st.eta_seconds is not None else "-",
                      ", ".join(str(c.step) for c in st.checkpoints if c.complete) or "-")
    return table


def render_pipeline(workdir: Path, manifest: dict):
    """The stages of a `jft run` work directory (its manifest), one row each."""
    from rich.table import Table

    from japanese_ft.commands.run import stage_result

    recipe = manifest.get("recipe", {})
    stages = manifest.get("stages", {})
    total = sum(s.get("seconds") or 0 for s in stages.values())
    table = Table(title=f"jft run {recipe.get('name')} in {workdir}: {manifest.get('status')}, {total:.1f} s of stage time",
                  title_justify="left")
    for col, just in (("stage", "left"), ("kind", "left"), ("state", "left"), ("time", "right"), ("result", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for name, rec in stages.items():
        secs = f"{rec['seconds']:.1f} s" if rec.get("seconds") is not None else "-"
        table.add_row(name, rec.get("kind", "?"), rec.get("status", "?"), secs, stage_result(rec))
    return table


def _pipeline_active(workdir: Path, manifest: dict) -> bool:
    import os

    from japanese_ft.pipeline.manifest import LOCK

    try:
        pid = int((workdir / (LOCK + ".pid")).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return manifest.get("status") == "running"


def _collect(run_dir: Path):
    from japanese_ft.pipeline.manifest import read_manifest
    from japanese_ft.train.status import find_runs, is_run_dir, run_status

    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such directory")
    manifest = read_manifest(run_dir) if run_dir.is_dir() else None
    if manifest is not None:
        return render_pipeline(run_dir, manifest), _pipeline_active(run_dir, manifest)
    if is_run_dir(run_dir):
        st = run_status(run_dir)
        return render_run(st), st.state in ("running", "not started")
    runs = find_runs(run_dir)
    if not runs:
        run_status(run_dir)  # raises the "not a run" error
    statuses = [run_status(p) for p in runs]
    return render_many(statuses), any(s.state in ("running", "not started") for s in statuses)


def run_status(run_dir: Path, watch: bool = False, interval: float = 5.0) -> int:
    if interval <= 0:
        raise UserError(f"--interval must be > 0, got {interval}")
    renderable, active = _collect(run_dir)
    if not watch or not active:
        out.print(renderable)
        if watch:
            console.print("(the run is not active: nothing to watch)", highlight=False)
        return 0
    from rich.live import Live

    try:
        with Live(renderable, console=out, refresh_per_second=4, transient=False) as live:
            while active:
                time.sleep(interval)
                renderable, active = _collect(run_dir)
                live.update(renderable)
    except KeyboardInterrupt:
        pass
    return 0
