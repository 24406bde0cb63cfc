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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

from japanese_ft.errors import UserError

SEP = " [SEP] "
INPUT_TEMPLATE = "文章:{context}\n質問:{question}"


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


def iter_squad(path: str | Path, strip_title: bool = True) -> Iterator[SquadQuestion]:
    """Yield every question of a SQuAD v1.1/v2.0 file in order (see the module docstring)."""
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
                yield SquadQuestion(context, question, answers, qid, title)


@dataclass
class SquadStats:
    questions: int = 0
    written: int = 0
    unanswerable_skipped: int = 0
    articles: int = 0
    contexts: int = 0


def convert_squad(path: str | Path, output: str | Path, strip_title: bool = True) -> SquadStats:
    """Write one `{"input", "output", "meta": {"id", "title"}}` line per answerable question.

    `output` is the first answer's text; unanswerable (v2) questions are skipped and counted.
    The file is written to `OUTPUT.tmp` and renamed when complete.
    """
    output = Path(output)
    if output.is_dir():
        raise UserError(f"{output}: is a directory; --output takes a file name such as jsquad.jsonl")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    stats = SquadStats()
    titles, contexts = set(), set()
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for q in iter_squad(path, strip_title=strip_title):
                stats.questions += 1
                titles.add(q.title)
                contexts.add(q.context)
                if not q.answers:
                    stats.unanswerable_skipped += 1
                    continue
                record = {"input": squad_input(q.context, q.question), "output": q.answers[0], "meta": {"id": q.qid, "title": q.title}}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                stats.written += 1
        if stats.questions == 0:
            raise UserError(f"{path}: no questions in the file")
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    stats.articles, stats.contexts = len(titles), len(contexts)
    return stats
