"""Process-group setup from torchrun's environment, FSDP2 sharding (full modes), DDP (LoRA), small collectives.

`torchrun --nproc_per_node N` (or multi-node torchrun / srun) sets RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT; one process without them is world size 1 and uses no process group.
Backend: nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from japanese_ft.train.structure import decoder_layers, is_ddp, is_fsdp


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_distributed(device_preference: str = "auto") -> World:
    from japanese_ft.runtime import resolve_device

    kind = resolve_device(device_preference, "train.device")
    size = env_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(device)
    backend = None
    if size > 1:
        backend = "nccl" if kind == "cuda" else "gloo"
        if not dist.is_initialized():
            kwargs = {"device_id": device} if kind == "cuda" else {}
            dist.init_process_group(backend=backend, **kwargs)
    return World(rank=rank, local_rank=local_rank, size=size, device=device, backend=backend)


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def apply_fsdp(model, world: World, bf16: bool = False, reshard_after_forward: bool = True):
    """FSDP2: `fully_shard` every decoder layer, then the root (embeddings, final norm, head).

    bf16 (CUDA): parameters are all-gathered in bf16 for compute, gradients reduced in fp32, and
    the sharded master weights and optimizer state stay fp32. `reshard_after_forward=False` keeps
    each layer's gathered weights from forward to backward (one all-gather per layer and micro
    batch instead of two, at the cost of holding the full bf16 weights).
    """
    from torch.distributed.device_mesh import init_device_mesh

    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError:  # torch < 2.6
        from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(world.device.type, (world.size,))
    kwargs = {"mesh": mesh}
    if bf16:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        # the last layer's parameters are needed again at once in backward: keep them gathered
        fully_shard(layer, reshard_after_forward=reshard_after_forward and i < len(layers) - 1, **kwargs)
    fully_shard(model, **kwargs)  # the root keeps its weights gathered after forward (FSDP2's default)
    return model


def replicate(model, world: World):
    """DDP for replicated training (LoRA on several ranks): the adapters' gradients are averaged in
    buckets while backward still runs, instead of in one flat all-reduce after it. Returns the
    wrapper to run forward through; the unwrapped model keeps serving saving and evaluation."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)


def set_gradient_sync(model, enabled: bool) -> None:
    """Skip the gradient reduction on all but the last gradient-accumulation micro-batch (FSDP2:
    no reduce-scatter; DDP: what `no_sync()` does)."""
    if is_fsdp(model):
        model.set_requires_gradient_sync(enabled)
    elif is_ddp(model):
        model.require_backward_grad_sync = enabled
