"""One article as `build-qa` sees it: repaired text, paragraphs, flagged sentences.

`Article(title, text, options)` repairs the text (`text.standalone.repair`: HTML entities,
traces of dropped links), splits it into paragraphs, headings and sentences, and flags every
sentence: `dependent` (it opens with a word that points back: a connective, a demonstrative, a
bare particle) and `broken` (a fragment cut mid-clause, a hole left by a dropped link, a
「…を参照。」 note). The generators in `qa_pairs` pick runs of sentences from it and render them
as answers sliced from the original paragraphs. Options, pairs and drops are defined here too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from japanese_ft.data.qa_phrasings import Phraser
from japanese_ft.errors import UserError
from japanese_ft.text.sections import Paragraph, split_sections
from japanese_ft.text.standalone import hole, is_finished, is_reference_note, leading_reference, repair

KINDS = ("definition", "summary", "overview", "detail", "history", "features", "section", "whole")

_NOUN = r"[一-龯々〆ヵヶァ-ヴーA-Za-z0-9・]"
_HEADLESS_LEAD = re.compile(r"^(?:は|とは|が|も|[（(])")  # LLM-jp drops the bold title: 「は、日本の元号の一つ。」
_ROLE = re.compile(  # the last noun of a biography's first sentence: 「…の小説家である。」
    r"(?:(?<![国王一本商旧名宗武公実分専])家|(?<!事業)者|歌手|選手|騎手|投手|棋士|力士|弁護士|博士|武士|女優|俳優|声優"
    r"|師|(?<![法個])人|(?<!器)官|将|王|帝|皇|僧|大名|貴族|藩主|君主|領主|監督|アナウンサー|タレント|アイドル|モデル"
    r"|プロデューサー|ジャーナリスト|ソングライター|デザイナー)$"
)


@dataclass
class QAOptions:
    seed: int = 42
    validation_ratio: float = 0.05
    chunk_chars: int = 800
    max_input_chars: int = 200
    min_output_chars: int = 50
    max_output_chars: int = 1500
    definition_chars: int = 200
    summary_chars: int = 400
    text_key: str = "text"
    strict: bool = False
    # Titles whose articles are skipped (e.g. those of an evaluation set, to avoid contamination).
    exclude_titles: frozenset = frozenset()

    def check(self) -> None:
        if not (0.0 <= self.validation_ratio < 1.0):
            raise UserError(f"--validation-ratio {self.validation_ratio}: must be >= 0 and < 1")
        for name in ("chunk_chars", "max_input_chars", "max_output_chars"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.min_output_chars < 0:
            raise UserError(f"--min-output-chars must be >= 0, got {self.min_output_chars}")
        if self.min_output_chars > self.max_output_chars:
            raise UserError(
                f"--min-output-chars {self.min_output_chars} is larger than --max-output-chars {self.max_output_chars}"
            )


@dataclass(frozen=True)
class QAPair:
    input: str
    output: str
    kind: str

    def record(self, article_id: str, title: str) -> dict:
        return {"input": self.input, "output": self.output, "meta": {"id": article_id, "title": title, "kind": self.kind}}


@dataclass(frozen=True)
class Drop:
    """A pair (or would-be pair) that was not kept: its kind, why, and the text when there was one."""

    kind: str
    reason: str
    question: str = ""
    answer: str = ""


@dataclass
class ArticleResult:
    pairs: list[QAPair] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    repairs: Counter = field(default_factory=Counter)  # text repairs made before splitting
    left_out: Counter = field(default_factory=Counter)  # sentences no answer may contain, by reason


# ---- titles and leads ----------------------------------------------------------------------


def display_title(title: str) -> str:
    """LLM-jp titles use "_" for spaces ("Google_検索"); questions use the readable form."""
    return re.sub(r"\s+", " ", title.replace("_", " ")).strip()


def restore_subject(title: str, text: str) -> str:
    """Put the title back in front of a lead that starts with its particle (「は、…」 -> 「天治は、…」)."""
    return title + text if _HEADLESS_LEAD.match(text) else text


def is_person(lead: str, title: str = "") -> bool:
    """True when the lead's first sentence ends on a person's role (「…は、日本の小説家である。」)
    or tells a birth (「…の王女として生まれた」).

    An article about a role itself (「落語家は、…職業とする人。」) is not a biography.
    """
    first = re.split(r"(?<=[。！？])", lead, maxsplit=1)[0]
    if title and _ROLE.search(title):
        return False
    if re.search(r"(?:として|の家に|の家庭に|の家庭の)生まれ", first):
        return True
    body = re.sub(r"(?:[（(][^（）()]*[）)])?(?:である|であった|だった|だ|です)?[。．]?$", "", first.strip())
    last = re.split(r"[、・のでと,]", body)[-1].strip()
    return bool(_ROLE.search(last)) and "は" in first


def _key(s: str) -> str:
    return re.sub(r"[\s_・]", "", s)


def is_definitional(title: str, first_sentence: str, person: bool) -> bool:
    """The lead's first sentence names the title before its first 「は」 (「天治は、…」,
    「ラオス人民民主共和国（…）、通称ラオスは、…」) and states what it is rather than telling a
    story (a past-tense verb at the end: 「…は高校三年の時に…関心を持ちはじめた。」), so
    「〜とは何ですか？」 fits it."""
    if re.search(r"(?<!であっ)(?<!だっ)(?<!でし)た。$", first_sentence.strip()):
        return False
    if person:
        return True
    key, sentence = _key(title), _key(first_sentence)
    at = sentence.find(key)
    return at >= 0 and (sentence.find("は") < 0 or at < sentence.find("は") or key.find("は") >= 0)


# ---- the article: paragraphs, sentences and their flags --------------------------------------


@dataclass(frozen=True)
class Sentence:
    para: int
    start: int
    end: int
    section: int  # increases at every heading; 0 before the first
    dependent: str | None  # the leading word that points back to missing context
    broken: str | None  # why it can never be part of an answer


class Article:
    """One article ready for the generators: paragraphs, flagged sentences, chosen pairs so far."""

    def __init__(self, title: str, text: str, opts: QAOptions):
        self.opts = opts
        self.raw_title, self.title = title, display_title(title)
        text, self.repairs = repair(text)
        self.paragraphs: list[Paragraph] = split_sections(restore_subject(self.title, text))[0] if self.title else []
        self.sents: list[Sentence] = list(self._flag_sentences())
        self.by_para: list[list[int]] = [[] for _ in self.paragraphs]
        for i, sent in enumerate(self.sents):
            self.by_para[sent.para].append(i)
        self.person = bool(self.paragraphs) and is_person(self.paragraphs[0].text, self.title)
        # Phrasings are keyed by the title (like the split): a re-dumped article under another id
        # then yields the very same pairs, which the exact-duplicate filter drops.
        self.phraser = Phraser(opts.seed, self.title)
        self.candidates: list[QAPair] = []
        self.drops: list[Drop] = []
        self.used_nouns: dict[str, set] = {"history": set(), "features": set(), "section": set()}
        self.slots: Counter = Counter()

    def _flag_sentences(self):
        section, heading = 0, None
        for p, para in enumerate(self.paragraphs):
            if para.heading != heading:
                section, heading = section + 1, para.heading
            for start, end in para.spans:
                s = para.text[start:end]
                broken = None if is_finished(s) else "unfinished"
                broken = broken or hole(s) or ("reference_note" if is_reference_note(s) else None)
                yield Sentence(p, start, end, section, leading_reference(s), broken)

    def text(self, i: int) -> str:
        s = self.sents[i]
        return self.paragraphs[s.para].text[s.start : s.end]

    def render(self, idxs: list[int]) -> str:
        """Consecutive sentences of a paragraph as sliced from it; paragraphs joined by "\\n"."""
        parts: list[str] = []
        start, prev = 0, None
        for i in idxs:
            s = self.sents[i]
            if prev is not None and prev + 1 == i and self.sents[prev].para == s.para:
                parts[-1] = self.paragraphs[s.para].text[start : s.end]
            else:
                start = s.start
                parts.append(self.paragraphs[s.para].text[s.start : s.end])
            prev = i
        return "\n".join(parts)

    def _grow(self, length: int, prev: int | None, i: int) -> int:
        """len(render(idxs + [i])) from len(render(idxs)) = `length` and idxs[-1] = `prev`."""
        s = self.sents[i]
        if prev is None:
            return s.end - s.start
        if prev + 1 == i and self.sents[prev].para == s.para:
            return length + s.end - self.sents[prev].end
        return length + 1 + s.end - s.start

    def length(self, idxs: list[int]) -> int:
        length, prev = 0, None
        for i in idxs:
            length, prev = self._grow(length, prev, i), i
        return length

    def paragraph(self, p: int) -> list[int]:
        return self.by_para[p]

    def clean_run(self, idxs: list[int]) -> list[int]:
        """The longest prefix of unbroken sentences; empty unless its first stands on its own."""
        out: list[int] = []
        for i in idxs:
            if self.sents[i].broken:
                break
            out.append(i)
        return out if out and not self.sents[out[0]].dependent else []

    def take(self, idxs: list[int], limit: int, enough: int | None = None) -> list[int]:
        """The longest prefix of whole sentences that fits `limit` (at least one sentence). With
        `enough`, stop as soon as the text reaches that length."""
        out: list[int] = []
        length = 0
        for i in idxs:
            new = self._grow(length, out[-1] if out else None, i)
            if out and new > limit:
                break
            out.append(i)
            length = new
            if enough is not None and length >= enough:
                break
        return out

    def add(self, kind: str, question: str, idxs: list[int]) -> None:
        if idxs:
            self.candidates.append(QAPair(question, self.render(idxs), kind))
        else:
            self.drops.append(Drop(kind, "no_standalone_start", question))

    def drop(self, kind: str, reason: str, question: str = "", idxs: list[int] | None = None) -> None:
        self.drops.append(Drop(kind, reason, question, self.render(idxs) if idxs else ""))
