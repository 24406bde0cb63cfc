"""CPU threads for training: the rule, that the choice is applied to torch, and that it is reported."""

from __future__ import annotations

import pytest
import torch

from jft_train_utils import make_assets, run_config


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_rule(monkeypatch):
    from japanese_ft.train import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("JFT_CPU_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert threads.choose_cpu_threads(0) == (7, "auto: cores - 1")
    assert threads.choose_cpu_threads(0, local_ranks=2) == (3, "auto: cores - 1")
    assert threads.choose_cpu_threads(5) == (5, "train.cpu_threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_cpu_threads(0) == (3, "OMP_NUM_THREADS")
    assert threads.choose_cpu_threads(2) == (2, "train.cpu_threads")  # the config key wins
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("JFT_CPU_THREADS", "1")  # set by jft run for a recipe's cpu_threads
    assert threads.choose_cpu_threads(0) == (1, "recipe cpu_threads")
    monkeypatch.delenv("JFT_CPU_THREADS")
    for cores in (1, 2):
        monkeypatch.setattr(threads, "available_cores", lambda cores=cores: cores)
        assert threads.choose_cpu_threads(0) == (1, "auto: cores - 1")


def test_train_applies_and_reports_threads(tmp_path, monkeypatch, restore_threads):
    from eval_testutils import run_cli
    from japanese_ft.train import threads
    from japanese_ft.train.loop import train

    assets = make_assets(tmp_path / "assets")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("JFT_CPU_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    args = ("train.max_steps=1", "train.eval_every=0", "train.save_every=0")
    torch.set_num_threads(2)
    result = train(run_config(assets, "cpt", tmp_path / "a", *args))
    assert result.cpu_threads == "1 thread (auto: cores - 1)" and torch.get_num_threads() == 1
    result = train(run_config(assets, "cpt", tmp_path / "b", "train.cpu_threads=2", *args))
    assert result.cpu_threads == "2 threads (train.cpu_threads)" and torch.get_num_threads() == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {{name_or_path: {assets['model']}}}\ndata: {{train: [{assets['corpus']}], seq_length: 32}}\n"
                   f"train: {{max_steps: 1, warmup_steps: 0, eval_every: 0, save_every: 0, micro_batch_size: 2, global_batch_size: 2, "
                   f"device: cpu}}\noutput_dir: {tmp_path / 'c'}\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, text = run_cli(["train", "cpt", "--config", str(cfg)])
    assert code == 0, text
    assert "1 x cpu, 1 thread (OMP_NUM_THREADS)" in text
    code, text = run_cli(["train", "cpt", "--config", str(cfg), "train.cpu_threads=-1"])
    assert code == 2 and "train.cpu_threads must be >= 0" in text
