"""2 CPU processes (torchrun, gloo) give the same losses as 1 process at the same global batch:
FSDP2 (fully_shard) for full-parameter training, replicated + averaged gradients for LoRA."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from jft_train_utils import make_assets, read_metrics


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("dist_assets"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(assets, mode, tmp_path):
    data = ({"train": [str(assets["corpus"])], "validation": [str(assets["corpus_val"])], "seq_length": 32} if mode == "cpt"
            else {"train": [str(assets["sft"])], "validation": [str(assets["sft_val"])], "seq_length": 160})
    cfg = {
        "mode": mode,
        "model": {"name_or_path": str(assets["model"])},
        "data": data,
        "train": {"micro_batch_size": 2, "global_batch_size": 8, "max_steps": 3, "lr": 3e-3, "min_lr": 3e-4,
                  "warmup_steps": 1, "eval_every": 3, "eval_batches": 1, "save_every": 3, "precision": "fp32", "device": "cpu"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    }
    p = tmp_path / f"{mode}.yaml"
    p.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return p


@pytest.mark.parametrize("mode", ["cpt", "lora"])
@pytest.mark.slow
def test_two_processes_match_one(assets, tmp_path, mode):
    cfg = _config(assets, mode, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    one = subprocess.run([sys.executable, "-m", "japanese_ft.cli", "train", mode, "--config", str(cfg), f"output_dir={tmp_path / 'one'}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                          "--master_port", str(_free_port()), "-m", "japanese_ft.cli", "train", mode, "--config", str(cfg),
                          f"output_dir={tmp_path / 'two'}"], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "world size 2" in two.stderr + two.stdout
    m1, m2 = read_metrics(tmp_path / "one" / "metrics.jsonl"), read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert [sorted(r) for r in m1] == [sorted(r) for r in m2]
    for a, b in zip(m1, m2):
        for key in ("loss", "val_loss", "grad_norm"):
            if key in a:
                assert a[key] == pytest.approx(b[key], abs=1e-5, rel=1e-5), (key, a, b)
        assert a.get("tokens") == b.get("tokens")
    name = "model.safetensors" if mode == "cpt" else "adapter_model.safetensors"
    from safetensors.torch import load_file

    w1, w2 = load_file(str(tmp_path / "one" / "final" / name)), load_file(str(tmp_path / "two" / "final" / name))
    assert sorted(w1) == sorted(w2)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-4), k
    # the sharded run resumes too: its last checkpoint holds a full optimizer state keyed by name
    state = torch.load(tmp_path / "two" / "checkpoints" / "step_000003" / "optimizer.pt", weights_only=True)
    assert state["state"] and all(isinstance(k, str) for k in state["state"])
