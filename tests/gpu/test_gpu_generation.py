"""Generation on CUDA: the static cache with its captured CUDA-graph decode step gives the same
greedy outputs as the dynamic cache and as one prompt at a time. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from eval_testutils import TEXTS, tiny_model_dir

PROMPTS = TEXTS + ["富士山", "日本", "質問"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from japanese_ft.eval.loading import load_for_inference

    torch.set_float32_matmul_precision("highest")  # fp32 without TF32: batched == unbatched exactly
    return load_for_inference(tiny_model_dir(tmp_path_factory), device="cuda", dtype="float32")


def test_static_graph_equals_dynamic_and_one_at_a_time(loaded):
    from japanese_ft.eval.decoding import Decoder, resolve_cache
    from japanese_ft.eval.generation import generate

    model, tok = loaded
    assert resolve_cache("auto", model) == "static"
    one = [generate(model, tok, [p], 16, batch_size=1, stop_ids=[], cache="dynamic")[0].text for p in PROMPTS]
    assert len(set(one)) > 3
    dynamic = [g.text for g in generate(model, tok, PROMPTS, 16, batch_size=4, stop_ids=[], cache="dynamic")]
    static = [g.text for g in generate(model, tok, PROMPTS, 16, batch_size=4, stop_ids=[], cache="static")]
    assert dynamic == one and static == one
    decoder = Decoder(model, "static")
    rows = [tok(p)["input_ids"] for p in PROMPTS[:4]]
    decoder.decode(rows, 8, tok.pad_token_id, [])
    assert decoder.static.graph is not None  # the decode step really ran as a CUDA graph


def test_auto_batch_size_uses_free_memory(loaded):
    from japanese_ft.eval.decoding import auto_batch_size

    model, _ = loaded
    assert auto_batch_size(model, [300] * 4000, 25) > 64
    assert auto_batch_size(model, [300] * 3, 25) == 3
