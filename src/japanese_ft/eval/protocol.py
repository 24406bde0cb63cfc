"""Evaluation protocols for JSQuAD and JCommonsenseQA: `jft` (default) and `llm-jp-eval` (v1.3.0).

Both send llm-jp-eval's prompt (eval/prompts.py). They differ in where few-shot examples come
from and when generation stops:

- `jft`: `--shots K` (default 0) examples from `--shots-file` or from the other questions of the
  data file (a `--seed`ed shuffle, skipping the question itself and its passage); generation stops
  at EOS or an end-of-turn token.
- `llm-jp-eval`: its preprocessing shuffles the samples of the task's *train* file with
  `random.seed(42)` and keeps the first 90 % as its train split; its evaluator takes the first
  `num_few_shots` (default 4) of that split for every question. Generation stops at EOS only,
  after at most the task's `output_length` new tokens (JSQuAD 25, JCommonsenseQA 1). So here:
  `--shots-file` is required for shots > 0, the seed is 42, and the shots are the same for every
  question.

`--chat` (raw vs chat format) is independent of the protocol's shot rules but is not part of
llm-jp-eval v1.3.0 (it sends raw prompts), so the two are not combined.
"""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

from japanese_ft.errors import UserError

T = TypeVar("T")

PROTOCOLS = ("jft", "llm-jp-eval")
LLM_JP_EVAL_SEED = 42
LLM_JP_EVAL_SHOTS = 4  # num_few_shots in its config template
LLM_JP_EVAL_TRAIN_SHARE = 0.9  # its train/dev split of the train file
MAX_NEW_TOKENS = {"jsquad": 25, "jcommonsenseqa": 1}  # its output_length per task
TRAIN_FILES = {
    "jsquad": "the JSQuAD train split as SQuAD JSON (JGLUE datasets/jsquad-v1.1/train-v1.1.json)",
    "jcommonsenseqa": "the JCommonsenseQA train split as JSONL (JGLUE datasets/jcommonsenseqa-v1.1/train-v1.1.json)",
}


def llm_jp_eval_shots(pool: Sequence[T], k: int, seed: int = LLM_JP_EVAL_SEED) -> list[T]:
    """llm-jp-eval's few-shot examples: the first `k` of `pool` (the train file's samples in file
    order) after `random.seed(seed); random.shuffle(...)`, taken from the first 90 % (its train split)."""
    if k <= 0:
        return []
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)  # the same permutation as random.seed(seed); random.shuffle(samples)
    train = order[: int(len(pool) * LLM_JP_EVAL_TRAIN_SHARE)]
    if len(train) < k:
        raise UserError(f"--shots {k}: the train file's llm-jp-eval train split has only {len(train)} examples")
    return [pool[i] for i in train[:k]]


def resolve(task: str, protocol: str, shots: int | None = None, shots_file=None, seed: int | None = None,
            max_new_tokens: int | None = None, chat: bool = False, data=None, **unsupported) -> dict:
    """Validate the options of one evaluation and fill in the protocol's defaults.

    Returns {"protocol", "shots", "seed", "max_new_tokens", "chat", "format"}. `unsupported` names
    options the llm-jp-eval protocol does not have, with the value that means "off"
    (e.g. strip_title=False, generation=True); any other value is an error under llm-jp-eval.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol {protocol!r}: choose {' or '.join(PROTOCOLS)}")
    if shots is not None and shots < 0:
        raise UserError(f"--shots must be >= 0, got {shots}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if protocol == "jft":
        return {"protocol": protocol, "shots": 0 if shots is None else shots, "seed": 0 if seed is None else seed,
                "max_new_tokens": max_new_tokens or MAX_NEW_TOKENS[task], "chat": chat,
                "format": "chat" if chat else "raw"}
    if chat:
        raise UserError("--chat is not part of the llm-jp-eval v1.3.0 protocol (it sends raw prompts); "
                        "use --protocol jft --chat")
    for name, value in unsupported.items():
        off = {"strip_title": False, "generation": True}.get(name)
        if value != off:
            flag = "--no-generation" if name == "generation" else "--" + name.replace("_", "-")
            raise UserError(f"{flag} is not part of the llm-jp-eval protocol")
    expected = MAX_NEW_TOKENS[task]
    if max_new_tokens is not None and max_new_tokens != expected:
        raise UserError(f"--max-new-tokens {max_new_tokens}: llm-jp-eval generates at most {expected} for {task}")
    if seed is not None and seed != LLM_JP_EVAL_SEED:
        raise UserError(f"--seed {seed}: llm-jp-eval shuffles its train split with seed {LLM_JP_EVAL_SEED}")
    shots = LLM_JP_EVAL_SHOTS if shots is None else shots
    if shots and not shots_file:
        raise UserError(f"--protocol llm-jp-eval takes its {shots} few-shot examples from {TRAIN_FILES[task]}: "
                        "pass it as --shots-file (or use --shots 0)")
    if shots_file and data is not None:
        from pathlib import Path

        if Path(shots_file).resolve() == Path(data).resolve():
            raise UserError(f"--shots-file {shots_file} is the evaluation data itself; pass the train split")
    return {"protocol": protocol, "shots": shots, "seed": LLM_JP_EVAL_SEED, "max_new_tokens": expected,
            "chat": False, "format": "raw"}
