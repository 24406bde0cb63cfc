"""The training loop on a tiny CPU model: loss definition, gradient accumulation, resume,
checkpoints, NaN handling, outputs."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from jft_train_utils import make_assets, read_metrics, run_config


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("train_assets"))


def _train(cfg):
    from japanese_ft.train.loop import train

    return train(cfg)


def test_first_step_loss_equals_transformers_loss(assets, tmp_path):
    """Step 1's logged loss (before any update) == HF's own mean loss over the same global batch."""
    from japanese_ft.data.pretrain import PackedWindows
    from japanese_ft.model.load import load_model

    cfg = run_config(assets, "cpt", tmp_path / "run", "train.max_steps=1", "train.eval_every=0")
    result = _train(cfg)
    windows = PackedWindows([str(assets["corpus"])], 32, seed=cfg.train.seed)
    batch = windows.next_batch(4)
    model = load_model(str(assets["model"]))
    with torch.no_grad():
        hf = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()
    assert result.losses[0][1] == pytest.approx(hf, abs=1e-5)


def test_sft_step_loss_is_mean_over_answer_tokens(assets, tmp_path):
    """Across micro-batches of different answer lengths the loss is sum/total-count, not a mean of means."""
    from japanese_ft.data.sft import build_sft_batches
    from japanese_ft.model.load import load_model
    from japanese_ft.tokens import load_tokenizer

    cfg = run_config(assets, "sft", tmp_path / "run", "train.max_steps=1", "train.eval_every=0", "train.micro_batch_size=1",
                     "data.pack=false")
    result = _train(cfg)
    tok = load_tokenizer(str(assets["model"]))
    loader, _ = build_sft_batches([str(assets["sft"])], tok, 160, "drop", "auto", False, cfg.train.seed)
    model = load_model(str(assets["model"]))
    total, count = 0.0, 0
    with torch.no_grad():
        for _ in range(4):
            b = loader.next_batch(1)
            b.pop("num_tokens")
            n = int((b["labels"][:, 1:] != -100).sum())
            total += model(**b).loss.item() * n
            count += n
    assert result.losses[0][1] == pytest.approx(total / count, abs=1e-5)


def test_sft_packs_by_default(assets, tmp_path):
    """Without data.pack, SFT packs: fewer rows than examples, and the packed rows train."""
    cfg = run_config(assets, "sft", tmp_path / "run", "train.max_steps=2", "train.eval_every=0", "train.save_every=0")
    assert cfg.data.pack
    result = _train(cfg)
    stats = result.data["train"]
    assert stats["rows"] < stats["examples"] == 20
    assert result.status == "completed" and all(math.isfinite(l) for _, l in result.losses)


def _final_params(path):
    from safetensors.torch import load_file

    return load_file(str(path / "final" / "model.safetensors"))


@pytest.mark.parametrize("mode", ["cpt", "sft"])
def test_gradient_accumulation_equivalence(assets, tmp_path, mode):
    """micro 1 x accum 4 == micro 4 x accum 1: same loss and gradient norm at every step, same
    parameters after the optimizer steps. (Adam's first update is ~lr*sign(g), so a gradient entry
    within float noise of 0 may legitimately flip; all but a handful of entries must match.)"""
    common = ("train.max_steps=2", "train.eval_every=0", "train.global_batch_size=4", "train.save_every=0")
    _train(run_config(assets, mode, tmp_path / "a", "train.micro_batch_size=1", *common))
    _train(run_config(assets, mode, tmp_path / "b", "train.micro_batch_size=4", *common))
    ma, mb = read_metrics(tmp_path / "a" / "metrics.jsonl"), read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert len(ma) == len(mb) == 2
    for ra, rb in zip(ma, mb):
        assert ra["loss"] == pytest.approx(rb["loss"], abs=1e-6)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-5)
        assert ra["loss_tokens"] == rb["loss_tokens"]
    pa, pb = _final_params(tmp_path / "a"), _final_params(tmp_path / "b")
    base = _final_params_from(assets["model"])
    total = mismatched = 0
    for k in pa:
        close = torch.isclose(pa[k], pb[k], atol=1e-6, rtol=0)
        total += close.numel()
        mismatched += int((~close).sum())
    assert mismatched <= total * 1e-3, (mismatched, total)
    assert any(not torch.equal(pa[k], base[k]) for k in pa)  # the steps changed the model


def _final_params_from(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("mode,extra", [("cpt", ()), ("lora", ("lora.dropout=0.2",)), ("sft", ("data.pack=true",))])
def test_resume_equals_uninterrupted(assets, tmp_path, mode, extra):
    """Stop after step 2 (checkpoint), resume in a fresh loop: steps 3..6 have identical losses."""
    args = ("train.max_steps=6", "train.save_every=2", "train.keep_last=3", "train.eval_every=3", *extra)
    full = _train(run_config(assets, mode, tmp_path / "full", *args))
    out = tmp_path / "resumed"
    first = _train(run_config(assets, mode, out, *args))
    assert [l for _, l in first.losses] == [l for _, l in full.losses]
    # simulate a run that died after the step-2 checkpoint
    shutil.rmtree(out / "checkpoints" / "step_000004")
    shutil.rmtree(out / "checkpoints" / "step_000006")
    shutil.rmtree(out / "final")
    resumed = _train(run_config(assets, mode, out, *args))
    assert [s for s, _ in resumed.losses] == [3, 4, 5, 6]
    assert [l for _, l in resumed.losses] == [l for s, l in full.losses if s > 2]
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # lines after the checkpoint were replaced, not duplicated
    vals = [r["val_loss"] for r in read_metrics(out / "metrics.jsonl") if "val_loss" in r]
    full_vals = [r["val_loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl") if "val_loss" in r]
    assert vals == full_vals


def test_outputs_and_keep_last(assets, tmp_path):
    import yaml

    out = tmp_path / "run"
    result = _train(run_config(assets, "cpt", out, "train.save_every=1", "train.keep_last=2"))
    assert result.status == "completed" and result.step == 4
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step_000003", "step_000004"]
    for d in [out / "checkpoints" / "step_000004", out / "final"]:
        assert (d / "model.safetensors").exists() and (d / "config.json").exists()
        assert yaml.safe_load((d / "config.yaml").read_text())["mode"] == "cpt"
    ck = out / "checkpoints" / "step_000004"
    for f in ("optimizer.pt", "trainer_state.pt", "rng_rank0.pt", "generation_config.json", "tokenizer.json"):
        assert (ck / f).exists(), f
    state = torch.load(ck / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4 and state["data"]["consumed"] == 16
    lines = read_metrics(out / "metrics.jsonl")
    train_lines = [r for r in lines if "loss" in r]
    assert [r["step"] for r in train_lines] == [1, 2, 3, 4]
    for r in train_lines:
        assert set(r) >= {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s"}
        assert math.isfinite(r["loss"]) and r["tokens_per_s"] > 0
    assert train_lines[-1]["tokens"] == 4 * 4 * 33
    assert [r["step"] for r in lines if "val_loss" in r] == [2, 4]
    assert (out / "training_curve.png").stat().st_size > 1000
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    # lr schedule: warmup 1 step to 3e-3, cosine to 3e-4 at the last step
    assert train_lines[0]["lr"] == pytest.approx(3e-3)
    assert train_lines[-1]["lr"] == pytest.approx(3e-4)
    # re-running a finished run is a no-op that reports completion
    again = _train(run_config(assets, "cpt", out, "train.save_every=1", "train.keep_last=2"))
    assert again.status == "already_complete" and again.losses == []


def test_nan_loss_stops_and_keeps_last_good_checkpoint(assets, tmp_path, monkeypatch):
    from japanese_ft.train import step
    from japanese_ft.train.loop import TrainingDiverged

    real = step.causal_lm_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, n = real(*args, **kwargs)
        if calls["n"] > 2 * 2:  # micro-batches of steps 1-2 are fine, step 3 is NaN
            loss = loss * float("nan")
        return loss, n

    monkeypatch.setattr(step, "causal_lm_loss", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"nan at step 3.*step_000002"):
        _train(run_config(assets, "cpt", out, "train.eval_every=0", "train.save_every=2"))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000002"]
    assert not (out / "final").exists()


def test_lora_trains_only_adapters(assets, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    result = _train(run_config(assets, "lora", out, "train.eval_every=0"))
    assert 0 < result.trainable_params < result.total_params / 2
    final = out / "final"
    assert (final / "adapter_config.json").exists() and (final / "adapter_model.safetensors").exists()
    assert not (final / "model.safetensors").exists()
    assert (final / "config.yaml").exists()
    adapter = load_file(str(final / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert any(float(v.abs().max()) > 0 for k, v in adapter.items() if "lora_B" in k)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_saves_checkpoint_and_resume_matches(assets, tmp_path, monkeypatch, sig):
    """A real signal mid-step: the step finishes, a checkpoint is saved, the run returns cleanly;
    re-running resumes and reproduces the uninterrupted losses exactly."""
    import os
    import signal

    from japanese_ft.train import step

    args = ("train.max_steps=5", "train.save_every=0", "train.eval_every=0")
    full = _train(run_config(assets, "cpt", tmp_path / "full", *args))
    real = step.causal_lm_loss
    calls = {"n": 0}

    def signalling(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2 * 2 + 1:  # first micro-batch of step 3
            os.kill(os.getpid(), getattr(signal, sig))
        return real(*a, **k)

    monkeypatch.setattr(step, "causal_lm_loss", signalling)
    out = tmp_path / "run"
    stopped = _train(run_config(assets, "cpt", out, *args))
    assert stopped.status == "stopped" and stopped.step == 3
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000003"]
    assert not (out / "final").exists()
    monkeypatch.setattr(step, "causal_lm_loss", real)
    resumed = _train(run_config(assets, "cpt", out, *args))
    assert resumed.status == "completed"
    assert [l for _, l in stopped.losses + resumed.losses] == [l for _, l in full.losses]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_gradient_checkpointing_gives_the_same_step(assets, tmp_path):
    common = ("train.max_steps=1", "train.eval_every=0", "train.save_every=0")
    _train(run_config(assets, "cpt", tmp_path / "a", *common))
    _train(run_config(assets, "cpt", tmp_path / "b", "model.gradient_checkpointing=true", *common))
    a, b = read_metrics(tmp_path / "a" / "metrics.jsonl")[0], read_metrics(tmp_path / "b" / "metrics.jsonl")[0]
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)


class _Lines:
    def __init__(self):
        self.lines = []

    def print(self, text, **_):
        self.lines.append(str(text))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("corrupt", [
    lambda ck: _truncate(ck / "optimizer.pt"),
    lambda ck: _truncate(ck / "model.safetensors"),
    lambda ck: (ck / "trainer_state.pt").write_bytes(b""),
], ids=["truncated-optimizer", "truncated-weights", "empty-trainer-state"])
def test_corrupt_newest_checkpoint_falls_back_to_previous(assets, tmp_path, corrupt):
    """A damaged newest checkpoint: warn, resume from the previous complete one, same losses."""
    from japanese_ft.train.loop import train

    args = ("train.max_steps=4", "train.save_every=2", "train.keep_last=2", "train.eval_every=0")
    out = tmp_path / "run"
    first = _train(run_config(assets, "cpt", out, *args))
    corrupt(out / "checkpoints" / "step_000004")
    shutil.rmtree(out / "final")
    console = _Lines()
    resumed = train(run_config(assets, "cpt", out, *args), console=console)
    warned = [l for l in console.lines if l.startswith("warning: checkpoint")]
    assert len(warned) == 1 and "step_000004" in warned[0], console.lines
    assert any("resuming from" in l and "step_000002" in l for l in console.lines)
    assert resumed.status == "completed"
    assert resumed.losses == [(s, l) for s, l in first.losses if s > 2]
