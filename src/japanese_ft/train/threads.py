"""CPU threads for training: a default that is never pathological.

Measured with `jft train cpt` on configs/tiny-cpu-cpt.yaml on the 2-core development container,
which other engineers' test suites share (docs/training.md has the table): with the cores
contended, torch's default of 2 threads ran at 133 tokens/s against 221 with 1 thread; with the
machine nearly idle, 2 threads were faster (356 vs 224 tokens/s; 13.2k vs 11.2k for a 0.2M-parameter
model). Using every core is what goes wrong when anything else runs, so jft leaves one core free:
`cores - 1` threads (at least 1), split over the ranks on the machine. `train.cpu_threads` (> 0) or
`OMP_NUM_THREADS` always win; under `jft run`, so does the recipe's `cpu_threads` (the runner
passes it as JFT_CPU_THREADS).
"""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_cpu_threads(explicit: int, local_ranks: int = 1) -> tuple[int, str]:
    """(threads, why) for a CPU run."""
    if explicit > 0:
        return explicit, "train.cpu_threads"
    for var, why in (("OMP_NUM_THREADS", "OMP_NUM_THREADS"), ("JFT_CPU_THREADS", "recipe cpu_threads")):
        env = os.environ.get(var, "").strip()
        if env.isdigit() and int(env) > 0:
            return int(env), why
    return max(1, (available_cores() - 1) // max(1, local_ranks)), "auto: cores - 1"


def apply_cpu_threads(explicit: int, local_ranks: int = 1) -> tuple[int, str]:
    """Set torch's intra-op threads for a CPU run; returns (threads, why)."""
    import torch

    threads, why = choose_cpu_threads(explicit, local_ranks)
    torch.set_num_threads(threads)
    return threads, why
