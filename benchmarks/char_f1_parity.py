#!/usr/bin/env python
"""Check `japanese_ft.eval.metrics.char_f1` against the real reference, pair by pair.

The reference is llm-jp-eval v1.3.0's char_f1: `fuzzywuzzy.fuzz.token_sort_ratio` of the NFKC
forms / 100, with fuzzywuzzy 0.18.0 and python-Levenshtein 0.21.1 (llm-jp-eval's lock file). They
are NOT dependencies of jft; install them in a throwaway folder first:

    pip install --target /tmp/ref fuzzywuzzy==0.18.0 python-Levenshtein==0.21.1
    python benchmarks/char_f1_parity.py --ref /tmp/ref --pairs 200000

Pairs: random strings over Japanese, ASCII, Latin-1 (U+0080-U+00FF), `_`, ℃, full-width forms,
Unicode spaces and punctuation, case-special letters and combining marks, plus realistic
(prediction, gold) pairs made from JaQuAD dev answers (../shared, when present) with edits:
cut, extended, spaced digits, brackets, Latin-1 or `_` inserted. Prints the number of pairs, the
mismatches (with up to 20 examples) and, for comparison, how many pairs the previous
implementation (rapidfuzz's `default_process`, no rounding) got wrong. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JAQUAD_DEV = ROOT.parent / "shared" / "data" / "jaquad" / "jaquad-dev.json"

ALPHABETS = [
    "あいうえおかがきくけこさしすせそたちつてとなにのはばぱまみむめもやゆよらりるれろわをん",
    "アイウエオカガキクケコサシスセソタチツテトナニノハバパマミムメモヤユヨラリルレロワヲンー",
    "東京大阪山川日本語年月日時分人間市町村都道府県第一二三十百千万",
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "".join(chr(c) for c in range(0x80, 0x100)),  # Latin-1 block (fuzzywuzzy deletes it)
    "_＿",
    "℃°℉㎞㍉㌔①②⑩Ⅳⅻ½¼",
    "ＡＢＣａｂｃ０１２３ｶﾀｶﾅﾞﾟ",
    " \t\n\u3000\u00a0\u2003\u200b\u2028\x1c\x85",
    "。、・「」『』（）()[]【】!！?？.,:;-ー〜~/\\\"'％%＆&＃#＋+＝=＊*",
    "İıẞßΣσςÅǅǈ\u0301\u0308\u3099",
    "αβγΔΩабвГДЖ한국어ไทย",
]


def random_string(rng: random.Random) -> str:
    n = rng.choice([0, 1, 2, 3, 5, 8, 13, 21])
    pools = rng.sample(ALPHABETS, rng.randint(1, 3))
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def edit(rng: random.Random, gold: str) -> str:
    """A prediction a model might produce for `gold`."""
    k = rng.randrange(9)
    if k == 0:
        return gold
    if k == 1 and len(gold) > 1:
        i = rng.randrange(1, len(gold))
        return gold[:i] if rng.random() < 0.5 else gold[i:]
    if k == 2:
        return gold + rng.choice(["です", "。", "年", "の一つ", " (日本)", "県", "\n"])
    if k == 3:
        return " ".join(gold)  # spaced characters, e.g. "4 0 . 6 ℃"
    if k == 4:
        return rng.choice(["「", "『", "(", "【"]) + gold + rng.choice(["」", "』", ")", "】"])
    if k == 5:
        i = rng.randrange(len(gold) + 1)
        return gold[:i] + rng.choice("_＿éü×·°±µ¿") + gold[i:]
    if k == 6:
        return unicodedata.normalize("NFKD", gold) if rng.random() < 0.5 else gold.upper()
    if k == 7:
        return random_string(rng)
    return gold[::-1]


def jaquad_answers() -> list[str]:
    if not JAQUAD_DEV.exists():
        return []
    data = json.loads(JAQUAD_DEV.read_text(encoding="utf-8"))
    return [a["text"] for art in data["data"] for p in art["paragraphs"] for q in p["qas"] for a in q["answers"]]


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    answers = jaquad_answers()
    pairs = []
    for i in range(n):
        if answers and i % 2 == 0:
            gold = rng.choice(answers)
            pairs.append((edit(rng, gold), gold))
        else:
            pairs.append((random_string(rng), random_string(rng)))
    return pairs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="folder with fuzzywuzzy 0.18.0 + python-Levenshtein 0.21.1")
    ap.add_argument("--pairs", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    sys.path.insert(0, args.ref)
    import fuzzywuzzy
    import Levenshtein
    from fuzzywuzzy import fuzz
    from fuzzywuzzy.StringMatcher import StringMatcher
    from rapidfuzz import fuzz as rf_fuzz
    from rapidfuzz.utils import default_process

    from japanese_ft.eval.metrics import char_f1, normalize

    assert fuzz.SequenceMatcher is StringMatcher, "python-Levenshtein missing: fuzzywuzzy fell back to difflib"

    def reference(pred: str, gold: str) -> float:  # llm-jp-eval v1.3.0
        return fuzz.token_sort_ratio(normalize(pred), normalize(gold)) / 100.0

    def previous(pred: str, gold: str) -> float:  # jft before this check
        return rf_fuzz.token_sort_ratio(normalize(pred), normalize(gold), processor=default_process) / 100.0

    pairs = make_pairs(args.pairs, args.seed)
    mismatches, previous_wrong = [], 0
    for pred, gold in pairs:
        want = reference(pred, gold)
        if char_f1(pred, gold) != want:
            mismatches.append((pred, gold, want, char_f1(pred, gold)))
        previous_wrong += previous(pred, gold) != want
    print(json.dumps({
        "fuzzywuzzy": fuzzywuzzy.__version__, "python_Levenshtein": Levenshtein.__version__,
        "pairs": len(pairs), "seed": args.seed, "jaquad_answers_used": bool(jaquad_answers()),
        "mismatches": len(mismatches), "previous_implementation_mismatches": previous_wrong,
    }, ensure_ascii=False))
    for m in mismatches[:20]:
        print("MISMATCH", json.dumps(m, ensure_ascii=False))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
