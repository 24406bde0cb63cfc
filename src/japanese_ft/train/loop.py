"""The one training loop for cpt, sft and lora.

The modes differ only in two places: `build_data` (token-file windows vs. templated JSONL
examples) and `build_model` (all parameters train vs. LoRA adapters through PEFT). Everything else
-- loss, gradient accumulation, optimizer, schedule, checkpoints, metrics, signals -- is shared.

Loss normalisation: each micro-batch returns (sum of token CEs, token count) from
`causal_lm_loss`; before the first backward of a step the loop sums the target-token counts of
all its micro-batches on all ranks, and every micro-batch's backward uses
loss_sum * world_size / global_count (the world_size cancels the gradient averaging over ranks).
So micro 1 x accum 4, micro 4 x accum 1 and 2 ranks x micro 2 give the same update.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from japanese_ft.config import RunConfig, save_config
from japanese_ft.errors import UserError
from japanese_ft.train.checkpoint import CheckpointConfig, Checkpointer, save_model
from japanese_ft.train.distributed import (
    World,
    all_reduce_max,
    all_reduce_sum,
    apply_fsdp,
    average_gradients,
    barrier,
    decoder_layers,
    env_world_size,
    set_gradient_sync,
    setup_distributed,
    teardown,
)
from japanese_ft.train.gpu import resolve_attn_implementation
from japanese_ft.train.loss import causal_lm_loss
from japanese_ft.train.metrics import MetricsLogger, plot_training_curve
from japanese_ft.train.schedule import ScheduleConfig, build_scheduler


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
    data: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)  # (step, loss) of this invocation


# ---- mode-specific pieces ----------------------------------------------------------------


def load_run_tokenizer(cfg: RunConfig):
    from japanese_ft.model.load import load_tokenizer

    return load_tokenizer(cfg.data.tokenizer or cfg.model.name_or_path, cfg.model.trust_remote_code)


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


def build_model(cfg: RunConfig, world: World, resume_dir: Path | None):
    """Full modes: every parameter trains (fp32 master weights). lora: frozen base + adapters."""
    from japanese_ft.model.load import load_model

    on_cuda = world.device.type == "cuda"
    attn = resolve_attn_implementation(cfg.model.attn_implementation, world.device.type, cfg.mode != "cpt" and cfg.data.pack)
    if cfg.mode == "lora":
        from japanese_ft.model.lora import apply_lora, load_adapter

        base_dtype = cfg.model.dtype if on_cuda else "float32"  # CPU: keep fp32 (bf16 matmuls are slow/inexact there)
        model = load_model(cfg.model.name_or_path, base_dtype, attn, cfg.model.trust_remote_code)
        model.config.use_cache = False
        if cfg.model.gradient_checkpointing:
            _enable_activation_checkpointing(model)
        if resume_dir is not None:
            model = load_adapter(model, resume_dir, trainable=True)
        else:
            model = apply_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    else:
        source = resume_dir if resume_dir is not None else cfg.model.name_or_path
        model = load_model(source, "float32", attn, cfg.model.trust_remote_code)
        model.config.use_cache = False
        if cfg.model.gradient_checkpointing:
            _enable_activation_checkpointing(model)
    model.to(world.device)
    if cfg.model.compile and on_cuda:  # per-layer compile: ~1.6x on GPU (docs/benchmarks.md); CPU stays eager
        for layer in decoder_layers(model):
            layer.compile()
    if cfg.mode != "lora" and world.distributed:
        apply_fsdp(model, world, bf16=on_cuda and cfg.train.precision == "bf16")
    model.train()
    return model


def build_optimizer(model, cfg: RunConfig, world: World):
    """AdamW; weight decay on matrices only (not norms/biases). fused on CUDA, foreach on CPU."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    kwargs = {"lr": cfg.train.lr, "betas": tuple(cfg.train.betas), "eps": 1e-8}
    if world.device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


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


def _autocast(cfg: RunConfig, world: World):
    if world.device.type == "cuda" and cfg.train.precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _target_count(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def evaluate(model, loader, n_batches: int, micro: int, cfg: RunConfig, world: World) -> float | None:
    if loader is None or n_batches <= 0:
        return None
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=world.device)
    with torch.no_grad():
        for _ in range(n_batches):
            batch = loader.next_batch(micro)
            batch.pop("num_tokens", None)
            batch = _to_device(batch, world.device)
            with _autocast(cfg, world):
                loss_sum, count = causal_lm_loss(model, **batch)
            total[0] += loss_sum.double()
            total[1] += count
    model.train()
    all_reduce_sum(total, world)
    return float(total[0] / total[1]) if total[1] > 0 else None


def _grad_norm(params, max_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


def _embedding_param_ids(model) -> set[int]:
    """ids of the input and output embedding weights (one tensor when they are tied)."""
    out = model.get_output_embeddings()
    return {id(model.get_input_embeddings().weight)} | ({id(out.weight)} if out is not None else set())


# ---- the loop -------------------------------------------------------------------------------


def train(cfg: RunConfig, console=None) -> TrainResult:
    """Run (or resume) the training described by cfg; returns a summary."""
    from japanese_ft.model.lora import count_parameters
    from japanese_ft.train.checks import preflight
    from japanese_ft.ui import count_progress

    preflight(cfg, env_world_size())  # before any process group, model or data
    world = setup_distributed(cfg.train.device)
    try:

        def say(msg: str) -> None:
            if world.is_main and console is not None:
                console.print(msg, highlight=False)

        out = Path(cfg.output_dir)
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
        barrier(world)
        t = cfg.train
        accum = t.global_batch_size // (t.micro_batch_size * world.size)
        lora = cfg.mode == "lora"
        ckpt = Checkpointer(CheckpointConfig(str(out), t.keep_last, lora), world)
        ckpt.clean_partial()
        resume_dir = ckpt.latest()

        torch.manual_seed(t.seed)  # same LoRA init on every rank
        tokenizer = load_run_tokenizer(cfg)
        train_data, val_factory, data_stats = build_data(cfg, tokenizer, world)
        model = build_model(cfg, world, resume_dir)
        trainable, total = count_parameters(model)
        say(f"{cfg.mode}: {trainable:,} trainable of {total:,} parameters ({100 * trainable / max(total, 1):.4f}%), "
            f"world size {world.size} on {world.device.type}, micro {t.micro_batch_size} x accum {accum} x ranks {world.size} "
            f"= global batch {t.global_batch_size}")
        optimizer = build_optimizer(model, cfg, world)
        schedule = ScheduleConfig(t.lr, t.min_lr, t.warmup_steps, t.max_steps, t.schedule)
        scheduler = build_scheduler(optimizer, schedule)
        torch.manual_seed(t.seed + world.rank)  # dropout noise differs per rank

        step, tokens_seen = 0, 0
        if resume_dir is not None:
            state = ckpt.load_training_state(resume_dir, model, optimizer, scheduler)
            train_data.load_state_dict(state["data"])
            step, tokens_seen = int(state["step"]), int(state.get("tokens", 0))
            say(f"resuming from {resume_dir} (step {step})")
        if world.is_main:
            save_config(cfg, out / "config.yaml")
        metrics = MetricsLogger(out, enabled=world.is_main, resume_step=step)
        result = TrainResult(status="completed", step=step, output_dir=str(out), trainable_params=trainable,
                             total_params=total, world_size=world.size, device=str(world.device), data=data_stats)
        params = [p for p in model.parameters() if p.requires_grad]
        embeddings = _embedding_param_ids(model) if t.embedding_warmup_steps else set()
        last_saved = step if resume_dir is not None else -1

        def trainer_state():
            return {"data": train_data.state_dict(), "tokens": tokens_seen}

        def save_checkpoint():
            nonlocal last_saved
            path = ckpt.save(step, model, optimizer, scheduler, trainer_state(), tokenizer, cfg)
            last_saved = step
            result.checkpoint = str(path)
            return path

        if step >= t.max_steps:
            result.status = "already_complete"
        start_time = time.perf_counter()
        tokens_at_start = tokens_seen
        print_every = max(1, t.max_steps // 20)
        with StopFlag() as stop, count_progress(f"{cfg.mode}", t.max_steps) as progress:
            progress(step)
            while step < t.max_steps:
                t0 = time.perf_counter()
                micro_batches = [train_data.next_batch(t.micro_batch_size) for _ in range(accum)]
                real_tokens = sum(int(b.pop("num_tokens", b["input_ids"].numel())) for b in micro_batches)
                counts = torch.tensor([sum(_target_count(b) for b in micro_batches), real_tokens],
                                      dtype=torch.float64, device=world.device)
                all_reduce_sum(counts, world)
                n_targets, n_tokens = int(counts[0]), int(counts[1])
                scale = world.size / max(n_targets, 1)
                loss_total = torch.zeros((), dtype=torch.float64, device=world.device)
                for i, batch in enumerate(micro_batches):
                    set_gradient_sync(model, i == accum - 1)
                    batch = _to_device(batch, world.device)
                    with _autocast(cfg, world):
                        loss_sum, _ = causal_lm_loss(model, **batch)
                    (loss_sum * scale).backward()
                    loss_total += loss_sum.detach().double()
                if lora:
                    average_gradients(params, world)
                all_reduce_sum(loss_total, world)
                loss = float(loss_total) / max(n_targets, 1)
                if step < t.embedding_warmup_steps:  # embedding warm-up: AdamW skips parameters without a gradient
                    for p in params:
                        if id(p) not in embeddings:
                            p.grad = None
                grad_norm = _grad_norm(params, t.grad_clip)
                if not math.isfinite(loss) or not math.isfinite(grad_norm):
                    optimizer.zero_grad(set_to_none=True)
                    where = f"; the last good checkpoint is {ckpt.latest()}" if ckpt.latest() else "; no checkpoint was saved"
                    raise TrainingDiverged(
                        f"{'loss' if not math.isfinite(loss) else 'gradient norm'} became "
                        f"{loss if not math.isfinite(loss) else grad_norm} at step {step + 1}; stopped without saving{where}"
                    )
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                tokens_seen += n_tokens
                dt = time.perf_counter() - t0
                record = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": tokens_seen,
                          "tokens_per_s": n_tokens / dt if dt > 0 else 0.0, "loss_tokens": n_targets}
                result.losses.append((step, loss))
                if step % max(1, t.log_every) == 0 or step == t.max_steps:
                    metrics.log(record)
                elapsed = time.perf_counter() - start_time
                avg_tps = (tokens_seen - tokens_at_start) / elapsed if elapsed > 0 else 0.0
                progress(1, f"loss {loss:.4f}  lr {lr:.2e}  {avg_tps:,.0f} tok/s")
                if world.is_main and console is not None and not console.is_terminal and (step % print_every == 0 or step == t.max_steps):
                    say(f"step {step}/{t.max_steps} loss {loss:.4f} lr {lr:.2e} grad_norm {grad_norm:.3f} {avg_tps:,.0f} tok/s")
                result.loss = loss
                if val_factory is not None and t.eval_every > 0 and (step % t.eval_every == 0 or step == t.max_steps):
                    # eval_batches global batches: the same windows/examples for any world size
                    val_loss = evaluate(model, val_factory(), t.eval_batches * accum, t.micro_batch_size, cfg, world)
                    if val_loss is not None:
                        metrics.log({"step": step, "val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50))})
                        result.val_loss = val_loss
                        say(f"step {step}: val_loss {val_loss:.4f}")
                if (t.save_every > 0 and step % t.save_every == 0) or step == t.max_steps:
                    save_checkpoint()
                flag = torch.tensor([1.0 if stop.signal else 0.0], device=world.device)
                if float(all_reduce_max(flag, world)) > 0:
                    if last_saved != step:
                        save_checkpoint()
                    result.status = "stopped"
                    say(f"{stop.signal or 'stop signal'}: saved {result.checkpoint} at step {step}; re-run the same command to resume")
                    break
        result.step = step
        result.tokens = tokens_seen
        result.seconds = time.perf_counter() - start_time
        result.tokens_per_s = (tokens_seen - tokens_at_start) / result.seconds if result.seconds > 0 else 0.0
        if result.status != "stopped":
            final = out / "final"
            write_final(model, tokenizer, final, lora, world, cfg)
            result.final_dir = str(final)
        metrics.close()
        if world.is_main:
            plot_training_curve(out / "metrics.jsonl", out / "training_curve.png")
        if result.checkpoint is None and ckpt.latest():
            result.checkpoint = str(ckpt.latest())
        return result
    finally:
        teardown(world)


def write_final(model, tokenizer, final: Path, lora: bool, world: World, cfg: RunConfig) -> None:
    """final/: HF checkpoint (cpt/sft) or PEFT adapter (lora), tokenizer, config.yaml. Atomic."""
    import os
    import shutil

    tmp = final.with_name(final.name + ".tmp")
    if world.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    barrier(world)
    save_model(model, tmp, tokenizer, lora, world)
    if world.is_main:
        save_config(cfg, tmp / "config.yaml")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    barrier(world)
