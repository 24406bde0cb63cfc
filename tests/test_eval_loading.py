"""load_for_inference: safetensors checkpoints, LoRA adapters, and base/adapter mismatches."""

import json
import shutil

import pytest

from eval_testutils import build_model, tiny_model_dir
from japanese_ft.errors import UserError


def _make_adapter(model_dir, out_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(str(out_dir))
    cfg = json.loads((out_dir / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(model_dir)
    return out_dir


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def adapter_dir(base_dir, tmp_path_factory):
    return _make_adapter(base_dir, tmp_path_factory.mktemp("adapter"))


def test_loads_model_with_left_padding(base_dir):
    from japanese_ft.eval.loading import load_for_inference

    model, tok = load_for_inference(base_dir, device="cpu", dtype="float32")
    assert not model.training
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert next(model.parameters()).dtype.__str__() == "torch.float32"


def test_adapter_is_applied(base_dir, adapter_dir):
    import torch

    from japanese_ft.eval.loading import load_for_inference

    base, tok = load_for_inference(base_dir, device="cpu", dtype="float32")
    lora, _ = load_for_inference(base_dir, adapter_dir, device="cpu", dtype="float32")
    ids = tok(["富士山は"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(base(ids).logits, lora(ids).logits)


def test_adapter_on_other_architecture_is_refused(adapter_dir, tmp_path):
    from japanese_ft.eval.loading import load_for_inference

    other = build_model(tmp_path / "wide", hidden=128)
    with pytest.raises(UserError, match="architecture does not match.*hidden_size 64 vs 128"):
        load_for_inference(other, adapter_dir, device="cpu")


def test_adapter_on_same_shape_different_weights_is_refused(adapter_dir, tmp_path):
    from japanese_ft.eval.loading import load_for_inference

    other = build_model(tmp_path / "reseeded", seed=123)
    with pytest.raises(UserError, match="different weights"):
        load_for_inference(other, adapter_dir, device="cpu")
    model, _ = load_for_inference(other, adapter_dir, device="cpu", allow_base_mismatch=True)
    assert model is not None


def test_adapter_on_copy_of_its_base_is_fine(base_dir, adapter_dir, tmp_path):
    from japanese_ft.eval.loading import load_for_inference

    copy = tmp_path / "copy"
    shutil.copytree(base_dir, copy)
    model, _ = load_for_inference(copy, adapter_dir, device="cpu")
    assert model is not None


def test_adapter_whose_base_is_gone_and_shapes_differ(adapter_dir, tmp_path):
    """With no local base to compare, PEFT's shape check is turned into a UserError."""
    from japanese_ft.eval.loading import load_for_inference

    moved = tmp_path / "adapter"
    shutil.copytree(adapter_dir, moved)
    cfg = json.loads((moved / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "/nonexistent/base"
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    other = build_model(tmp_path / "wide", hidden=128)
    with pytest.raises(UserError, match="does not fit"):
        load_for_inference(other, moved, device="cpu")


def test_bad_model_dirs(base_dir, adapter_dir, tmp_path):
    from japanese_ft.eval.loading import load_for_inference

    with pytest.raises(UserError, match="no such directory"):
        load_for_inference(tmp_path / "missing")
    with pytest.raises(UserError, match="is a LoRA adapter"):
        load_for_inference(adapter_dir)
    no_st = tmp_path / "nost"
    no_st.mkdir()
    (no_st / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(UserError, match="safetensors"):
        load_for_inference(no_st)
    with pytest.raises(UserError, match="not a PEFT adapter"):
        load_for_inference(base_dir, tmp_path)
    with pytest.raises(UserError, match="--dtype"):
        load_for_inference(base_dir, dtype="float8")
