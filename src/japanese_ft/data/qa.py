"""`build-qa`: Japanese Wikipedia articles -> question/answer pairs for SFT.

`article_pairs(title, text, options)` is a pure function from one article to its
pairs. `build_qa(inputs, output_dir, options)` streams LLM-jp style JSONL(.gz) through it and
writes `training.jsonl`, `validation.jsonl` (`{"input", "output", "meta": {"id", "title",
"kind"}}`) and `stats.json`.

Pair kinds (`meta.kind`):
  definition  lead sentences for 「〜とは何ですか？」-style questions
  summary     the lead paragraph cut at a sentence boundary for 「〜について簡潔に説明してください。」
  overview    the first sentence-aligned chunk of about `chunk_chars`
  detail      later chunks (「さらに詳しく」)
  history     the 歴史/沿革/起源 section or topic paragraph (経歴 for people); else the first
              chronological paragraph (most sentences carry a year)
  features    the 特徴/特色/性質/機能/特性 section or topic paragraph
  section     any other heading, or a topic sentence 「<title>の<X>は、…」 / 「<X>については、…」
  whole       the whole article when it fits in one chunk (then no overview/detail chunks)

Every answer is a run of whole sentences sliced from the original paragraphs (paragraphs are
joined by "\\n"); nothing is ever cut inside a sentence. Questions use several phrasings per
kind: a per-article order from `random.Random(f"{seed}:{title}:{kind}")`, stable across processes
(string seeds are hashed with SHA-512, not with Python's randomized `hash`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from japanese_ft.data.corpus import Malformed, expand_inputs, iter_lines, note_malformed, parse_record
from japanese_ft.errors import UserError
from japanese_ft.text.normalize import clean, normalize
from japanese_ft.text.sections import Paragraph, split_sections

KINDS = ("definition", "summary", "overview", "detail", "history", "features", "section", "whole")

PHRASINGS: dict[str, tuple[str, ...]] = {
    "definition": (
        "{t}とは何ですか？",
        "{t}とは何か教えてください。",
        "{t}とは何のことですか？",
        "{t}って何ですか？",
    ),
    "definition_person": (
        "{t}とはどのような人物ですか？",
        "{t}とは誰ですか？",
        "{t}はどんな人物か教えてください。",
    ),
    "summary": (
        "{t}について簡潔に説明してください。",
        "{t}の概要を簡単に教えてください。",
        "{t}について手短に説明してください。",
        "{t}について要点をまとめて教えてください。",
    ),
    "overview": (
        "{t}の概要を説明してください。",
        "{t}について詳しく教えてください。",
        "{t}について詳しく説明してください。",
        "{t}について、まず全体像を教えてください。",
    ),
    "detail": (
        "{t}について、さらに詳しく教えてください。",
        "{t}について、もう少し詳しく説明してください。",
        "{t}に関して、さらに詳しい情報を教えてください。",
        "{t}について、ほかにどのようなことが知られていますか？",
    ),
    "history": (
        "{t}の{n}について教えてください。",
        "{t}にはどのような{n}がありますか？",
        "{t}の{n}を説明してください。",
        "{t}の{n}をたどって説明してください。",
    ),
    "history_person": (
        "{t}の経歴について教えてください。",
        "{t}の経歴を説明してください。",
        "{t}はどのような経歴の持ち主ですか？",
    ),
    "features": (
        "{t}の{n}について教えてください。",
        "{t}にはどのような{n}がありますか？",
        "{t}の主な{n}は何ですか？",
        "{t}の{n}を説明してください。",
    ),
    "section": (
        "{t}の{n}について教えてください。",
        "{t}における{n}について説明してください。",
        "{t}の{n}はどのようなものですか？",
        "{t}の{n}に関して詳しく教えてください。",
    ),
    "whole": (
        "{t}について説明してください。",
        "{t}について知っていることを教えてください。",
        "{t}について、わかりやすく説明してください。",
        "{t}とは何か、説明してください。",
    ),
}

HISTORY_WORDS = ("歴史", "沿革", "起源", "経歴", "生涯", "略歴")
FEATURE_WORDS = ("特徴", "特色", "性質", "機能", "特性")
# 「その歴史は…」「歴史が…」 but not 「…の歴史を記した書」「歴史家」「歴史的」.
_HISTORY_IN_SENTENCE = re.compile(r"(?:^|その|この)(歴史|沿革|起源)(?![的家学])|(歴史|沿革|起源)(?:は|が)")
# 「性質の違う…」 is not about the subject's features; require the noun not to modify another.
_FEATURE_IN_SENTENCE = re.compile(r"(特徴|特色|性質|機能|特性)(?!の)")
# LLM-jp drops the bold title at the start of some leads: 「は、日本の元号の一つ。」
_HEADLESS_LEAD = re.compile(r"^(?:は|とは|が|も|[（(])")
_NOUN = r"[一-龯々〆ヵヶァ-ヴーA-Za-z0-9・]"
_ABOUT_TOPIC = re.compile(rf"^({_NOUN}{{2,12}})については[、,]")
_YEAR = re.compile(r"\d{1,4}年|世紀")
# A lead such as 「某（1860年7月7日 - 1911年5月18日）は、…」: birth-death dates near the start.
_PERSON_DATES = re.compile(r"^.{0,40}?[（(][^）)]*\d{3,4}年[^）)]*[-–－〜～—][^）)]*[）)]")


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


# ---- selecting whole sentences -------------------------------------------------------------

# A sentence is addressed as (paragraph index, start, end) into that paragraph's text.
Sent = tuple[int, int, int]


def _sentences(paragraphs: list[Paragraph], indices) -> list[Sent]:
    return [(p, s, e) for p in indices for s, e in paragraphs[p].spans]


def _render(paragraphs: list[Paragraph], sents: list[Sent]) -> str:
    """Join sentences: consecutive ones of a paragraph as sliced from it, paragraphs by "\\n"."""
    parts: list[str] = []
    i = 0
    while i < len(sents):
        p, start, end = sents[i]
        j = i
        while j + 1 < len(sents) and sents[j + 1][0] == p:
            j += 1
            end = sents[j][2]
        parts.append(paragraphs[p].text[start:end])
        i = j + 1
    return "\n".join(parts)


def _grow(length: int, prev: Sent | None, nxt: Sent) -> int:
    if prev is None:
        return nxt[2] - nxt[1]
    if prev[0] == nxt[0]:
        return length + (nxt[2] - prev[2])
    return length + 1 + (nxt[2] - nxt[1])


def _take(sents: list[Sent], limit: int, enough: int | None = None) -> list[Sent]:
    """The longest prefix of whole sentences whose rendering fits `limit` (at least one
    sentence, even if longer). With `enough`, stop as soon as the text reaches that length."""
    out: list[Sent] = []
    length = 0
    for s in sents:
        new = _grow(length, out[-1] if out else None, s)
        if out and new > limit:
            break
        out.append(s)
        length = new
        if enough is not None and length >= enough:
            break
    return out


def _chunks(sents: list[Sent], size: int) -> list[list[Sent]]:
    chunks: list[list[Sent]] = []
    cur: list[Sent] = []
    length = 0
    for s in sents:
        new = _grow(length, cur[-1] if cur else None, s)
        if cur and new > size:
            chunks.append(cur)
            cur, length = [s], s[2] - s[1]
        else:
            cur.append(s)
            length = new
    if cur:
        chunks.append(cur)
    return chunks


_FINISHED = "。！？!?．」』）)］]】〕〉》｝}…"


def _finished(paragraphs: list[Paragraph], s: Sent) -> bool:
    return paragraphs[s[0]].text[s[2] - 1] in _FINISHED


def _length(sents: list[Sent]) -> int:
    length, prev = 0, None
    for s in sents:
        length, prev = _grow(length, prev, s), s
    return length


# ---- one article -> pairs ------------------------------------------------------------------


def display_title(title: str) -> str:
    """LLM-jp titles use "_" for spaces ("Google_検索"); questions use the readable form."""
    return re.sub(r"\s+", " ", title.replace("_", " ")).strip()


def is_person(lead: str) -> bool:
    """True when the lead looks like a biography (birth-death dates right after the name)."""
    return bool(_PERSON_DATES.match(lead))


class _Phraser:
    def __init__(self, seed: int, title: str):
        self.seed, self.title = seed, title
        self._shuffled: dict[str, list[str]] = {}

    def pick(self, kind: str, slot: int = 0, noun: str = "", table: str | None = None) -> str:
        """Phrasing `slot` of a per-article shuffled list, so successive slots differ."""
        table = table or kind
        order = self._shuffled.get(table)
        if order is None:
            order = list(PHRASINGS[table])
            random.Random(f"{self.seed}:{self.title}:{table}").shuffle(order)
            self._shuffled[table] = order
        return order[slot % len(order)].format(t=self.title, n=noun)


def restore_subject(title: str, text: str) -> str:
    """Put the title back in front of a lead that starts with its particle (「は、…」 -> 「天治は、…」)."""
    if _HEADLESS_LEAD.match(text):
        return title + text
    return text


def _key(s: str) -> str:
    return re.sub(r"[\s_・]", "", s)


def is_definitional(title: str, first_sentence: str, person: bool) -> bool:
    """The lead's first sentence names the title before its first 「は」 (「天治は、…」,
    「ラオス人民民主共和国（…）、通称ラオスは、…」), so 「〜とは何ですか？」 fits it."""
    if person:
        return True
    key, sentence = _key(title), _key(first_sentence)
    at = sentence.find(key)
    return at >= 0 and (sentence.find("は") < 0 or at < sentence.find("は") or key.find("は") >= 0)


def _title_topic(title: str) -> re.Pattern:
    # 「<title>の祭りは、…」: a noun (kanji/katakana, optionally ending in the okurigana り/み/ち/き).
    return re.compile(rf"^{re.escape(title)}の({_NOUN}{{1,12}}?[りみちき]?)(?:は|には|では)[、,]?")


def article_pairs(title: str, text: str, options: QAOptions | None = None) -> tuple[list[QAPair], Counter]:
    """All pairs of one article after the length limits, and a Counter of dropped pairs by reason.

    `text` should already be normalized and cleaned (build_qa does NFC + `clean`).
    """
    opts = options or QAOptions()
    dropped: Counter = Counter()
    t = display_title(title)
    paragraphs, _ = split_sections(restore_subject(t, text))
    if not t or not paragraphs:
        return [], dropped
    # Phrasings are keyed by the title (like the split): a re-dumped article under another id
    # then yields the very same pairs, which the exact-duplicate filter drops.
    phr = _Phraser(opts.seed, t)
    person = is_person(paragraphs[0].text)
    candidates: list[QAPair] = []

    def add(kind: str, question: str, sents: list[Sent]) -> None:
        # End on a finished sentence: a paragraph that stops at 「、」 leaves an unfinished tail.
        while len(sents) > 1 and not _finished(paragraphs, sents[-1]):
            sents = sents[:-1]
        if sents:
            candidates.append(QAPair(question, _render(paragraphs, sents), kind))

    section_cap = min(opts.chunk_chars, opts.max_output_chars)
    all_sents = _sentences(paragraphs, range(len(paragraphs)))

    # Lead: the paragraphs before the first heading (or the first paragraph when there are none).
    lead_idx = [i for i, p in enumerate(paragraphs) if p.heading is None] or [0]
    lead_sents = _sentences(paragraphs, lead_idx[:1])
    # definition: the first sentences, continuing past the first paragraph only while too short.
    target = max(opts.min_output_chars, opts.definition_chars // 2)
    p0, s0, e0 = lead_sents[0]
    if is_definitional(t, paragraphs[p0].text[s0:e0], person):
        definition = _take(lead_sents, opts.definition_chars, enough=target)
        if _length(definition) < opts.min_output_chars:
            definition = _take(all_sents, max(opts.definition_chars, opts.min_output_chars), enough=opts.min_output_chars)
        add("definition", phr.pick("definition", table="definition_person" if person else None), definition)
        summary = _take(lead_sents, opts.summary_chars)
        if _length(summary) < opts.min_output_chars:
            summary = _take(all_sents, max(opts.summary_chars, opts.min_output_chars), enough=opts.min_output_chars)
        add("summary", phr.pick("summary"), summary)
    else:
        dropped["lead_not_definitional"] += 2

    # Whole article when short, else sentence-aligned chunks.
    if _length(all_sents) <= opts.chunk_chars:
        add("whole", phr.pick("whole"), all_sents)
    else:
        chunks = _chunks(all_sents, opts.chunk_chars)
        if len(chunks) > 1 and _length(chunks[-1]) < opts.min_output_chars:
            merged = chunks[-2] + chunks[-1]
            if _length(merged) <= opts.max_output_chars:
                chunks[-2:] = [merged]
        add("overview", phr.pick("overview"), chunks[0])
        for k, chunk in enumerate(chunks[1:]):
            add("detail", phr.pick("detail", k), chunk)

    # Sections under headings, then topic sentences of paragraphs.
    used: dict[str, set] = {"history": set(), "features": set(), "section": set()}
    slots: Counter = Counter()

    def topic(kind: str, noun: str, sents: list[Sent]) -> None:
        if noun in used[kind]:
            return
        used[kind].add(noun)
        if kind == "history" and (person or noun in ("経歴", "生涯", "略歴")):
            question = phr.pick("history", slots["history"], table="history_person")
        else:
            question = phr.pick(kind, slots[kind], noun)
        slots[kind] += 1
        add(kind, question, _take(sents, section_cap))

    def classify(noun: str) -> str:
        if noun in HISTORY_WORDS:
            return "history"
        if noun in FEATURE_WORDS:
            return "features"
        return "section"

    sections: dict[str, list[int]] = {}
    for i, p in enumerate(paragraphs):
        if p.heading is not None:
            sections.setdefault(p.heading, []).append(i)
    for heading, idx in sections.items():
        topic(classify(heading), heading, _sentences(paragraphs, idx))

    title_topic = _title_topic(t)
    title_topic_raw = _title_topic(title) if title != t else None
    for i, p in enumerate(paragraphs):
        if i == 0:
            continue  # the lead is covered by definition/summary
        first = p.text[p.spans[0][0] : p.spans[0][1]]
        # The paragraph, extended into the next one of the same section while too short.
        sents = _sentences(paragraphs, [i])
        if _length(sents) < opts.min_output_chars and i + 1 < len(paragraphs) and paragraphs[i + 1].heading == p.heading:
            sents = sents + _sentences(paragraphs, [i + 1])
        m = title_topic.match(first) or (title_topic_raw.match(first) if title_topic_raw else None) or _ABOUT_TOPIC.match(first)
        if m and classify(m.group(1)) != "section":
            topic(classify(m.group(1)), m.group(1), sents)
            continue
        h = _HISTORY_IN_SENTENCE.search(first) or re.search(rf"{re.escape(t)}の(歴史|沿革|起源)", first)
        if h:
            topic("history", next(g for g in h.groups() if g), sents)
            continue
        f = _FEATURE_IN_SENTENCE.search(first)
        if f:
            topic("features", f.group(1), sents)
            continue
        if m:
            topic("section", m.group(1), sents)

    if not used["history"]:
        # A chronological run of paragraphs: most sentences carry a year.
        for i, p in enumerate(paragraphs[1:], 1):
            n = len(p.spans)
            years = sum(1 for s, e in p.spans if _YEAR.search(p.text[s:e]))
            if n >= 2 and years / n >= 0.6:
                run = [i]
                while run[-1] + 1 < len(paragraphs):
                    q = paragraphs[run[-1] + 1]
                    if sum(1 for s, e in q.spans if _YEAR.search(q.text[s:e])) / len(q.spans) < 0.6:
                        break
                    run.append(run[-1] + 1)
                topic("history", "歴史", _sentences(paragraphs, run))
                break

    pairs: list[QAPair] = []
    for pair in candidates:
        if len(pair.input) > opts.max_input_chars:
            dropped["input_too_long"] += 1
        elif len(pair.output) < opts.min_output_chars:
            dropped["output_too_short"] += 1
        elif len(pair.output) > opts.max_output_chars:
            dropped["output_too_long"] += 1
        else:
            pairs.append(pair)
    return pairs, dropped


# ---- whole corpus --------------------------------------------------------------------------


def article_fields(record: dict, text_key: str = "text") -> tuple[str, str, str]:
    """(id, title, text) of an LLM-jp record ({"text", "meta": {"id", "title"}}) or a flat one."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    title = meta.get("title", record.get("title"))
    article_id = meta.get("id", record.get("id"))
    title = title.strip() if isinstance(title, str) else ""
    text = record.get(text_key)
    text = text if isinstance(text, str) else ""
    article_id = "" if article_id is None else str(article_id)
    return article_id or title, title, text


def split_of(title: str, seed: int, ratio: float) -> str:
    """"validation" or "training" for an article, from SHA-256 of seed and title.

    The key is the title, not the id: every question names the title, so two records with the
    same title (re-dumped, or duplicated under different ids) must land in the same split.
    """
    if ratio <= 0:
        return "training"
    digest = hashlib.sha256(f"{seed}\0{title}".encode("utf-8")).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < ratio else "training"


def pair_key(pair: QAPair) -> bytes:
    return hashlib.blake2b(f"{pair.input}\0{pair.output}".encode("utf-8"), digest_size=16).digest()


@dataclass
class QAStats:
    articles_in: int = 0
    articles_used: int = 0
    pairs: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    training_pairs: int = 0
    validation_pairs: int = 0
    training_articles: int = 0
    validation_articles: int = 0
    malformed_lines: int = 0
    malformed_examples: list = field(default_factory=list)
    input_bytes: int = 0
    seconds: float = 0.0
    inputs: list = field(default_factory=list)
    options: dict = field(default_factory=dict)


OUTPUT_NAMES = ("training.jsonl", "validation.jsonl", "stats.json")


def build_qa(inputs: list[str | Path], output_dir: str | Path, options: QAOptions | None = None, progress=None) -> QAStats:
    """Build training/validation Q&A JSONL and stats.json in `output_dir`.

    Output is written to `*.tmp` files that replace the final names only when all is done,
    so an interrupted run leaves no half-written `training.jsonl`. `progress(bytes, articles)`
    is called after each input line.
    """
    opts = options or QAOptions()
    opts.check()
    files = expand_inputs(inputs)
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {name: out_dir / name for name in OUTPUT_NAMES}
    tmp = {name: out_dir / f"{name}.tmp" for name in OUTPUT_NAMES}

    options_dump = {k: v for k, v in asdict(opts).items() if k not in ("strict", "exclude_titles")}
    options_dump["excluded_titles"] = len(opts.exclude_titles)
    stats = QAStats(inputs=[str(f) for f in files], options=options_dump)
    kinds: Counter = Counter({k: 0 for k in KINDS})
    dropped: Counter = Counter()
    seen: set[bytes] = set()
    t0 = time.perf_counter()
    handles = {}
    try:
        handles = {s: open(tmp[f"{s}.jsonl"], "w", encoding="utf-8", newline="\n") for s in ("training", "validation")}
        for raw, loc in iter_lines(files):
            stats.input_bytes += len(raw)
            rec = parse_record(raw, opts.text_key)
            if isinstance(rec, Malformed):
                note_malformed(stats, loc, rec, opts.strict)
            elif rec is not None:
                stats.articles_in += 1
                _one_article(rec, opts, handles, stats, kinds, dropped, seen)
            if progress is not None:
                progress(len(raw), stats.articles_in)
        if stats.articles_in == 0:
            raise UserError(f"{', '.join(map(str, files))}: no valid articles in the input")
        for h in handles.values():
            h.close()
        stats.seconds = round(time.perf_counter() - t0, 3)
        stats.pairs = dict(kinds)
        stats.dropped = dict(sorted(dropped.items()))
        with open(tmp["stats.json"], "w", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(stats), ensure_ascii=False, indent=2) + "\n")
        for name in OUTPUT_NAMES:
            os.replace(tmp[name], final[name])
    except BaseException:
        for h in handles.values():
            h.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise
    return stats


def _one_article(rec: dict, opts: QAOptions, handles, stats: QAStats, kinds: Counter, dropped: Counter, seen: set) -> None:
    article_id, title, text = article_fields(rec, opts.text_key)
    if not title:
        dropped["article_no_title"] += 1
        return
    text = clean(normalize(text, "nfc"))
    if not text:
        dropped["article_no_text"] += 1
        return
    title = normalize(title, "nfc")
    if opts.exclude_titles and (title in opts.exclude_titles or display_title(title) in opts.exclude_titles):
        dropped["article_excluded"] += 1
        return
    pairs, why = article_pairs(title, text, opts)
    for reason, n in why.items():
        dropped[f"pair_{reason}"] += n
    split = split_of(title, opts.seed, opts.validation_ratio)
    written = 0
    for pair in pairs:
        key = pair_key(pair)
        if key in seen:
            dropped["pair_duplicate"] += 1
            continue
        seen.add(key)
        handles[split].write(json.dumps(pair.record(article_id, title), ensure_ascii=False) + "\n")
        kinds[pair.kind] += 1
        written += 1
    if not written:
        dropped["article_no_pairs"] += 1
        return
    stats.articles_used += 1
    setattr(stats, f"{split}_pairs", getattr(stats, f"{split}_pairs") + written)
    setattr(stats, f"{split}_articles", getattr(stats, f"{split}_articles") + 1)
