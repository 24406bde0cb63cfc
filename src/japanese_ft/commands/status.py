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

    table = Table(title="runs", title_justify="left")
    for col, just in (("run", "left"), ("state", "left"), ("mode", "left"), ("step", "right"), ("loss", "right"),
                      ("val loss", "right"), ("tokens/s", "right"), ("ETA", "right"), ("checkpoints", "left")):
        table.add_column(col, justify=just)
    for st in statuses:
        table.add_row(Path(st.run_dir).name, st.state, st.mode or "?", f"{st.step}/{st.max_steps or '?'}", _f(st.loss),
                      _f(st.val_loss), f"{st.tokens_per_s:,.0f}" if st.tokens_per_s else "-",
                      fmt_duration(st.eta_seconds) if st.eta_seconds is not None else "-",
                      ", ".join(str(c.step) for c in st.checkpoints if c.complete) or "-")
    return table


def _collect(run_dir: Path):
    from japanese_ft.train.status import find_runs, is_run_dir, run_status

    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such directory")
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
