"""One article -> question/answer pairs: the rules of `build-qa`.

`article_pairs(title, text, options)` is a pure function. It builds a `qa_article.Article`
(repaired text, paragraphs, headings, flagged sentences) and runs one generator per kind:

  definition  lead sentences for 「〜とは何ですか？」-style questions
  summary     the lead paragraph cut at a sentence boundary for 「〜について簡潔に説明してください。」
  overview    the first chunk (it starts at the lead)
  detail      later chunks; a chunk that narrates dated events gets a question naming the years
  history     the 歴史/沿革/起源 section or topic paragraph (経歴 for people), else the first
              chronological paragraph; only when the answer carries dates
  features    the 特徴/特色 section or topic paragraph
  section     any other heading, or a topic sentence 「<title>の<X>は、…」 / 「<X>については、…」
  whole       the whole article when it fits in one chunk (then no overview/detail)

Every answer is a run of whole sentences sliced from the original paragraphs ("\\n" between
paragraphs) and obeys three rules: it starts at a sentence that stands on its own (no leading
connective, demonstrative or particle), it contains no broken sentence (a fragment cut
mid-clause, a hole left by a dropped link, a 「…を参照。」 note), and it never crosses a heading.
A dependent sentence stays glued to the sentence before it, so it always comes with its context.
Then one length filter applies to every kind, and a question is asked at most once per article.
Everything dropped is counted by kind and reason (`ArticleResult.drops`).
"""

from __future__ import annotations

import re
from collections import Counter

from japanese_ft.data.qa_article import (  # noqa: F401  (re-exported)
    _NOUN,
    KINDS,
    Article,
    ArticleResult,
    Drop,
    QAOptions,
    QAPair,
    display_title,
    is_definitional,
    is_person,
    restore_subject,
)
from japanese_ft.data.qa_phrasings import PHRASINGS  # noqa: F401  (re-exported)

HISTORY_WORDS = ("歴史", "沿革", "起源", "経歴", "生涯", "略歴")
FEATURE_WORDS = ("特徴", "特色", "性質", "機能", "特性")  # as headings; in prose only 特徴/特色 count
_PERSON_HISTORY = ("経歴", "生涯", "略歴")
_ABOUT_TOPIC = re.compile(rf"^({_NOUN}{{2,12}})については[、,]")
_DATED = re.compile(r"[0-9０-９]{1,4}年|世紀|時代|年代|元年")
_YEAR = re.compile(r"(?<![0-9])([0-9]{3,4})年(?!代)")


def _title_topic(title: str) -> re.Pattern:
    # 「<title>の祭りは、…」: a noun (kanji/katakana, optionally ending in the okurigana り/み/ち/き).
    return re.compile(rf"^{re.escape(title)}の({_NOUN}{{1,12}}?[りみちき]?)(?:は|には|では)[、,]?")


def _feature_topic(title: str) -> re.Pattern:
    # 「<title>の特徴は」「最大の特色は」「特徴として」, or 「<title>は…という特徴がある」
    t = re.escape(title)
    return re.compile(rf"^(?:{t}の|最大の|主な|大きな)?(特徴|特色)(?:は|として|の一つ|のひとつ)"
                      rf"|^{t}(?:は|には)、?[^。]{{0,60}}?(特徴|特色)(?:が|を)(?:ある|あり|持|もつ|備え)")


def _history_topic(title: str) -> re.Pattern:
    return re.compile(rf"^(?:{re.escape(title)}の)?(歴史|沿革|起源)(?:は|が|を)|{re.escape(title)}の(歴史|沿革|起源)")


# ---- per-kind generators ---------------------------------------------------------------------


def definition_and_summary(art: Article) -> None:
    """definition (the first sentences) and summary (the lead paragraph), when the lead defines the title."""
    opts = art.opts
    lead_para = next((p for p, para in enumerate(art.paragraphs) if para.heading is None), 0)
    lead = art.paragraph(lead_para)
    run = art.clean_run(lead)
    if not run or not is_definitional(art.title, art.text(lead[0]), art.person):
        reason = "lead_not_definitional" if run else "lead_broken"
        art.drop("definition", reason)
        art.drop("summary", reason)
        return
    everything = art.clean_run(list(range(len(art.sents))))
    # definition: the first sentences, continuing past the first paragraph only while too short.
    definition = art.take(run, opts.definition_chars, enough=max(opts.min_output_chars, opts.definition_chars // 2))
    if art.length(definition) < opts.min_output_chars:
        definition = art.take(everything, max(opts.definition_chars, opts.min_output_chars), enough=opts.min_output_chars)
    art.add("definition", art.phraser.pick("definition_person" if art.person else "definition"), definition)
    summary = art.take(run, opts.summary_chars)
    if art.length(summary) < opts.min_output_chars:
        summary = art.take(everything, max(opts.summary_chars, opts.min_output_chars), enough=opts.min_output_chars)
    art.add("summary", art.phraser.pick("summary"), summary)


def _blocks(art: Article) -> list[list[int]]:
    """Runs that may open an answer: a sentence that stands on its own plus the dependent ones
    right after it (same section, no broken sentence between). A dependent sentence with no
    such head (after a broken one, or after a heading) is left out."""
    blocks: list[list[int]] = []
    current: list[int] | None = None
    for i, s in enumerate(art.sents):
        if s.broken:
            current = None
        elif not s.dependent:
            current = [i]
            blocks.append(current)
        elif current is not None and art.sents[current[-1]].section == s.section:
            current.append(i)
        else:
            current = None
    return blocks


def chunks(art: Article) -> list[list[int]]:
    """Sentence-aligned chunks of about `chunk_chars`, made of whole blocks. A chunk never crosses
    a heading or a left-out sentence; it takes in the next paragraph only while it is itself too
    short to stand alone (under twice `min_output_chars`) or when the next one is (under
    `min_output_chars`): paragraphs are the topics of an article without headings.
    A block is never split (its tail needs its head); one longer than `max_output_chars` keeps
    only its first sentences."""
    size = art.opts.chunk_chars
    out: list[list[int]] = []
    for block in _blocks(art):
        block = art.take(block, max(size, art.opts.max_output_chars))
        if out:
            last = out[-1]
            joined = last + block
            contiguous = last[-1] + 1 == block[0] and art.sents[last[-1]].section == art.sents[block[0]].section
            new_paragraph = art.sents[last[-1]].para != art.sents[block[0]].para
            short = art.length(last) < 2 * art.opts.min_output_chars or art.length(block) < art.opts.min_output_chars
            if contiguous and art.length(joined) <= size and (short or not new_paragraph):
                out[-1] = joined
                continue
        out.append(block)
    return out


def _period(art: Article, idxs: list[int]) -> str | None:
    """「1929年から1932年にかけて」 when the chunk narrates dated events, else None."""
    texts = [art.text(i) for i in idxs]
    if len(texts) < 2 or any("紀元前" in t for t in texts) or not _YEAR.search(texts[0][:20]):
        return None
    years = [[int(y) for y in _YEAR.findall(t)] for t in texts]
    if sum(1 for ys in years if ys) / len(texts) < 0.6:
        return None
    flat = sorted(y for ys in years for y in ys if 100 <= y <= 2100)
    if not flat or flat[-1] - flat[0] > 60:
        return None
    return f"{flat[0]}年" if flat[0] == flat[-1] else f"{flat[0]}年から{flat[-1]}年にかけて"


_SUBJECT = re.compile(rf"^((?:{_NOUN}{{1,12}}の)?{_NOUN}{{3,12}})は(?![じがっ])[、,]?")
_SUBJECT_STOP = re.compile(r"^[本同当前後両各他諸0-9０-９]|(?:年|月|日|頃|期|代|中|後|前|時|初|末|際|者|人|員|長|側|方|軍|政府|一味|序盤|終盤|設立)$")


def _subject(art: Article, chunk: list[int]) -> str | None:
    """The noun phrase a chunk is about, from its first sentence 「<noun phrase>は、…」, as it will be
    asked: 「<title>の<noun phrase>」 (or the phrase itself when it starts with the title). Not a
    time, not an alias of the title (named in the lead's first sentence), and it must come back
    later in the chunk (a name mentioned once is rarely what the chunk is about)."""
    m = _SUBJECT.match(art.text(chunk[0]))
    if not m or _SUBJECT_STOP.search(m.group(1)) or re.fullmatch(r"[A-Za-z0-9・]+", m.group(1)):
        return None
    noun = m.group(1)
    if art.render(chunk).count(noun.rsplit("の", 1)[-1]) < 2:
        return None
    if noun.startswith(art.title + "の"):
        return noun
    if noun in art.title or art.title in noun or noun in art.text(0):
        return None
    return f"{art.title}の{noun}"


def _chunk_question(art: Article, chunk: list[int], asked: set[str]) -> str:
    """A question for a detail chunk: the years it narrates, else the noun phrase it is about,
    else the next generic 「さらに詳しく」 phrasing (a phrasing repeats only after all were used)."""
    period = _period(art, chunk)
    if period:
        table = "detail_period_person" if art.person else "detail_period"
        question = art.phraser.pick(table, art.slots[table], period=period)
        if question not in asked:
            art.slots[table] += 1
            return question
    subject = _subject(art, chunk)
    if subject:
        question = art.phraser.pick("detail_subject", art.slots["detail_subject"], noun=subject)
        if question not in asked:
            art.slots["detail_subject"] += 1
            return question
    question = art.phraser.pick("detail", art.slots["detail"])
    art.slots["detail"] += 1
    return question


def chunk_pairs(art: Article) -> None:
    """whole (the article fits in one chunk and has no broken sentence), else overview (the chunk
    that starts the article) and detail (every other chunk, asked by `_chunk_question`)."""
    everything = list(range(len(art.sents)))
    if art.length(everything) <= art.opts.chunk_chars and art.clean_run(everything) == everything:
        art.add("whole", art.phraser.pick("whole"), everything)
        return
    found = chunks(art)
    asked: set[str] = set()
    for k, chunk in enumerate(found):
        if k == 0 and chunk[0] == 0:
            art.add("overview", art.phraser.pick("overview"), chunk)
            continue
        question = _chunk_question(art, chunk, asked)
        asked.add(question)
        art.add("detail", question, chunk)


def _classify(noun: str) -> str:
    if noun in HISTORY_WORDS:
        return "history"
    if noun in FEATURE_WORDS:
        return "features"
    return "section"


def _topic(art: Article, kind: str, noun: str, idxs: list[int]) -> None:
    """One history/features/section pair about `noun`, if the answer fits the kind."""
    if noun in art.used_nouns[kind]:
        return
    art.used_nouns[kind].add(noun)
    if kind == "history" and (art.person or noun in _PERSON_HISTORY):
        question = art.phraser.pick("history_person", art.slots["history"])
    else:
        question = art.phraser.pick(kind, art.slots[kind], noun)
    art.slots[kind] += 1
    answer = art.take(art.clean_run(idxs), min(art.opts.chunk_chars, art.opts.max_output_chars))
    reason = _misfit(art, kind, noun, answer)
    if reason:
        art.drop(kind, reason, question, answer)
    else:
        art.add(kind, question, answer)


def _misfit(art: Article, kind: str, noun: str, answer: list[int]) -> str | None:
    """Why a kind-specific question does not fit its answer (None when it fits)."""
    if not answer:
        return "no_standalone_start"
    if len(answer) < 2:
        return "topic_too_thin"  # one sentence rarely answers 「…について教えてください」
    if art.title.endswith(noun) or (kind == "history" and re.search(r"(?:歴史|沿革|史)$", art.title)):
        return "noun_repeats_title"  # never 「ベトナムの歴史の歴史」
    if kind == "history":
        texts = [art.text(i) for i in answer]
        if sum(1 for t in texts if _DATED.search(t)) < 2:
            return "history_without_dates"
        years = [int(y) for t in texts for y in _YEAR.findall(t)]
        if not re.search(r"時代|世紀|年代", "".join(texts)) and (not years or max(years) - min(years) < 10):
            return "history_too_narrow"  # one episode (1567-1568) is no answer to 「…の歴史」
    if kind == "features" and noun not in art.text(answer[0]):
        return "features_not_in_answer"
    return None


def section_pairs(art: Article) -> None:
    """A pair for the text under each heading (history/features/section by the heading's word)."""
    sections: dict[str, list[int]] = {}
    for i, s in enumerate(art.sents):
        heading = art.paragraphs[s.para].heading
        if heading is not None:
            sections.setdefault(heading, []).append(i)
    for heading, idxs in sections.items():
        _topic(art, _classify(heading), heading, idxs)


def topic_pairs(art: Article) -> None:
    """A pair for each paragraph that opens with a topic sentence (after the lead)."""
    t, raw = art.title, art.raw_title
    title_topic = _title_topic(t)
    raw_topic = _title_topic(raw) if raw != t else None
    history, features = _history_topic(t), _feature_topic(t)
    for p in range(1, len(art.paragraphs)):
        idxs = art.paragraph(p)
        head = art.sents[idxs[0]]
        if head.dependent or head.broken:
            continue
        first = art.text(idxs[0])
        m = title_topic.match(first) or (raw_topic.match(first) if raw_topic else None) or _ABOUT_TOPIC.match(first)
        if m and _classify(m.group(1)) != "section":
            _topic(art, _classify(m.group(1)), m.group(1), idxs)
        elif h := history.search(first):
            _topic(art, "history", next(g for g in h.groups() if g), idxs)
        elif f := features.search(first):
            _topic(art, "features", next(g for g in f.groups() if g), idxs)
        elif m:
            _topic(art, "section", m.group(1), idxs)


def chronology_pair(art: Article) -> None:
    """Without a history pair yet: the first chronological run of paragraphs (most sentences dated)."""
    if art.used_nouns["history"]:
        return

    def chronological(p: int) -> bool:
        idxs = art.paragraph(p)
        return len(idxs) >= 2 and sum(1 for i in idxs if _YEAR.search(art.text(i))) / len(idxs) >= 0.6

    for p in range(1, len(art.paragraphs)):
        if chronological(p) and not art.sents[art.paragraph(p)[0]].dependent:
            run = [p]
            while run[-1] + 1 < len(art.paragraphs) and chronological(run[-1] + 1):
                run.append(run[-1] + 1)
            _topic(art, "history", "経歴" if art.person else "歴史", [i for q in run for i in art.paragraph(q)])
            return


GENERATORS = (definition_and_summary, chunk_pairs, section_pairs, topic_pairs, chronology_pair)


# ---- filters and the entry points ------------------------------------------------------------


def length_filter(pairs: list[QAPair], opts: QAOptions, drops: list[Drop]) -> list[QAPair]:
    """The one length rule for every kind: question <= max_input_chars, min <= answer <= max."""
    kept = []
    for pair in pairs:
        if len(pair.input) > opts.max_input_chars:
            reason = "input_too_long"
        elif len(pair.output) < opts.min_output_chars:
            reason = "output_too_short"
        elif len(pair.output) > opts.max_output_chars:
            reason = "output_too_long"
        else:
            kept.append(pair)
            continue
        drops.append(Drop(pair.kind, reason, pair.input, pair.output))
    return kept


def unique_questions(pairs: list[QAPair], drops: list[Drop]) -> list[QAPair]:
    """Each question at most once per article (the first pair that asks it wins)."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        if pair.input in seen:
            drops.append(Drop(pair.kind, "duplicate_question", pair.input, pair.output))
        else:
            seen.add(pair.input)
            kept.append(pair)
    return kept


def article_result(title: str, text: str, options: QAOptions | None = None) -> ArticleResult:
    """All pairs of one article, every drop with its kind and reason, and the text repairs made."""
    opts = options or QAOptions()
    art = Article(title, text, opts)
    if not art.title or not art.sents:
        return ArticleResult(repairs=art.repairs)
    for generate in GENERATORS:
        generate(art)
    pairs = unique_questions(length_filter(art.candidates, opts, art.drops), art.drops)
    return ArticleResult(pairs, art.drops, art.repairs, _left_out(art))


def _left_out(art: Article) -> Counter:
    """Sentences that no answer can contain: broken ones by why, and dependent ones whose
    context is broken or behind a heading (`dependent_without_context`)."""
    counts = Counter(s.broken for s in art.sents if s.broken)
    in_blocks = {i for block in _blocks(art) for i in block}
    counts["dependent_without_context"] = sum(
        1 for i, s in enumerate(art.sents) if s.dependent and not s.broken and i not in in_blocks)
    return +counts


def article_pairs(title: str, text: str, options: QAOptions | None = None) -> tuple[list[QAPair], Counter]:
    """The pairs of one article and a Counter of dropped pairs by reason.

    `text` should already be normalized and cleaned (build_qa does NFC + `clean`).
    """
    result = article_result(title, text, options)
    return result.pairs, Counter(d.reason for d in result.drops)
