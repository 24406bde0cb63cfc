"""Perplexity: windowing like training, exact NLL vs a direct computation, bits per char, token files."""

import json
import math

import numpy as np
import pytest

from eval_testutils import TEXTS, run_cli, tiny_model_dir
from japanese_ft.errors import UserError


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from japanese_ft.eval.loading import load_for_inference

    return load_for_inference(tiny_model_dir(tmp_path_factory), device="cpu", dtype="float32")


@pytest.mark.parametrize("n, seq, stride", [(2, 4, 4), (10, 4, 4), (11, 4, 2), (50, 8, 3), (9, 8, 8), (100, 16, 1)])
def test_window_plan_scores_every_target_once(n, seq, stride):
    from japanese_ft.eval.perplexity import window_plan

    plan = window_plan(n, seq, stride)
    scored = []
    for begin, end, k in plan:
        assert 0 < end - begin <= seq and 0 < k <= end - begin
        scored.extend(range(end - k + 1, end + 1))  # target indices (positions in the stream)
    assert scored == list(range(1, n))


def test_default_windows_are_megatron_samples():
    from japanese_ft.eval.perplexity import window_plan

    # seq_length 4, no overlap of inputs: each window is 5 tokens, consecutive windows share one
    assert window_plan(13, 4, 4) == [(0, 4, 4), (4, 8, 4), (8, 12, 4)]


def _direct_nll(model, ids, seq, stride):
    """Per-target NLL with exactly the context each window gives it, one window at a time."""
    import torch

    from japanese_ft.eval.perplexity import window_plan

    total = 0.0
    for begin, end, k in window_plan(len(ids), seq, stride):
        x = torch.tensor([ids[begin:end]])
        with torch.no_grad():
            lp = model(input_ids=x).logits[0].double().log_softmax(-1)
        for pos in range(end - begin - k, end - begin):
            total -= float(lp[pos, ids[begin + pos + 1]])
    return total


def test_stream_nll_matches_direct(loaded):
    from japanese_ft.eval.perplexity import stream_nll

    model, tok = loaded
    ids = np.array(tok("".join(TEXTS[:3]))["input_ids"], dtype=np.int64)
    for seq, stride in [(16, 16), (16, 5), (len(ids) + 5, len(ids) + 5)]:
        total, count, windows = stream_nll(model, ids, seq, stride, batch_size=3)
        assert count == len(ids) - 1
        assert total == pytest.approx(_direct_nll(model, ids.tolist(), seq, stride), rel=1e-5)
    # a single window over the whole text equals the model's own mean loss
    import torch

    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids.tolist()]), labels=torch.tensor([ids.tolist()])).loss
    total, count, _ = stream_nll(model, ids, len(ids), len(ids))
    assert total / count == pytest.approx(float(loss), rel=1e-5)


def _write_jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return path


def test_jsonl_and_token_file_agree(loaded, tmp_path):
    from japanese_ft.data.token_file import TokenFileWriter
    from japanese_ft.eval.perplexity import evaluate_perplexity

    model, tok = loaded
    texts = TEXTS[:4]
    jsonl = _write_jsonl(tmp_path / "held.jsonl", texts)
    writer = TokenFileWriter(tmp_path / "held", np.uint16)
    for t in texts:
        writer.add_document(tok(t)["input_ids"] + [tok.eos_token_id])
    writer.finish()
    a, _ = evaluate_perplexity(model, tok, str(jsonl), seq_length=32)
    b, windows = evaluate_perplexity(model, tok, str(tmp_path / "held"), seq_length=32)
    assert a["data_kind"] == "jsonl" and b["data_kind"] == "token_file"
    n_tokens = sum(len(tok(t)["input_ids"]) + 1 for t in texts)
    assert a["tokens"] == b["tokens"] == n_tokens  # every token incl. EODs scored once
    assert a["characters"] == b["characters"] == sum(len(t) for t in texts)
    assert a["nll"] == pytest.approx(b["nll"], rel=1e-6)
    assert a["perplexity"] == pytest.approx(math.exp(a["nll"]))
    assert a["bits_per_char"] == pytest.approx(a["nll"] * a["tokens"] / math.log(2) / a["characters"])
    assert a["stride"] == 32 and a["seq_length"] == 32
    assert sum(w["scored_tokens"] for w in windows) == b["tokens"]
    lim, _ = evaluate_perplexity(model, tok, str(tmp_path / "held"), seq_length=32, limit=2)
    assert lim["documents"] == 2 and lim["tokens"] == sum(len(tok(t)["input_ids"]) + 1 for t in texts[:2])
    overlap, _ = evaluate_perplexity(model, tok, str(jsonl), seq_length=32, stride=8)
    assert overlap["tokens"] == a["tokens"] and overlap["stride"] == 8


def test_bad_perplexity_input(loaded, tmp_path):
    from japanese_ft.eval.perplexity import evaluate_perplexity

    model, tok = loaded
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="empty"):
        evaluate_perplexity(model, tok, str(tmp_path / "empty.jsonl"), seq_length=16)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "no"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl:2: missing field 'text'"):
        evaluate_perplexity(model, tok, str(tmp_path / "bad.jsonl"), seq_length=16)
    with pytest.raises(UserError, match="stride"):
        evaluate_perplexity(model, tok, str(_write_jsonl(tmp_path / "ok.jsonl", TEXTS[:1])), seq_length=16, stride=32)
    with pytest.raises(UserError, match="max_position_embeddings"):
        evaluate_perplexity(model, tok, str(tmp_path / "ok.jsonl"), seq_length=100000)


def test_cli(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    data = _write_jsonl(tmp_path / "held.jsonl", TEXTS)
    out = tmp_path / "ppl.json"
    code, text = run_cli(["eval", "perplexity", "--model", str(model), "--data", str(data), "--output", str(out),
                          "--seq-length", "64", "--device", "cpu"])
    assert code == 0, text
    res = json.loads(out.read_text())
    for key in ("tokens", "nll", "perplexity", "bits_per_char", "stride"):
        assert key in res
    assert res["stride"] == 64 and res["perplexity"] > 1
    code, text = run_cli(["eval", "perplexity", "--model", str(model), "--data", str(tmp_path / "nothing")])
    assert code == 2
