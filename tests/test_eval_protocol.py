"""eval jsquad/jcommonsenseqa: --chat (the llm-jp-eval prompt as one user turn) and
--protocol llm-jp-eval (v1.3.0's shot selection, 4 shots, stop at EOS only)."""

from __future__ import annotations

import json
import random

import pytest

from eval_testutils import JCQA, run_cli, tiny_model_dir, write_jcqa, write_squad
from japanese_ft.errors import UserError


def _train_squad(n: int = 12) -> dict:
    """A 'train split' of n questions over n/2 passages, JSQuAD-style contexts with the title prefix."""
    data = []
    for a in range(n // 2):
        title = f"記事{a}"
        data.append({"title": title, "paragraphs": [{"context": f"{title} [SEP] 本文{a}は説明である。", "qas": [
            {"id": f"t{a}-{k}", "question": f"質問{a}-{k}は？", "answers": [{"text": f"答え{a}-{k}", "answer_start": 0}]}
            for k in range(2)]}]})
    return {"version": "v1.1", "data": data}


def _spy(monkeypatch):
    """Record the prompt ids and stop ids of every batch the decoder runs (eval.decoding.Decoder)."""
    from japanese_ft.eval.decoding import Decoder

    calls = []
    original = Decoder.decode

    def decode(self, rows, max_new_tokens, pad_id, stop_ids, *args, **kw):
        calls.append({"ids": [list(r) for r in rows], "eos": list(stop_ids)})
        return original(self, rows, max_new_tokens, pad_id, stop_ids, *args, **kw)

    monkeypatch.setattr(Decoder, "decode", decode)
    return calls


@pytest.fixture()
def loaded(tmp_path_factory):
    from japanese_ft.eval.loading import load_for_inference

    return load_for_inference(tiny_model_dir(tmp_path_factory), device="cpu")


def test_llm_jp_eval_shots_are_its_seeded_train_split_head():
    from japanese_ft.eval.protocol import llm_jp_eval_shots

    samples = [f"sample{i}" for i in range(37)]
    # llm-jp-eval v1.3.0, transcribed: preprocessing shuffles the train file's samples with seed 42 and
    # keeps the first 90 % as its train split; the evaluator takes the first num_few_shots of that split
    reference = list(samples)
    random.seed(42)
    random.shuffle(reference)
    reference = reference[: int(len(reference) * 0.9)][:4]
    assert llm_jp_eval_shots(samples, 4) == reference
    assert llm_jp_eval_shots(samples, 0) == []
    with pytest.raises(UserError, match="only 3 examples"):
        llm_jp_eval_shots(samples[:4], 4)  # int(4 * 0.9) = 3


def test_llm_jp_eval_prompts_use_the_same_train_shots_for_every_question(tmp_path):
    from japanese_ft.eval.jsquad import protocol_prompts, read_squad
    from japanese_ft.eval.prompts import Shot, jsquad_prompt
    from japanese_ft.eval.protocol import llm_jp_eval_shots

    items, _ = read_squad(write_squad(tmp_path / "valid.json"))
    train, _ = read_squad(write_squad(tmp_path / "train.json", _train_squad()))
    pool = [Shot(it.input, it.answers[0]) for it in train]
    prompts = protocol_prompts(items, "llm-jp-eval", 4, pool, seed=42)
    shots = llm_jp_eval_shots(pool, 4)
    assert prompts == [jsquad_prompt(it.context, it.question, shots) for it in items]
    assert all(p.count("### 入力:") == 5 and p.count("記事") >= 4 for p in prompts)
    assert "文章：記事" in prompts[0] and " [SEP] " in prompts[0]  # contexts as stored, title prefix kept
    assert protocol_prompts(items, "jft", 1, None, items, seed=0) != protocol_prompts(items, "llm-jp-eval", 1, pool, seed=42)


def test_stop_tokens_per_protocol_and_format(loaded, tmp_path, monkeypatch):
    from japanese_ft.eval.jsquad import evaluate_jsquad, read_squad
    from japanese_ft.text.chat import render_chatml

    model, tok = loaded
    calls = _spy(monkeypatch)
    items, _ = read_squad(write_squad(tmp_path / "s.json"))
    eos, im_end = tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")
    raw, raw_recs = evaluate_jsquad(model, tok, items[:2], batch_size=1, max_new_tokens=2)
    ljp, _ = evaluate_jsquad(model, tok, items[:2], batch_size=1, max_new_tokens=2, protocol="llm-jp-eval")
    chat, chat_recs = evaluate_jsquad(model, tok, items[:2], batch_size=1, max_new_tokens=2, chat=True)
    # jft: tokens.stop_token_ids (end-of-turn, then EOS); llm-jp-eval: EOS only
    assert [c["eos"] for c in calls[::2]] == [[im_end, eos], [eos], [im_end, eos]]
    assert (raw["format"], raw["protocol"], ljp["protocol"], chat["format"]) == ("raw", "jft", "llm-jp-eval", "chat")
    # chat: the raw prompt as one user turn of the template (ChatML here), sent without extra special tokens
    for rec, chat_rec, call in zip(raw_recs, chat_recs, calls[4:]):
        text = render_chatml([{"role": "user", "content": rec["prompt"]}], add_generation_prompt=True)
        assert chat_rec["prompt"] == text  # the examples file keeps the prompt actually sent
        assert call["ids"][0] == tok(text, add_special_tokens=False)["input_ids"]


def test_jcqa_chat_changes_the_generation_prompt_not_the_ranking(loaded, tmp_path):
    from japanese_ft.eval.jcommonsenseqa import evaluate_jcommonsenseqa, read_jcommonsenseqa

    model, tok = loaded
    items = read_jcommonsenseqa(write_jcqa(tmp_path / "j.jsonl"))
    raw, raw_recs = evaluate_jcommonsenseqa(model, tok, items, shots=1)
    chat, chat_recs = evaluate_jcommonsenseqa(model, tok, items, shots=1, chat=True)
    assert [r["ranking_scores"] for r in raw_recs] == [r["ranking_scores"] for r in chat_recs]
    assert chat["accuracy"] == raw["accuracy"] and chat["ranking_format"] == "raw" and chat["format"] == "chat"
    assert all(c["prompt"].startswith("<|im_start|>user\n以下は") and c["prompt"].endswith("<|im_start|>assistant\n")
               for c in chat_recs)
    # llm-jp-eval protocol: the same seeded train shots for every question, in both scores
    train = [dict(r, q_id=100 + i, question=r["question"] + f"({i})") for i, r in enumerate(JCQA * 3)]
    pool = read_jcommonsenseqa(write_jcqa(tmp_path / "train.jsonl", train))
    _, recs = evaluate_jcommonsenseqa(model, tok, items, shots=2, pool_items=pool, seed=42, protocol="llm-jp-eval")
    heads = {r["prompt"].split("### 入力:")[1:3].__repr__() for r in recs}
    assert len(heads) == 1


def test_cli_protocol_and_chat_options(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    data = write_squad(tmp_path / "valid.json")
    train = write_squad(tmp_path / "train.json", _train_squad())
    base = ["eval", "jsquad", "--model", str(model), "--data", str(data), "--device", "cpu", "--limit", "2"]
    code, text = run_cli(base + ["--protocol", "llm-jp-eval"])
    assert code == 2 and "JSQuAD train split" in text and "--shots-file" in text
    for extra, message in ((["--chat"], "--chat is not part"), (["--max-new-tokens", "10"], "at most 25"),
                           (["--strip-title"], "--strip-title is not part"), (["--shots-file", str(data)], "evaluation data itself")):
        code, text = run_cli(base + ["--protocol", "llm-jp-eval", "--shots-file", str(train)] + extra
                             if extra[0] != "--shots-file" else base + ["--protocol", "llm-jp-eval"] + extra)
        assert code == 2 and message in text, (extra, text)
    out = tmp_path / "ljp.json"
    code, text = run_cli(base + ["--protocol", "llm-jp-eval", "--shots-file", str(train), "--max-new-tokens", "25",
                                 "--output", str(out)])
    assert code == 0, text
    res = json.loads(out.read_text())
    assert (res["protocol"], res["shots"], res["settings"]["seed"], res["max_new_tokens"]) == ("llm-jp-eval", 4, 42, 25)
    out = tmp_path / "chat.json"
    code, text = run_cli(base + ["--chat", "--max-new-tokens", "2", "--output", str(out)])
    assert code == 0, text
    assert json.loads(out.read_text())["format"] == "chat"
    first = json.loads((tmp_path / "chat.examples.jsonl").read_text().splitlines()[0])
    assert first["prompt"].startswith("<|im_start|>user\n以下は")
    jcqa = ["eval", "jcommonsenseqa", "--model", str(model), "--data", str(write_jcqa(tmp_path / "j.jsonl")),
            "--device", "cpu", "--protocol", "llm-jp-eval"]
    code, text = run_cli(jcqa)
    assert code == 2 and "JCommonsenseQA train split as JSONL" in text
    code, text = run_cli(jcqa + ["--shots", "0", "--no-generation"])
    assert code == 2 and "--no-generation is not part" in text


def test_suite_entries_take_chat_and_protocol(tmp_path_factory, tmp_path):
    model = tiny_model_dir(tmp_path_factory)
    write_squad(tmp_path / "s.json")
    write_squad(tmp_path / "train.json", _train_squad())
    cfg = tmp_path / "evals.yaml"
    cfg.write_text("evals:\n"
                   "  - {task: jsquad, data: s.json, max_new_tokens: 2}\n"
                   "  - {name: jsquad_chat, task: jsquad, data: s.json, max_new_tokens: 2, chat: true}\n"
                   "  - {name: jsquad_ljp, task: jsquad, data: s.json, protocol: llm-jp-eval, shots: 1, shots_file: train.json}\n")
    out = tmp_path / "suite.json"
    code, text = run_cli(["eval", "suite", "--model", str(model), "--config", str(cfg), "--output", str(out),
                          "--device", "cpu", "--limit", "1"])
    assert code == 0, text
    res = json.loads(out.read_text())["results"]
    assert [(r["format"], r["protocol"]) for r in res.values()] == [("raw", "jft"), ("chat", "jft"), ("raw", "llm-jp-eval")]
    assert "jsquad_chat.char_f1 [chat]" in text and "jsquad_ljp.char_f1 [llm-jp-eval]" in text
    cfg.write_text("evals:\n  - {task: jsquad, data: s.json, protocol: llm-jp-eval, chat: true}\n")
    code, text = run_cli(["eval", "suite", "--model", str(model), "--config", str(cfg), "--device", "cpu"])
    assert code == 2 and "--chat is not part" in text and "loaded" not in text  # refused before the model load
