"""JCommonsenseQA: reading, log-likelihood ranking vs brute force, generation accuracy, CLI."""

import json
import math

import pytest

from eval_testutils import JCQA, JGLUE, run_cli, tiny_model_dir, write_jcqa
from japanese_ft.errors import UserError


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from japanese_ft.eval.loading import load_for_inference

    return load_for_inference(tiny_model_dir(tmp_path_factory), device="cpu", dtype="float32")


def _brute_force_logprob(model, tok, context, continuation):
    """Sum of log p(token | prefix), one forward pass per continuation token, no batching."""
    import torch

    ctx = tok(context)["input_ids"]
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    total = 0.0
    for k, t in enumerate(cont):
        ids = torch.tensor([ctx + cont[:k]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].double()
        total += float(logits.log_softmax(-1)[t])
    return total


def test_ranking_matches_brute_force(loaded):
    from japanese_ft.eval.jcommonsenseqa import MCItem, ranking_scores
    from japanese_ft.eval.prompts import jcqa_ranking_context

    model, tok = loaded
    items = [MCItem(str(r["q_id"]), r["question"], [r[f"choice{i}"] for i in range(5)], r["label"]) for r in JCQA]
    got = ranking_scores(model, tok, items, lambda it: [], batch_size=3)
    for it, scores in zip(items, got):
        ctx = jcqa_ranking_context(it.question)
        expected = [_brute_force_logprob(model, tok, ctx, c) / len(c) for c in it.choices]
        assert scores == pytest.approx(expected, rel=1e-4, abs=1e-4)
        assert max(range(5), key=lambda j: scores[j]) == max(range(5), key=lambda j: expected[j])


def test_evaluate_reports_both_accuracies(loaded, monkeypatch):
    from japanese_ft.eval import jcommonsenseqa as jc
    from japanese_ft.eval.generation import Generated

    model, tok = loaded
    items = [jc.MCItem(str(r["q_id"]), r["question"], [r[f"choice{i}"] for i in range(5)], r["label"]) for r in JCQA]
    monkeypatch.setattr("japanese_ft.eval.generation.generate",
                        lambda m, t, prompts, n, batch_size=8, **kw: [Generated(x, 1, True) for x in ["0", "１", "4", "x"]])
    scores = jc.ranking_scores(model, tok, items, lambda it: [])
    summary, records = jc.evaluate_jcommonsenseqa(model, tok, items, shots=1)
    ranked_ok = [float(max(range(5), key=lambda j: s[j]) == it.label) for s, it in zip(scores, items)]
    assert summary["accuracy"] == pytest.approx(sum(ranked_ok) / 4)
    assert summary["accuracy_generation"] == 0.5  # "0" and full-width "１" (NFKC) are right
    assert summary["n"] == 4
    for it, rec in zip(items, records):
        assert rec["gold"] == str(it.label)
        assert rec["prompt"].count("### 入力:") == 2 and it.question in rec["prompt"].rsplit("### 入力:", 1)[1]
        assert it.question not in rec["prompt"].rsplit("### 入力:", 1)[0]  # never its own shot


def test_real_generation_runs(loaded):
    from japanese_ft.eval import jcommonsenseqa as jc

    model, tok = loaded
    items = [jc.MCItem(str(r["q_id"]), r["question"], [r[f"choice{i}"] for i in range(5)], r["label"]) for r in JCQA]
    summary, records = jc.evaluate_jcommonsenseqa(model, tok, items, batch_size=2)
    assert 0.0 <= summary["accuracy_generation"] <= 1.0
    assert all(math.isfinite(s) for r in records for s in r["ranking_scores"])


def test_reader_errors_name_file_and_line(tmp_path):
    from japanese_ft.eval.jcommonsenseqa import read_jcommonsenseqa

    recs = [dict(r) for r in JCQA]
    del recs[2]["choice3"]
    path = write_jcqa(tmp_path / "bad.jsonl", recs)
    with pytest.raises(UserError, match=r"bad.jsonl:3 \(q_id 3\): missing field 'choice3'"):
        read_jcommonsenseqa(path)
    recs = [dict(r) for r in JCQA]
    recs[0]["label"] = 7
    with pytest.raises(UserError, match=r"bad2.jsonl:1.*label 7"):
        read_jcommonsenseqa(write_jcqa(tmp_path / "bad2.jsonl", recs))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="empty"):
        read_jcommonsenseqa(tmp_path / "empty.jsonl")
    (tmp_path / "junk.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="junk.jsonl:1: invalid JSON"):
        read_jcommonsenseqa(tmp_path / "junk.jsonl")


def test_cli(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    out = tmp_path / "jc.json"
    code, text = run_cli(["eval", "jcommonsenseqa", "--model", str(model), "--data", str(write_jcqa(tmp_path / "d.jsonl")),
                          "--output", str(out), "--device", "cpu", "--limit", "3", "--label", "tiny-base"])
    assert code == 0, text
    res = json.loads(out.read_text())
    assert res["n"] == 3 and res["label"] == "tiny-base"
    assert set(["accuracy", "accuracy_generation"]) <= set(res)
    assert len((tmp_path / "jc.examples.jsonl").read_text().splitlines()) == 3
    (tmp_path / "empty.jsonl").write_text("\n\n")
    code, text = run_cli(["eval", "jcommonsenseqa", "--model", str(model), "--data", str(tmp_path / "empty.jsonl")])
    assert code == 2 and "empty" in text


@pytest.mark.shared
@pytest.mark.skipif(not (JGLUE / "jcommonsenseqa-valid-v1.3.json").exists(), reason="../shared/data/jglue absent")
def test_reads_real_jcommonsenseqa_validation():
    from japanese_ft.eval.jcommonsenseqa import read_jcommonsenseqa

    items = read_jcommonsenseqa(JGLUE / "jcommonsenseqa-valid-v1.3.json")
    assert len(items) == 1119
    assert all(0 <= it.label < 5 for it in items)
