"""benchmarks/train_scaling.py's HF baseline: micro-batches split after an out-of-memory error
give the same optimizer step (the loss is weighted by target tokens over the whole step)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # train_scaling imports hf_baseline by name
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def _model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).float()


def _micro_batches(n_micro=2, rows=4, width=12):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n_micro):
        ids = torch.randint(3, 64, (rows, width), generator=g)
        lengths = torch.randint(4, width + 1, (rows,), generator=g)
        mask = (torch.arange(width)[None] < lengths[:, None]).long()
        labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
        labels[:, :2] = -100  # prompt tokens
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def test_split_micro_batches_give_the_same_step():
    scaling = _load("train_scaling")
    hf = _load("hf_baseline")
    batches = _micro_batches()
    halves = scaling.halve_micro_batches(batches)
    assert len(halves) == 4 and all(h["input_ids"].shape[0] == 2 for h in halves)
    assert torch.equal(torch.cat([h["labels"] for h in halves]), torch.cat([b["labels"] for b in batches]))
    results = []
    for mb in (batches, halves, scaling.halve_micro_batches(halves)):
        model = _model()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = hf.optimizer(params, torch.device("cpu"), lr=1e-2)
        grads, adam_step = [], opt.step

        def step_and_keep_grads(*a, _grads=grads, _step=adam_step, _params=params, **k):
            _grads.extend(p.grad.clone() for p in _params)  # (Adam turns float noise in ~0 gradients into +-lr)
            return _step(*a, **k)

        opt.step = step_and_keep_grads
        loss, _ = hf.step(model, opt, params, mb, torch.device("cpu"), 1e-2)
        results.append((loss, grads))
    (loss0, g0), *others = results
    for loss, g in others:
        assert abs(loss - loss0) < 1e-5
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(g0, g))
    one_row = [{k: v[:1] for k, v in batches[0].items()}]
    try:
        scaling.halve_micro_batches(one_row)
    except RuntimeError as exc:
        assert "does not fit" in str(exc)
    else:
        raise AssertionError("one row cannot be split")
