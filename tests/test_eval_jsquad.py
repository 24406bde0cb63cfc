"""JSQuAD: reading, shot selection, scoring on a tiny model, the CLI and bad input."""

import json

import pytest

from eval_testutils import JGLUE, SQUAD, run_cli, tiny_model_dir, write_squad
from japanese_ft.errors import UserError


def test_read_squad_keeps_context_and_skips_unanswerable(tmp_path):
    from japanese_ft.eval.jsquad import read_squad

    items, skipped = read_squad(write_squad(tmp_path / "s.json"))
    assert [it.id for it in items] == ["q1", "q2", "q3", "q5"]
    assert skipped == 1
    assert items[0].context.startswith("富士山 [SEP] ")
    assert items[1].answers == ["3776メートル", "3776"]
    stripped, _ = read_squad(tmp_path / "s.json", strip_title=True)
    assert stripped[0].context.startswith("富士山は静岡県")


def test_missing_field_names_question(tmp_path):
    from japanese_ft.eval.jsquad import read_squad

    bad = json.loads(json.dumps(SQUAD))
    del bad["data"][0]["paragraphs"][0]["qas"][1]["question"]
    with pytest.raises(UserError, match="q2"):
        read_squad(write_squad(tmp_path / "bad.json", bad))


def test_empty_files_are_errors(tmp_path):
    from japanese_ft.eval.jsquad import read_squad

    (tmp_path / "empty.json").write_text("")
    with pytest.raises(UserError, match="empty"):
        read_squad(tmp_path / "empty.json")
    with pytest.raises(UserError, match="no answerable questions"):
        read_squad(write_squad(tmp_path / "none.json", {"data": []}))


def test_shots_never_include_the_question_and_are_deterministic(tmp_path):
    from japanese_ft.eval.jsquad import build_prompts, read_squad

    items, _ = read_squad(write_squad(tmp_path / "s.json"))
    a = build_prompts(items, shots=2, seed=0)
    assert a == build_prompts(items, shots=2, seed=0)
    for it, prompt in zip(items, a):
        # the question's own passage appears exactly once: as the final input
        assert prompt.count(it.context) == 1
        assert prompt.count("### 入力:") == 3
        assert prompt.endswith(f"### 入力:\n文章：{it.context}\n質問：{it.question}\n\n### 応答:\n")
    assert build_prompts(items, shots=2, seed=1) != a or len(items) <= 3
    with pytest.raises(UserError, match="--shots 9"):
        build_prompts(items, shots=9)


def test_shots_from_separate_file(tmp_path):
    from japanese_ft.eval.jsquad import build_prompts, read_shots, read_squad

    items, _ = read_squad(write_squad(tmp_path / "s.json"))
    shots_file = tmp_path / "shots.jsonl"
    shots_file.write_text(
        "\n".join(json.dumps({"input": f"文章：例{i}\n質問：問{i}", "output": f"答{i}"}, ensure_ascii=False) for i in range(3)),
        encoding="utf-8",
    )
    pool = read_shots(shots_file)
    prompts = build_prompts(items, shots=2, shot_pool=pool)
    assert all(p.count("文章：例") == 2 for p in prompts)
    assert len(set(p.split("### 入力:\n文章：" + items[0].context)[0] for p in prompts[:1])) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="bad.jsonl:1"):
        read_shots(bad)


def test_evaluate_scores_predictions(tmp_path_factory, tmp_path, monkeypatch):
    """Scores are computed from the post-processed generation (cut at the blank line)."""
    from japanese_ft.eval import jsquad
    from japanese_ft.eval.generation import Generated
    from japanese_ft.eval.loading import load_for_inference

    model, tok = load_for_inference(tiny_model_dir(tmp_path_factory), device="cpu", dtype="float32")
    items, _ = jsquad.read_squad(write_squad(tmp_path / "s.json"))
    canned = ["静岡県と山梨県\n\n### 入力:", "3776", "滋賀県庁", "ｷｮｳﾄ"]

    def fake_generate(model, tok, prompts, max_new_tokens, batch_size=8, progress=None, **kw):
        assert max_new_tokens == 25
        return [Generated(c, 3, True) for c in canned]

    monkeypatch.setattr("japanese_ft.eval.generation.generate", fake_generate)
    summary, records = jsquad.evaluate_jsquad(model, tok, items)
    assert [r["prediction"] for r in records] == ["静岡県と山梨県", "3776", "滋賀県庁", "ｷｮｳﾄ"]
    # 2M/T as whole percentages (llm-jp-eval rounds): 8/12 -> 0.67, 6/7 -> 0.86
    f1 = [1.0, 0.67, 0.86, 0.0]
    assert [r["char_f1"] for r in records] == pytest.approx(f1)
    assert summary["char_f1"] == pytest.approx(sum(f1) / 4)
    assert summary["exact_match"] == 0.25
    assert records[1]["char_f1_best"] == 1.0  # second gold answer is "3776"
    assert summary["n"] == 4


def test_cli_end_to_end(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    data = write_squad(tmp_path / "s.json")
    out = tmp_path / "res" / "jsquad.json"
    code, text = run_cli(["eval", "jsquad", "--model", str(model), "--data", str(data), "--output", str(out),
                          "--shots", "1", "--limit", "3", "--batch-size", "2", "--device", "cpu", "--max-new-tokens", "4"])
    assert code == 0, text
    res = json.loads(out.read_text())
    assert res["task"] == "jsquad" and res["n"] == 3 and res["shots"] == 1
    assert 0.0 <= res["char_f1"] <= 1.0 and 0.0 <= res["exact_match"] <= 1.0
    assert res["model_info"]["model"] == str(model) and res["model_info"]["parameters"] > 0
    examples = [json.loads(l) for l in (tmp_path / "res" / "jsquad.examples.jsonl").read_text().splitlines()]
    assert len(examples) == 3
    assert {"prompt", "prediction", "gold", "score"} <= set(examples[0])
    assert "char_f1" in text


def test_cli_bad_input_exits_2(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    (tmp_path / "empty.json").write_text("  \n")
    code, text = run_cli(["eval", "jsquad", "--model", str(model), "--data", str(tmp_path / "empty.json")])
    assert code == 2 and "empty" in text
    code, text = run_cli(["eval", "jsquad", "--model", str(tmp_path / "nope"), "--data", str(write_squad(tmp_path / "s.json"))])
    assert code == 2 and "no such directory" in text


@pytest.mark.shared
@pytest.mark.skipif(not (JGLUE / "jsquad-valid-v1.3.json").exists(), reason="../shared/data/jglue absent")
def test_reads_real_jsquad_validation():
    from japanese_ft.eval.jsquad import build_prompts, read_squad

    items, skipped = read_squad(JGLUE / "jsquad-valid-v1.3.json")
    assert len(items) == 4442 and skipped == 0
    prompts = build_prompts(items[:5], shots=2, pool_items=items)
    assert all(p.count("### 入力:") == 3 for p in prompts)
