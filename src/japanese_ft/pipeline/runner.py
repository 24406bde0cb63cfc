"""Run a plan: under the work directory's lock, each stage that needs it runs in this process with
its output going to WORKDIR/logs/<stage>.log, and the manifest is updated after every change."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from japanese_ft.pipeline.manifest import (
    FORMAT,
    WorkdirLock,
    check_workdir,
    manifest_path,
    now,
    read_manifest,
    write_manifest,
)
from japanese_ft.pipeline.plan import NOT_SELECTED, Plan, decide


class Reporter:
    """What the console shows; the CLI overrides these (the default shows nothing)."""

    def begin(self, plan: Plan, decisions: dict) -> None: ...

    def skip(self, i: int, stage, reason: str) -> None: ...

    def start(self, i: int, stage, reason: str, poll) -> None: ...

    def done(self, i: int, stage, record: dict) -> None: ...

    def failed(self, i: int, stage, record: dict, error: BaseException) -> None: ...


@dataclass
class RunContext:
    workdir: Path
    manifest_path: Path
    log: object = None  # the stage's log file (open)
    log_path: Path | None = None


@dataclass
class Outcome:
    manifest: dict
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    seconds: float = 0.0


def execute(plan: Plan, force=(), start: str | None = None, only: str | None = None, reporter: Reporter | None = None,
            invocation: str = "", until: list[str] = ()) -> Outcome:
    """Run what needs running (see `plan.decide`) and return the updated manifest."""
    reporter = reporter or Reporter()
    t0 = time.perf_counter()
    workdir = plan.workdir
    check_workdir(workdir, read_manifest(workdir), plan.recipe.name)
    with WorkdirLock(workdir):
        with _cpu_threads(plan.recipe.cpu_threads):
            manifest = _open_manifest(plan, invocation)
            decisions = decide(plan, manifest, force, start, only, until)
            reporter.begin(plan, decisions)
            outcome = Outcome(manifest)
            for i, st in enumerate(plan.stages, 1):
                if not decisions[st.name]:
                    reporter.skip(i, st, "not selected" if decisions[st.name] == NOT_SELECTED else "up to date")
                    outcome.skipped.append(st.name)
                    continue
                _run_stage(plan, manifest, i, st, decisions[st.name], reporter)
                outcome.ran.append(st.name)
        states = [manifest["stages"].get(st.name, {}).get("status") for st in plan.stages]
        manifest["status"] = "complete" if all(s == "done" for s in states) else "partial"
        write_manifest(workdir, manifest)
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _open_manifest(plan: Plan, invocation: str) -> dict:
    from japanese_ft.report.inputs import environment

    old = read_manifest(plan.workdir)
    manifest = old or {"format": FORMAT, "created": now(), "stages": {}}
    recipe = plan.recipe
    manifest.update(
        recipe={"name": recipe.name, "path": recipe.path, "file": str(Path(recipe.file).resolve()),
                "description": recipe.description},
        vars=plan.vars, workdir=str(plan.workdir.resolve()), invocation=invocation or manifest.get("invocation", ""),
        environment=environment(), status="running")
    old_stages = manifest.get("stages", {})
    manifest["stages"] = {st.name: old_stages[st.name] for st in plan.stages if st.name in old_stages}
    write_manifest(plan.workdir, manifest)
    return manifest


def _prepare_dir(st, old: dict | None, inputs: dict) -> None:
    """Delete the stage's old directory unless its kind keeps it (see `Kind.keep`)."""
    resume = (old is not None and old.get("fingerprint") == st.fingerprint and old.get("status") != "done"
              and old.get("inputs") == inputs)
    if st.kind.keep == "always" or (st.kind.keep == "unfinished" and resume):
        return
    for path in (st.dir, st.dir.with_name(st.dir.name + ".tmp")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _run_stage(plan: Plan, manifest: dict, i: int, st, reason: str, reporter: Reporter) -> None:
    records = manifest["stages"]
    inputs = {d: records.get(d, {}).get("run_id") for d in st.deps}
    _prepare_dir(st, records.get(st.name), inputs)
    log_path = plan.workdir / "logs" / f"{st.name}.log"
    rec = {"kind": st.kind.name, "title": st.title, "fingerprint": st.fingerprint, "status": "running",
           "reason": reason, "inputs": inputs, "outputs": st.outputs, "command": st.command,
           "log": str(log_path.relative_to(plan.workdir)), "processes": st.processes, "started": now()}
    records[st.name] = rec
    write_manifest(plan.workdir, manifest)
    t0 = time.perf_counter()
    reporter.start(i, st, reason, lambda: st.kind.progress(st))
    try:
        with stage_log(log_path, st, reason) as log:
            ctx = RunContext(plan.workdir, manifest_path(plan.workdir), log, log_path)
            summary = st.kind.run(st, ctx)
    except BaseException as exc:
        rec.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                   error=str(exc) or exc.__class__.__name__, seconds=round(time.perf_counter() - t0, 2), finished=now())
        write_manifest(plan.workdir, manifest)
        reporter.failed(i, st, rec, exc)
        raise
    finally:
        _free_memory()
    rec.update(status="done", run_id=uuid.uuid4().hex[:12], summary=summary, finished=now(),
               seconds=round(time.perf_counter() - t0, 2))
    rec.pop("error", None)
    write_manifest(plan.workdir, manifest)
    reporter.done(i, st, rec)


@contextlib.contextmanager
def stage_log(path: Path, st, reason: str):
    """Append the stage's output (jft's own consoles, print, warnings) to its log file."""
    from japanese_ft import ui

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"\n===== {now()} jft run: stage {st.name} ({st.kind.name}), {reason}\n$ {st.command}\n\n")
        log.flush()
        saved = (ui.out._file, ui.console._file)  # None = Rich's dynamic sys.stdout/sys.stderr
        ui.out.file = ui.console.file = log
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield log
        finally:
            ui.out._file, ui.console._file = saved
            log.write(f"===== {now()} end of stage {st.name}\n")


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """The recipe's torch CPU threads (unless OMP_NUM_THREADS is set), restored afterwards."""
    if not n or os.environ.get("OMP_NUM_THREADS"):
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    os.environ["JFT_CPU_THREADS"] = str(int(n))  # jft train's default rule (train/threads.py) keeps it
    try:
        yield
    finally:
        os.environ.pop("JFT_CPU_THREADS", None)
        torch.set_num_threads(before)


def _free_memory() -> None:
    """Between in-process stages: drop the last stage's model and return GPU memory to the pool. Only
    when CUDA is in use: on the CPU the memory is back already, and a full gc.collect() with torch and
    transformers loaded costs ~0.2 s per stage (10 % of the quick demo)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()
