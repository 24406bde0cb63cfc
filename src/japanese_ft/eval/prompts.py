"""Prompt layouts of llm-jp-eval (Alpaca-style, Japanese) and answer post-processing.

The default llm-jp-eval prompt (no custom template) is

    以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。

    ### 指示:
    {instruction}

    ### 入力:
    {shot input}

    ### 応答:
    {shot output}          <- repeated for every few-shot example

    ### 入力:
    {input}

    ### 応答:
    <model continues here>

Exact text is pinned in tests/test_eval_prompts.py.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPACA_INTRO = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"

JSQUAD_INSTRUCTION = (
    "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。 それ以外には何も含めないことを厳守してください。"
)
JSQUAD_MAX_NEW_TOKENS = 25  # llm-jp-eval output_length for jsquad

JCQA_INSTRUCTION = (
    "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
    "なお、回答は選択肢の番号（例：0）でするものとします。 回答となる数値をint型で返し、他には何も含めないことを厳守してください。"
)
JCQA_MAX_NEW_TOKENS = 1  # llm-jp-eval output_length for jcommonsenseqa


@dataclass(frozen=True)
class Shot:
    """One few-shot example in llm-jp-eval's common format."""

    input: str
    output: str


def build_prompt(instruction: str, input_text: str, shots: list[Shot] | tuple[Shot, ...] = ()) -> str:
    """llm-jp-eval's default evaluation prompt, ending in '### 応答:\\n'."""
    parts = [f"{ALPACA_INTRO}\n\n### 指示:\n{instruction}"]
    for shot in shots:
        parts.append(f"\n\n### 入力:\n{shot.input}\n\n### 応答:\n{shot.output}")
    parts.append(f"\n\n### 入力:\n{input_text}\n\n### 応答:\n")
    return "".join(parts)


def jsquad_input(context: str, question: str) -> str:
    """llm-jp-eval's JSQuAD sample input."""
    return f"文章：{context}\n質問：{question}"


def jsquad_prompt(context: str, question: str, shots: list[Shot] | tuple[Shot, ...] = ()) -> str:
    """The whole raw-format JSQuAD prompt `jft eval jsquad` sends for one question (also the SFT
    input of `convert-squad --style llm-jp-eval`)."""
    return build_prompt(JSQUAD_INSTRUCTION, jsquad_input(context, question), shots)


def jcqa_input(question: str, choices: list[str]) -> str:
    """llm-jp-eval's JCommonsenseQA sample input: numbered choices joined by commas."""
    listed = ",".join(f"{i}.{c}" for i, c in enumerate(choices))
    return f"質問：{question}\n選択肢：{listed}"


def jcqa_ranking_context(question: str, shots: list[tuple[str, str]] | tuple = ()) -> str:
    """Plain completion context for log-likelihood ranking: '質問：…\\n回答：' (+ answered shots)."""
    parts = [f"質問：{q}\n回答：{a}\n\n" for q, a in shots]
    parts.append(f"質問：{question}\n回答：")
    return "".join(parts)


def cut_answer(generated: str) -> str:
    """llm-jp-eval post-processing: keep the text before the first blank line, then strip."""
    return generated.split("\n\n", 1)[0].strip()
