"""`jft train` fails fast (exit 2, one line) on bad configs; shipped recipes validate; the
init-model -> train cpt -> train sft / lora -> export chain works end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from japanese_ft.cli import main
from jft_train_utils import make_assets, read_metrics

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = sorted(list(CONFIGS.glob("qwen2.5-0.5b-*.yaml")) + list(CONFIGS.glob("tiny-cpu-*.yaml")))


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("cli_assets"))


def test_every_shipped_recipe_loads_and_validates():
    from japanese_ft.config import load_run_config

    assert {p.name for p in SHIPPED} >= {"qwen2.5-0.5b-cpt.yaml", "qwen2.5-0.5b-sft.yaml", "qwen2.5-0.5b-lora.yaml", "tiny-cpu-cpt.yaml"}
    for path in SHIPPED:
        cfg = load_run_config(path)
        assert cfg.mode in path.name
        assert cfg.train.global_batch_size % cfg.train.micro_batch_size == 0
    cpt = load_run_config(CONFIGS / "qwen2.5-0.5b-cpt.yaml")
    assert (cpt.train.lr, cpt.train.min_lr, cpt.train.warmup_steps, cpt.train.weight_decay, cpt.train.betas) == (3e-4, 3e-5, 200, 0.1, [0.9, 0.95])
    assert (cpt.train.precision, cpt.train.max_steps, cpt.train.eval_every, cpt.train.eval_batches) == ("bfloat16", 1000, 100, 5)
    for name in ("sft", "lora"):
        c = load_run_config(CONFIGS / f"qwen2.5-0.5b-{name}.yaml")
        assert (c.data.seq_length, c.train.micro_batch_size, c.train.global_batch_size, c.train.max_steps) == (2048, 8, 16, 1000)
    for path in SHIPPED:  # every SFT and LoRA recipe packs (attention stays per example)
        cfg = load_run_config(path)
        assert cfg.mode == "cpt" or cfg.data.pack, path.name
    lora = load_run_config(CONFIGS / "qwen2.5-0.5b-lora.yaml")
    assert (lora.lora.r, lora.lora.alpha, lora.lora.dropout, lora.lora.target_modules) == (16, 32, 0.1, ["all-linear"])


def _write_cfg(tmp_path, assets, mode="cpt", **sections):
    import yaml

    data = {
        "model": {"name_or_path": str(assets["model"])},
        "data": {"train": [str(assets["corpus"] if mode == "cpt" else assets["sft"])], "seq_length": 32},
        "train": {"micro_batch_size": 2, "global_batch_size": 4, "max_steps": 2, "warmup_steps": 1, "precision": "fp32",
                  "device": "cpu"},
        "output_dir": str(tmp_path / "out"),
    }
    for k, v in sections.items():
        data.setdefault(k, {}).update(v) if isinstance(v, dict) else data.__setitem__(k, v)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


BAD = [
    ("unknown key in yaml", dict(train={"learning_rate": 1e-4}), [], "unknown config key 'train.learning_rate'"),
    ("unknown key override", {}, ["train.lrr=1"], "unknown config key 'train.lrr'"),
    ("batch not divisible", dict(train={"global_batch_size": 5}), [], "not divisible"),
    ("missing data", dict(data={"train": ["/nonexistent/corpus"]}), [], "/nonexistent/corpus.bin not found"),
    ("jsonl for cpt", dict(data={"train": ["/nonexistent/x.jsonl"]}), [], "prepare-corpus"),
    ("missing model", dict(model={"name_or_path": "/nonexistent/model"}), [], "/nonexistent/model not found"),
    ("seq too long", dict(data={"seq_length": 4096}), [], "max_position_embeddings = 4096"),
    ("bad schedule", dict(train={"schedule": "cosin"}), [], "train.schedule"),
    ("bad type", {}, ["train.max_steps=lots"], "expected an integer"),
    # issue 14: values that used to raise tracebacks or pass silently
    ("lr negative", {}, ["train.lr=-1"], "train.lr must be a finite number in (0, inf), got -1.0"),
    ("lr nan", {}, ["train.lr=.nan"], "train.lr must be a finite number in (0, inf), got nan"),
    ("lr zero", {}, ["train.lr=0"], "train.lr must be a finite number in (0, inf), got 0.0"),
    ("betas", {}, ["train.betas=[2,3]"], "train.betas[0] must be a finite number in [0, 1), got 2.0"),
    ("min_lr above lr", {}, ["train.lr=1e-4", "train.min_lr=1e-3"], "train.min_lr (0.001) is above train.lr (0.0001)"),
    ("warmup beyond the run", {}, ["train.warmup_steps=5"], "train.warmup_steps (5) is more than train.max_steps (2)"),
    ("weight decay", {}, ["train.weight_decay=-1"], "train.weight_decay must be a finite number in [0, inf)"),
    ("grad clip", {}, ["train.grad_clip=-5"], "train.grad_clip must be a finite number in [0, inf)"),
    ("lora alpha", {}, ["lora.alpha=-4"], "lora.alpha must be a finite number in (0, inf), got -4"),
    ("lora dropout", {}, ["lora.dropout=2"], "lora.dropout must be a finite number in [0, 1), got 2.0"),
    ("model dtype", {}, ["model.dtype=bogus"], "model.dtype: 'bogus' is not one of bfloat16, float16, float32"),
    ("missing tokenizer", {}, ["data.tokenizer=/nonexistent/tok"], "data.tokenizer: /nonexistent/tok not found"),
]


@pytest.mark.parametrize("name,sections,overrides,message", BAD, ids=[b[0] for b in BAD])
def test_bad_config_fails_fast(assets, tmp_path, capsys, name, sections, overrides, message):
    cfg = _write_cfg(tmp_path, assets, **sections)
    rc = main(["train", "cpt", "--config", str(cfg), *overrides])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in " ".join(err.split())
    assert len(err.strip().splitlines()) <= 2  # one message (rich may wrap a long line once)
    assert not (tmp_path / "out").exists()  # nothing was started


def test_paths_fail_fast_with_one_line(assets, tmp_path, capsys, monkeypatch):
    """output_dir under a file, a missing local model that looks like owner/name, a model without a tokenizer."""
    import shutil

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "no-tokenizer").mkdir()
    shutil.copy(assets["model"] / "config.json", tmp_path / "runs" / "no-tokenizer")
    cfg = _write_cfg(tmp_path, assets)
    for override, message in (("output_dir=afile/sub", "output_dir: afile exists and is not a directory"),
                              ("model.name_or_path=runs/nope", "model.name_or_path: runs/nope not found"),
                              ("model.name_or_path=runs/no-tokenizer", "runs/no-tokenizer has no tokenizer files")):
        assert main(["train", "cpt", "--config", str(cfg), override]) == 2
        err = capsys.readouterr().err
        assert message in " ".join(err.split()) and len(err.strip().splitlines()) <= 2, override
    assert not (tmp_path / "out").exists()


def test_world_size_divisibility_and_sft_paths(assets, tmp_path, capsys, monkeypatch):
    cfg = _write_cfg(tmp_path, assets, train={"global_batch_size": 6, "micro_batch_size": 2})
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "cpt", "--config", str(cfg)]) == 2
    assert "x world size (2)" in " ".join(capsys.readouterr().err.split())
    monkeypatch.setenv("WORLD_SIZE", "1")
    cfg = _write_cfg(tmp_path, assets, mode="sft", data={"train": [str(tmp_path / "missing.jsonl")]})
    assert main(["train", "sft", "--config", str(cfg)]) == 2
    assert "missing.jsonl not found" in capsys.readouterr().err
    assert main(["train", "cpt", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert main(["train", "dpo", "--config", str(cfg)]) == 2


def test_end_to_end_cli(assets, tmp_path):
    """init-model -> train cpt -> train sft (packed) from the cpt result -> train lora -> export."""
    root = tmp_path
    model = root / "tiny"
    assert main(["init-model", "--preset", "tiny", "--tokenizer", str(assets["tok"]), "--output", str(model)]) == 0
    common = ["train.max_steps=3", "train.micro_batch_size=2", "train.global_batch_size=4", "train.eval_every=3",
              "train.eval_batches=1", "train.save_every=3", "train.warmup_steps=1", "train.device=cpu", "train.precision=fp32"]
    cpt_cfg = CONFIGS / "tiny-cpu-cpt.yaml"
    assert main(["train", "cpt", "--config", str(cpt_cfg), f"model.name_or_path={model}", f"data.train=[{assets['corpus']}]",
                 f"data.validation=[{assets['corpus_val']}]", "data.seq_length=32", f"output_dir={root / 'cpt'}", *common]) == 0
    assert (root / "cpt" / "final" / "model.safetensors").exists()
    assert [r["step"] for r in read_metrics(root / "cpt" / "metrics.jsonl") if "loss" in r] == [1, 2, 3]
    sft_cfg = CONFIGS / "tiny-cpu-sft.yaml"
    assert main(["train", "sft", "--config", str(sft_cfg), f"model.name_or_path={root / 'cpt' / 'final'}",
                 f"data.train=[{assets['sft']}]", f"data.validation=[{assets['sft_val']}]", "data.pack=true",
                 "data.seq_length=160", f"output_dir={root / 'sft'}", *common]) == 0
    gen = json.loads((root / "sft" / "final" / "generation_config.json").read_text())
    assert gen["eos_token_id"][0] == 2  # stops at <|im_end|>
    lora_cfg = CONFIGS / "tiny-cpu-lora.yaml"
    assert main(["train", "lora", "--config", str(lora_cfg), f"model.name_or_path={root / 'sft' / 'final'}",
                 f"data.train=[{assets['sft']}]", "data.seq_length=160", f"output_dir={root / 'lora'}", *common]) == 0
    assert (root / "lora" / "final" / "adapter_model.safetensors").exists()
    assert main(["export", "--base", str(root / "sft" / "final"), "--adapter", str(root / "lora" / "final"),
                 "--output", str(root / "merged")]) == 0
    assert (root / "merged" / "model.safetensors").exists()
