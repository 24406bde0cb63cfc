"""Pinned llm-jp-eval prompt texts (0-shot and 2-shot) and answer post-processing."""

from japanese_ft.eval.prompts import (
    JCQA_INSTRUCTION,
    JSQUAD_INSTRUCTION,
    Shot,
    build_prompt,
    cut_answer,
    jcqa_input,
    jcqa_ranking_context,
    jsquad_input,
)

INTRO = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"
INSTR = "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。 それ以外には何も含めないことを厳守してください。"


def test_jsquad_instruction_text():
    assert JSQUAD_INSTRUCTION == INSTR


def test_jsquad_zero_shot_prompt():
    prompt = build_prompt(JSQUAD_INSTRUCTION, jsquad_input("富士山 [SEP] 富士山は日本一高い山である。", "日本一高い山は？"))
    assert prompt == (
        "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n"
        "\n"
        "### 指示:\n"
        "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。 それ以外には何も含めないことを厳守してください。\n"
        "\n"
        "### 入力:\n"
        "文章：富士山 [SEP] 富士山は日本一高い山である。\n"
        "質問：日本一高い山は？\n"
        "\n"
        "### 応答:\n"
    )


def test_jsquad_two_shot_prompt():
    shots = [
        Shot(jsquad_input("琵琶湖 [SEP] 琵琶湖は滋賀県にある。", "琵琶湖はどこにある？"), "滋賀県"),
        Shot(jsquad_input("味噌 [SEP] 味噌は大豆から作る。", "味噌は何から作る？"), "大豆"),
    ]
    prompt = build_prompt(JSQUAD_INSTRUCTION, jsquad_input("富士山 [SEP] 富士山は日本一高い山である。", "日本一高い山は？"), shots)
    assert prompt == (
        f"{INTRO}\n\n### 指示:\n{INSTR}"
        "\n\n### 入力:\n文章：琵琶湖 [SEP] 琵琶湖は滋賀県にある。\n質問：琵琶湖はどこにある？\n\n### 応答:\n滋賀県"
        "\n\n### 入力:\n文章：味噌 [SEP] 味噌は大豆から作る。\n質問：味噌は何から作る？\n\n### 応答:\n大豆"
        "\n\n### 入力:\n文章：富士山 [SEP] 富士山は日本一高い山である。\n質問：日本一高い山は？\n\n### 応答:\n"
    )


def test_jcommonsenseqa_prompts():
    inp = jcqa_input("日本最大の湖は？", ["京都", "琵琶湖", "山梨県", "大豆", "塩"])
    assert inp == "質問：日本最大の湖は？\n選択肢：0.京都,1.琵琶湖,2.山梨県,3.大豆,4.塩"
    zero = build_prompt(JCQA_INSTRUCTION, inp)
    assert zero == (
        f"{INTRO}\n\n### 指示:\n"
        "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。なお、回答は選択肢の番号（例：0）でするものとします。 "
        "回答となる数値をint型で返し、他には何も含めないことを厳守してください。"
        f"\n\n### 入力:\n{inp}\n\n### 応答:\n"
    )
    two = build_prompt(JCQA_INSTRUCTION, inp, [Shot("質問：a\n選択肢：0.x", "0"), Shot("質問：b\n選択肢：0.y", "3")])
    assert two.endswith(
        "\n\n### 入力:\n質問：a\n選択肢：0.x\n\n### 応答:\n0\n\n### 入力:\n質問：b\n選択肢：0.y\n\n### 応答:\n3"
        f"\n\n### 入力:\n{inp}\n\n### 応答:\n"
    )
    assert jcqa_ranking_context("日本最大の湖は？") == "質問：日本最大の湖は？\n回答："
    assert jcqa_ranking_context("Q", [("q1", "a1")]) == "質問：q1\n回答：a1\n\n質問：Q\n回答："


def test_cut_answer_at_first_blank_line():
    assert cut_answer("東京\n\n### 入力:\n次の質問") == "東京"
    assert cut_answer("  東京都\n庁\n\nx") == "東京都\n庁"
    assert cut_answer("\n\n東京") == ""
    assert cut_answer("東京") == "東京"
