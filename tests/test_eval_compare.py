"""compare (table + PNG), eval suite (YAML), generate and chat commands."""

import json

import pytest

from eval_testutils import TEXTS, run_cli, tiny_model_dir, write_jcqa, write_squad
from japanese_ft.errors import UserError


def _result(path, label, **scores):
    task = "jsquad" if "char_f1" in scores else "jcommonsenseqa" if "accuracy" in scores else "perplexity"
    path.write_text(json.dumps({"task": task, "label": label, **scores}), encoding="utf-8")
    return path


def test_compare_table_and_chart(tmp_path):
    from japanese_ft.eval.compare import bar_chart, compare, format_table

    base = _result(tmp_path / "base.json", "base", char_f1=0.40, exact_match=0.20)
    cpt = _result(tmp_path / "cpt.json", "cpt", char_f1=0.55, exact_match=0.30)
    ppl_b = _result(tmp_path / "pb.json", "base", perplexity=20.0, bits_per_char=2.0)
    res = compare([base, cpt])
    assert res["labels"] == ["base", "cpt"]
    assert res["table"]["jsquad.char_f1"] == [0.40, 0.55]
    rows = format_table(res)
    assert rows[0] == ["jsquad.char_f1", "raw", "0.4000", "0.5500", "+0.1500 better"]  # no "format" field: raw
    png = bar_chart(res, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # lower perplexity is better; missing metrics show as '-'
    ppl_c = _result(tmp_path / "pc.json", "cpt", perplexity=15.0, bits_per_char=1.7)
    rows = format_table(compare([ppl_b, ppl_c], labels=["before", "after"]))
    assert rows[0][-1] == "-5.0000 better"
    mixed = format_table(compare([base, ppl_c]))
    assert mixed[0][1:4] == ["raw", "0.4000", "-"]
    assert mixed[-1][:2] == ["perplexity.bits_per_char", "-"]
    with pytest.raises(UserError, match="labels"):
        compare([base, cpt], labels=["one"])
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(UserError, match="not a jft result"):
        compare([tmp_path / "junk.json"])


def test_compare_keeps_formats_and_protocols_apart(tmp_path):
    from japanese_ft.eval.compare import compare, format_table

    base = _result(tmp_path / "base.json", "base", char_f1=0.40, exact_match=0.20)
    suite = {"task": "suite", "label": "sft", "results": {
        "jsquad": {"task": "jsquad", "format": "raw", "protocol": "jft", "char_f1": 0.5, "exact_match": 0.3},
        "jsquad_chat": {"task": "jsquad", "format": "chat", "protocol": "jft", "char_f1": 0.7, "exact_match": 0.5},
        "jsquad_ljp": {"task": "jsquad", "format": "raw", "protocol": "llm-jp-eval", "char_f1": 0.6, "exact_match": 0.4},
        "jcqa": {"task": "jcommonsenseqa", "format": "chat", "ranking_format": "raw", "protocol": "jft",
                 "accuracy": 0.3, "accuracy_generation": 0.25}}}
    (tmp_path / "sft.json").write_text(json.dumps(suite))
    res = compare([base, tmp_path / "sft.json"])
    assert res["table"]["jsquad.char_f1"] == [0.40, 0.5]  # raw vs raw: one row
    assert res["table"]["jsquad_chat.char_f1 [chat]"] == [None, 0.7]
    assert res["table"]["jsquad_ljp.char_f1 [llm-jp-eval]"] == [None, 0.6]
    assert res["formats"]["jcqa.accuracy"] == "raw" and res["formats"]["jcqa.accuracy_generation [chat]"] == "chat"
    rows = {r[0]: r for r in format_table(res)}
    assert rows["jsquad_chat.char_f1 [chat]"][1:4] == ["chat", "-", "0.7000"]
    code, text = run_cli(["compare", str(base), str(tmp_path / "sft.json"), "--chart", str(tmp_path / "c.png")])
    assert code == 0 and "format" in text and "chat" in text


def test_compare_reads_suites_and_cli(tmp_path):
    suite = {"task": "suite", "label": "lora", "results": {
        "jsquad": {"task": "jsquad", "char_f1": 0.6, "exact_match": 0.4, "n": 10},
        "ppl": {"task": "perplexity", "perplexity": 12.0, "bits_per_char": 1.5}}}
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    base = _result(tmp_path / "base.json", "base", char_f1=0.40, exact_match=0.20)
    code, text = run_cli(["compare", str(base), str(tmp_path / "suite.json"), "--chart", str(tmp_path / "c.png")])
    assert code == 0, text
    assert "jsquad.char_f1" in text and "ppl.perplexity" in text and "lora" in text
    assert (tmp_path / "c.png").exists()
    code, text = run_cli(["compare", str(tmp_path / "missing.json")])
    assert code == 2


def test_suite_config_validation(tmp_path):
    from japanese_ft.eval.suite import load_suite_config

    cfg = tmp_path / "e.yaml"
    cfg.write_text("evals:\n  - task: jsquad\n    data: d.json\n    shotz: 2\n")
    with pytest.raises(UserError, match="unknown keys.*shotz"):
        load_suite_config(cfg)
    cfg.write_text("evals:\n  - task: mmlu\n    data: x\n")
    with pytest.raises(UserError, match="unknown task"):
        load_suite_config(cfg)
    cfg.write_text("batch_size: 3\nevals:\n  - task: perplexity\n    data: sub/d.jsonl\n  - task: perplexity\n    data: /abs.jsonl\n")
    entries = load_suite_config(cfg)
    assert [e.name for e in entries] == ["perplexity", "perplexity_2"]
    assert entries[0].data == str(tmp_path / "sub" / "d.jsonl") and entries[1].data == "/abs.jsonl"
    assert entries[0].batch_size == 3


def test_suite_cli(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    write_squad(tmp_path / "s.json")
    write_jcqa(tmp_path / "j.jsonl")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS))
    cfg = tmp_path / "evals.yaml"
    cfg.write_text(
        "batch_size: 4\nevals:\n"
        "  - {task: jsquad, data: s.json, shots: 1, max_new_tokens: 3}\n"
        "  - {task: jcommonsenseqa, data: j.jsonl}\n"
        "  - {task: perplexity, data: t.jsonl, seq_length: 32}\n"
    )
    out = tmp_path / "out" / "suite.json"
    code, text = run_cli(["eval", "suite", "--model", str(model), "--config", str(cfg), "--output", str(out), "--device", "cpu", "--limit", "2"])
    assert code == 0, text
    res = json.loads(out.read_text())
    assert set(res["results"]) == {"jsquad", "jcommonsenseqa", "perplexity"}
    assert res["results"]["jsquad"]["n"] == 2 and res["results"]["jcommonsenseqa"]["n"] == 2
    assert res["results"]["perplexity"]["documents"] == 2
    assert (tmp_path / "out" / "suite.jsquad.examples.jsonl").exists()
    code, text = run_cli(["compare", str(out)])
    assert code == 0 and "jsquad.char_f1" in text


def test_generate_and_chat_cli(tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory)
    code, text = run_cli(["generate", "--model", str(model), "--prompt", "富士山は", "--max-new-tokens", "5", "--device", "cpu"])
    assert code == 0, text
    assert "tokens" in text
    code, text2 = run_cli(["generate", "--model", str(model), "--prompt", "富士山は", "--max-new-tokens", "5", "--chat",
                           "--temperature", "0.8", "--top-p", "0.9", "--seed", "3", "--device", "cpu"])
    assert code == 0, text2
    code, text3 = run_cli(["generate", "--model", str(model), "--prompt", "x", "--top-p", "0"])
    assert code == 2 and "--top-p" in text3
    code, chat = run_cli(["chat", "--model", str(model), "--max-new-tokens", "3", "--device", "cpu"],
                         stdin="こんにちは\n/reset\n日本\n/exit\n")
    assert code == 0, chat
    assert chat.count("assistant>") == 2 and "(history cleared)" in chat
    # stdin is a pipe: no banner, no "you> " prompts; each reply on its own line
    assert "you>" not in chat and "type a message" not in chat
    assert chat.count("\nassistant> ") + chat.startswith("assistant> ") == 2, chat
