"""The one training loop for cpt, sft and lora, organised the torchtitan way.

`train(cfg)` = `setup` (distributed, data, model, engine, resume), then per step
`train_step` (train/step.py: one global batch), `check_finite`, `record`, `maybe_eval`,
`maybe_save`, `should_stop`, and at the end `finish` (final model, plot, summary).

The modes differ only in two places: `build_data` (token-file windows vs. templated JSONL
examples) and `build_model` (all parameters train vs. LoRA adapters through PEFT). Everything else
-- loss, gradient accumulation, optimizer, schedule, checkpoints, metrics, signals -- is shared.
Progress goes to the `console`/`progress` the caller passes in (the CLI passes Rich ones); this
module does not import the UI layer.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from japanese_ft.config import RunConfig, save_config
from japanese_ft.errors import UserError
from japanese_ft.train.checkpoint import Checkpointer, save_model
from japanese_ft.train.distributed import World, barrier, env_world_size, setup_distributed, teardown
from japanese_ft.train.gpu import resolve_attn_implementation
from japanese_ft.train.metrics import MetricsLogger, plot_training_curve
from japanese_ft.train.step import Engine, StepStats, evaluate_loss, make_engine, train_step

LOCK = ".jft-train.lock"


class TrainingDiverged(UserError):
    """Loss or gradient norm became NaN/inf; the run stops without saving."""


@dataclass
class TrainResult:
    status: str  # completed | stopped | already_complete
    step: int
    loss: float | None = None
    val_loss: float | None = None
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    output_dir: str = ""
    final_dir: str | None = None
    checkpoint: str | None = None
    trainable_params: int = 0
    total_params: int = 0
    world_size: int = 1
    device: str = "cpu"
    cpu_threads: str | None = None  # "1 thread (auto: cores - 1)" on CPU, None on GPU
    data: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)  # (step, loss) of this invocation


# ---- mode-specific pieces ----------------------------------------------------------------


def load_run_tokenizer(cfg: RunConfig):
    """The run's tokenizer; data.chat_template=chatml puts ChatML in it, so the saved checkpoints
    generate (and stop) with the template the run trained with."""
    from japanese_ft.tokens import load_tokenizer

    name = cfg.data.tokenizer or cfg.model.name_or_path
    return load_tokenizer(name, cfg.model.trust_remote_code, "chatml" if cfg.data.chat_template == "chatml" else "auto",
                          what="data.tokenizer" if cfg.data.tokenizer else "model.name_or_path (tokenizer)")


def build_data(cfg: RunConfig, tokenizer, world: World):
    """-> (train loader, validation-loader factory or None, data stats). Loaders have
    next_batch(n), state_dict(), load_state_dict()."""
    seed = cfg.train.seed
    if cfg.mode == "cpt":
        from japanese_ft.data.pretrain import PackedWindows

        train = PackedWindows(cfg.data.train, cfg.data.seq_length, seed, world.rank, world.size)
        stats = {"windows_per_epoch": len(train), "sources": [f"{s.weight:.3g} {s.prefix}" for s in train.sources],
                 "tokens_in_files": int(sum(f.tokens for f in train.files))}
        val_factory = None
        if cfg.data.validation:
            val = PackedWindows(cfg.data.validation, cfg.data.seq_length, seed, world.rank, world.size, shuffle=False)

            def val_factory():
                val.consumed = 0
                return val

        return train, val_factory, stats

    from japanese_ft.data.sft import build_sft_batches

    flatten = cfg.model.attn_implementation.startswith("flash")
    common = dict(tokenizer=tokenizer, seq_length=cfg.data.seq_length, truncation=cfg.data.truncation,
                  template=cfg.data.chat_template, pack=cfg.data.pack, seed=seed, rank=world.rank,
                  world_size=world.size, flatten=flatten)
    train, stats = build_sft_batches(cfg.data.train, **common)
    val_factory = None
    data_stats = {"train": stats.as_dict()}
    if cfg.data.validation:
        val, vstats = build_sft_batches(cfg.data.validation, shuffle=False, **common)
        data_stats["validation"] = vstats.as_dict()

        def val_factory():
            val.consumed = 0
            return val

    return train, val_factory, data_stats


def _enable_activation_checkpointing(model) -> None:
    """HF activation checkpointing, non-reentrant (newer transformers renamed the method)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


_PICKLE_KEY = "model.allow_pickle=true"


def build_model(cfg: RunConfig, world: World, resume_dir: Path | None):
    """The model on `world.device` with its trainable parameters set. Full modes: every parameter
    trains (fp32 master weights). lora: frozen base + adapters. `make_engine` compiles and shards."""
    from japanese_ft.model.load import load_model

    on_cuda = world.device.type == "cuda"
    attn = resolve_attn_implementation(cfg.model.attn_implementation, world.device.type, cfg.mode != "cpt" and cfg.data.pack)
    if cfg.mode == "lora":
        from japanese_ft.model.lora import apply_lora, load_adapter

        base_dtype = cfg.model.dtype if on_cuda else "float32"  # CPU: keep fp32 (bf16 matmuls are slow/inexact there)
        model = load_model(cfg.model.name_or_path, base_dtype, attn, cfg.model.trust_remote_code,
                           cfg.model.allow_pickle, _PICKLE_KEY)
        model.config.use_cache = False
        if cfg.model.gradient_checkpointing:
            _enable_activation_checkpointing(model)
        if resume_dir is not None:
            model = load_adapter(model, resume_dir, trainable=True)
        else:
            model = apply_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    else:
        source = resume_dir if resume_dir is not None else cfg.model.name_or_path
        model = load_model(source, "float32", attn, cfg.model.trust_remote_code, cfg.model.allow_pickle, _PICKLE_KEY)
        model.config.use_cache = False
        if cfg.model.gradient_checkpointing:
            _enable_activation_checkpointing(model)
    return model.to(world.device)


# ---- helpers --------------------------------------------------------------------------------


class StopFlag:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint at the end of the step and exits.
    A second SIGINT raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Reporter:
    """Messages and per-step progress, from rank 0 only.

    `console`: anything with `.print(text)` (the CLI passes Rich's stderr console).
    `progress(advance, text)`: a progress bar's update (the CLI passes `ui.count_progress`'s).
    Step lines go to the console every ~5 % of the run when there is no bar or the console is
    not a terminal (logs, CI)."""

    def __init__(self, world: World, max_steps: int, console=None, progress: Callable | None = None) -> None:
        self.on = world.is_main
        self.console, self.progress = console, progress
        self.every = max(1, max_steps // 20)
        self.max_steps = max_steps
        self.lines = console is not None and (progress is None or not getattr(console, "is_terminal", False))

    def say(self, msg: str) -> None:
        if self.on and self.console is not None:
            self.console.print(msg, highlight=False)

    def start(self, step: int) -> None:
        if self.on and self.progress is not None:
            self.progress(step)

    def step(self, step: int, stats: StepStats, avg_tokens_per_s: float) -> None:
        if not self.on:
            return
        if self.progress is not None:
            self.progress(1, f"loss {stats.loss:.4f}  lr {stats.lr:.2e}  {avg_tokens_per_s:,.0f} tok/s")
        if self.lines and (step % self.every == 0 or step == self.max_steps):
            self.say(f"step {step}/{self.max_steps} loss {stats.loss:.4f} lr {stats.lr:.2e} "
                     f"grad_norm {stats.grad_norm:.3f} {avg_tokens_per_s:,.0f} tok/s")


@dataclass
class Run:
    """Everything one training run holds between steps."""

    cfg: RunConfig
    world: World
    report: Reporter
    out: Path
    accum: int
    ckpt: Checkpointer
    tokenizer: object
    train_data: object
    val_factory: Callable | None
    engine: Engine
    metrics: MetricsLogger
    result: TrainResult
    step: int = 0
    tokens_seen: int = 0
    last_saved: int = -1
    start_time: float = 0.0
    tokens_at_start: int = 0


# ---- the loop -------------------------------------------------------------------------------


def setup(cfg: RunConfig, world: World, report: Reporter) -> Run:
    """Output directory, data, model, engine; resume from the newest checkpoint when there is one."""
    from japanese_ft.model.lora import count_parameters

    out = Path(cfg.output_dir)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(world)
    t = cfg.train
    accum = t.global_batch_size // (t.micro_batch_size * world.size)
    ckpt = Checkpointer(cfg, world)
    ckpt.clean_partial()
    resume_dir = ckpt.resume_point(report.say)

    torch.manual_seed(t.seed)  # same LoRA init on every rank
    tokenizer = load_run_tokenizer(cfg)
    train_data, val_factory, data_stats = build_data(cfg, tokenizer, world)
    model = build_model(cfg, world, resume_dir)
    trainable, total = count_parameters(model)
    threads = None
    if world.device.type == "cpu":
        from japanese_ft.train.threads import apply_cpu_threads

        n, why = apply_cpu_threads(t.cpu_threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        threads = f"{n} thread{'s' if n > 1 else ''} ({why})"
    report.say(f"{cfg.mode}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / max(total, 1):.4f}%), "
               f"world size {world.size} on {world.device.type}{f' ({threads})' if threads else ''}, micro {t.micro_batch_size} x accum {accum} x ranks "
               f"{world.size} = global batch {t.global_batch_size}")
    engine = make_engine(model, cfg, world)
    torch.manual_seed(t.seed + world.rank)  # dropout noise differs per rank

    step, tokens_seen = 0, 0
    if resume_dir is not None:
        state = ckpt.load_training_state(resume_dir, engine.model, engine.optimizer, engine.scheduler)
        train_data.load_state_dict(state["data"])
        step, tokens_seen = int(state["step"]), int(state.get("tokens", 0))
        report.say(f"resuming from {resume_dir} (step {step})")
    if world.is_main:
        save_config(cfg, out / "config.yaml")
    result = TrainResult(status="already_complete" if step >= t.max_steps else "completed", step=step, output_dir=str(out),
                         trainable_params=trainable, total_params=total, world_size=world.size,
                         device=str(world.device), cpu_threads=threads, data=data_stats)
    return Run(cfg, world, report, out, accum, ckpt, tokenizer, train_data, val_factory, engine,
               MetricsLogger(out, enabled=world.is_main, resume_step=step), result, step=step, tokens_seen=tokens_seen,
               last_saved=step if resume_dir is not None else -1, start_time=time.perf_counter(),
               tokens_at_start=tokens_seen)


def next_micro_batches(run: Run) -> list[dict]:
    return [run.train_data.next_batch(run.cfg.train.micro_batch_size) for _ in range(run.accum)]


def check_finite(run: Run, stats: StepStats) -> None:
    """A NaN/inf loss or gradient norm ends the run without saving (the step was not applied)."""
    if stats.finite:
        return
    bad_loss = not math.isfinite(stats.loss)
    latest = run.ckpt.latest()
    where = f"; the last good checkpoint is {latest}" if latest else "; no checkpoint was saved"
    raise TrainingDiverged(f"{'loss' if bad_loss else 'gradient norm'} became {stats.loss if bad_loss else stats.grad_norm} "
                           f"at step {run.step + 1}; stopped without saving{where}")


def record(run: Run, stats: StepStats) -> None:
    """Advance the counters; metrics.jsonl line, progress."""
    run.step += 1
    run.tokens_seen += stats.n_tokens
    run.result.losses.append((run.step, stats.loss))
    run.result.loss = stats.loss
    t = run.cfg.train
    if run.step % max(1, t.log_every) == 0 or run.step == t.max_steps:
        run.metrics.log({"step": run.step, "loss": stats.loss, "lr": stats.lr, "grad_norm": stats.grad_norm,
                         "tokens": run.tokens_seen, "tokens_per_s": stats.n_tokens / stats.seconds if stats.seconds > 0 else 0.0,
                         "loss_tokens": stats.n_targets})
    elapsed = time.perf_counter() - run.start_time
    run.report.step(run.step, stats, (run.tokens_seen - run.tokens_at_start) / elapsed if elapsed > 0 else 0.0)


def maybe_eval(run: Run) -> None:
    t = run.cfg.train
    if run.val_factory is None or t.eval_every <= 0 or not (run.step % t.eval_every == 0 or run.step == t.max_steps):
        return
    # eval_batches global batches: the same windows/examples for any world size
    val_loss = evaluate_loss(run.engine, run.val_factory(), t.eval_batches * run.accum, t.micro_batch_size)
    if val_loss is not None:
        run.metrics.log({"step": run.step, "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50))})
        run.result.val_loss = val_loss
        run.report.say(f"step {run.step}: val_loss {val_loss:.4f}")


def save_checkpoint(run: Run) -> None:
    e = run.engine
    state = {"data": run.train_data.state_dict(), "tokens": run.tokens_seen}
    path = run.ckpt.save(run.step, e.model, e.optimizer, e.scheduler, state, run.tokenizer, run.cfg)
    run.last_saved = run.step
    run.result.checkpoint = str(path)


def maybe_save(run: Run) -> None:
    t = run.cfg.train
    if (t.save_every > 0 and run.step % t.save_every == 0) or run.step == t.max_steps:
        save_checkpoint(run)


def should_stop(run: Run, stats: StepStats, stop: StopFlag) -> bool:
    """A signal stops the run after the current step. With several ranks the request travels in
    the next step's counts all-reduce, so every rank stops after the same step."""
    return stats.stop or (not run.world.distributed and stop.signal is not None)


def stop_early(run: Run, stop: StopFlag) -> None:
    if run.last_saved != run.step:
        save_checkpoint(run)
    run.result.status = "stopped"
    run.report.say(f"{stop.signal or 'stop signal'}: saved {run.result.checkpoint} at step {run.step}; "
                   "re-run the same command to resume")


def finish(run: Run) -> TrainResult:
    """final/ (unless stopped early), metrics closed, training_curve.png; the summary."""
    result = run.result
    result.step, result.tokens = run.step, run.tokens_seen
    result.seconds = time.perf_counter() - run.start_time
    result.tokens_per_s = (run.tokens_seen - run.tokens_at_start) / result.seconds if result.seconds > 0 else 0.0
    if result.status != "stopped":
        final = run.out / "final"
        write_final(run.engine.model, run.tokenizer, final, run.cfg.mode == "lora", run.world, run.cfg)
        result.final_dir = str(final)
    run.metrics.close()
    if run.world.is_main:
        plot_training_curve(run.out / "metrics.jsonl", run.out / "training_curve.png")
    if result.checkpoint is None and run.ckpt.latest():
        result.checkpoint = str(run.ckpt.latest())
    return result


def train(cfg: RunConfig, console=None, progress: Callable | None = None) -> TrainResult:
    """Run (or resume) the training described by cfg; returns a summary.

    `console` receives messages (`.print`), `progress(advance, text)` one update per step; both
    only on rank 0 and both optional (see `Reporter`)."""
    from japanese_ft.train.checks import preflight

    preflight(cfg, env_world_size())  # before any process group, model or data
    with output_lock(cfg):
        return _train(cfg, console, progress)


def output_lock(cfg: RunConfig):
    """output_dir/.jft-train.lock, held by rank 0 for the whole run: a second `jft train` on the
    same output_dir stops at once (exit code 2) naming the lock and the pid that holds it."""
    import contextlib
    import os

    from japanese_ft.files import OutputLock

    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return OutputLock(Path(cfg.output_dir) / LOCK, f"output_dir {cfg.output_dir}")


def _train(cfg: RunConfig, console, progress) -> TrainResult:
    world = setup_distributed(cfg.train.device)
    try:
        run = setup(cfg, world, Reporter(world, cfg.train.max_steps, console, progress))
        with StopFlag() as stop:
            run.report.start(run.step)
            while run.step < cfg.train.max_steps:
                stats = train_step(run.engine, next_micro_batches(run), stop_requested=stop.signal is not None,
                                   embeddings_only=run.step < cfg.train.embedding_warmup_steps)
                check_finite(run, stats)
                record(run, stats)
                maybe_eval(run)
                maybe_save(run)
                if should_stop(run, stats, stop):
                    stop_early(run, stop)
                    break
        return finish(run)
    finally:
        teardown(world)


def write_final(model, tokenizer, final: Path, lora: bool, world: World, cfg: RunConfig) -> None:
    """final/: HF checkpoint (cpt/sft) or PEFT adapter (lora), tokenizer, config.yaml. Atomic."""
    from japanese_ft.files import publish, remove, temp_path

    tmp = temp_path(final)
    if world.is_main:
        remove(tmp)
    barrier(world)
    save_model(model, tmp, tokenizer, lora, world)
    if world.is_main:
        save_config(cfg, tmp / "config.yaml")
        publish(tmp, final)
    barrier(world)
