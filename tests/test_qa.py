"""build-qa: Wikipedia-style articles -> Q&A pairs (handwritten Japanese articles, written for these tests)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.data.qa import (
    PHRASINGS,
    QAOptions,
    article_pairs,
    build_qa,
    display_title,
    is_person,
    restore_subject,
    split_of,
)
from japanese_ft.data.qa_pairs import Article, chunks
from japanese_ft.errors import UserError
from japanese_ft.text.sections import is_heading, split_sections

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ja_wiki_sample" / "train_0.jsonl"

# ---- handwritten articles --------------------------------------------------------------------

NARUTO = "\n".join([
    "鳴門海峡（なるとかいきょう）は、兵庫県の淡路島と徳島県の大毛島の間にある海峡である。幅はおよそ1.3キロメートルで、潮の流れが非常に速いことで知られている。",
    "歴史",
    "鳴門海峡は古くから航海の難所とされてきた。江戸時代には「阿波の鳴門」として浮世絵にも描かれ、多くの旅人が渦潮を見物に訪れた。1985年には大鳴門橋が開通し、淡路島と四国が道路で結ばれた。",
    "特徴",
    "最大の特徴は、春と秋の大潮の時期に見られる大きな渦潮である。渦の直径は最大で20メートルに達するといわれ、世界でも有数の規模を誇る。潮の干満によって海峡の両側で水位に差が生まれることが、渦潮の原因となっている。",
    "観光",
    "観光船に乗ると、渦潮を間近で見ることができる。大鳴門橋の橋桁の中には遊歩道「渦の道」が設けられており、ガラス張りの床から真下の渦潮を見下ろせる。周辺には渦潮の仕組みを紹介する資料館もある。",
])

# No headings; about 700 characters; quotes and parentheses that contain 。; topic sentences.
SATOYAMA_PARAS = [
    "里山（さとやま）は、集落の近くにあって人の暮らしと結びついてきた山や林、田畑、ため池などをまとめて呼ぶ言葉である。薪や炭、山菜、落ち葉の肥料などを得る場として、長いあいだ農村の生活を支えてきた。",
    "里山の歴史は、弥生時代に稲作とともに始まったと考えられている。江戸時代の人々は林の木を計画的に切って燃料にし、切り株から再び芽を出させることで、同じ林を何十年も使い続けた。こうした利用のしかたは「伐っては育てる。また伐っては育てる。」という言葉で語り継がれてきた。",
    "里山の特徴は、人の手が加わることで多様な生き物のすみかが保たれてきた点にある。明るい雑木林にはカタクリなどの春の草花が咲き、ため池や水田にはメダカやトンボが暮らす。手入れが止まると林は暗くなり、こうした生き物の多くは姿を消してしまう。",
    "里山の祭りは、季節の節目ごとに行われてきた。春には田の神を迎える行事があり、秋には収穫を感謝して神社に新米を供える（地域によっては「山の神」に餅を供える。）。祭りは村の人々が協力して林や水路を手入れする機会にもなっていた。",
    "1960年代に燃料が薪や炭から石油やガスに替わると、里山の木はあまり使われなくなった。1970年代には宅地やゴルフ場の開発によって、都市の近くの里山が次々に失われた。2000年代に入ると、生物多様性を守る場として里山が見直されるようになった。",
    "現在では、市民団体や学校が里山の手入れに参加する取り組みが各地で広がっている。下草刈りや間伐の体験を通じて、子どもたちが森と暮らしのつながりを学ぶ場にもなっている。里山で生まれた知恵は、持続可能な社会を考える手がかりとして注目されている。",
]
SATOYAMA = "\n".join(SATOYAMA_PARAS)

SHORT = "風鈴（ふうりん）は、夏に軒下などにつるして音を楽しむ小さな鐘である。ガラスや金属で作られ、風に揺れると涼しげな音を立てる。"

PERSON = "\n".join([
    "山田花子（やまだ はなこ、1901年3月3日 - 1980年12月1日）は、日本の架空の植物学者である。高山植物の分類に関する研究で知られる。",
    "1920年に東京の学校を卒業し、植物の採集を始めた。1935年には北アルプスで新種の高山植物を発見した。1950年には高山植物の図鑑を出版した。",
])


def _texts(pairs, kind):
    return [p for p in pairs if p.kind == kind]


# ---- text helpers ------------------------------------------------------------------------------


def test_headings_are_short_lines_followed_by_prose():
    assert is_heading("歴史", "鳴門海峡は古くから航海の難所とされてきた。")
    assert not is_heading("歴史", None)
    assert not is_heading("これは文である。", "次の段落である。")
    assert not is_heading("見出し", "短い")  # next line is not a paragraph
    paragraphs, headings = split_sections(NARUTO)
    assert headings == ["歴史", "特徴", "観光"]
    assert [p.heading for p in paragraphs] == [None, "歴史", "特徴", "観光"]


def test_restore_subject_and_titles():
    assert restore_subject("天治", "は、日本の元号の一つ。") == "天治は、日本の元号の一つ。"
    assert restore_subject("天治", "（てんじ）は、日本の元号の一つ。") == "天治（てんじ）は、日本の元号の一つ。"
    assert restore_subject("天治", "天治は、日本の元号の一つ。") == "天治は、日本の元号の一つ。"
    assert display_title("Google_検索") == "Google 検索"
    assert is_person(PERSON.split("\n")[0])
    assert not is_person(SHORT)


# ---- summary and chunk rules -------------------------------------------------------------------


def test_lead_summary_rules():
    pairs, dropped = article_pairs("里山", SATOYAMA)
    lead = SATOYAMA_PARAS[0]
    (definition,) = _texts(pairs, "definition")
    (summary,) = _texts(pairs, "summary")
    # Both come from the lead, start at its start and end at a sentence end.
    for p in (definition, summary):
        assert lead.startswith(p.output)
        assert p.output.endswith("。")
        assert "里山" in p.input
    assert definition.input in [f.format(t="里山") for f in PHRASINGS["definition"]]
    assert summary.input in [f.format(t="里山") for f in PHRASINGS["summary"]]
    assert len(summary.output) <= QAOptions().summary_chars
    # A short cap keeps only the first sentence (never a fragment of the second).
    pairs, _ = article_pairs("里山", SATOYAMA, QAOptions(definition_chars=60, summary_chars=60, min_output_chars=10))
    first_sentence = lead[: lead.index("。") + 1]
    assert _texts(pairs, "definition")[0].output == first_sentence
    assert _texts(pairs, "summary")[0].output == first_sentence


def test_chunks_are_sentence_aligned_and_cover_the_article():
    opts = QAOptions(chunk_chars=200, min_output_chars=20)
    pairs, _ = article_pairs("里山", SATOYAMA, opts)
    chunks = _texts(pairs, "overview") + _texts(pairs, "detail")
    assert len(_texts(pairs, "overview")) == 1 and len(chunks) >= 4
    assert not _texts(pairs, "whole")
    assert chunks[0].output.startswith(SATOYAMA_PARAS[0][:20])  # the first chunk is the overview
    for c in chunks:
        assert len(c.output) <= 200
        assert c.output[-1] in "。）」"
    # In order and without loss: joining the chunks gives back the whole text.
    joined = "".join(c.output + ("\n" if SATOYAMA[SATOYAMA.index(c.output) + len(c.output): ][:1] == "\n" else "") for c in chunks)
    assert joined.rstrip("\n") == SATOYAMA
    # Detail chunks ask for more detail, with more than one phrasing across the chunks.
    details = _texts(pairs, "detail")
    allowed = {f.format(t="里山") for f in PHRASINGS["detail"]}
    allowed |= {f.format(t="里山", p=p) for f in PHRASINGS["detail_period"] for p in ("1970年", "1970年から2000年にかけて")}
    assert all(d.input in allowed for d in details)
    assert len({d.input for d in details}) >= min(3, len(details))


def test_sentence_splitting_respects_quotes_and_parentheses():
    quote = "「伐っては育てる。また伐っては育てる。」"
    paren = "（地域によっては「山の神」に餅を供える。）"
    for size in (60, 90, 120, 200):
        pairs, _ = article_pairs("里山", SATOYAMA, QAOptions(chunk_chars=size, min_output_chars=1))
        for p in pairs:
            out = p.output
            assert out.count("「") == out.count("」"), (size, out)
            assert out.count("（") == out.count("）"), (size, out)
            assert not out.startswith(("また伐っては", "」", "）"))
        # every chunk (kept or later dropped as a repeated question) holds each bracket whole
        art = Article("里山", SATOYAMA, QAOptions(chunk_chars=size, min_output_chars=1))
        texts = [art.render(c) for c in chunks(art)]
        holders = [t for t in texts if "伐っては育てる" in t]
        assert len(holders) == 1 and quote in holders[0]
        assert sum(paren in t for t in texts) == 1


def test_short_article_gives_whole_and_no_chunks():
    pairs, _ = article_pairs("風鈴", SHORT)
    kinds = Counter(p.kind for p in pairs)
    assert kinds["whole"] == 1 and kinds["overview"] == 0 and kinds["detail"] == 0
    (whole,) = _texts(pairs, "whole")
    assert whole.output == SHORT


# ---- keyword and section-aware questions --------------------------------------------------------


def test_heading_sections_give_history_features_and_section_questions():
    pairs, _ = article_pairs("鳴門海峡", NARUTO)
    by_kind = {k: _texts(pairs, k) for k in ("history", "features", "section")}
    (history,) = by_kind["history"]
    assert "歴史" in history.input and history.output.startswith("鳴門海峡は古くから航海の難所")
    (features,) = by_kind["features"]
    assert "特徴" in features.input and features.output.startswith("最大の特徴は")
    (section,) = by_kind["section"]
    assert "観光" in section.input and section.output.startswith("観光船に乗ると")
    # Heading lines never leak into answers.
    for p in pairs:
        assert not any(line in ("歴史", "特徴", "観光") for line in p.output.split("\n"))


def test_topic_sentences_without_headings():
    pairs, _ = article_pairs("里山", SATOYAMA)
    (history,) = _texts(pairs, "history")
    assert history.output.startswith("里山の歴史は") and "歴史" in history.input
    (features,) = _texts(pairs, "features")
    assert features.output.startswith("里山の特徴は") and "特徴" in features.input
    sections = _texts(pairs, "section")
    assert [s.output[:5] for s in sections] == ["里山の祭り"]
    assert "祭り" in sections[0].input


def test_person_gets_person_phrasings_and_career():
    pairs, _ = article_pairs("山田花子", PERSON)
    (definition,) = _texts(pairs, "definition")
    assert definition.input in {f.format(t="山田花子") for f in PHRASINGS["definition_person"]}
    (history,) = _texts(pairs, "history")  # chronological paragraph
    assert "経歴" in history.input and history.output.startswith("1920年")


# ---- phrasing variety and determinism ----------------------------------------------------------


def test_phrasings_vary_across_articles_and_are_stable():
    questions = Counter()
    for i in range(40):
        title = f"里山{i}"
        pairs, _ = article_pairs(title, SATOYAMA.replace("里山", title), QAOptions(chunk_chars=300))
        for p in pairs:
            if p.kind in ("definition", "summary", "overview", "history"):
                questions[(p.kind, p.input.replace(title, "<t>"))] += 1
    for kind in ("definition", "summary", "overview", "history"):
        assert len({q for k, q in questions if k == kind}) >= 3, kind
    a, _ = article_pairs("里山", SATOYAMA, QAOptions(seed=1))
    b, _ = article_pairs("里山", SATOYAMA, QAOptions(seed=1))
    assert a == b
    seeds = {tuple(p.input for p in article_pairs("里山", SATOYAMA, QAOptions(seed=s))[0]) for s in range(10)}
    assert len(seeds) > 1


# ---- length limits -----------------------------------------------------------------------------


def test_length_limits():
    pairs, dropped = article_pairs("里山", SATOYAMA, QAOptions(max_input_chars=5))
    assert pairs == [] and dropped["input_too_long"] > 0
    pairs, dropped = article_pairs("風鈴", SHORT, QAOptions(min_output_chars=len(SHORT) + 1))
    assert pairs == [] and dropped["output_too_short"] > 0
    opts = QAOptions(chunk_chars=2000, max_output_chars=500, min_output_chars=10)
    pairs, dropped = article_pairs("里山", SATOYAMA, opts)
    assert all(10 <= len(p.output) <= 500 for p in pairs)
    assert dropped["output_too_long"] >= 1  # the whole article (>500) cannot be an answer
    assert all(len(p.input) <= 200 for p in pairs)
    with pytest.raises(UserError):
        QAOptions(min_output_chars=100, max_output_chars=50).check()
    with pytest.raises(UserError):
        QAOptions(validation_ratio=1.0).check()


# ---- whole corpus: split, determinism, bad input -------------------------------------------------


def _corpus(n: int) -> list[dict]:
    """n distinct articles built from the handwritten texts under different titles."""
    bases = [("里山", SATOYAMA), ("鳴門海峡", NARUTO), ("風鈴", SHORT), ("山田花子", PERSON)]
    out = []
    for i in range(n):
        title, text = bases[i % len(bases)]
        new = f"{title}{i}"
        out.append({"text": text.replace(title, new), "meta": {"id": str(i), "title": new, "url": f"https://example.org/{i}"}})
    return out


def _write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l, ensure_ascii=False)) + "\n" for l in lines), encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]


def test_split_by_article_without_leakage(tmp_path):
    src = _write(tmp_path / "in" / "a.jsonl", _corpus(48))
    stats = build_qa([src], tmp_path / "out", QAOptions(validation_ratio=0.3))
    train, val = _read(tmp_path / "out" / "training.jsonl"), _read(tmp_path / "out" / "validation.jsonl")
    assert train and val
    train_titles = {r["meta"]["title"] for r in train}
    val_titles = {r["meta"]["title"] for r in val}
    assert not train_titles & val_titles
    assert not {r["input"] for r in train} & {r["input"] for r in val}
    for r in val:
        assert split_of(r["meta"]["title"], 42, 0.3) == "validation"
    assert stats.training_articles + stats.validation_articles == stats.articles_used == 48
    assert 4 <= stats.validation_articles <= 28
    assert stats.training_pairs == len(train) and stats.validation_pairs == len(val)
    assert sum(stats.pairs.values()) == len(train) + len(val)
    for r in train + val:
        assert set(r) == {"input", "output", "meta"} and set(r["meta"]) == {"id", "title", "kind"}


def test_output_is_byte_identical_for_a_seed(tmp_path):
    src = _write(tmp_path / "a.jsonl", _corpus(12))
    for name in ("one", "two"):
        build_qa([src], tmp_path / name, QAOptions(seed=7, validation_ratio=0.25))
    for f in ("training.jsonl", "validation.jsonl"):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()
    build_qa([src], tmp_path / "three", QAOptions(seed=8, validation_ratio=0.25))
    assert (tmp_path / "one" / "training.jsonl").read_bytes() != (tmp_path / "three" / "training.jsonl").read_bytes()
    assert not list((tmp_path / "one").glob("*.tmp"))


def test_malformed_lines_and_bad_articles(tmp_path):
    good = _corpus(3)
    lines = [
        good[0],
        "{not json",
        "[1, 2]",
        {"meta": {"id": "x", "title": "題名"}},  # no text field
        {"text": SHORT, "meta": {"id": "no-title"}},
        {"text": "   ", "meta": {"id": "blank", "title": "空白"}},
        "",
        good[1],
        dict(good[1], meta=dict(good[1]["meta"], id="copy")),  # same article again under another id
        good[2],
    ]
    src = _write(tmp_path / "bad.jsonl", lines)
    stats = build_qa([src], tmp_path / "out", QAOptions(validation_ratio=0.0))
    assert stats.malformed_lines == 3
    assert [e.split(": ")[0] for e in stats.malformed_examples] == [f"{src}:{n}" for n in (2, 3, 4)]
    assert stats.dropped["article_no_title"] == 1 and stats.dropped["article_no_text"] == 1
    assert stats.articles_in == 6 and stats.articles_used == 3
    assert stats.dropped["pair_duplicate"] > 0 and stats.dropped["article_no_pairs"] == 1
    written = _read(tmp_path / "out" / "training.jsonl")
    assert len({(r["input"], r["output"]) for r in written}) == len(written)
    saved = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert saved["dropped"] == stats.dropped and saved["pairs"] == stats.pairs
    # --strict stops at the first malformed line, naming it, and writes nothing.
    with pytest.raises(UserError, match=f"{src}:2"):
        build_qa([src], tmp_path / "strict", QAOptions(strict=True))
    assert not (tmp_path / "strict" / "training.jsonl").exists()
    assert not list((tmp_path / "strict").glob("*.tmp"))


def test_cli_build_qa(tmp_path, capsys):
    _write(tmp_path / "in" / "a.jsonl", _corpus(8))
    rc = main(["build-qa", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--seed", "3",
               "--validation-ratio", "0.2", "--chunk-chars", "300", "--min-output-chars", "20"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "articles used" in out and "pairs per kind" in out
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["options"]["chunk_chars"] == 300 and stats["pairs"]["detail"] > 0
    bad = _write(tmp_path / "bad.jsonl", ["{oops"])
    assert main(["build-qa", str(bad), "--output-dir", str(tmp_path / "o2"), "--strict"]) == 2
    assert f"{bad}:1" in capsys.readouterr().err
    assert main(["build-qa", str(tmp_path / "missing.jsonl"), "--output-dir", str(tmp_path / "o3")]) == 2


def test_exclude_titles(tmp_path):
    src = _write(tmp_path / "a.jsonl", _corpus(4))
    stats = build_qa([src], tmp_path / "out", QAOptions(exclude_titles=frozenset({"里山0", "風鈴2"})))
    assert stats.dropped["article_excluded"] == 2 and stats.articles_used == 2


@pytest.mark.shared
@pytest.mark.skipif(not SHARED_SAMPLE.exists(), reason="needs ../shared/data/ja_wiki_sample")
def test_real_ja_wiki_sample(tmp_path):
    stats = build_qa([SHARED_SAMPLE], tmp_path / "out", QAOptions())
    assert stats.articles_in == sum(1 for _ in SHARED_SAMPLE.open(encoding="utf-8"))
    for kind in ("definition", "summary", "overview", "detail", "history", "whole"):
        assert stats.pairs[kind] > 0, kind
    records = _read(tmp_path / "out" / "training.jsonl") + _read(tmp_path / "out" / "validation.jsonl")
    unfinished = [r for r in records if r["output"][-1] not in "。！？!?．」』）)］]】〕〉》｝}…"]
    assert len(unfinished) <= len(records) // 50
    assert all(len(r["input"]) <= 200 and 50 <= len(r["output"]) <= 1500 for r in records)
