"""`build-qa`: Japanese Wikipedia articles -> question/answer pairs for SFT.

`build_qa(inputs, output_dir, options)` streams LLM-jp style JSONL(.gz) articles through
`qa_pairs.article_result` (one article -> pairs, the rules live there) and writes
`training.jsonl`, `validation.jsonl` (`{"input", "output", "meta": {"id", "title", "kind"}}`),
`stats.json` and, with `report=`, a report of per-kind counts and drop reasons with examples.
Across the corpus a (title, question) pair and an (input, output) pair are each written once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from japanese_ft.data.corpus import Malformed, expand_inputs, iter_lines, note_malformed, parse_record
from japanese_ft.data.qa_pairs import (  # noqa: F401  (re-exported: the public API of build-qa)
    KINDS,
    PHRASINGS,
    Drop,
    QAOptions,
    QAPair,
    article_pairs,
    article_result,
    display_title,
    is_definitional,
    is_person,
    restore_subject,
)
from japanese_ft.errors import UserError
from japanese_ft.files import publish, temp_path
from japanese_ft.text.normalize import clean, normalize

REPORT_EXAMPLES = 3  # examples kept per (kind, reason) in the report


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


def question_key(title: str, question: str) -> bytes:
    return hashlib.blake2b(f"{title}\0{question}".encode("utf-8"), digest_size=16).digest()


@dataclass
class QAStats:
    articles_in: int = 0
    articles_used: int = 0
    pairs: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)
    repaired: dict = field(default_factory=dict)
    sentences_left_out: dict = field(default_factory=dict)
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


class _Tally:
    """Counts across the corpus: pairs per kind, drops per (kind, reason) with a few examples,
    text repairs, and the keys of what was written (for the corpus-wide duplicate rules)."""

    def __init__(self) -> None:
        self.kinds: Counter = Counter({k: 0 for k in KINDS})
        self.articles_dropped: Counter = Counter()
        self.pair_drops: Counter = Counter()  # (kind, reason) -> n
        self.examples: dict[str, list[dict]] = {}
        self.repairs: Counter = Counter()
        self.left_out: Counter = Counter()
        self.seen_pairs: set[bytes] = set()
        self.seen_questions: set[bytes] = set()

    def drop(self, title: str, d: Drop) -> None:
        self.pair_drops[(d.kind, d.reason)] += 1
        examples = self.examples.setdefault(f"{d.kind}/{d.reason}", [])
        if len(examples) < REPORT_EXAMPLES:
            examples.append({"title": title, "question": d.question, "answer": d.answer[:300]})

    def flat_dropped(self) -> dict:
        flat = Counter({f"article_{r}": n for r, n in self.articles_dropped.items()})
        for (_, reason), n in self.pair_drops.items():
            flat[f"pair_{reason}"] += n
        return dict(sorted(flat.items()))

    def report(self, stats: QAStats) -> dict:
        kinds = {k: {"pairs": self.kinds[k], "dropped": {}} for k in KINDS}
        for (kind, reason), n in sorted(self.pair_drops.items()):
            kinds.setdefault(kind, {"pairs": 0, "dropped": {}})["dropped"][reason] = n
        return {
            "pairs": sum(self.kinds.values()),
            "kinds": kinds,
            "articles": {"in": stats.articles_in, "used": stats.articles_used, "dropped": dict(sorted(self.articles_dropped.items()))},
            "repairs": dict(sorted(self.repairs.items())),
            "sentences_left_out": dict(sorted(self.left_out.items())),
            "examples": dict(sorted(self.examples.items())),
        }


OUTPUT_NAMES = ("training.jsonl", "validation.jsonl", "stats.json")


def build_qa(inputs: list[str | Path], output_dir: str | Path, options: QAOptions | None = None, progress=None,
             report: str | Path | None = None) -> QAStats:
    """Build training/validation Q&A JSONL and stats.json in `output_dir` (and the `report` JSON).

    Output is written to `*.tmp` files that replace the final names only when all is done,
    so an interrupted run leaves no half-written `training.jsonl`. `progress(bytes, articles)`
    is called after each input line.
    """
    opts = options or QAOptions()
    opts.check()
    files = expand_inputs(inputs)
    final = _output_paths(Path(output_dir), report)
    tmp = {name: temp_path(path) for name, path in final.items()}

    options_dump = {k: v for k, v in asdict(opts).items() if k not in ("strict", "exclude_titles")}
    options_dump["excluded_titles"] = len(opts.exclude_titles)
    stats = QAStats(inputs=[str(f) for f in files], options=options_dump)
    tally = _Tally()
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
                _one_article(rec, opts, handles, stats, tally)
            if progress is not None:
                progress(len(raw), stats.articles_in)
        if stats.articles_in == 0:
            raise UserError(f"{', '.join(map(str, files))}: no valid articles in the input")
        for h in handles.values():
            h.close()
        stats.seconds = round(time.perf_counter() - t0, 3)
        stats.pairs = dict(tally.kinds)
        stats.dropped = tally.flat_dropped()
        stats.repaired = dict(sorted(tally.repairs.items()))
        stats.sentences_left_out = dict(sorted(tally.left_out.items()))
        _write_json(tmp["stats.json"], asdict(stats))
        if report is not None:
            _write_json(tmp["report"], tally.report(stats))
        for name, path in final.items():
            publish(tmp[name], path)
    except BaseException:
        for h in handles.values():
            h.close()
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise
    return stats


def _output_paths(out_dir: Path, report: str | Path | None) -> dict[str, Path]:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {name: out_dir / name for name in OUTPUT_NAMES}
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        final["report"] = Path(report)
    return final


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def _one_article(rec: dict, opts: QAOptions, handles, stats: QAStats, tally: _Tally) -> None:
    article_id, title, text = article_fields(rec, opts.text_key)
    if not title:
        tally.articles_dropped["no_title"] += 1
        return
    text = clean(normalize(text, "nfc"))
    if not text:
        tally.articles_dropped["no_text"] += 1
        return
    title = normalize(title, "nfc")
    if opts.exclude_titles and (title in opts.exclude_titles or display_title(title) in opts.exclude_titles):
        tally.articles_dropped["excluded"] += 1
        return
    result = article_result(title, text, opts)
    tally.repairs.update(result.repairs)
    tally.left_out.update(result.left_out)
    for d in result.drops:
        tally.drop(title, d)
    split = split_of(title, opts.seed, opts.validation_ratio)
    written = 0
    for pair in result.pairs:
        key, qkey = pair_key(pair), question_key(display_title(title), pair.input)
        if key in tally.seen_pairs or qkey in tally.seen_questions:
            tally.drop(title, Drop(pair.kind, "duplicate" if key in tally.seen_pairs else "duplicate_question",
                                   pair.input, pair.output))
            continue
        tally.seen_pairs.add(key)
        tally.seen_questions.add(qkey)
        handles[split].write(json.dumps(pair.record(article_id, title), ensure_ascii=False) + "\n")
        tally.kinds[pair.kind] += 1
        written += 1
    if not written:
        tally.articles_dropped["no_pairs"] += 1
        return
    stats.articles_used += 1
    setattr(stats, f"{split}_pairs", getattr(stats, f"{split}_pairs") + written)
    setattr(stats, f"{split}_articles", getattr(stats, f"{split}_articles") + 1)
