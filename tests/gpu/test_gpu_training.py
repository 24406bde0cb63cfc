"""The training engine on CUDA: bf16 + torch.compile, flex attention on packed rows, fused AdamW,
the step's host syncs, and 2 GPUs (NCCL) == 1 GPU. Skipped without CUDA (tests/gpu/conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from jft_train_utils import make_assets, read_metrics, run_config


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("gpu_assets"))


def _engine(assets, tmp_path, mode="cpt", *overrides, speed=None):
    from japanese_ft.train.distributed import World
    from japanese_ft.train.loop import build_data, build_model, load_run_tokenizer
    from japanese_ft.train.step import make_engine

    cfg = run_config(assets, mode, tmp_path / f"run-{mode}", "train.device=cuda", "train.precision=bf16", *overrides)
    world = World(device=torch.device("cuda", 0))
    torch.manual_seed(0)
    data, _, _ = build_data(cfg, load_run_tokenizer(cfg), world)
    return make_engine(build_model(cfg, world, None), cfg, world, speed), data, cfg


def _losses(engine, data, steps=3, micro=2, accum=2):
    from japanese_ft.train.step import train_step

    out = []
    for _ in range(steps):
        stats = train_step(engine, [data.next_batch(micro) for _ in range(accum)])
        assert stats.finite
        out.append(stats.loss)
    return out


def test_bf16_compiled_step_tracks_eager(assets, tmp_path):
    from japanese_ft.train.gpu import SpeedOptions

    compiled, data_c, _ = _engine(assets, tmp_path, speed=SpeedOptions(compile="layers"))
    eager, data_e, _ = _engine(assets, tmp_path, speed=SpeedOptions(compile="none"))
    assert compiled.autocast_dtype == torch.bfloat16
    a, b = _losses(compiled, data_c), _losses(eager, data_e)
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=2e-2), (a, b)  # bf16 tolerance


def test_flex_attention_packed_rows_equal_unpacked(assets):
    """Per-example losses of packed rows under flex attention (the engine's choice for packed rows
    on CUDA) == the same examples one by one, within bf16 tolerance; backward runs too."""
    from japanese_ft.data.sft import ChatEncoder, load_examples, pack_examples
    from japanese_ft.model.load import load_model
    from japanese_ft.tokens import load_tokenizer
    from japanese_ft.train.loss import causal_lm_loss

    tok = load_tokenizer(str(assets["model"]))
    examples, _ = load_examples([str(assets["sft"])], ChatEncoder(tok), 160)
    rows = pack_examples(examples[:12], 320, pad_id=0, seed=0)
    flex = load_model(str(assets["model"]), "float32", "flex_attention").cuda()
    sdpa = load_model(str(assets["model"]), "float32", "sdpa").cuda()
    ids, labels, pos = (torch.from_numpy(np.stack([r[i] for r in rows])).cuda() for i in range(3))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        packed, n_packed = causal_lm_loss(flex, ids, labels, position_ids=pos)
        total, count = 0.0, 0
        for e_ids, e_labels in examples[:12]:  # an example's first label is never a target, packed or not
            s, n = causal_lm_loss(sdpa, torch.tensor(e_ids, dtype=torch.long).cuda()[None],
                                  torch.tensor(e_labels, dtype=torch.long).cuda()[None])
            total, count = total + float(s), count + int(n)
    assert int(n_packed) == count
    assert float(packed) / count == pytest.approx(total / count, rel=2e-2)
    packed.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flex.parameters() if p.requires_grad)


def test_fused_adamw_matches_foreach(assets, tmp_path):
    """The engine's fused AdamW takes the same steps as the foreach one on the same gradients.
    (Comparing whole training steps cannot be tight: the embedding backward's atomic adds make
    near-zero gradients differ between runs, and Adam's first step turns any sign into +-lr.)"""
    from japanese_ft.train.gpu import SpeedOptions

    fused, _, _ = _engine(assets, tmp_path, speed=SpeedOptions(compile="none"))
    foreach, _, _ = _engine(assets, tmp_path, speed=SpeedOptions(compile="none", fused_optimizer=False))
    assert fused.optimizer.defaults.get("fused") and not foreach.optimizer.defaults.get("fused")
    assert all(torch.equal(p, q) for p, q in zip(fused.params, foreach.params))
    gen = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(3):
        for p, q in zip(fused.params, foreach.params):
            grad = torch.randn(p.shape, device=p.device, dtype=p.dtype, generator=gen) * 1e-2
            p.grad, q.grad = grad.clone(), grad.clone()
        fused.optimizer.step()
        foreach.optimizer.step()
    for p, q in zip(fused.params, foreach.params):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7), (p - q).abs().max()


def test_train_step_syncs_once(assets, tmp_path):
    """CUDA's sync debug mode counts the step's device-to-host syncs: one, the stats fetch."""
    from japanese_ft.train.step import train_step

    engine, data, _ = _engine(assets, tmp_path)
    _losses(engine, data, steps=2)  # compile and warm up first
    batches = [data.next_batch(2) for _ in range(2)]
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_step(engine, batches)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # (the debug mode's own "is a prototype feature" notice also says "synchronizing": not a sync)
    syncs = [w for w in caught if "called a synchronizing" in str(w.message)]
    assert len(syncs) == 1, [str(w.message)[:200] for w in syncs]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("mode", ["cpt", "lora"])
def test_two_gpus_match_one(assets, tmp_path, mode):
    """torchrun on 2 GPUs (NCCL; FSDP2 for cpt, DDP for lora) == 1 GPU at the same global batch."""
    common = [f"model.name_or_path={assets['model']}", "train.micro_batch_size=2", "train.global_batch_size=8",
              "train.max_steps=3", "train.warmup_steps=1", "train.eval_every=0", "train.save_every=0",
              "train.precision=fp32", "train.device=cuda", "lora.dropout=0.0", "lora.r=4", "lora.alpha=8"]
    if mode == "cpt":
        common += [f"data.train=[{assets['corpus']}]", "data.validation=[]", "data.seq_length=32"]
    else:
        common += [f"data.train=[{assets['sft']}]", "data.validation=[]", "data.seq_length=160"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"x{n}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "japanese_ft.cli", "train", mode, *common, f"output_dir={out}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[n] = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert len(runs[1]) == len(runs[2]) == 3
    for a, b in zip(runs[1], runs[2]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-2)
        assert a["tokens"] == b["tokens"]
