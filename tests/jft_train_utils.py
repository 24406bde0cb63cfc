"""Shared pieces of the training tests: a tiny BPE tokenizer with ChatML control tokens, a tiny
Qwen2 model, a token file and SFT JSONL, and a helper that builds a RunConfig from overrides."""

from __future__ import annotations

import json
from pathlib import Path

from jft_testutils import ARTICLES, make_tokenizer_dir

SHARED = Path(__file__).resolve().parents[2] / "shared"


def build_tokenizer(path: Path, vocab_size: int = 600) -> Path:
    """Byte-level BPE with <|endoftext|>, <|im_start|>, <|im_end|> and no chat template."""
    texts = [t for _, _, t in ARTICLES] + ["user\nassistant\nsystem\n質問に答えてください。"]
    return make_tokenizer_dir(path, vocab_size, texts=texts)


def write_token_file(prefix: Path, tokenizer, copies: int = 4) -> Path:
    from japanese_ft.data.token_file import TokenFileWriter, dtype_for_vocab

    w = TokenFileWriter(prefix, dtype_for_vocab(len(tokenizer)))
    for k in range(copies):
        for _, title, text in ARTICLES:
            ids = tokenizer(f"{title}{k}\n{text}", add_special_tokens=False)["input_ids"]
            w.add_document(ids + [tokenizer.eos_token_id])
    w.finish()
    return prefix


def sft_records(n: int = 20) -> list[dict]:
    out = []
    for i in range(n):
        _, title, text = ARTICLES[i % len(ARTICLES)]
        sentences = [s for s in text.replace("\n", "").split("。") if s]
        answer = sentences[i % len(sentences)] + "。"
        if i % 4 == 3:
            out.append({"messages": [
                {"role": "system", "content": "質問に答えてください。"},
                {"role": "user", "content": f"{title}とは何ですか？"},
                {"role": "assistant", "content": sentences[0] + "。"},
                {"role": "user", "content": "もう少し詳しく。"},
                {"role": "assistant", "content": answer},
            ]})
        else:
            out.append({"input": f"{title}について一文で説明してください。({i})", "output": answer})
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def make_assets(root: Path) -> dict:
    """tokenizer, tiny model, token file, SFT JSONL under root (built once per session)."""
    from japanese_ft.model.load import init_model
    from japanese_ft.tokens import load_tokenizer

    tok_dir = build_tokenizer(root / "tok")
    model_dir = root / "tiny-model"
    init_model("tiny", str(tok_dir), model_dir, seed=0)
    tok = load_tokenizer(str(model_dir))
    corpus = write_token_file(root / "corpus", tok)
    val = write_token_file(root / "corpus_val", tok, copies=1)
    sft = write_jsonl(root / "sft.jsonl", sft_records(20))
    sft_val = write_jsonl(root / "sft_val.jsonl", sft_records(6))
    return {"root": root, "tok": tok_dir, "model": model_dir, "corpus": corpus, "corpus_val": val, "sft": sft, "sft_val": sft_val}


def run_config(assets: dict, mode: str, out: Path, *overrides: str):
    from japanese_ft.config import load_run_config

    if mode == "cpt":
        data = [f"data.train=[{assets['corpus']}]", f"data.validation=[{assets['corpus_val']}]", "data.seq_length=32"]
    else:
        data = [f"data.train=[{assets['sft']}]", f"data.validation=[{assets['sft_val']}]", "data.seq_length=160"]
    base = [
        f"model.name_or_path={assets['model']}",
        *data,
        "train.micro_batch_size=2", "train.global_batch_size=4", "train.max_steps=4", "train.lr=3e-3",
        "train.min_lr=3e-4", "train.warmup_steps=1", "train.eval_every=2", "train.eval_batches=1",
        "train.save_every=2", "train.precision=fp32", "train.device=cpu", "lora.dropout=0.0", "lora.r=4", "lora.alpha=8",
        f"output_dir={out}",
    ]
    return load_run_config(None, base + list(overrides), mode)


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(l) for l in Path(path).read_text(encoding="utf-8").splitlines() if l.strip()]
