"""Normalization, cleanup, sentence splitting, quality rules and dedup."""

import numpy as np
import pytest

from japanese_ft.text import clean, normalize, split_sentences
from japanese_ft.text.dedup import ExactDeduplicator, NearDeduplicator, exact_key
from japanese_ft.text.quality import QualityConfig, check_quality


@pytest.mark.parametrize(
    "form, text, expected",
    [
        ("nfkc", "ｶﾀｶﾅ", "カタカナ"),  # half-width kana
        ("nfkc", "ｶﾞｯｺｳ", "ガッコウ"),  # voiced half-width marks combine
        ("nfkc", "１２３ＡＢＣ", "123ABC"),  # full-width digits and letters
        ("nfkc", "5月～7月", "5月～7月"),  # fullwidth tilde is a wave dash: kept
        ("nfkc", "5月〜7月", "5月〜7月"),  # wave dash kept
        ("nfkc", "ｶ～ﾅ１〜２", "カ～ナ1〜2"),  # mixed: everything around the dashes still normalized
        ("nfc", "ｶﾀｶﾅ１２３", "ｶﾀｶﾅ１２３"),  # NFC leaves compatibility characters alone
        ("nfc", "か\u3099", "が"),  # but composes combining marks
        ("none", "か\u3099", "か\u3099"),
    ],
)
def test_normalize(form, text, expected):
    assert normalize(text, form) == expected


def test_normalize_rejects_unknown_form():
    with pytest.raises(ValueError):
        normalize("x", "nfd")


def test_clean_collapses_whitespace():
    assert clean("  a  b\t\tc \n\n\n\nd　　e \n") == "a b c\n\nd　e"
    assert clean("行1\r\n行2") == "行1\n行2"


def test_split_sentences_respects_brackets():
    text = "彼は「今日は晴れだ。明日は雨だ。」と言った。注（これは補足。）もある！本当？"
    assert split_sentences(text) == ["彼は「今日は晴れだ。明日は雨だ。」と言った。", "注（これは補足。）もある！", "本当？"]


def test_split_sentences_nested_and_newlines():
    text = "『本の題名「副題。」』を読んだ。次の段落\n二行目です。終わり"
    assert split_sentences(text) == ["『本の題名「副題。」』を読んだ。", "次の段落", "二行目です。", "終わり"]


def test_split_sentences_unclosed_bracket_does_not_swallow_line():
    assert split_sentences("壊れた「括弧。文です。次。") == ["壊れた「括弧。", "文です。", "次。"]


GOOD = (
    "京都は日本の古い都であり、多くの寺や神社が今も残っている。春には桜が咲き、秋には紅葉を見に多くの人が訪れる。"
    "市内には大学も多く、学生の町としても知られている。祇園祭は毎年七月に行われ、長い歴史を持つ祭りである。"
)


def test_good_text_passes():
    assert check_quality(GOOD, QualityConfig(min_japanese_chars=50)) is None


@pytest.mark.parametrize(
    "text, cfg, reason",
    [
        ("短い文です。", QualityConfig(min_japanese_chars=50), "too_few_japanese_chars"),
        ("東京都千代田区丸ノ内一丁目。" * 10, QualityConfig(min_japanese_chars=10), "low_hiragana_fraction"),
        ("コンピュータのソフトウェアをインストールしてデータベースをバックアップする。" * 4,
         QualityConfig(min_japanese_chars=10, min_hiragana_fraction=0, max_top_2gram_fraction=1, max_top_3gram_fraction=1,
                       max_top_4gram_fraction=1, max_duplicate_10gram_fraction=1), "high_katakana_fraction"),
        ("同じ行がここにあります。\n" * 5 + GOOD, QualityConfig(min_japanese_chars=10), "duplicate_lines"),
        ("ああああああああああああああああああああああああああああああ。" * 3,
         QualityConfig(min_japanese_chars=10, max_duplicate_line_fraction=1), "top_2gram_repetition"),
        ("今日は良い天気でした。" * 20, QualityConfig(min_japanese_chars=10, max_duplicate_line_fraction=1), "top_3gram_repetition"),
        ("今日は良い天気でした。" * 20, QualityConfig(min_japanese_chars=10, max_duplicate_line_fraction=1, max_top_3gram_fraction=1), "top_4gram_repetition"),
        (GOOD + GOOD, QualityConfig(min_japanese_chars=10), "duplicate_10gram_repetition"),
        ("はい。" * 40 + GOOD, QualityConfig(min_japanese_chars=10, max_top_2gram_fraction=1, max_top_3gram_fraction=1,
                                             max_top_4gram_fraction=1, max_duplicate_10gram_fraction=1), "short_sentences"),
        (GOOD.replace("。", "、") + "。", QualityConfig(min_japanese_chars=10, max_avg_sentence_chars=100), "long_sentences"),
        (GOOD + GOOD.replace("。", "、") + "。", QualityConfig(min_japanese_chars=10, max_sentence_chars=90,
                                                            max_duplicate_10gram_fraction=1), "very_long_sentence"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.isascii() else "",
)
def test_each_quality_rule(text, cfg, reason):
    """Each rule fires on a document crafted to break it (and the earlier rules pass)."""
    assert check_quality(text, cfg) == reason


def test_quality_options_are_validated():
    assert QualityConfig.from_options({"min_japanese_chars": "5"}).min_japanese_chars == 5
    with pytest.raises(ValueError, match="unknown filter option"):
        QualityConfig.from_options({"min_japanse_chars": "5"})
    with pytest.raises(ValueError, match="not a number"):
        QualityConfig.from_options({"min_hiragana_fraction": "lots"})


def test_exact_dedup():
    d = ExactDeduplicator()
    assert not d.is_duplicate(exact_key("富士山は高い。"))
    assert d.is_duplicate(exact_key("富士山は高い。"))
    assert not d.is_duplicate(exact_key("富士山は高い！"))


def test_near_dedup_catches_small_edits_only():
    base = GOOD * 2 + "最後にもう一つ、京都の料理は薄味で上品だと言われることが多い。"
    edited = base.replace("多くの人が訪れる", "大勢の人が訪れる")
    other = "大阪は商人の町として発展し、食い倒れの町とも呼ばれる。たこ焼きやお好み焼きが有名である。" * 3
    d = NearDeduplicator()
    sig = d.hasher.signature
    assert not d.is_duplicate(sig(base))
    assert d.is_duplicate(sig(edited))
    assert not d.is_duplicate(sig(other))
    # the estimate tracks the true Jaccard similarity of the 5-gram sets
    a, b = set(d.hasher.shingle_hashes(base)), set(d.hasher.shingle_hashes(edited))
    est = float(np.mean(sig(base) == sig(edited)))
    assert abs(est - len(a & b) / len(a | b)) < 0.15
