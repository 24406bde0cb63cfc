"""JCommonsenseQA: five-way multiple choice, scored two ways.

- `accuracy` (ranking): each choice is scored by its log-likelihood as the continuation of
  `質問：{question}\\n回答：`, divided by the choice's length in characters (length
  normalization as lm-evaluation-harness's acc_norm, tokenizer-independent); the best wins.
  Robust for base models, which rarely follow the instruction to answer with a number.
- `accuracy_generation`: llm-jp-eval style. The Alpaca prompt lists the choices as
  `0.…,1.…`; greedy decoding of one new token (llm-jp-eval's output_length); exact match of
  the NFKC-normalized answer with the label number.

`chat=True` applies to the generated answer only: the Alpaca prompt is sent as one user turn
through the chat template (stopping at its end-of-turn token). The ranking stays a plain
completion (`ranking_format: raw`) in both formats: it measures what the model knows as a
language model, which a chat wrapper would only blur, and it is not an llm-jp-eval metric.
`protocol="llm-jp-eval"` takes the shots as llm-jp-eval v1.3.0 does (eval/protocol.py) for both
scores and stops generation at EOS only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from japanese_ft.errors import UserError
from japanese_ft.eval.common import check_data_file, pick_shots
from japanese_ft.eval.metrics import exact_match, mean
from japanese_ft.eval.prompts import (
    JCQA_INSTRUCTION,
    JCQA_MAX_NEW_TOKENS,
    Shot,
    build_prompt,
    cut_answer,
    jcqa_input,
    jcqa_ranking_context,
)

N_CHOICES = 5


@dataclass
class MCItem:
    id: str
    question: str
    choices: list[str]
    label: int
    where: str = ""

    @property
    def input(self) -> str:
        return jcqa_input(self.question, self.choices)


def read_jcommonsenseqa(path: str | Path) -> list[MCItem]:
    """JSONL records with question, choice0..choice4, label (0-4); `q_id` names them if present."""
    path = check_data_file(path)
    items = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise UserError(f"{where}: invalid JSON ({getattr(exc, 'msg', exc)})") from None
            if not isinstance(rec, dict):
                raise UserError(f"{where}: expected a JSON object")
            name = f"{where} (q_id {rec['q_id']})" if "q_id" in rec else where
            for key in ["question", *(f"choice{i}" for i in range(N_CHOICES)), "label"]:
                if key not in rec:
                    raise UserError(f"{name}: missing field {key!r}")
            choices = [rec[f"choice{i}"] for i in range(N_CHOICES)]
            if not isinstance(rec["question"], str) or not all(isinstance(c, str) and c for c in choices):
                raise UserError(f"{name}: question and choices must be non-empty strings")
            try:
                label = int(rec["label"])
            except (TypeError, ValueError):
                raise UserError(f"{name}: label {rec['label']!r} is not an integer") from None
            if not 0 <= label < N_CHOICES:
                raise UserError(f"{name}: label {label} is not between 0 and {N_CHOICES - 1}")
            items.append(MCItem(str(rec.get("q_id", lineno)), rec["question"], choices, label, where))
    if not items:
        raise UserError(f"{path}: data file has no records")
    return items


def ranking_scores(model, tokenizer, items: list[MCItem], shots_for: Callable[[MCItem], list[MCItem]],
                   batch_size: int | str = 8, progress=None) -> list[list[float]]:
    """Length-normalized log-likelihood of every choice: sum log p / characters."""
    from japanese_ft.eval.loglik import continuation_logprobs

    pairs = []
    for it in items:
        ctx = jcqa_ranking_context(it.question, [(s.question, s.choices[s.label]) for s in shots_for(it)])
        pairs.extend((ctx, c) for c in it.choices)
    if batch_size == "auto":  # short sequences (question + one choice): a fixed batch is plenty
        batch_size = 64 if next(model.parameters()).device.type == "cuda" else 8
    lps = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size, progress=progress)
    scores = []
    for k, it in enumerate(items):
        row = lps[k * N_CHOICES : (k + 1) * N_CHOICES]
        scores.append([lp / len(c) for (lp, _), c in zip(row, it.choices)])
    return scores


def evaluate_jcommonsenseqa(
    model,
    tokenizer,
    items: list[MCItem],
    shots: int = 0,
    pool_items: list[MCItem] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = JCQA_MAX_NEW_TOKENS,
    seed: int = 0,
    generation: bool = True,
    progress: Callable[[int], None] | None = None,
    chat: bool = False,
    protocol: str = "jft",
) -> tuple[dict, list[dict]]:
    """(summary, per-example records). Shots come from `pool_items` (default: `items`), never
    the question itself; under `protocol="llm-jp-eval"` the first `shots` of its seeded shuffle of
    `pool_items` (the train file), the same for every question."""
    from japanese_ft.eval.generation import encode_for, generate
    from japanese_ft.tokens import eos_ids, stop_token_ids

    if not items:
        raise UserError("no questions to evaluate")
    pool = pool_items if pool_items is not None else items
    if protocol == "llm-jp-eval":
        from japanese_ft.eval.protocol import llm_jp_eval_shots

        fixed = llm_jp_eval_shots(pool, shots, seed)

        def shots_for(it: MCItem) -> list[MCItem]:
            return fixed
    else:
        def shots_for(it: MCItem) -> list[MCItem]:
            return pick_shots(pool, shots, seed, lambda s: s.id == it.id or s.question == it.question)

    t0 = time.perf_counter()
    scores = ranking_scores(model, tokenizer, items, shots_for, batch_size,
                            progress=(lambda n: progress(n / N_CHOICES)) if progress else None)
    raw = [build_prompt(JCQA_INSTRUCTION, it.input, [Shot(s.input, str(s.label)) for s in shots_for(it)]) for it in items]
    prompts, inputs = encode_for(tokenizer, raw, chat)
    stops = eos_ids(tokenizer) if protocol == "llm-jp-eval" else stop_token_ids(tokenizer)
    outs = generate(model, tokenizer, inputs, max_new_tokens, batch_size=batch_size, stop_ids=stops) if generation else None
    seconds = time.perf_counter() - t0
    records = []
    for k, it in enumerate(items):
        ranked = max(range(N_CHOICES), key=lambda j: scores[k][j])
        rec = {
            "id": it.id,
            "prompt": prompts[k],
            "gold": str(it.label),
            "ranking_prediction": ranked,
            "ranking_scores": [round(s, 6) for s in scores[k]],
            "ranking_correct": float(ranked == it.label),
        }
        if outs is not None:
            pred = cut_answer(outs[k].text)
            rec.update(generation=outs[k].text, prediction=pred, score=exact_match(pred, str(it.label)))
        else:
            rec.update(prediction=str(ranked), score=rec["ranking_correct"])
        records.append(rec)
    summary = {
        "task": "jcommonsenseqa",
        "accuracy": mean(r["ranking_correct"] for r in records),
        "accuracy_generation": mean(r["score"] for r in records) if generation else None,
        "n": len(records),
        "shots": shots,
        "format": "chat" if chat else "raw",
        "ranking_format": "raw",
        "protocol": protocol,
        "stop_token_ids": stops,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
    }
    return summary, records
