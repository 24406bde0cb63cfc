"""init-model presets: the exact Qwen2.5-0.5B architecture, the tiny model, vocab padding, saved files."""

from __future__ import annotations

import json

import pytest

from japanese_ft.model.presets import QWEN25_05B, padded_vocab_size, preset_config, preset_dict
from jft_train_utils import SHARED, build_tokenizer

ARCH = SHARED / "models" / "qwen2.5-0.5b-architecture" / "config.json"


def test_vocab_padding():
    assert padded_vocab_size(600) == 640
    assert padded_vocab_size(640) == 640
    assert padded_vocab_size(151665) == 151680
    # the qwen preset keeps the original (larger) vocabulary with the Qwen tokenizer
    assert preset_dict("qwen2.5-0.5b", 151665)["vocab_size"] == 151936
    assert preset_dict("tiny", 600)["vocab_size"] == 640


def _normalised(values: dict) -> dict:
    out = dict(values)
    rope = out.pop("rope_parameters", None) or {}
    if "rope_theta" not in out and rope:
        out["rope_theta"] = rope.get("rope_theta")
    out["torch_dtype"] = str(out.pop("dtype", None) or out.get("torch_dtype")).replace("torch.", "")
    return out


@pytest.mark.shared
@pytest.mark.skipif(not ARCH.exists(), reason="needs ../shared/models/qwen2.5-0.5b-architecture")
def test_qwen_preset_equals_shared_architecture():
    ref = json.loads(ARCH.read_text())
    assert QWEN25_05B == ref  # the embedded copy is the file
    cfg = _normalised(preset_config("qwen2.5-0.5b", 151665).to_dict())
    for key, value in ref.items():
        if key == "sliding_window" and not ref["use_sliding_window"]:
            continue  # transformers drops an unused sliding window
        assert cfg[key] == value, key


def test_qwen_preset_parameter_count():
    """494M parameters (tied embeddings), computed on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(preset_config("qwen2.5-0.5b", 151665))
    n = sum(p.numel() for p in model.parameters())
    assert 494_000_000 < n < 494_100_000


def test_init_tiny_writes_hf_checkpoint(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from japanese_ft.cli import main

    tok_dir = build_tokenizer(tmp_path / "tok")
    out = tmp_path / "tiny"
    assert main(["init-model", "--preset", "tiny", "--tokenizer", str(tok_dir), "--output", str(out)]) == 0
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (2, 64, 640)
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    gen = GenerationConfig.from_pretrained(str(out))
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert gen.eos_token_id == [im_end, eot]
    model = AutoModelForCausalLM.from_pretrained(str(out))
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 640) and torch.isfinite(logits).all()
    # a second init into the same, non-empty directory is refused
    assert main(["init-model", "--preset", "tiny", "--tokenizer", str(tok_dir), "--output", str(out)]) == 2
    assert main(["init-model", "--preset", "huge", "--tokenizer", str(tok_dir), "--output", str(tmp_path / "x")]) == 2
