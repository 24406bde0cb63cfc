"""Status of a training run from what `jft train` leaves in its output_dir (no torch import).

Layout read (written by train/loop.py, train/checkpoint.py, train/metrics.py):
  config.yaml                      the resolved run config (mode, train.max_steps, ...)
  metrics.jsonl                    one line per logged step {"step","loss","lr","grad_norm","tokens",
                                   "tokens_per_s","loss_tokens"}, plus {"step","val_loss","val_ppl"} lines
  checkpoints/step_NNNNNN/         complete checkpoints (trainer_state.pt inside); *.tmp = being written
  final/                           written when the run completed

A run counts as "running" when its metrics file (or a checkpoint being written) changed recently
compared with its own step time; there is no process handle to ask.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from japanese_ft.errors import UserError

_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class Checkpoint:
    step: int
    path: str
    bytes: int
    complete: bool


@dataclass
class RunStatus:
    run_dir: str
    mode: str | None = None
    model: str | None = None
    max_steps: int | None = None
    state: str = "unknown"  # not started | running | stopped | finished
    step: int = 0
    loss: float | None = None
    lr: float | None = None
    val_loss: float | None = None
    val_step: int | None = None
    best_val_loss: float | None = None
    tokens: int = 0
    tokens_per_s: float | None = None  # mean of the last logged steps (compute only)
    seconds_per_step: float | None = None
    eta_seconds: float | None = None
    last_update_age_s: float | None = None
    checkpoints: list = field(default_factory=list)
    final_dir: str | None = None
    hint: str | None = None

    @property
    def progress(self) -> float | None:
        return self.step / self.max_steps if self.max_steps else None


def is_run_dir(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and any((path / n).exists() for n in ("config.yaml", "metrics.jsonl", "checkpoints"))


def _read_config(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        name = p.name[:-4] if p.name.endswith(".tmp") else p.name
        m = _STEP_DIR.match(name)
        if m and p.is_dir():
            complete = not p.name.endswith(".tmp") and (p / "trainer_state.pt").exists()
            found.append(Checkpoint(int(m.group(1)), str(p), _dir_bytes(p), complete))
    return sorted(found, key=lambda c: (c.step, c.complete))


def run_status(run_dir: str | Path, now: float | None = None) -> RunStatus:
    """Read a run directory; raises UserError when it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such directory")
    if not is_run_dir(run_dir):
        raise UserError(f"{run_dir}: not a jft training run (no config.yaml, metrics.jsonl or checkpoints/); "
                        "pass the output_dir of a `jft train` run")
    now = time.time() if now is None else now
    cfg = _read_config(run_dir / "config.yaml")
    st = RunStatus(run_dir=str(run_dir))
    st.mode = cfg.get("mode")
    st.model = (cfg.get("model") or {}).get("name_or_path")
    st.max_steps = (cfg.get("train") or {}).get("max_steps")
    metrics_path = run_dir / "metrics.jsonl"
    recs = _read_metrics(metrics_path)
    train = [r for r in recs if "loss" in r and "step" in r]
    val = [r for r in recs if "val_loss" in r and "step" in r]
    if train:
        last = train[-1]
        st.step, st.loss, st.lr = int(last["step"]), last.get("loss"), last.get("lr")
        st.tokens = int(last.get("tokens", 0))
        recent = train[-20:]
        tps = [r["tokens_per_s"] for r in recent if r.get("tokens_per_s")]
        st.tokens_per_s = sum(tps) / len(tps) if tps else None
        # tokens per step from the cumulative counter, then seconds per step from tokens/s
        if len(train) >= 2 and st.tokens_per_s:
            a, b = train[max(0, len(train) - 21)], train[-1]
            dsteps = b["step"] - a["step"]
            if dsteps > 0:
                st.seconds_per_step = (b["tokens"] - a["tokens"]) / dsteps / st.tokens_per_s
        elif st.tokens_per_s and st.step:
            st.seconds_per_step = st.tokens / st.step / st.tokens_per_s
    if val:
        st.val_loss, st.val_step = val[-1]["val_loss"], int(val[-1]["step"])
        st.best_val_loss = min(r["val_loss"] for r in val)
    st.checkpoints = list_checkpoints(run_dir)
    if st.checkpoints and not train:
        done = [c for c in st.checkpoints if c.complete]
        st.step = done[-1].step if done else 0
    final = run_dir / "final"
    if final.is_dir():
        st.final_dir = str(final)
    mtimes = [p.stat().st_mtime for p in (metrics_path, run_dir / "config.yaml") if p.exists()]
    mtimes += [Path(c.path).stat().st_mtime for c in st.checkpoints if not c.complete]
    st.last_update_age_s = now - max(mtimes) if mtimes else None

    finished = st.final_dir is not None and (st.max_steps is None or st.step >= st.max_steps)
    if finished:
        st.state = "finished"
    elif not train and not st.checkpoints:
        st.state = "not started"
        st.hint = "no step logged yet (the model and data may still be loading)"
    else:
        # "running" while updates keep coming at the run's own pace (evaluation and checkpoint saves
        # pause the log, so allow plenty), else "stopped"
        patience = max(120.0, 20 * (st.seconds_per_step or 0))
        if st.last_update_age_s is not None and st.last_update_age_s <= patience:
            st.state = "running"
        else:
            st.state = "stopped"
            mode = st.mode or "MODE"
            st.hint = (f"no update for {_fmt_age(st.last_update_age_s)}; resume with: "
                       f"jft train {mode} --config {run_dir / 'config.yaml'}")
    if st.state in ("running", "stopped") and st.max_steps and st.seconds_per_step:
        st.eta_seconds = max(0, st.max_steps - st.step) * st.seconds_per_step
    return st


def _fmt_age(s: float | None) -> str:
    if s is None:
        return "?"
    return fmt_duration(s)


def fmt_duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def find_runs(path: str | Path) -> list[Path]:
    """Run directories directly under `path` (for `jft status DIR_OF_RUNS`)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if is_run_dir(p))
