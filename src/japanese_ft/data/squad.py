"""SQuAD v1/v2 JSON (JSQuAD included) -> `{"input", "output", "meta"}` SFT records.

Library use (also by `jft eval jsquad`)::

    from japanese_ft.data.squad import iter_squad, squad_input

    for q in iter_squad("jsquad-valid-v1.3.json"):
        prompt = squad_input(q.context, q.question)   # 「文章:…\\n質問:…」
        gold = q.answers                            # list[str]; [] = unanswerable (v2)

`iter_squad(path)` yields `SquadQuestion(context, question, answers, qid, title)` named tuples,
one per question in file order, so `for context, question, answers, qid, title in
iter_squad(path)` works too. JSQuAD contexts start with 「<title> [SEP] 」; that prefix is
removed (pass `strip_title=False` to keep it). Missing or mistyped fields raise `UserError`
naming the file, the JSON path and the question id.

`convert_squad(..., style="llm-jp-eval")` writes as `input` the whole raw prompt `jft eval jsquad`
sends (`japanese_ft.eval.prompts.jsquad_prompt`, 0-shot), so a model trained on it with
`data.chat_template: none` sees at evaluation exactly what it was trained on.
`squad_articles` writes each article's paragraphs as one LLM-jp corpus document instead
(for `prepare-corpus` and `build-qa`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from japanese_ft.errors import UserError
from japanese_ft.files import write_lines

SEP = " [SEP] "
INPUT_TEMPLATE = "文章:{context}\n質問:{question}"
STYLES = ("plain", "llm-jp-eval")
WIKIPEDIA_URL = "https://ja.wikipedia.org/wiki/"


class SquadQuestion(NamedTuple):
    context: str
    question: str
    answers: list[str]  # answer texts in file order; empty for unanswerable v2 questions
    qid: str
    title: str


def squad_input(context: str, question: str) -> str:
    """The prompt layout used by convert-squad (the llm-jp-eval style): 「文章:{context}\\n質問:{question}」."""
    return INPUT_TEMPLATE.format(context=context, question=question)


def strip_title_prefix(context: str, title: str) -> str:
    """Remove JSQuAD's 「<title> [SEP] 」 context prefix (only when it is there)."""
    if title and context.startswith(title + SEP):
        return context[len(title) + len(SEP) :]
    head, sep, rest = context.partition(SEP)
    if sep and len(head) <= 200 and "\n" not in head and head.strip() == title.strip():
        return rest
    return context


def load_squad(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a SQuAD JSON file")
    try:
        with open(path, "rb") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UserError(f"{path}: not SQuAD JSON (expected an object with a \"data\" list)")
    return doc


def _field(obj, key: str, typ, where: str, path: Path, qid: str | None = None):
    if not isinstance(obj, dict):
        raise UserError(f"{path}: {where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        who = f" (question id {qid})" if qid else ""
        raise UserError(f"{path}: {where}{who}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, typ):
        who = f" (question id {qid})" if qid else ""
        raise UserError(f"{path}: {where}.{key}{who}: expected {typ.__name__}, got {type(value).__name__}")
    return value


def _surrogate(path: Path, where: str, values: dict, qid: str | None = None) -> str | None:
    """'FILE: JSON path.field (question id): reason' when a field holds a lone surrogate, else None."""
    from japanese_ft.data.corpus import SURROGATE_PROBLEM, lone_surrogate_field

    bad = lone_surrogate_field(values)
    if bad is None:
        return None
    who = f" (question id {qid.encode('utf-8', 'backslashreplace').decode()})" if qid else ""
    return f"{path}: {where}.{bad}{who}: {SURROGATE_PROBLEM}"


def iter_squad(path: str | Path, strip_title: bool = True, on_malformed=None) -> Iterator[SquadQuestion]:
    """Yield every question of a SQuAD v1.1/v2.0 file in order (see the module docstring).

    A question whose title, context, question, id or answers hold a lone surrogate escape
    ("\\ud800", not valid Unicode) is malformed: `on_malformed(message)` is called and the question
    skipped, or, without a callback, it raises UserError. SQuAD files are often one line long, so
    the message names the JSON path (`data[3].paragraphs[0].qas[2].question`) rather than a line."""
    path = Path(path)
    doc = load_squad(path)
    for i, article in enumerate(doc["data"]):
        where_a = f"data[{i}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        title = title if isinstance(title, str) else str(title)
        paragraphs = _field(article, "paragraphs", list, where_a, path)
        for j, para in enumerate(paragraphs):
            where_p = f"{where_a}.paragraphs[{j}]"
            context = _field(para, "context", str, where_p, path)
            if strip_title:
                context = strip_title_prefix(context, title)
            for k, qa in enumerate(_field(para, "qas", list, where_p, path)):
                where_q = f"{where_p}.qas[{k}]"
                if not isinstance(qa, dict):
                    raise UserError(f"{path}: {where_q}: expected an object, got {type(qa).__name__}")
                if qa.get("id") is None:
                    raise UserError(f"{path}: {where_q}: missing field 'id'")
                qid = str(qa["id"])
                question = _field(qa, "question", str, where_q, path, qid)
                impossible = bool(qa.get("is_impossible", False))
                answers: list[str] = []
                if not impossible:
                    for n, ans in enumerate(_field(qa, "answers", list, where_q, path, qid)):
                        answers.append(_field(ans, "text", str, f"{where_q}.answers[{n}]", path, qid))
                bad = (_surrogate(path, where_a, {"title": title}) or _surrogate(path, where_p, {"context": context})
                       or _surrogate(path, where_q, {"id": qid, "question": question, "answers": answers}, qid))
                if bad is not None:
                    if on_malformed is None:
                        raise UserError(bad)
                    on_malformed(bad)
                    continue
                yield SquadQuestion(context, question, answers, qid, title)


@dataclass
class SquadStats:
    questions: int = 0
    written: int = 0
    unanswerable_skipped: int = 0
    articles: int = 0
    contexts: int = 0
    malformed: int = 0  # questions skipped: a lone surrogate escape in one of their fields
    malformed_examples: list = field(default_factory=list)


def _record_input(style: str, context: str, question: str) -> str:
    if style == "llm-jp-eval":
        from japanese_ft.eval.prompts import jsquad_prompt  # plain strings, no heavy imports

        return jsquad_prompt(context, question)
    return squad_input(context, question)


def _write_atomic(output: Path, lines) -> None:
    """Write the lines to OUTPUT.tmp and rename it to OUTPUT when complete."""
    if output.is_dir():
        raise UserError(f"{output}: is a directory; --output takes a file name such as out.jsonl")
    write_lines(output, lines)


def _malformed_counter(stats, strict: bool):
    """The on_malformed callback of convert-squad: stop (--strict) or count and keep the first five."""

    def note(message: str) -> None:
        if strict:
            raise UserError(message)
        stats.malformed += 1
        if len(stats.malformed_examples) < 5:
            stats.malformed_examples.append(message)

    return note


def convert_squad(path: str | Path, output: str | Path, strip_title: bool = True, style: str = "plain",
                  strict: bool = False) -> SquadStats:
    """Write one `{"input", "output", "meta": {"id", "title"}}` line per answerable question.

    `style="plain"`: input 「文章:{context}\n質問:{question}」 (the chat template frames it).
    `style="llm-jp-eval"`: input is the whole llm-jp-eval JSQuAD prompt that `jft eval jsquad`
    sends (instruction, 文章：…\n質問：…, ending in 「### 応答:\n」).
    `output` is the first answer's text; unanswerable (v2) questions are skipped and counted.
    A question with a lone surrogate escape is skipped and counted (`malformed`); `strict` stops there.
    The file is written to `OUTPUT.tmp` and renamed when complete.
    """
    if style not in STYLES:
        raise UserError(f"--style {style!r}: choose {' or '.join(STYLES)}")
    output = Path(output)
    stats = SquadStats()
    titles, contexts = set(), set()

    def lines():
        for q in iter_squad(path, strip_title=strip_title, on_malformed=_malformed_counter(stats, strict)):
            stats.questions += 1
            titles.add(q.title)
            contexts.add(q.context)
            if not q.answers:
                stats.unanswerable_skipped += 1
                continue
            record = {"input": _record_input(style, q.context, q.question), "output": q.answers[0],
                      "meta": {"id": q.qid, "title": q.title}}
            stats.written += 1
            yield json.dumps(record, ensure_ascii=False) + "\n"
        if stats.questions == 0:
            raise UserError(f"{path}: no {'valid ' if stats.malformed else ''}questions in the file")

    _write_atomic(output, lines())
    stats.articles, stats.contexts = len(titles), len(contexts)
    return stats


@dataclass
class ArticleStats:
    articles: int = 0  # documents written (unique titles with text)
    paragraphs: int = 0  # paragraphs read
    paragraphs_written: int = 0
    duplicate_paragraphs: int = 0  # repeated within an article, written once
    empty_paragraphs: int = 0
    characters: int = 0  # of the written documents' text
    malformed: int = 0  # articles or paragraphs skipped: a lone surrogate escape in the title or context
    malformed_examples: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def squad_articles(path: str | Path, output: str | Path, strip_title: bool = True, strict: bool = False) -> ArticleStats:
    """Write each unique article (by title) as one LLM-jp JSONL document for pre-training.

    `{"text": paragraphs joined by "\n", "meta": {"id": "<file stem>-<n>", "title", "url"}}`, articles
    in order of first appearance, paragraphs in file order; JSQuAD's 「<title> [SEP] 」 prefix is
    removed (`strip_title`); a paragraph repeated within an article is written once. `url` is the
    Japanese Wikipedia page of the title (JSQuAD and JaQuAD are built from Japanese Wikipedia).
    A title or context with a lone surrogate escape skips that article or paragraph (counted as
    `malformed`); `strict` stops there.
    """
    from urllib.parse import quote

    t0 = time.perf_counter()
    path, output = Path(path), Path(output)
    doc = load_squad(path)
    articles: dict[str, list[str]] = {}
    seen: dict[str, set] = {}
    stats = ArticleStats()
    note = _malformed_counter(stats, strict)
    for i, article in enumerate(doc["data"]):
        where = f"data[{i}]"
        title = _field(article, "title", str, where, path)
        paragraphs = _field(article, "paragraphs", list, where, path)
        bad = _surrogate(path, where, {"title": title})
        if bad is not None:
            note(bad)
            continue
        kept = articles.setdefault(title, [])
        known = seen.setdefault(title, set())
        for j, para in enumerate(paragraphs):
            context = _field(para, "context", str, f"{where}.paragraphs[{j}]", path)
            stats.paragraphs += 1
            bad = _surrogate(path, f"{where}.paragraphs[{j}]", {"context": context})
            if bad is not None:
                note(bad)
                continue
            if strip_title:
                context = strip_title_prefix(context, title)
            context = context.strip()
            if not context:
                stats.empty_paragraphs += 1
            elif context in known:
                stats.duplicate_paragraphs += 1
            else:
                known.add(context)
                kept.append(context)
    if stats.paragraphs == 0:
        raise UserError(f"{path}: no paragraphs in the file")

    def lines():
        for title, paragraphs in articles.items():
            if not paragraphs:
                continue
            stats.articles += 1
            stats.paragraphs_written += len(paragraphs)
            text = "\n".join(paragraphs)
            stats.characters += len(text)
            meta = {"id": f"{path.stem}-{stats.articles:05d}", "title": title,
                    "url": WIKIPEDIA_URL + quote(title.replace(" ", "_"))}
            yield json.dumps({"text": text, "meta": meta}, ensure_ascii=False) + "\n"

    _write_atomic(output, lines())
    stats.seconds = round(time.perf_counter() - t0, 3)
    return stats
