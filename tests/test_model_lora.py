"""LoRA adapters: PeftModel.from_pretrained loads them, merged logits == unmerged logits, export."""

from __future__ import annotations

import json

import pytest
import torch

from jft_train_utils import make_assets, run_config


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from japanese_ft.train.loop import train

    root = tmp_path_factory.mktemp("lora")
    assets = make_assets(root / "assets")
    out = root / "run"
    # a high lr so lora_B moves well away from its zero init
    train(run_config(assets, "lora", out, "train.lr=3e-2", "train.min_lr=3e-2", "train.eval_every=0"))
    return assets, out


def test_adapter_loads_and_merge_matches(lora_run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from japanese_ft.cli import main

    assets, out = lora_run
    adapter = out / "final"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8
    base = AutoModelForCausalLM.from_pretrained(str(assets["model"]), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(adapter))
    peft_model.eval()
    ids = torch.tensor([[1, 5, 9, 30, 200, 17, 2]])
    with torch.no_grad():
        unmerged = peft_model(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(str(assets["model"]), dtype=torch.float32)(ids).logits
    assert (unmerged - plain).abs().max() > 1e-3  # the adapter does something

    merged_dir = tmp_path / "merged"
    assert main(["export", "--base", str(assets["model"]), "--adapter", str(adapter), "--output", str(merged_dir)]) == 0
    assert (merged_dir / "model.safetensors").exists() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
    with torch.no_grad():
        merged_logits = merged(ids).logits
    assert torch.allclose(merged_logits, unmerged, atol=1e-5)
    gen = json.loads((merged_dir / "generation_config.json").read_text())
    assert 2 in gen["eos_token_id"]  # <|im_end|> of the test tokenizer
    assert (merged_dir / "tokenizer.json").exists()


def test_export_errors(lora_run, tmp_path):
    from japanese_ft.cli import main

    assets, out = lora_run
    assert main(["export", "--base", str(assets["model"]), "--adapter", str(tmp_path / "nope"), "--output", str(tmp_path / "m")]) == 2
    assert main(["export", "--base", str(assets["model"]), "--adapter", str(assets["model"]), "--output", str(tmp_path / "m")]) == 2


def test_wrong_base_is_refused_from_another_working_directory(tmp_path, monkeypatch):
    """An adapter trained with a relative base path, scored from another directory: the base record
    (resolved path, config, weights fingerprint) still catches a same-shape model with other weights."""
    from eval_testutils import run_cli
    from japanese_ft.model.load import init_model
    from japanese_ft.train.loop import train

    assets = make_assets(tmp_path / "project")
    init_model("tiny", str(assets["tok"]), tmp_path / "project" / "other-model", seed=1)  # same shapes, other weights
    monkeypatch.chdir(tmp_path / "project")
    train(run_config(assets, "lora", tmp_path / "project" / "run", "model.name_or_path=tiny-model",
                     "train.max_steps=1", "train.eval_every=0", "train.save_every=0"))
    adapter = tmp_path / "project" / "run" / "final"
    record = json.loads((adapter / "base_model.json").read_text())
    assert record["path"] == str(assets["model"].resolve()) and record["config"]["hidden_size"] == 64
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # "tiny-model" (adapter_config's base) does not exist here
    args = ["generate", "--prompt", "琵琶湖は", "--max-new-tokens", "2", "--adapter", str(adapter), "--device", "cpu"]
    code, text = run_cli([*args, "--model", str(tmp_path / "project" / "other-model")])
    assert code == 2 and "has different weights" in text and str(assets["model"].resolve()) in text
    code, text = run_cli([*args, "--model", str(tmp_path / "project" / "other-model"), "--allow-base-mismatch"])
    assert code == 0, text
    code, text = run_cli([*args, "--model", str(assets["model"])])
    assert code == 0, text
