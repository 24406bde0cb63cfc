"""char_f1 / exact_match with llm-jp-eval semantics."""

import pytest

from japanese_ft.eval.metrics import char_f1, exact_match, mean, token_sort_key

# Reference values: llm-jp-eval v1.3.0's char_f1 = fuzzywuzzy 0.18.0 `fuzz.token_sort_ratio(
# NFKC(pred), NFKC(gold)) / 100` with python-Levenshtein 0.21.1 installed (its lock file's
# versions), computed once with the real packages (`pip install --target /tmp/ref
# fuzzywuzzy==0.18.0 python-Levenshtein==0.21.1`, then `fuzz.token_sort_ratio` on each pair);
# fuzzywuzzy is not a dependency and is not imported here. benchmarks/char_f1_parity.py redoes
# the comparison on random pairs.
REFERENCE = [
    ("東京都", "東京", 0.8),
    ("4 0 . 6 ℃", "40.6℃", 0.67),  # NFKC ℃ -> °C, ° (U+00B0) deleted; spaced digits are tokens
    ("40.6℃", "40.6 ℃", 0.91),
    ("", "", 1.0),  # equal after processing -> 100, even when empty
    ("", "東京", 0.0),
    ("東京", "", 0.0),
    ("   ", "東京", 0.0),
    ("  ", "\u3000", 1.0),
    ("!!!", "???", 1.0),  # both empty after processing
    ("「東京」", "東京", 1.0),
    ("a_b", "a b", 0.67),  # `_` is a word character: kept
    ("東京_タワー", "東京タワー", 0.91),
    ("Ａ＿Ｂ", "a_b", 1.0),
    ("café", "cafe", 0.86),  # é (U+00E9) deleted, not kept, not a space
    ("×", "x", 0.0),  # × (U+00D7) deleted
    ("ß", "ss", 0.0),  # ß (U+00DF) deleted before lowercasing
    ("Ü-Bahn", "U-Bahn", 0.8),
    ("½", "1/2", 1.0),  # NFKC 1⁄2; both become "1 2"
    ("İstanbul", "istanbul", 0.94),  # str.lower: İ -> i + U+0307 (two characters)
    ("ΟΔΟΣ", "οδοσ", 0.75),  # str.lower: final sigma ς
    ("12 3", "123", 0.86),
    ("1 9 6 4 年", "1964年", 0.43),
    ("東京都千代田区丸", "東京都千代大阪府", 0.62),  # ratio 0.625: round half to even -> 62
    ("東京都千代田区丸", "東京都大阪府名古", 0.38),  # ratio 0.375 -> 38
    ("東京都千代田区丸", "東大阪府名古屋市", 0.12),  # ratio 0.125 -> 12
    ("東京都千代田区丸", "東京大阪府名古屋", 0.25),
    ("東京都千代田区丸", "東京都千代田大阪", 0.75),
    ("Tokyo Tower", "tower tokyo", 1.0),  # lowercase + token sort
    ("ｶﾀｶﾅ", "カタカナ", 1.0),
    ("3776メートル", "3776", 0.67),
    ("静岡県と山梨県", "静岡県", 0.6),
    ("第1回", "第１回", 1.0),
    ("大阪", "東京", 0.0),
    ("東京\n\n大阪", "東京", 0.57),
]


@pytest.mark.parametrize("pred, gold, expected", REFERENCE)
def test_char_f1_equals_llm_jp_eval(pred, gold, expected):
    assert char_f1(pred, gold) == expected  # exact: both are whole percentages / 100


def test_char_f1_is_symmetric_and_a_whole_percentage():
    pairs = [("東京都庁", "東京"), ("a b c", "c a"), ("日本最大の湖", "琵琶湖"), ("40.6℃", "4 0 . 6")]
    for a, b in pairs:
        assert char_f1(a, b) == char_f1(b, a)
        assert 0.0 <= char_f1(a, b) <= 1.0
        assert round(char_f1(a, b) * 100, 9) == int(round(char_f1(a, b) * 100))


def test_token_sort_key_follows_fuzzywuzzy_processing():
    """Latin-1 deleted, non-word characters (Python re, Unicode) to spaces, lowercase, sorted tokens."""
    assert token_sort_key("Mount Fuji, 富士山!") == "fuji mount 富士山"
    assert token_sort_key("café_au·lait") == "caf_aulait"  # é and · deleted, _ kept
    assert token_sort_key("  \u3000 ") == ""
    assert token_sort_key("b a\tc") == "a b c"


def test_exact_match():
    assert exact_match(" 東京 \n", "東京") == 1.0
    assert exact_match("ｶﾀｶﾅ", "カタカナ") == 1.0
    assert exact_match("２", "2") == 1.0
    assert exact_match("東京都", "東京") == 0.0
    assert exact_match("「東京」", "東京") == 0.0  # brackets matter for exact match


def test_mean():
    assert mean([1.0, 0.0, 0.5]) == 0.5
    assert mean([]) != mean([])  # nan for nothing
