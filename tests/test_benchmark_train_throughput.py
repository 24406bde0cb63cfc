"""benchmarks/train_throughput.py runs end to end on CPU with a tiny model (the GPU path's smoke test)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_throughput"] = mod  # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_all_modes(tmp_path):
    mod = load_script()
    out = tmp_path / "result.json"
    assert mod.main(["--dry-run", "--steps", "3", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["variant"] for r in data["results"]] == [
        "cpt:a_hf_eager", "cpt:b_jft", "sft:a_hf_eager", "sft:b_jft", "lora:a_hf_eager", "lora:b_jft"]
    assert all(r["ok"] for r in data["results"])
    for c in data["comparisons"]:
        # fp32 on CPU, same data and init: (b)'s loss curve is (a)'s up to rounding
        assert c["ok"] and c["loss_max_rel_diff"] < 1e-4, c


def test_sft_rows_keep_documents_apart():
    from japanese_ft.data.sft import IGNORE_INDEX

    mod = load_script()
    (b,) = mod.make_batches("sft", 1, 2, 128, 300, seed=0)
    pos, labels = b["position_ids"], b["labels"]
    starts = (pos == 0).nonzero().tolist()
    assert len(starts) > 2  # several documents per row
    for r, t in starts:  # no example predicts across a boundary
        assert labels[r, t] == IGNORE_INDEX
    # real tokens: not padding, or padding-valued but trained on (a closing EOS that equals the pad id)
    assert b["num_tokens"] == int(((b["input_ids"] != 0) | (labels != IGNORE_INDEX)).sum())


def test_benchmark_times_the_engines_step():
    """(b) is the engine: the script's step calls train/step.py's train_step and make_engine."""
    from japanese_ft.train import step

    mod = load_script()
    assert mod.train_step is step.train_step and mod.make_engine is step.make_engine
