"""runtime.py: one dtype spelling (aliases resolved) and device resolution."""

from __future__ import annotations

import json

import pytest
import torch

from japanese_ft.errors import UserError
from japanese_ft.runtime import dtype_name, resolve_device, resolve_dtype, stored_dtype, torch_dtype


def test_dtype_names_and_aliases():
    assert [dtype_name(n) for n in ("bf16", "bfloat16", "torch.bfloat16", "fp16", "half", "fp32", "float")] == [
        "bfloat16", "bfloat16", "bfloat16", "float16", "float16", "float32", "float32"]
    assert torch_dtype("bf16") is torch.bfloat16 and torch_dtype(torch.float16) is torch.float16
    with pytest.raises(UserError, match="model.dtype: 'int8' is not one of bfloat16, float16, float32"):
        dtype_name("int8", "model.dtype")


def test_auto_dtype_and_device_on_this_machine():
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("fp32", "cpu") is torch.float32
    with pytest.raises(UserError, match="--dtype: 'fp8' is not one of auto, bfloat16, float16, float32"):
        resolve_dtype("fp8", "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="train.device cuda: CUDA is not available"):
            resolve_device("cuda", "train.device")


def test_stored_dtype_reads_config_json(tmp_path):
    assert stored_dtype(tmp_path) == "float32"  # no config.json: the default
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert stored_dtype(tmp_path) == "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "int8"}))
    assert stored_dtype(tmp_path, default="float16") == "float16"
