"""convert-squad and iter_squad on small handwritten SQuAD v1/v2 files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.data.squad import SquadQuestion, convert_squad, iter_squad, squad_input, strip_title_prefix
from japanese_ft.errors import UserError

JSQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "jglue" / "jsquad-valid-v1.3.json"

CTX_1 = "鳴門海峡は、淡路島と大毛島の間にある海峡である。春と秋の大潮の時期には、直径20メートルに達する渦潮が見られる。"
CTX_2 = "風鈴は、夏に軒下につるして音を楽しむ小さな鐘である。江戸時代にはガラス製の風鈴が広まった。"

V1 = {
    "version": "v1.1",
    "data": [
        {
            "title": "鳴門海峡",
            "paragraphs": [
                {
                    "context": f"鳴門海峡 [SEP] {CTX_1}",
                    "qas": [
                        {"id": "n-q1", "question": "鳴門海峡はどの島とどの島の間にあるか。",
                         "answers": [{"text": "淡路島と大毛島", "answer_start": 6}, {"text": "淡路島と大毛島の間", "answer_start": 6}]},
                        {"id": "n-q2", "question": "渦潮の直径は最大で何メートルか。",
                         "answers": [{"text": "20メートル", "answer_start": 41}]},
                    ],
                }
            ],
        },
        {
            "title": "風鈴",
            "paragraphs": [
                {"context": f"風鈴 [SEP] {CTX_2}",
                 "qas": [{"id": "f-q1", "question": "江戸時代に広まった風鈴の素材は何か。", "answers": [{"text": "ガラス", "answer_start": 32}]}]}
            ],
        },
    ],
}

V2 = {
    "version": "v2.0",
    "data": [
        {
            "title": "風鈴",
            "paragraphs": [
                {
                    "context": CTX_2,  # plain SQuAD: no [SEP] prefix
                    "qas": [
                        {"id": "v2-1", "question": "風鈴はどこにつるすか。", "answers": [{"text": "軒下", "answer_start": 9}], "is_impossible": False},
                        {"id": "v2-2", "question": "風鈴を発明したのは誰か。", "answers": [], "plausible_answers": [{"text": "江戸", "answer_start": 27}],
                         "is_impossible": True},
                        {"id": "v2-3", "question": "風鈴は何を楽しむものか。", "answers": [{"text": "音", "answer_start": 20}], "is_impossible": False},
                    ],
                }
            ],
        }
    ],
}


def _dump(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]


def test_iter_squad_yields_questions_in_order(tmp_path):
    qs = list(iter_squad(_dump(tmp_path / "v1.json", V1)))
    assert [q.qid for q in qs] == ["n-q1", "n-q2", "f-q1"]
    context, question, answers, qid, title = qs[0]  # plain tuple unpacking works
    assert isinstance(qs[0], SquadQuestion)
    assert context == CTX_1 and title == "鳴門海峡" and qid == "n-q1"
    assert answers == ["淡路島と大毛島", "淡路島と大毛島の間"]
    assert list(iter_squad(tmp_path / "v1.json", strip_title=False))[0].context == f"鳴門海峡 [SEP] {CTX_1}"


def test_convert_v1_strips_jsquad_prefix(tmp_path):
    out = tmp_path / "out" / "sft.jsonl"
    stats = convert_squad(_dump(tmp_path / "v1.json", V1), out)
    records = _read(out)
    assert stats.questions == stats.written == 3 and stats.unanswerable_skipped == 0
    assert records[0] == {
        "input": f"文章:{CTX_1}\n質問:鳴門海峡はどの島とどの島の間にあるか。",
        "output": "淡路島と大毛島",
        "meta": {"id": "n-q1", "title": "鳴門海峡"},
    }
    assert [r["meta"]["id"] for r in records] == ["n-q1", "n-q2", "f-q1"]
    assert all("[SEP]" not in r["input"] for r in records)
    assert records[2]["input"] == squad_input(CTX_2, "江戸時代に広まった風鈴の素材は何か。")
    assert not (tmp_path / "out" / "sft.jsonl.tmp").exists()


def test_convert_v2_skips_unanswerable(tmp_path):
    out = tmp_path / "v2.jsonl"
    stats = convert_squad(_dump(tmp_path / "v2.json", V2), out)
    assert stats.questions == 3 and stats.written == 2 and stats.unanswerable_skipped == 1
    assert [r["meta"]["id"] for r in _read(out)] == ["v2-1", "v2-3"]
    assert [q.answers for q in iter_squad(tmp_path / "v2.json")][1] == []


def test_strip_title_prefix_only_when_present():
    assert strip_title_prefix("梅雨 [SEP] 梅雨は、雨季の一種である。", "梅雨") == "梅雨は、雨季の一種である。"
    assert strip_title_prefix("梅雨は、雨季の一種である。", "梅雨") == "梅雨は、雨季の一種である。"
    assert strip_title_prefix("別の題 [SEP] 本文。", "梅雨") == "別の題 [SEP] 本文。"


def test_bad_files_give_clear_errors(tmp_path):
    bad = json.loads(json.dumps(V1))
    del bad["data"][0]["paragraphs"][0]["qas"][1]["question"]
    with pytest.raises(UserError, match=r"qas\[1\] \(question id n-q2\): missing field 'question'"):
        convert_squad(_dump(tmp_path / "bad.json", bad), tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.jsonl.tmp").exists()
    bad = json.loads(json.dumps(V1))
    bad["data"][1]["paragraphs"][0]["qas"][0]["answers"] = [{"answer_start": 3}]
    with pytest.raises(UserError, match=r"bad2.json: data\[1\].paragraphs\[0\].qas\[0\].answers\[0\] \(question id f-q1\): missing field 'text'"):
        list(iter_squad(_dump(tmp_path / "bad2.json", bad)))
    (tmp_path / "broken.json").write_text('{"data": [', encoding="utf-8")
    with pytest.raises(UserError, match="invalid JSON"):
        list(iter_squad(tmp_path / "broken.json"))
    with pytest.raises(UserError, match="not SQuAD JSON"):
        list(iter_squad(_dump(tmp_path / "list.json", [1, 2])))
    with pytest.raises(UserError, match="no such file"):
        list(iter_squad(tmp_path / "missing.json"))


def test_cli_convert_squad(tmp_path, capsys):
    src = _dump(tmp_path / "v2.json", V2)
    assert main(["convert-squad", str(src), "--output", str(tmp_path / "o.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "unanswerable skipped" in out
    assert len(_read(tmp_path / "o.jsonl")) == 2
    assert main(["convert-squad", str(tmp_path / "nope.json"), "--output", str(tmp_path / "x.jsonl")]) == 2


def test_builtin_sample_questions(tmp_path):
    sample = Path(__file__).resolve().parents[1] / "src" / "japanese_ft" / "sample" / "questions_train.json"
    if not sample.exists():
        pytest.skip("built-in sample not present")
    stats = convert_squad(sample, tmp_path / "s.jsonl")
    assert stats.written == stats.questions > 0


@pytest.mark.shared
@pytest.mark.skipif(not JSQUAD.exists(), reason="needs ../shared/data/jglue")
def test_real_jsquad_valid(tmp_path):
    stats = convert_squad(JSQUAD, tmp_path / "jsquad.jsonl")
    assert stats.questions == stats.written > 4000
    first = _read(tmp_path / "jsquad.jsonl")[0]
    assert first["input"].startswith("文章:") and "[SEP]" not in first["input"] and "\n質問:" in first["input"]


JAQUAD_TRAIN = JSQUAD.parents[1] / "jaquad" / "jaquad-train.json"

ARTICLES = {
    "version": "v1.1",
    "data": [
        {"title": "鳴門海峡", "paragraphs": [
            {"context": f"鳴門海峡 [SEP] {CTX_1}", "qas": []},
            {"context": "鳴門海峡 [SEP] 渦潮は観光名所である。", "qas": []},
            {"context": f"鳴門海峡 [SEP] {CTX_1}", "qas": []},  # the same paragraph again (another question set)
        ]},
        {"title": "風鈴", "paragraphs": [{"context": CTX_2, "qas": []}, {"context": "  ", "qas": []}]},
        {"title": "鳴門海峡", "paragraphs": [{"context": "鳴門海峡 [SEP] 大鳴門橋が架かる。", "qas": []}]},  # same article, later
    ],
}


def test_articles_one_document_per_unique_article(tmp_path):
    from japanese_ft.data.corpus import iter_records
    from japanese_ft.data.squad import squad_articles

    out = tmp_path / "corpus" / "articles.jsonl"
    stats = squad_articles(_dump(tmp_path / "src.json", ARTICLES), out)
    docs = _read(out)
    assert [d["text"] for d in docs] == [f"{CTX_1}\n渦潮は観光名所である。\n大鳴門橋が架かる。", CTX_2]
    assert docs[0]["meta"] == {"id": "src-00001", "title": "鳴門海峡",
                               "url": "https://ja.wikipedia.org/wiki/%E9%B3%B4%E9%96%80%E6%B5%B7%E5%B3%A1"}
    assert (stats.articles, stats.paragraphs, stats.paragraphs_written) == (2, 6, 4)
    assert (stats.duplicate_paragraphs, stats.empty_paragraphs) == (1, 1)
    assert stats.characters == sum(len(d["text"]) for d in docs)
    # the corpus reader of prepare-corpus/build-qa accepts every line
    assert [r["text"] for r, _ in iter_records([out], strict=True)] == [d["text"] for d in docs]
    squad_articles(tmp_path / "src.json", tmp_path / "kept.jsonl", strip_title=False)
    assert _read(tmp_path / "kept.jsonl")[0]["text"].startswith(f"鳴門海峡 [SEP] {CTX_1}\n鳴門海峡 [SEP] ")
    bad = json.loads(json.dumps(ARTICLES))
    del bad["data"][1]["title"]
    with pytest.raises(UserError, match=r"data\[1\]: missing field 'title'"):
        squad_articles(_dump(tmp_path / "bad.json", bad), tmp_path / "b.jsonl")
    assert not (tmp_path / "b.jsonl").exists()


def test_llm_jp_eval_style_input_is_the_prompt_eval_sends(tmp_path):
    from japanese_ft.eval.jsquad import build_prompts, read_squad

    src = _dump(tmp_path / "v1.json", V1)
    for strip in (True, False):
        out = tmp_path / f"sft-{strip}.jsonl"
        stats = convert_squad(src, out, strip_title=strip, style="llm-jp-eval")
        items, _ = read_squad(src, strip_title=strip)  # what `jft eval jsquad [--strip-title]` reads
        records = _read(out)
        assert stats.written == 3
        assert [r["input"] for r in records] == build_prompts(items)  # 0-shot, the same rule
        assert [r["output"] for r in records] == [it.answers[0] for it in items]
    assert records[0]["input"].endswith("質問：鳴門海峡はどの島とどの島の間にあるか。\n\n### 応答:\n")
    with pytest.raises(UserError, match="--style 'chat'"):
        convert_squad(src, tmp_path / "x.jsonl", style="chat")


def test_cli_convert_squad_articles_and_style(tmp_path, capsys):
    src = _dump(tmp_path / "v1.json", V1)
    assert main(["convert-squad", str(src), "--articles", "--output", str(tmp_path / "a.jsonl")]) == 0
    assert "articles written" in capsys.readouterr().out and len(_read(tmp_path / "a.jsonl")) == 2
    assert main(["convert-squad", str(src), "--style", "llm-jp-eval", "--output", str(tmp_path / "s.jsonl")]) == 0
    assert _read(tmp_path / "s.jsonl")[0]["input"].startswith("以下は、タスクを説明する指示")


@pytest.mark.shared
@pytest.mark.skipif(not JAQUAD_TRAIN.exists(), reason="needs ../shared/data/jaquad")
def test_real_jaquad_articles(tmp_path):
    from japanese_ft.data.squad import squad_articles

    stats = squad_articles(JAQUAD_TRAIN, tmp_path / "jaquad.jsonl")
    assert (stats.articles, stats.paragraphs_written) == (691, 9713)  # the counts JaQuAD publishes
    assert 3_700_000 < stats.characters < 3_800_000
