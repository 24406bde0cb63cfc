"""Tiny models and data for the evaluation tests (built once per test session, CPU, fp32)."""

from __future__ import annotations

import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
JGLUE = SHARED / "data" / "jglue"

TEXTS = [
    "富士山は静岡県と山梨県にまたがる活火山である。標高は3776メートルで、日本で最も高い山である。",
    "琵琶湖は滋賀県にある日本最大の湖である。湖の水は京都や大阪の人々の生活を支えている。",
    "味噌は大豆に麹と塩を加えて発酵させた日本の伝統的な調味料である。",
    "新幹線は日本の主要都市を結ぶ高速鉄道である。1964年に東海道新幹線が開業した。",
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。",
    "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。",
    "### 指示:\n### 入力:\n### 応答:\n文章：質問：選択肢：0.1.2.3.4.回答：",
]

SQUAD = {
    "version": "v1.0",
    "data": [
        {
            "title": "富士山",
            "paragraphs": [
                {
                    "context": "富士山 [SEP] 富士山は静岡県と山梨県にまたがる活火山である。標高は3776メートルである。",
                    "qas": [
                        {"id": "q1", "question": "富士山はどの県にまたがるか。", "answers": [{"text": "静岡県と山梨県", "answer_start": 10}], "is_impossible": False},
                        {"id": "q2", "question": "富士山の標高は？", "answers": [{"text": "3776メートル", "answer_start": 30}, {"text": "3776", "answer_start": 30}], "is_impossible": False},
                    ],
                }
            ],
        },
        {
            "title": "琵琶湖",
            "paragraphs": [
                {
                    "context": "琵琶湖 [SEP] 琵琶湖は滋賀県にある日本最大の湖である。",
                    "qas": [
                        {"id": "q3", "question": "琵琶湖はどこにある？", "answers": [{"text": "滋賀県", "answer_start": 14}], "is_impossible": False},
                        {"id": "q4", "question": "琵琶湖の深さは？", "answers": [], "is_impossible": True},
                    ],
                },
                {
                    "context": "琵琶湖 [SEP] 湖の水は京都や大阪の人々の生活を支えている。",
                    "qas": [
                        {"id": "q5", "question": "湖の水は誰の生活を支える？", "answers": [{"text": "京都や大阪の人々", "answer_start": 10}], "is_impossible": False},
                    ],
                },
            ],
        },
    ],
}

JCQA = [
    {"q_id": 1, "question": "日本で最も高い山は？", "choice0": "富士山", "choice1": "琵琶湖", "choice2": "味噌", "choice3": "新幹線", "choice4": "大阪", "label": 0},
    {"q_id": 2, "question": "日本最大の湖は？", "choice0": "京都", "choice1": "琵琶湖", "choice2": "山梨県", "choice3": "大豆", "choice4": "塩", "label": 1},
    {"q_id": 3, "question": "大豆を発酵させた調味料は？", "choice0": "高速鉄道", "choice1": "湖", "choice2": "味噌", "choice3": "火山", "choice4": "標高", "label": 2},
    {"q_id": 4, "question": "主要都市を結ぶ高速鉄道は？", "choice0": "山", "choice1": "塩", "choice2": "麹", "choice3": "新幹線", "choice4": "水", "label": 3},
]

_CACHE: dict[str, Path] = {}


def build_tokenizer(path: Path, chat_template: str | None = None):
    from transformers import PreTrainedTokenizerFast

    from jft_testutils import make_tokenizer_dir

    make_tokenizer_dir(path, 500, texts=TEXTS, chat_template=chat_template, pad_token="<|endoftext|>")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def build_model(path: Path, seed: int = 0, hidden: int = 64, layers: int = 2, init: float = 0.5) -> Path:
    """A random Qwen2 model (2 layers, hidden 64, 4 heads, 2 KV heads) + tokenizer saved at `path`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer(path)
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=1024, tie_word_embeddings=True, initializer_range=init,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    model.save_pretrained(str(path))
    return path


def tiny_model_dir(tmp_path_factory, name: str = "tiny", seed: int = 0, **kw) -> Path:
    key = f"{name}-{seed}-{sorted(kw.items())}"
    if key not in _CACHE:
        _CACHE[key] = build_model(tmp_path_factory.mktemp(name), seed=seed, **kw)
    return _CACHE[key]


def write_squad(path: Path, obj=None) -> Path:
    path.write_text(json.dumps(SQUAD if obj is None else obj, ensure_ascii=False), encoding="utf-8")
    return path


def write_jcqa(path: Path, records=None) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (JCQA if records is None else records)), encoding="utf-8")
    return path


def run_cli(args: list[str], stdin: str | None = None):
    """Run jft in-process; returns (exit code, stdout+stderr text)."""
    import contextlib
    import io
    import sys

    from japanese_ft import ui
    from japanese_ft.cli import main

    buf = io.StringIO()
    old_stdin = sys.stdin
    ui.out.file = buf
    ui.console.file = buf
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(buf):
            code = main(args)
    finally:
        # None restores Rich's dynamic lookup of sys.stdout/sys.stderr (pinning a captured stream leaks).
        ui.out.file, ui.console.file = None, None
        sys.stdin = old_stdin
    return code, buf.getvalue()
