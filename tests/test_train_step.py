"""train/step.py: the step the loop and the benchmark share reads the device once per step, and a
non-finite step leaves the weights alone."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.overrides import TorchFunctionMode

from jft_train_utils import make_assets, run_config

# Tensor -> Python conversions: on a GPU each one waits for the device (a host sync).
_READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__float__, torch.Tensor.__int__,
          torch.Tensor.__bool__, torch.Tensor.__index__}


class CountReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.reads, self.paused = 0, False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if not self.paused and func in _READS:
            self.reads += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("step_assets"))


def _engine(assets, tmp_path, mode="cpt", *overrides):
    from japanese_ft.train.distributed import World
    from japanese_ft.train.loop import build_data, build_model, load_run_tokenizer
    from japanese_ft.train.step import make_engine

    cfg = run_config(assets, mode, tmp_path / "run", *overrides)
    world = World()
    torch.manual_seed(0)
    data, _, _ = build_data(cfg, load_run_tokenizer(cfg), world)
    return make_engine(build_model(cfg, world, None), cfg, world), data, cfg


def test_one_device_read_per_step(assets, tmp_path):
    """Only the fetch of (loss, grad norm[, counts]) reads a tensor value; the optimizer's own
    bookkeeping (CPU step counters here; on-device for the fused CUDA kernel) is left out."""
    from japanese_ft.train.step import train_step

    engine, data, cfg = _engine(assets, tmp_path)
    counter = CountReads()
    real_step = engine.optimizer.step

    @functools.wraps(real_step)  # keeps the lr scheduler's marker on the optimizer's step
    def optimizer_step(*a, **k):
        counter.paused = True
        try:
            return real_step(*a, **k)
        finally:
            counter.paused = False

    engine.optimizer.step = optimizer_step
    micro = [data.next_batch(cfg.train.micro_batch_size) for _ in range(2)]
    with counter:
        stats = train_step(engine, micro)
    assert stats.finite and stats.n_tokens == 4 * 33 and stats.n_targets == 4 * 32
    assert counter.reads == 1


def test_non_finite_step_does_not_touch_the_weights(assets, tmp_path, monkeypatch):
    from japanese_ft.train import step

    engine, data, cfg = _engine(assets, tmp_path)
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    real = step.causal_lm_loss
    monkeypatch.setattr(step, "causal_lm_loss", lambda *a, **k: (real(*a, **k)[0] * float("inf"), None))
    stats = step.train_step(engine, [data.next_batch(2) for _ in range(2)])
    assert not stats.finite
    assert all(torch.equal(before[k], v) for k, v in engine.model.state_dict().items())
    assert all(p.grad is None for p in engine.params)
    assert engine.scheduler.last_epoch == 0  # the lr schedule did not advance either
