"""`jft demo` glue: a line per stage (each stage draws its own progress bar), one summary screen at the end."""

from __future__ import annotations

import time
from pathlib import Path

from japanese_ft.ui import console, out


def _summary(result) -> None:
    from rich.table import Table

    from japanese_ft.demo.pipeline import MODELS, stages

    m = result.manifest
    st = m["stages"]
    root = result.output_dir
    table = Table(title=f"jft demo {m['run_id']} -> {root}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("stage", style="bold cyan")
    table.add_column("what")
    table.add_column("time", justify="right")
    for i, s in enumerate(stages(), 1):
        rec = st.get(s.name)
        mark = "" if s.name in result.ran or result.how == "complete" else " (earlier run)"
        table.add_row(str(i), s.name, s.title, (f"{rec['seconds']:.1f} s" if rec else "-") + mark)
    out.print(table)

    metrics = Table(title="results (lower perplexity is better; char-F1/EM on the held-out questions)", title_justify="left")
    for col, just in (("model", "left"), ("CPT-text ppl", "right"), ("held-out ppl", "right"), ("held-out bits/char", "right"),
                      ("char-F1", "right"), ("EM", "right")):
        metrics.add_column(col, justify=just)
    for label in MODELS:
        e = st.get(f"eval-{label}", {}).get("info")
        if e:
            metrics.add_row(label, f"{e.get('cpt_corpus_perplexity', float('nan')):.2f}", f"{e['perplexity']:.2f}",
                            f"{e['bits_per_char']:.3f}", f"{e['char_f1']:.3f}", f"{e['exact_match']:.3f}")
    out.print(metrics)
    total = m.get("total_seconds") or sum(s.get("seconds", 0) for s in st.values())
    how = {"new": "finished", "resume": "resumed and finished", "complete": "was already complete"}[result.how]
    out.print(f"demo {how}: stages took {total:.1f} s in all"
              + (f" ({result.seconds:.1f} s this time)" if result.how != "complete" else ""), highlight=False)
    out.print(f"report:  {root / 'report.md'}\n         {root / 'report.html'} (open it in a browser)", highlight=False)
    out.print(f"next:    jft status {root / 'runs'}   |   jft chat --model {root / 'runs/sft/final'}", highlight=False)
    if result.how == "complete":
        out.print("(nothing was re-run; pass --force to delete this demo and run it again, or choose another --output-dir)",
                  highlight=False)


def run_demo_command(output_dir: Path, quick: bool, force: bool) -> int:
    from japanese_ft.demo.pipeline import run_demo

    t0 = time.perf_counter()

    def on_stage(i, n, stage, event):
        if event == "start":
            console.print(f"[bold]\\[{i}/{n}] {stage.name}[/]: {stage.title}  [dim]({time.perf_counter() - t0:.0f} s)[/]",
                          highlight=False)
        elif event == "skip":
            console.print(f"[dim]\\[{i}/{n}] {stage.name}: done in an earlier run, skipped[/]", highlight=False)

    if not output_dir.exists() or not (output_dir / "demo.json").exists():
        console.print(f"jft demo{' --quick' if quick else ''}: the whole pipeline on the built-in Japanese sample, "
                      f"CPU only, into {output_dir}", highlight=False)
    result = run_demo(output_dir, quick=quick, force=force, console=console, on_stage=on_stage)
    if result.how == "resume":
        console.print(f"resumed demo run {result.manifest['run_id']}", highlight=False)
    _summary(result)
    return 0
