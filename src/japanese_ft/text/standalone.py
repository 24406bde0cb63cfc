"""Does a Japanese sentence stand on its own? And repairs of text that lost pieces.

Answers built from slices of an article must read well without the text before them. This
module names the three ways a sentence fails that, and repairs what can be repaired:

* `leading_reference(s)`: the sentence opens with a word that points back to missing context:
  a connective (また、しかし、なお、さらに…), a demonstrative (この、その、これ、同年…), a
  pronoun (彼、彼女), a relative time (翌年、当時…) or a bare particle (「は、」「となる。」).
* `hole(s)`: a piece of the sentence is missing. LLM-jp's Wikipedia text drops links, templates
  and formulas, which leaves 「」, 「、、」, 「指導者であるの乗用車」, 「王国がにより」, a clause
  ending on a particle (「では、。」).
* `is_finished(s)` is False for a fragment that stops mid-clause (a paragraph ending in 「、」);
  `is_reference_note(s)` flags notes to the reader (「詳細は「X」を参照。」, 「本項では、…について
  記述する。」), which are no answer.

`repair(text)` unescapes HTML entities, drops stray tags (`<br>`) and removes the traces of a
dropped link that leave the sentence readable (empty parentheses, a stray comma in
parentheses, a space before a particle); it returns the counts of each repair.
"""

from __future__ import annotations

import html
import re
from collections import Counter

FINISHED_ENDINGS = "。！？!?．」』）)］]】〕〉》｝}…"

_CONNECTIVES = (
    "また", "しかし", "しかしながら", "なお", "ただし", "ただ、", "そして", "さらに", "そのため", "このため",
    "そこで", "だが", "だがしかし", "もっとも", "すなわち", "やがて", "したがって", "従って", "つまり", "ちなみに",
    "ところが", "それでも", "すると", "とはいえ", "それゆえ", "しかも", "さて", "そのうえ", "その上", "加えて",
    "一方", "他方", "結局", "実際", "同時に", "その後", "以後", "以降", "のちに", "後に", "前述", "上述", "先述",
    "上記", "後述", "例えば", "たとえば", "特に", "とくに", "とりわけ", "逆に", "反対に", "次に", "最後に",
    "続いて", "ついで", "同様に", "同じく", "いずれも", "いずれにせよ", "いずれにしても", "それぞれ", "ほかに", "他に",
    "このほか", "そのほか", "その他", "うち、", "このうち", "そのうち", "以上", "前者", "後者", "両者", "もちろん",
    "では、", "なかでも", "中でも", "むしろ", "かくして", "こうして", "そうして", "それから", "それに", "ともに",
    "既に", "すでに", "ただちに", "改めて", "再び", "ふたたび", "さらなる", "および", "及び", "ならびに", "並びに",
    "または", "又は", "あるいは", "もしくは",
)
_DEMONSTRATIVE = r"(?:こ|そ|あ)(?:の|れ|れら|こ|ちら|う(?:した|して|いう|いった))|こんな|そんな|あんな"
_RELATIVE_TIME = (
    r"翌|当時|前年|前日|前月|うち[0-9０-９一二三四五六七八九十]"
    r"|[0-9０-９]{1,2}(?:月(?:[0-9０-９]{1,2}日)?|日)(?:には|に|、|の)"  # 「12月には…」「19日には…」: no year
    r"|ただ(?=[一-龯ァ-ヴ0-9０-９「（(])|より(?=[ぁ-ん一-龯])"
    r"|同(?:年|月|日|年代|時期|社|館|党|氏|書|作|国|市|町|村|地|所|局|校|誌|紙|線|駅|家|会|団|機|艦|船|王|朝|州|県|区"
    r"|楽曲|曲|作品|チーム|大学|政権|内閣|条約|法|事件|計画|軍|寺|城|島|川|山|番組|劇場|球団|藩|車|形|型|種|属|科)"
)
_PRONOUN = r"彼(?:女|ら|等)?(?:は|が|の|を|に|も|と|ら)"
# A bare particle (or an auxiliary verb) at the start: the noun before it was dropped.
_BARE_PARTICLE = (
    r"[はがをにでものへや](?:[、,]|(?=[一-龯々ァ-ヴA-Za-z0-9０-９「『（(]))"
    r"|と(?:なる|なり|なっ|され|した|する|して|いう|いっ|呼ば|[、,])"
    r"|(?:から|より|まで)[、,]"
    r"|で(?:ある|あり|あっ)|(?:され|した|する|して)[、。]"
    r"|[、。，．,.・）)」』]"
)
_LEADING = re.compile(
    rf"^(?:{'|'.join(sorted(map(re.escape, _CONNECTIVES), key=len, reverse=True))}"
    rf"|{_DEMONSTRATIVE}|{_RELATIVE_TIME}|{_PRONOUN}|{_BARE_PARTICLE})"
)

# Irreparable holes: (name, pattern). Each was seen in LLM-jp ja_wiki or JaQuAD text.
_HOLES = (
    ("empty_quote", re.compile(r"「\s*」|『\s*』")),                            # 「」と同音の「」
    ("clause_ends_on_particle", re.compile(r"[はがを、]\s*。")),                 # 相良油田では、。
    ("double_comma", re.compile(r"、\s*、")),                                  # 大手は、、などであり
    ("copula_before_no", re.compile(r"であるの(?![にでかはがもをだ])")),         # 指導者であるの乗用車
    ("particle_before_agent",  # 王国がにより建国 (not まんがとして: the particle must follow a kanji/katakana word)
     re.compile(r"(?<=[一-龯々ァ-ヴーA-Za-z0-9」』）)])[がをは](?:により|によって|による|について|において|として|とともに)")),
    ("verb_before_teki", re.compile(r"(?:による|における|に対する)的")),        # 研究者による的な思潮
    ("quote_dropped", re.compile(r"(?:では|には|[はがを])と(?:書|記|表記|呼|言)")),       # 国際音声記号ではと書く
    ("subject_dropped", re.compile(r"^[^はがを、。]{1,40}と(?:呼ばれる|いう|言う)。$")),  # 空気感染（…）と呼ばれる。
    ("list_dropped", re.compile(r"(?:以下|次)の(?:通り|とおり|ように|ような[^。]{0,10})(?:である|となる|となっている|です)?[。:：]$")),  # 学区は以下の通りとなる。
    ("two_case_particles", re.compile(r"[一-龯々ァ-ヴー](?:にが|をが|がを)(?![いくかきけみてっらりるれろん])")),  # 時にが
)

_TAGS = re.compile(r"</?(?:br|p|div|span|ref|references|sup|sub|small|big|b|i|u|s|center|font|nowiki)\b[^>]*?/?>", re.I)
_REPAIRS = (
    ("empty_parentheses", re.compile(r"(?<=[^\x00-\x7f])\s*[（(][\s、]*[）)]"), ""),  # ハノーファー（ ）は; not print()
    ("comma_in_parentheses", re.compile(r"(?<=[（(])\s*、\s*|\s*、\s*(?=[）)])"), ""),  # アムハラ語（アムハラご、 ）
    ("double_comma_in_parentheses", re.compile(r"、\s*、(?=[^（()）]*[）)])"), "、"),  # （にほんきょうさんとう、、略称
    ("space_before_particle", re.compile(r"(?<=[^\x00-\x7f\s]) +(?=(?:は|が|を|に|で|と|も|の|へ|や)[^\x00-\x7f])"), ""),
)
_REFERENCE_NOTE = re.compile(
    r"(?:を|も)参照(?:のこと|されたい)?[。.]?[）)]?$|^[（(]?詳細は.*参照"  # 詳細は「X」を参照。
    r"|^本項|について(?:も)?(?:述べる|記述する|説明する|説明を行う|解説する|扱う|記す)。$"  # 本項では、…について記述する。
    r"|の節で(?:述べる|説明する)"  # …については#Xの節で述べる。
)


def leading_reference(sentence: str) -> str | None:
    """The word at the start of `sentence` that points back to missing context, or None."""
    m = _LEADING.match(sentence.lstrip())
    return m.group(0) if m else None


def hole(sentence: str) -> str | None:
    """The kind of irreparable hole in `sentence` (a dropped link or template), or None."""
    for name, pattern in _HOLES:
        if pattern.search(sentence):
            return name
    return None


def is_finished(sentence: str) -> bool:
    """False for a fragment that stops mid-clause (no sentence-final punctuation)."""
    s = sentence.rstrip()
    return bool(s) and s[-1] in FINISHED_ENDINGS


def is_reference_note(sentence: str) -> bool:
    """「詳細は「X」を参照。」, 「本項では、…について記述する。」: a note to the reader, not content."""
    return bool(_REFERENCE_NOTE.search(sentence.strip()))


def repair(text: str) -> tuple[str, Counter]:
    """Unescape HTML, drop stray tags and repair the holes that leave a readable sentence."""
    counts: Counter = Counter()
    if "&" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            counts["html_entities"] += 1
            text = unescaped
    if "<" in text:
        text, n = _TAGS.subn("", text)
        counts["html_tags"] += n
    for name, pattern, replacement in _REPAIRS:
        text, n = pattern.subn(replacement, text)
        counts[name] += n
    return text, +counts
