"""build-qa's answer rules, one test per rule (issue 12, ask 4), on small handwritten Japanese
articles that trigger each case, plus the same checks over every pair built from the JaQuAD dev
articles and the ja_wiki sample when ../shared is present."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.data.qa import build_qa
from japanese_ft.data.qa_pairs import QAOptions, article_result, is_definitional, is_person
from japanese_ft.text.sentences import split_sentences
from japanese_ft.text.standalone import hole, is_finished, is_reference_note, leading_reference, repair
from jft_testutils import SHARED

# ---- the sentence rules themselves ----------------------------------------------------------


@pytest.mark.parametrize("sentence, word", [
    ("また、その翻訳に際し、RVを参照した。", "また"),
    ("しかしハイバリトンの声楽家として評価された。", "しかし"),
    ("この事件について、マキャヴェッリは論じた。", "この"),
    ("これらの丹霞地形は形成期に違いがある。", "これ"),
    ("こうした利用は続いた。", "こうした"),
    ("翌1896年に郡が分割された。", "翌"),
    ("同年12月には図書室が改装された。", "同年"),
    ("19日には諸藩主を召した。", "19日には"),
    ("当時の利用者数は1日1人程度だった。", "当時"),
    ("彼は東京へ向かった。", "彼は"),
    ("は、日本の元号の一つ。", "は、"),
    ("となる。", "となる"),
    ("である。", "である"),
    ("、そして終わった。", "、"),
    ("いずれにしても、船大工たちは活躍した。", "いずれにしても"),
    ("12月には上京して初舞台を踏んだ。", "12月には"),
    ("7月29日に大西洋上でケーブルを接続した。", "7月29日に"),
    ("既に1916年には鉄道が開通していた。", "既に"),
    ("ただ文化3年、一茶は寺に立ち寄った。", "ただ"),
    ("同楽曲が1966年に一位を獲得した。", "同楽曲"),
    ("より大きな効果を得るには空洞を二重にする。", "より"),
])
def test_leading_reference_finds_words_that_point_back(sentence, word):
    assert leading_reference(sentence) == word


@pytest.mark.parametrize("sentence", [
    "テンポイントの死は大きく報じられた。", "1954年、夫と離婚した。", "同志社大学は京都にある。", "同人誌は増えた。",
    "彼岸は春と秋にある。", "はやぶさは小惑星に着陸した。", "うちわは夏に使う。", "まんがは日本で人気がある。",
    "こうもりは夜に飛ぶ。", "「伐っては育てる」と言われた。", "議事堂内部中央には州章がある。",
    "10月は最も雨が多い月である。", "1925年に鉄道が開通した。",
])
def test_leading_reference_leaves_self_contained_sentences_alone(sentence):
    assert leading_reference(sentence) is None


@pytest.mark.parametrize("sentence, name", [
    ("中国では、古くは「」と同音の字が当てられた。", "empty_quote"),
    ("静岡県の相良油田では、。", "clause_ends_on_particle"),
    ("配電電力会社の大手は、、などである。", "double_comma"),
    ("同共和国指導者であるの乗用車が爆破された。", "copula_before_no"),
    ("ラーンサーン王国がにより建国。", "particle_before_agent"),
    ("研究者による的な思潮も現れた。", "verb_before_teki"),
    ("戦いの時にが倒れた。", "two_case_particles"),
    ("国際音声記号ではと書く。", "quote_dropped"),
    ("空気感染（Airborne transmission）と呼ばれる。", "subject_dropped"),
    ("谷田部の学区は以下の通りとなる。", "list_dropped"),
])
def test_hole_finds_traces_of_dropped_links(sentence, name):
    assert hole(sentence) == name


@pytest.mark.parametrize("sentence", [
    "まんがとして有名になった。", "一茶が3歳の時に母、くにが亡くなった。", "日本の関税は5%であるのに対し、英国は10%だった。",
    "梅雨期間の終了発表のことを梅雨明け宣言という。", "鉄道建設をはじめ、近代化が進んだ。",
])
def test_hole_leaves_whole_sentences_alone(sentence):
    assert hole(sentence) is None


def test_repair_unescapes_html_and_removes_empty_traces():
    assert repair("住民票が交付された。&lt;br&gt;しかし") == ("住民票が交付された。しかし", Counter(html_entities=1, html_tags=1))
    assert repair("各文字は&lt;子音+母音&gt;の構造。")[0] == "各文字は<子音+母音>の構造。"  # not a tag: kept
    assert repair("A&amp;B社")[0] == "A&B社"
    assert repair("ハノーファー（ ）は、北ドイツの都市。")[0] == "ハノーファーは、北ドイツの都市。"
    assert repair("アムハラ語（アムハラご、 ）は言語。")[0] == "アムハラ語（アムハラご）は言語。"
    assert repair("日本共産党（にほんきょうさんとう、、略称: JCP）は")[0] == "日本共産党（にほんきょうさんとう、略称: JCP）は"
    assert repair("レーウェンフック は、顕微鏡を作った。")[0] == "レーウェンフックは、顕微鏡を作った。"
    assert repair("関数 print() は値を表示する。")[0] == "関数 print() は値を表示する。"  # code is left alone


def test_fragments_and_reference_notes():
    assert not is_finished("最高裁判所は同判決で、保障は公務員にも及ぶことを認めるものの、")
    assert is_finished("保障は公務員にも及ぶ。") and is_finished("（1866年まで）")
    assert is_reference_note("詳細は「建国神話節」を参照。") and is_reference_note("演奏家一覧も参照。")
    assert is_reference_note("本項では、オーストラリアの歴史について記述する。")
    assert is_reference_note("日本の獣肉食の歴史では、日本における獣肉食の歴史について述べる。")
    assert is_reference_note("ここでは日立鉱山とともに諏訪鉱山についても説明を行う。")
    assert is_reference_note("なおモルタルで口を塞がない場合については#穴の中に瓶を入れるの節で述べる。")
    assert not is_reference_note("論文が参照された。") and not is_reference_note("本州は日本最大の島である。")


def test_a_lead_that_is_a_note_to_the_reader_gives_no_definition():
    text = "本項では、架空の港の歴史について記述する。\n港は1850年に開かれ、1900年には大型船が入港できるようになった。その後、1950年に埋め立てが行われた。"
    result = article_result("港の歴史", text, QAOptions(min_output_chars=20))
    assert not [p for p in result.pairs if p.kind in ("definition", "summary", "overview")]
    assert ("definition", "lead_broken") in {(d.kind, d.reason) for d in result.drops}
    assert not any("本項" in p.output for p in result.pairs)


# ---- each rule on a handwritten article -----------------------------------------------------

# Paragraphs that open with また / しかし / この / 翌年 / a bare particle after a dropped formula.
KAIDO = "\n".join([
    "海道（かいどう）は、架空の港町を結んでいた古い街道である。江戸時代には多くの旅人が行き交い、宿場町が栄えた。",
    "海道の起点は港町の北にある大きな鳥居で、そこから山あいを抜けて隣の城下町まで続いていた。道沿いには一里塚が残り、旅人の目印となった。",
    "しかし、明治時代に鉄道が開通すると、旅人の数は急に減った。宿場町の多くは農村に戻り、街道の一部は畑になった。",
    "この変化は、地元の人々の暮らしにも大きな影響を与えた。宿屋を営んでいた家の多くは商売を替え、漁業や養蚕に移った。",
    "また、街道の石畳は戦後の道路工事でほとんどが失われた。現在残っているのは峠付近のわずかな区間だけである。",
    "距離は、起点から峠までの高さを h とすると、",
    "となる。",
    "峠の茶屋は今も営業を続けており、名物の草餅が旅行者に人気である。毎年秋には街道を歩く催しが開かれ、多くの参加者が集まる。",
])


def _sentences(text: str) -> list[str]:
    return [s for line in text.split("\n") for s in split_sentences(line)]


def _check_answer_rules(output: str) -> None:
    sentences = _sentences(output)
    assert leading_reference(sentences[0]) is None, output
    for s in sentences:
        assert is_finished(s), (s, output)
        assert hole(s) is None and not is_reference_note(s), (s, output)
    assert "&lt;" not in output and "&amp;" not in output and "<br" not in output


def test_answers_start_self_contained_and_dependent_sentences_keep_their_context():
    result = article_result("海道", KAIDO, QAOptions(min_output_chars=20))
    outputs = [p.output for p in result.pairs]
    assert outputs
    for out in outputs:
        _check_answer_rules(out)
    # しかし / この / また paragraphs are glued to the paragraph before them
    glued = [o for o in outputs if "しかし、明治時代" in o]
    assert glued and all("一里塚" in o for o in glued)
    assert any("この変化は" in o and "しかし、明治時代" in o for o in outputs)
    assert any("また、街道の石畳" in o for o in outputs)


def test_no_cut_fragments():
    result = article_result("海道", KAIDO, QAOptions(min_output_chars=20))
    text = "\n".join(p.output for p in result.pairs)
    assert "とすると、" not in text and "となる。" not in text  # the fragment and its orphan tail
    assert result.left_out["unfinished"] == 1 and result.left_out["dependent_without_context"] == 1
    assert any("峠の茶屋" in p.output for p in result.pairs)  # the text after them is still used


def test_html_entities_are_unescaped(tmp_path):
    text = "市民会館（しみんかいかん）は、架空の町にある文化施設である。大小二つのホールを持ち、演劇や音楽会が開かれる。&lt;br&gt;\n" \
           "館内のA&amp;Bホールでは、毎月のように地元の劇団が公演を行っている。入場料は無料で、誰でも気軽に観劇できる。"
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"text": text, "meta": {"id": "1", "title": "市民会館"}}, ensure_ascii=False) + "\n", encoding="utf-8")
    stats = build_qa([src], tmp_path / "out", QAOptions(validation_ratio=0.0, min_output_chars=20))
    outputs = [json.loads(line)["output"] for line in (tmp_path / "out" / "training.jsonl").read_text(encoding="utf-8").splitlines()]
    assert outputs and any("A&Bホール" in o for o in outputs)
    assert not any("&lt;" in o or "&amp;" in o or "<br>" in o for o in outputs)
    assert stats.repaired == {"html_entities": 1, "html_tags": 1}


HOLEY = "\n".join([
    "北洋（ほくよう）は、架空の共和国である。首都は北の港町に置かれている。",
    "北洋では、古くは「」と呼ばれる祭りが行われていた。祭りの起源ははっきりしていない。",
    "2016年8月6日、同共和国指導者であるの乗用車が爆破される事件が発生した。",
    "北洋の気候は冷涼で、夏でも気温が20度を超える日は少ない。冬は長く、港が凍ることもある。",
    "北洋の言語（ ）は、周辺の国々の言葉と近い関係にある。文字は独自のものを使っている。",
])


def test_holes_from_dropped_links_are_left_out_and_counted():
    result = article_result("北洋", HOLEY, QAOptions(min_output_chars=20))
    text = "\n".join(p.output for p in result.pairs)
    assert "「」" not in text and "であるの" not in text
    assert "祭りの起源" not in text  # it came right after the hole and depends on it
    assert result.left_out["empty_quote"] == 1 and result.left_out["copula_before_no"] == 1
    assert result.repairs["empty_parentheses"] == 1 and "北洋の言語は" in text  # repaired, then used
    assert any("気温が20度" in p.output for p in result.pairs)


def test_no_duplicate_title_question_pairs(tmp_path):
    paragraphs = [f"第{k}の話題について述べる。ここには{k}番目の段落として、ほかの段落とは違う十分に長い内容が書かれている。"
                  f"読者はこの段落から{k}番目の知識を得ることができる。" for k in range(1, 15)]
    text = "長文（ちょうぶん）は、段落の多い架空の記事である。記事の構成を試すために書かれた。\n" + "\n".join(paragraphs)
    result = article_result("長文", text, QAOptions(chunk_chars=150, min_output_chars=20))
    questions = [p.input for p in result.pairs]
    assert len(questions) == len(set(questions))
    assert Counter(d.reason for d in result.drops)["duplicate_question"] >= 1
    # across the corpus: a second record with the same title never repeats a question
    src = tmp_path / "a.jsonl"
    records = [{"text": text, "meta": {"id": "1", "title": "長文"}},
               {"text": text.replace("架空の記事", "架空の長い記事"), "meta": {"id": "2", "title": "長文"}}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    stats = build_qa([src], tmp_path / "out", QAOptions(validation_ratio=0.0, chunk_chars=150, min_output_chars=20))
    written = [json.loads(line) for line in (tmp_path / "out" / "training.jsonl").read_text(encoding="utf-8").splitlines()]
    keys = [(r["meta"]["title"], r["input"]) for r in written]
    assert len(keys) == len(set(keys)) and stats.dropped["pair_duplicate_question"] > 0


def test_kind_specific_questions_only_when_the_answer_fits():
    no_dates = "\n".join([
        "白浜（しらはま）は、架空の海辺の村である。砂浜が長く続き、夏には海水浴客が訪れる。",
        "歴史",
        "白浜の歴史は古く、漁村として始まったと伝えられている。人々は網を使って魚をとり、干物を作って暮らしてきた。",
        "白浜は周辺の村々の物資を集める港として機能した。市場には多くの品物が並び、遠くからも商人が訪れた。",  # 機能 in prose
    ])
    result = article_result("白浜", no_dates, QAOptions(min_output_chars=20))
    assert not [p for p in result.pairs if p.kind in ("history", "features")]
    assert ("history", "history_without_dates") in {(d.kind, d.reason) for d in result.drops}
    dated = no_dates.replace("漁村として始まった", "1200年頃に漁村として始まった").replace("人々は網を", "1600年代の人々は網を")
    (history,) = [p for p in article_result("白浜", dated, QAOptions(min_output_chars=20)).pairs if p.kind == "history"]
    assert history.output.startswith("白浜の歴史は")
    # one episode is too narrow for 「…の歴史」: two dated sentences one year apart
    narrow = no_dates.replace("漁村として始まった", "1567年に漁村として始まった").replace("人々は網を", "1568年の人々は網を")
    result = article_result("白浜", narrow, QAOptions(min_output_chars=20))
    assert not [p for p in result.pairs if p.kind == "history"]
    assert ("history", "history_too_narrow") in {(d.kind, d.reason) for d in result.drops}
    # a title that already names the history never gets 「…の歴史の歴史」
    viet = dated.replace("白浜", "白浜の歴史")
    pairs = article_result("白浜の歴史", viet, QAOptions(min_output_chars=20)).pairs
    assert not any("の歴史の歴史" in p.input for p in pairs)
    assert not [p for p in pairs if p.kind == "history"]


def test_features_need_a_topic_sentence_about_features():
    text = "\n".join([
        "灯台（とうだい）は、架空の岬に立つ白い塔である。夜になると強い光を放ち、船に位置を知らせる。",
        "灯台の特徴は、らせん階段と八角形のレンズ室にある。レンズは遠くまで光を届けるように工夫されている。",
    ])
    (features,) = [p for p in article_result("灯台", text, QAOptions(min_output_chars=20)).pairs if p.kind == "features"]
    assert "特徴" in features.input and features.output.startswith("灯台の特徴は")
    # a one-sentence topic paragraph is too thin for 「…について教えてください」
    thin = text.replace("レンズは遠くまで光を届けるように工夫されている。", "")
    result = article_result("灯台", thin, QAOptions(min_output_chars=20))
    assert not [p for p in result.pairs if p.kind == "features"]
    assert ("features", "topic_too_thin") in {(d.kind, d.reason) for d in result.drops}


def test_detail_chunks_follow_section_boundaries():
    text = "\n".join([
        "山里（やまざと）は、架空の山あいの集落である。四方を山に囲まれ、川が集落の中央を流れている。",
        "地理", "山里は標高の高い盆地にあり、冬は雪が深い。川は集落の南で大きな川に合流する。",
        "産業", "山里の主な産業は林業と養蜂である。近年は山菜を加工した土産物も作られている。",
        "交通", "山里へは一日に三本のバスが通っている。冬には雪のため運休することもある。",
    ])
    result = article_result("山里", text, QAOptions(chunk_chars=150, min_output_chars=20))  # too long to be whole
    details = [p.output for p in result.pairs if p.kind in ("detail", "overview")]
    markers = ("標高の高い盆地", "林業と養蜂", "三本のバス")
    for out in details:
        assert sum(m in out for m in markers) <= 1, out  # never two sections in one chunk
    assert all(any(m in out for out in details) for m in markers)


def test_detail_questions_name_the_years_of_dated_narration():
    text = "\n".join([
        "港町（みなとまち）は、架空の湾に面した町である。古くから漁業と交易で栄えてきた。",
        "1929年に大きな不況が町を襲い、多くの商店が閉じた。1930年には港の拡張工事が始まった。1932年に新しい埠頭が完成し、町は活気を取り戻した。",
    ])
    details = [p for p in article_result("港町", text, QAOptions(chunk_chars=100, min_output_chars=20)).pairs if p.kind == "detail"]
    assert details and "1929年から1932年にかけて" in details[0].input


def test_people_are_recognised_by_their_role():
    assert is_person("川端康成（かわばたやすなり、1899年（明治32年）6月14日 - 1972年（昭和47年）4月16日）は、日本の小説家、文芸評論家である。")
    assert is_person("斎藤智恵子は、日本の実業家だ。東京都台東区浅草の劇場の元社長。")
    assert not is_person("オグリキャップ（1985年3月27日 - 2010年7月3日）は、日本の競走馬、種牡馬である。")
    assert not is_person("ユグノー戦争（1562年 - 1598年）は、フランスの内戦である。")
    assert not is_person("落語家は、落語を演じることを職業とする人。", "落語家")
    assert is_person("エリザベス1世はヘンリー8世の王女として生まれたが、庶子とされた。")


def test_a_narrative_lead_is_not_a_definition():
    assert is_definitional("川端康成", "川端康成は、日本の小説家である。", True)
    assert is_definitional("矢作水力", "矢作水力は、かつて存在した日本の電力会社であった。", False)
    assert not is_definitional("頼品ヨ", "頼品ヨは高校三年の17歳時に社会問題に関心を持ちはじめた。", False)


def test_report_has_per_kind_counts_and_drop_reasons(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"text": HOLEY, "meta": {"id": "1", "title": "北洋"}}, ensure_ascii=False) + "\n", encoding="utf-8")
    report = tmp_path / "reports" / "qa.json"
    assert main(["build-qa", str(src), "--output-dir", str(tmp_path / "out"), "--validation-ratio", "0",
                 "--min-output-chars", "20", "--report", str(report)]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert set(data["kinds"]) >= {"definition", "summary", "overview", "detail", "history", "features", "section", "whole"}
    assert sum(k["pairs"] for k in data["kinds"].values()) == data["pairs"] == sum(stats["pairs"].values())
    assert data["sentences_left_out"]["empty_quote"] == 1 and data["repairs"]["empty_parentheses"] == 1
    for kind in data["kinds"].values():
        assert all(isinstance(n, int) and n > 0 for n in kind["dropped"].values())
    for reason, examples in data["examples"].items():
        kind, why = reason.split("/")
        assert data["kinds"][kind]["dropped"][why] >= len(examples) >= 1


# ---- the same rules over real articles ------------------------------------------------------

JAQUAD_DEV = SHARED / "data" / "jaquad" / "jaquad-dev.json"
JA_WIKI = SHARED / "data" / "ja_wiki_sample" / "train_0.jsonl"


def _check_corpus(records: list[dict]) -> None:
    assert records
    keys = [(r["meta"]["title"], r["input"]) for r in records]
    assert len(keys) == len(set(keys))
    for r in records:
        _check_answer_rules(r["output"])
        assert "の歴史の歴史" not in r["input"]
        sentences = _sentences(r["output"])
        if r["meta"]["kind"] == "history":
            assert sum(1 for s in sentences if re.search(r"[0-9０-９]{1,4}年|世紀|時代|年代|元年", s)) >= min(2, len(sentences))
        if r["meta"]["kind"] == "features":
            assert re.search(r"特徴|特色|性質|機能|特性", sentences[0])


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for name in ("training.jsonl", "validation.jsonl")
            for line in (out / name).read_text(encoding="utf-8").splitlines()]


@pytest.mark.shared
@pytest.mark.skipif(not JAQUAD_DEV.exists(), reason="needs ../shared/data/jaquad")
def test_rules_hold_on_jaquad_dev_articles(tmp_path):
    data = json.loads(JAQUAD_DEV.read_text(encoding="utf-8"))["data"]
    src = tmp_path / "articles.jsonl"  # one article per title, paragraphs in order
    src.write_text("".join(json.dumps({"text": "\n".join(p["context"] for p in a["paragraphs"]),
                                       "meta": {"id": str(i), "title": a["title"]}}, ensure_ascii=False) + "\n"
                           for i, a in enumerate(data)), encoding="utf-8")
    stats = build_qa([src], tmp_path / "out", QAOptions())
    assert stats.articles_used == len(data)
    _check_corpus(_records(tmp_path / "out"))


@pytest.mark.shared
@pytest.mark.skipif(not JA_WIKI.exists(), reason="needs ../shared/data/ja_wiki_sample")
def test_rules_hold_on_ja_wiki_sample(tmp_path):
    stats = build_qa([JA_WIKI], tmp_path / "out", QAOptions())
    assert stats.repaired.get("html_entities", 0) >= 1  # the sample has &lt;br&gt;
    _check_corpus(_records(tmp_path / "out"))
