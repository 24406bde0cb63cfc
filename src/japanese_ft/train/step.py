"""One optimizer step over one global batch: the unit that the loop, the benchmarks and the tests share.

`make_engine` turns a loaded model into an `Engine` (compiled layers on CUDA, FSDP2 or DDP when
several ranks run, AdamW, the lr schedule); `train_step(engine, micro_batches)` runs forward and
backward over the micro-batches, clips, steps the optimizer and the scheduler, and returns a
`StepStats`.

Loss normalisation: each micro-batch returns (sum of token CEs, token count) from
`causal_lm_loss`; before the first backward of a step the label-token counts of all
micro-batches on all ranks are summed, and every micro-batch's backward uses
loss_sum * world_size / global_count (world_size cancels the gradient averaging over ranks).
So micro 1 x accum 4, micro 4 x accum 1 and 2 ranks x micro 2 give the same update.

Per step: at most two collectives (the counts, which also carry every rank's stop request, and
the loss sum), none on one process; one device-to-host sync (loss, gradient norm and counts are
fetched together, before the optimizer step, so a non-finite step never updates the weights).
Label positions are found on the host, where the loader's tensors still are, and batches are
copied from pinned memory, so neither forces a sync.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch

from japanese_ft.config import RunConfig
from japanese_ft.train.distributed import World, all_reduce_sum, apply_fsdp, replicate, set_gradient_sync
from japanese_ft.train.gpu import SpeedOptions, apply_matmul_settings, compile_model
from japanese_ft.train.loss import causal_lm_loss, target_positions
from japanese_ft.train.schedule import build_scheduler


@dataclass
class StepStats:
    loss: float  # mean token CE over the global batch (all ranks)
    grad_norm: float  # before clipping
    lr: float  # the lr this step used
    n_targets: int  # label tokens in the global batch
    n_tokens: int  # real (non-padding) input tokens in the global batch
    stop: bool  # some rank asked to stop (the same value on every rank)
    seconds: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss) and math.isfinite(self.grad_norm)


@dataclass
class Engine:
    model: torch.nn.Module  # the model itself (an FSDP2 module when sharded): saving, evaluation
    forward_model: torch.nn.Module  # what training forwards through (the DDP wrapper for LoRA on ranks)
    optimizer: torch.optim.Optimizer
    scheduler: object
    world: World
    params: list  # trainable parameters
    grad_clip: float
    autocast_dtype: torch.dtype | None
    loss_chunk_size: int = 4096
    embedding_params: tuple = ()  # the input/output embedding weights (one tensor when tied)


# ---- building ----------------------------------------------------------------------------------


def build_optimizer(model, cfg: RunConfig, world: World, speed: SpeedOptions | None = None):
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
        kwargs["fused" if (speed or SpeedOptions()).fused_optimizer else "foreach"] = True
    return torch.optim.AdamW(groups, **kwargs)


def _reshard_after_forward(model, world: World, speed: SpeedOptions) -> bool:
    if speed.fsdp_reshard_after_forward is not None:
        return speed.fsdp_reshard_after_forward
    if world.device.type != "cuda":
        return True
    bf16_bytes = 2 * sum(p.numel() for p in model.parameters())
    return bf16_bytes > 0.1 * torch.cuda.get_device_properties(world.device).total_memory


def make_engine(model, cfg: RunConfig, world: World, speed: SpeedOptions | None = None) -> Engine:
    """Compile (CUDA), shard (FSDP2, full modes) or replicate (DDP, LoRA) over the ranks, and build
    the optimizer and lr schedule. `model` is on `world.device` with its trainable parameters set
    (`loop.build_model`). `speed` defaults to `SpeedOptions` with `model.compile` deciding."""
    from japanese_ft.runtime import dtype_name

    speed = speed or SpeedOptions(compile="layers" if cfg.model.compile else "none")
    on_cuda = world.device.type == "cuda"
    bf16 = on_cuda and dtype_name(cfg.train.precision, "train.precision") == "bfloat16"  # old spelling bf16 too
    if on_cuda:
        if bf16:  # float32 runs keep full fp32 matmuls
            apply_matmul_settings(speed)
        scope = "layers" if speed.compile == "decoder" and world.distributed else speed.compile
        compile_model(model, scope, speed.compile_mode)
    forward_model = model
    if world.distributed and cfg.mode == "lora":
        forward_model = replicate(model, world)
    elif world.distributed:
        apply_fsdp(model, world, bf16=bf16,
                   reshard_after_forward=_reshard_after_forward(model, world, speed))
    model.train()
    optimizer = build_optimizer(model, cfg, world, speed)
    scheduler = build_scheduler(optimizer, cfg.train)
    autocast_dtype = torch.bfloat16 if bf16 else None
    params = [p for p in model.parameters() if p.requires_grad]
    return Engine(model, forward_model, optimizer, scheduler, world, params, cfg.train.grad_clip, autocast_dtype,
                  speed.loss_chunk_size, _embedding_params(model))


def _embedding_params(model) -> tuple:
    """The input and output embedding weights (one tensor when they are tied), for the warm-up."""
    from japanese_ft.train.structure import unwrap_causal_lm

    lm = unwrap_causal_lm(model)
    if not hasattr(lm, "get_input_embeddings"):
        return ()
    out = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    found = [lm.get_input_embeddings().weight] + ([out.weight] if out is not None else [])
    return tuple({id(p): p for p in found}.values())


# ---- stepping ----------------------------------------------------------------------------------


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def to_device(tensors: dict, device: torch.device) -> dict:
    """Host tensors -> device; on CUDA through pinned memory, so the copy does not wait for the GPU."""
    if device.type == "cuda":
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in tensors.items()}
    return {k: v.to(device) for k, v in tensors.items()}


def _prepare(batch: dict) -> tuple[dict, torch.Tensor, int]:
    """(model inputs, label positions, real tokens) of a loader micro-batch (host tensors)."""
    inputs = {k: v for k, v in batch.items() if k != "num_tokens"}
    n_tokens = int(batch.get("num_tokens", inputs["input_ids"].numel()))
    return inputs, target_positions(inputs["labels"]), n_tokens


def _clip(params, max_norm: float) -> torch.Tensor:
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP2: a DTensor


def train_step(engine: Engine, micro_batches: list[dict], stop_requested: bool = False,
               embeddings_only: bool = False) -> StepStats:
    """Forward, backward, clipping, optimizer and scheduler for one global batch (this rank's
    micro-batches). A non-finite loss or gradient norm skips the optimizer step and returns
    `stats.finite == False`; the caller decides what to do. `embeddings_only` (the embedding
    warm-up) drops every other gradient before clipping, so AdamW updates only the embeddings."""
    t0 = time.perf_counter()
    world = engine.world
    prepared = [_prepare(b) for b in micro_batches]
    n_targets = sum(pos.numel() for _, pos, _ in prepared)
    n_tokens = sum(n for _, _, n in prepared)
    counts = None
    if world.distributed:
        local = torch.tensor([n_targets, n_tokens, float(stop_requested)], dtype=torch.float64)
        counts = all_reduce_sum(to_device({"c": local}, world.device)["c"], world)
        scale = (world.size / counts[0].clamp(min=1)).float()
    else:
        scale = 1.0 / max(n_targets, 1)
    loss_total = torch.zeros((), dtype=torch.float64, device=world.device)
    for i, (inputs, positions, _) in enumerate(prepared):
        set_gradient_sync(engine.forward_model, i == len(prepared) - 1)
        inputs = to_device({**inputs, "positions": positions}, world.device)
        with autocast(world.device, engine.autocast_dtype):
            loss_sum, _ = causal_lm_loss(engine.forward_model, **inputs, chunk_size=engine.loss_chunk_size)
        (loss_sum * scale).backward()
        loss_total += loss_sum.detach().double()
    all_reduce_sum(loss_total, world)
    if embeddings_only:  # AdamW skips parameters whose gradient is None
        keep = {id(p) for p in engine.embedding_params}
        for p in engine.params:
            if id(p) not in keep:
                p.grad = None
    grad_norm = _clip([p for p in engine.params if p.grad is not None] if embeddings_only else engine.params,
                      engine.grad_clip)
    parts = [loss_total.view(1), grad_norm.detach().double().view(1)] + ([counts] if counts is not None else [])
    fetched = torch.cat(parts).tolist()  # the step's one device-to-host sync
    stop = stop_requested
    if counts is not None:
        n_targets, n_tokens, stop = int(fetched[2]), int(fetched[3]), fetched[4] > 0
    stats = StepStats(loss=fetched[0] / max(n_targets, 1), grad_norm=fetched[1], lr=engine.scheduler.get_last_lr()[0],
                      n_targets=n_targets, n_tokens=n_tokens, stop=stop, seconds=0.0)
    if stats.finite:
        engine.optimizer.step()
        engine.scheduler.step()
    engine.optimizer.zero_grad(set_to_none=True)
    stats.seconds = time.perf_counter() - t0
    return stats


def evaluate_loss(engine: Engine, loader, n_batches: int, micro: int) -> float | None:
    """Mean token CE over `n_batches` micro-batches of `loader` on every rank (no gradients)."""
    if loader is None or n_batches <= 0:
        return None
    world, model = engine.world, engine.model
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=world.device)
    with torch.no_grad():
        for _ in range(n_batches):
            inputs, positions, _ = _prepare(loader.next_batch(micro))
            inputs = to_device({**inputs, "positions": positions}, world.device)
            with autocast(world.device, engine.autocast_dtype):
                loss_sum, count = causal_lm_loss(model, **inputs, chunk_size=engine.loss_chunk_size)
            total[0] += loss_sum.double()
            total[1] += count.double()
    model.train()
    all_reduce_sum(total, world)
    loss_sum, count = total.tolist()
    return loss_sum / count if count > 0 else None
