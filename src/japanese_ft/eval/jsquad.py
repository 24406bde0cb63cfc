"""JSQuAD (SQuAD-format JSON) evaluated the llm-jp-eval way: extractive answers by greedy generation.

Reading: `japanese_ft.data.squad.iter_squad` (unanswerable v2 questions are skipped and
counted). Contexts are kept as in the file, `title [SEP] ` prefix included, because llm-jp-eval
feeds them unchanged; `strip_title=True` removes it.

Prompt: llm-jp-eval's Alpaca layout with the JSQuAD instruction and input `文章：…\\n質問：…`;
the gold answer is the first listed answer, as in llm-jp-eval. Predictions are the text before
the first blank line, NFKC-normalized and stripped, scored with char_f1 and exact_match.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from japanese_ft.errors import UserError
from japanese_ft.eval.common import check_data_file, pick_shots
from japanese_ft.eval.metrics import char_f1, exact_match, mean
from japanese_ft.eval.prompts import (
    JSQUAD_MAX_NEW_TOKENS,
    Shot,
    cut_answer,
    jsquad_input,
    jsquad_prompt,
)
from japanese_ft.files import read_json

SEP = " [SEP] "


@dataclass
class QAItem:
    id: str
    context: str
    question: str
    answers: list[str] = field(default_factory=list)

    @property
    def input(self) -> str:
        return jsquad_input(self.context, self.question)


def _strip_title(context: str) -> str:
    head, sep, rest = context.partition(SEP)
    return rest if sep and len(head) <= 200 and "\n" not in head else context


def read_squad(path: str | Path, strip_title: bool = False) -> tuple[list[QAItem], int]:
    """(answerable questions, number of unanswerable ones skipped) from a SQuAD v1/v2 JSON file.

    Parsing is `japanese_ft.data.squad.iter_squad` (errors name the JSON path and question id).
    """
    from japanese_ft.data.squad import iter_squad

    path = check_data_file(path)
    items: list[QAItem] = []
    skipped = 0
    for q in iter_squad(path, strip_title=strip_title):
        if not q.answers:
            skipped += 1
            continue
        items.append(QAItem(q.qid, q.context, q.question, list(q.answers)))
    if not items:
        raise UserError(f"{path}: no answerable questions found")
    return items, skipped


def read_shots(path: str | Path, strip_title: bool = False) -> list[Shot]:
    """Few-shot examples: SQuAD JSON, llm-jp-eval JSON (`samples`/`few_shots` of input/output),
    or JSONL of {"input","output"} (llm-jp-eval format) or {"context","question","answer"}."""
    path = check_data_file(path, "--shots-file")
    if path.suffix == ".jsonl":
        shots = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{n}: invalid JSON ({exc.msg})") from None
            if isinstance(rec, dict) and {"input", "output"} <= rec.keys():
                shots.append(Shot(str(rec["input"]), str(rec["output"])))
            elif isinstance(rec, dict) and {"context", "question", "answer"} <= rec.keys():
                ctx = _strip_title(rec["context"]) if strip_title else rec["context"]
                shots.append(Shot(jsquad_input(ctx, rec["question"]), str(rec["answer"])))
            else:
                raise UserError(f"{path}:{n}: expected fields 'input' and 'output' (or 'context', 'question', 'answer')")
        if not shots:
            raise UserError(f"{path}: no few-shot examples")
        return shots
    obj = read_json(path, "data file")
    for key in ("samples", "few_shots"):
        if isinstance(obj, dict) and isinstance(obj.get(key), list):
            try:
                return [Shot(str(s["input"]), str(s["output"])) for s in obj[key]]
            except (KeyError, TypeError):
                raise UserError(f"{path}: every entry of '{key}' needs 'input' and 'output'") from None
    items, _ = read_squad(path, strip_title)
    return [Shot(it.input, it.answers[0]) for it in items]


def build_prompts(items: list[QAItem], shots: int = 0, shot_pool: list[Shot] | None = None,
                  pool_items: list[QAItem] | None = None, seed: int = 0) -> list[str]:
    """One prompt per item. Shots come from `shot_pool` (a separate file) when given, else from
    `pool_items` (the other questions), never the question itself nor its passage."""
    prompts = []
    if shots and shot_pool is not None:
        fixed = pick_shots(shot_pool, shots, seed, lambda s: False)
        for it in items:
            use = [s for s in fixed if s.input != it.input]
            if len(use) < shots:  # the separate file happens to contain this very question
                use = pick_shots(shot_pool, shots, seed, lambda s, it=it: s.input == it.input)
            prompts.append(jsquad_prompt(it.context, it.question, use))
        return prompts
    pool = pool_items if pool_items is not None else items
    for it in items:
        chosen = pick_shots(pool, shots, seed, lambda s, it=it: s.id == it.id or s.context == it.context)
        prompts.append(jsquad_prompt(it.context, it.question, [Shot(s.input, s.answers[0]) for s in chosen]))
    return prompts


def protocol_prompts(items: list[QAItem], protocol: str = "jft", shots: int = 0, shot_pool: list[Shot] | None = None,
                     pool_items: list[QAItem] | None = None, seed: int = 0) -> list[str]:
    """Raw prompts under a protocol: `jft` as `build_prompts`; `llm-jp-eval` with the first `shots`
    of its seeded shuffle of `shot_pool` (the train file) for every question."""
    if protocol != "llm-jp-eval":
        return build_prompts(items, shots, shot_pool, pool_items, seed)
    from japanese_ft.eval.protocol import llm_jp_eval_shots

    if shots and not shot_pool:
        raise UserError("the llm-jp-eval protocol takes its shots from the train split (--shots-file)")
    fixed = llm_jp_eval_shots(shot_pool or [], shots, seed)
    return [jsquad_prompt(it.context, it.question, fixed) for it in items]


def evaluate_jsquad(
    model,
    tokenizer,
    items: list[QAItem],
    shots: int = 0,
    shot_pool: list[Shot] | None = None,
    pool_items: list[QAItem] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = JSQUAD_MAX_NEW_TOKENS,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    chat: bool = False,
    protocol: str = "jft",
) -> tuple[dict, list[dict]]:
    """(summary, per-example records). `items` are the questions to score (already limited)."""
    from japanese_ft.eval.generation import encode_for, generate
    from japanese_ft.tokens import eos_ids, stop_token_ids

    if not items:
        raise UserError("no questions to evaluate")
    prompts, inputs = encode_for(tokenizer, protocol_prompts(items, protocol, shots, shot_pool, pool_items, seed), chat)
    stops = eos_ids(tokenizer) if protocol == "llm-jp-eval" else stop_token_ids(tokenizer)
    t0 = time.perf_counter()
    outs = generate(model, tokenizer, inputs, max_new_tokens, batch_size=batch_size, progress=progress, stop_ids=stops)
    seconds = time.perf_counter() - t0
    records = []
    for it, prompt, out in zip(items, prompts, outs):
        pred = cut_answer(out.text)
        f1 = char_f1(pred, it.answers[0])
        records.append({
            "id": it.id,
            "prompt": prompt,
            "generation": out.text,
            "prediction": pred,
            "gold": it.answers[0],
            "golds": it.answers,
            "score": f1,
            "char_f1": f1,
            "exact_match": exact_match(pred, it.answers[0]),
            "char_f1_best": max(char_f1(pred, g) for g in it.answers),
        })
    summary = {
        "task": "jsquad",
        "char_f1": mean(r["char_f1"] for r in records),
        "exact_match": mean(r["exact_match"] for r in records),
        "char_f1_best_gold": mean(r["char_f1_best"] for r in records),
        "n": len(records),
        "shots": shots,
        "format": "chat" if chat else "raw",
        "protocol": protocol,
        "stop_token_ids": stops,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "questions_per_s": round(len(records) / seconds, 3) if seconds > 0 else None,
    }
    return summary, records
