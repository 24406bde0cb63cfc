"""One escaped lone surrogate ("\\ud800") in a text, title or question: every reader counts that record
as malformed with its location and goes on; --strict stops there with exit code 2 and one line."""

from __future__ import annotations

import json

import pytest

from japanese_ft.cli import main
from japanese_ft.data.corpus import lone_surrogate_field, parse_record
from jft_testutils import ARTICLES, article_records, make_tokenizer_dir

LONE = "\ud800"  # json.dumps writes it as the escape "\ud800"; json.loads gives it back as a lone surrogate


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return make_tokenizer_dir(tmp_path_factory.mktemp("tok") / "tok")


def _corpus(tmp_path):
    """Five good articles; line 2 has a lone surrogate in its text, line 4 in its title."""
    recs = article_records()
    recs[1]["text"] = recs[1]["text"][:10] + LONE + recs[1]["text"][10:]
    recs[3]["meta"]["title"] = recs[3]["meta"]["title"] + "\udc00"
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")  # ASCII escapes, as in the wild
    assert "\\ud800" in path.read_text(encoding="utf-8")
    return path


def test_surrogate_pairs_are_fine_and_lone_ones_are_found():
    assert parse_record(b'{"text": "\\ud83d\\ude00 ok"}') == {"text": "\U0001F600 ok"}
    assert lone_surrogate_field({"text": "a", "meta": {"title": "x" + LONE}}) == "meta.title"
    assert lone_surrogate_field({"messages": [{"role": "user", "content": "ok"}, {"content": LONE}]}) == "messages[1].content"
    assert lone_surrogate_field({"text": "ok", "meta": {"tags": ["a", "b"]}}) is None
    bad = parse_record(b'{"text": "a\\ud800b"}')
    assert "lone surrogate" in bad and "'text'" in bad


@pytest.mark.parametrize("dedup", ["exact", "near", "none"])
def test_prepare_corpus_counts_the_line_and_goes_on(tmp_path, tok_dir, dedup, capsys):
    src = _corpus(tmp_path)
    assert main(["prepare-corpus", str(src), "--tokenizer", str(tok_dir), "--output-prefix", str(tmp_path / "o"),
                 "--dedup", dedup]) == 0
    stats = json.loads((tmp_path / "o.stats.json").read_text(encoding="utf-8"))
    assert stats["malformed_lines"] == 2 and stats["documents_written"] == 3
    assert stats["malformed_examples"][0].startswith(f"{src}:2: field 'text' holds a lone surrogate")
    assert stats["malformed_examples"][1].startswith(f"{src}:4: field 'meta.title'")


def test_prepare_corpus_strict_stops_with_one_line(tmp_path, tok_dir, capsys):
    src = _corpus(tmp_path)
    assert main(["prepare-corpus", str(src), "--tokenizer", str(tok_dir), "--output-prefix", str(tmp_path / "o"),
                 "--strict", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and f"{src}:2:" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.bin").exists()


def test_build_qa_counts_text_and_title(tmp_path, capsys):
    src = _corpus(tmp_path)
    assert main(["build-qa", str(src), "--output-dir", str(tmp_path / "qa"), "--min-output-chars", "10"]) == 0
    stats = json.loads((tmp_path / "qa" / "stats.json").read_text(encoding="utf-8"))
    assert stats["malformed_lines"] == 2 and stats["articles_in"] == 3
    assert [e.split(": ")[0] for e in stats["malformed_examples"]] == [f"{src}:2", f"{src}:4"]
    assert main(["build-qa", str(src), "--output-dir", str(tmp_path / "qa2"), "--strict"]) == 2
    assert f"{src}:2:" in capsys.readouterr().err


def _squad(tmp_path):
    qas = lambda q, i: {"id": str(i), "question": q, "answers": [{"text": "活火山", "answer_start": 0}]}  # noqa: E731
    doc = {"version": "v1.1", "data": [
        {"title": "富士山", "paragraphs": [
            {"context": "富士山 [SEP] " + ARTICLES[0][2], "qas": [qas("富士山とは？", 1), qas("壊れた" + LONE, 2)]},
            {"context": "富士山 [SEP] 壊れた文脈" + LONE, "qas": [qas("何？", 3)]}]},
        {"title": "琵琶湖" + LONE, "paragraphs": [{"context": ARTICLES[1][2], "qas": [qas("琵琶湖とは？", 4)]}]},
        {"title": "味噌", "paragraphs": [{"context": ARTICLES[2][2], "qas": [qas("味噌とは？", 5)]}]},
    ]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("style", ["plain", "llm-jp-eval"])
def test_convert_squad_skips_and_counts_each_question(tmp_path, style, capsys):
    src = _squad(tmp_path)
    out = tmp_path / "sft.jsonl"
    assert main(["convert-squad", str(src), "--output", str(out), "--style", style]) == 0
    ids = [json.loads(line)["meta"]["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert ids == ["1", "5"]
    text = capsys.readouterr()
    assert "data[0].paragraphs[0].qas[1].question (question id 2)" in text.err
    assert "data[0].paragraphs[1].context" in text.err and "data[1].title" in text.err
    assert main(["convert-squad", str(src), "--output", str(out), "--style", style, "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "qas[1].question" in err


def test_convert_squad_articles_skips_the_article_or_paragraph(tmp_path, capsys):
    src = _squad(tmp_path)
    out = tmp_path / "articles.jsonl"
    assert main(["convert-squad", str(src), "--output", str(out), "--articles"]) == 0
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [d["meta"]["title"] for d in docs] == ["富士山", "味噌"]
    assert "壊れた文脈" not in docs[0]["text"]
    assert main(["convert-squad", str(src), "--output", str(tmp_path / "a2.jsonl"), "--articles", "--strict"]) == 2
    assert "data[0].paragraphs[1].context" in capsys.readouterr().err


def test_extend_vocab_corpus_reading_counts_it(tmp_path):
    from japanese_ft.model.vocab import CorpusStats, corpus_texts

    src = _corpus(tmp_path)
    stats = CorpusStats()
    texts = list(corpus_texts([src], stats, max_chars=None))
    assert len(texts) == 3 and stats.malformed_lines == 2
    assert stats.malformed_examples[0].startswith(f"{src}:2: ")


def test_sft_loader_counts_it(tmp_path, tok_dir):
    from japanese_ft.data.sft import load_examples, make_encoder
    from japanese_ft.model.load import load_tokenizer

    recs = [{"input": f"{t}とは？", "output": text[:40]} for _, t, text in ARTICLES]
    recs[2]["output"] = "壊れ" + LONE
    recs[4] = {"messages": [{"role": "user", "content": "質問" + LONE}, {"role": "assistant", "content": "答え"}]}
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    tok = load_tokenizer(str(tok_dir))
    examples, stats = load_examples([str(path)], make_encoder(tok, "chatml"), seq_length=256)
    assert len(examples) == 3 and stats.malformed == 2 and stats.records == 3
    assert stats.malformed_examples == [
        f"{path}:3: field 'output' holds a lone surrogate escape such as \"\\ud800\" (not valid Unicode)",
        f"{path}:5: field 'messages[0].content' holds a lone surrogate escape such as \"\\ud800\" (not valid Unicode)",
    ]
