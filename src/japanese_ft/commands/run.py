"""`jft run RECIPE` glue: one progress line per stage on the console, one summary screen at the end."""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import console, out

SHORT = {"perplexity": "ppl", "bits_per_char": "bits/char", "char_f1": "char-F1", "exact_match": "EM",
         "accuracy": "acc", "accuracy_generation": "acc (gen)"}


def short_metric(key: str, with_name: bool = False) -> str:
    base, sep, marks = key.partition(" [")  # "jsquad.char_f1 [chat]"
    name, _, metric = base.rpartition(".")
    short = SHORT.get(metric, metric) + (f" [{marks}" if sep else "")
    return f"{name} {short}" if with_name and name else short


def stage_result(rec: dict) -> str:
    """A few words about a finished stage (final loss, headline metrics, sizes)."""
    s = rec.get("summary") or {}
    kind = rec.get("kind")
    if rec.get("status") in ("failed", "interrupted"):
        return (rec.get("error") or rec["status"]).splitlines()[0][:70]
    if kind == "train" and s.get("loss") is not None:
        val = f", val {s['val_loss']:.3f}" if s.get("val_loss") is not None else ""
        return f"loss {s['loss']:.3f}{val}"
    if kind == "eval":
        from japanese_ft.eval.compare import fmt_value

        items = list((s.get("metrics") or {}).items())[:2]
        return ", ".join(f"{short_metric(k)} {fmt_value(v)}" for k, v in items)
    if kind == "prepare-corpus" and "tokens" in s:
        return f"{s.get('documents_written', 0):,} docs, {s['tokens']:,} tokens"
    if kind == "build-qa" and "training_pairs" in s:
        return f"{s['training_pairs']:,} + {s['validation_pairs']:,} pairs"
    if kind == "train-tokenizer" and "vocab_size" in s:
        return f"{s['vocab_size']:,} tokens"
    if kind == "convert-squad" and "written" in s:
        return f"{s['written']:,} records"
    if "parameters" in s:
        return f"{s['parameters']:,} parameters"
    return ""


class ConsoleReporter:
    """One line per stage: a live line with the stage's own elapsed time (and the training step/loss)
    on a terminal, start and finish lines otherwise."""

    def __init__(self) -> None:
        from rich.console import Console

        # Its own console on today's stderr: while a stage runs, jft's consoles write to the stage's log.
        self.console = Console(file=console.file)
        self.n = 0
        self.width = 8
        self._live = None
        self._stop = None

    def _say(self, text: str, style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def _head(self, i: int, name: str) -> str:
        return f"[{i:>{len(str(self.n))}}/{self.n}] {name:<{self.width}}"

    def begin(self, plan, decisions) -> None:
        self.n = len(plan.stages)
        self.width = max(len(s.name) for s in plan.stages)
        from japanese_ft.pipeline.plan import NOT_SELECTED

        todo = sum(1 for v in decisions.values() if v)
        left_out = sum(1 for v in decisions.values() if v == NOT_SELECTED)
        self._say(f"jft run {plan.recipe.name}: {self.n} stages in {plan.workdir} ({todo} to run, "
                  f"{self.n - todo - left_out} up to date" + (f", {left_out} not selected)" if left_out else ")"))

    def skip(self, i, stage, reason) -> None:
        self._say(f"{self._head(i, stage.name)} {reason}", style="dim")

    def start(self, i, stage, reason, poll) -> None:
        head = self._head(i, stage.name)
        if not self.console.is_terminal:
            self._say(f"{head} {stage.kind.name}: {stage.title} ({reason})")
            return
        from rich.live import Live
        from rich.text import Text

        t0 = time.perf_counter()

        def line() -> Text:
            what = poll() or f"{stage.kind.name}: {stage.title}"
            return Text(f"{head} {what}  {time.perf_counter() - t0:.0f} s", no_wrap=True, overflow="ellipsis")

        self._live = Live(line(), console=self.console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        self._stop = threading.Event()

        def refresh() -> None:
            while not self._stop.wait(0.5):
                self._live.update(line())

        threading.Thread(target=refresh, daemon=True).start()

    def _end_live(self) -> None:
        if self._live is not None:
            self._stop.set()
            self._live.stop()
            self._live = None

    def done(self, i, stage, rec) -> None:
        self._end_live()
        self._say(f"{self._head(i, stage.name)} done {rec['seconds']:>6.1f} s  {stage_result(rec)}".rstrip())

    def failed(self, i, stage, rec, error) -> None:
        self._end_live()
        self._say(f"{self._head(i, stage.name)} {rec['status']} after {rec.get('seconds', 0):.1f} s; "
                  f"log: {stage.workdir / rec['log']}", style="bold red")


def _metrics_table(manifest: dict, names: list[str]):
    from rich.table import Table

    from japanese_ft.eval.compare import fmt_value

    evals = [(n, manifest["stages"][n]) for n in names
             if manifest["stages"].get(n, {}).get("kind") == "eval" and manifest["stages"][n].get("summary")]
    if not evals:
        return None
    table = Table(title="evaluations (perplexity, bits/char: lower is better)", title_justify="left")
    table.add_column("metric", style="bold cyan", no_wrap=True)
    metrics: list[str] = []
    for _, rec in evals:
        table.add_column(rec["summary"].get("label", "?"), justify="right", overflow="fold")
        metrics += [m for m in rec["summary"].get("metrics", {}) if m not in metrics]
    for m in metrics:
        row = [rec["summary"]["metrics"].get(m) for _, rec in evals]
        table.add_row(short_metric(m, with_name=True), *("-" if v is None else fmt_value(v) for v in row))
    return table


def print_summary(plan, outcome) -> None:
    from rich.table import Table

    m = outcome.manifest
    names = [st.name for st in plan.stages]
    table = Table(title=f"jft run {plan.recipe.name} -> {plan.workdir}", title_justify="left")
    for col, just in (("stage", "left"), ("kind", "left"), ("time", "right"), ("result", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for name in names:
        rec = m["stages"].get(name, {})
        secs = f"{rec['seconds']:.1f} s" if rec.get("seconds") is not None else "-"
        when = secs if name in outcome.ran else f"[dim]{secs} (earlier)[/]"
        table.add_row(name, rec.get("kind", "?"), when, stage_result(rec))
    out.print(table)
    metrics = _metrics_table(m, names)
    if metrics is not None:
        out.print(metrics)
    times = {n: m["stages"].get(n, {}).get("seconds") or 0 for n in names}
    before_report = sum(t for n, t in times.items() if m["stages"].get(n, {}).get("kind") != "report")
    out.print(f"stage time: {sum(times.values()):.1f} s in all ({before_report:.1f} s before the report)", highlight=False)
    out.print(f"this run: {len(outcome.ran)} stages ran, {len(outcome.skipped)} skipped, {outcome.seconds:.1f} s wall time",
              highlight=False)
    reports = [m["stages"][n]["outputs"]["html"] for n in names if m["stages"].get(n, {}).get("kind") == "report"]
    for path in reports:
        out.print(f"report:   {path}", highlight=False)
    out.print(f"manifest: {plan.workdir / 'jft-run.json'}\nlogs:     {plan.workdir / 'logs'}/", highlight=False)
    if not outcome.ran:
        out.print("(nothing to do: every stage is up to date; --force STAGE runs one again)", highlight=False)


def invocation(recipe: str, overrides: list[str], options: dict) -> str:
    args = ["jft", "run", recipe, *overrides]
    for flag, value in options.items():
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                args += [flag, str(v)]
        elif value not in (None, False):
            args += [flag, str(value)]
    return shlex.join(args)


def run_recipe(recipe: str, overrides: list[str], dry_run: bool = False, start: str | None = None,
               only: str | None = None, force: list[str] = (), workdir: Path | None = None, gpus: int | None = None,
               preset: str | None = None, summary: bool = True, until: list[str] = ()):
    """Load, check and plan the recipe; print the plan (`dry_run`) or run it. Returns the outcome."""
    from japanese_ft.pipeline.dryrun import dry_run_text
    from japanese_ft.pipeline.manifest import check_workdir, read_manifest
    from japanese_ft.pipeline.plan import build_plan, decide, workdir_of
    from japanese_ft.pipeline.recipe import apply_overrides, load_recipe
    from japanese_ft.pipeline.runner import execute
    from japanese_ft.ui import quiet_libraries

    if start and only:
        raise UserError("--from and --only: give one of them")
    if only and until:
        raise UserError("--only and --until: give one of them")
    if gpus is not None and gpus < 1:
        raise UserError(f"--gpus must be >= 1, got {gpus}")
    r = apply_overrides(load_recipe(recipe), list(overrides), preset)
    wd = workdir_of(r, workdir)
    plan = build_plan(r, wd, gpus)
    inv = invocation(recipe, list(overrides), {"--preset": preset, "--workdir": workdir, "--gpus": gpus,
                                               "--from": start, "--only": only, "--until": list(until),
                                               "--force": list(force)})
    if dry_run:
        manifest = read_manifest(wd) if wd.is_dir() else None
        check_workdir(wd, manifest, r.name)
        out.print(dry_run_text(plan, decide(plan, manifest, force, start, only, until), inv + " --dry-run"), end="",
                  markup=False, highlight=False, soft_wrap=True)
        return None
    quiet_libraries()
    outcome = execute(plan, force, start, only, ConsoleReporter(), inv, until)
    if summary:
        print_summary(plan, outcome)
    return plan, outcome
