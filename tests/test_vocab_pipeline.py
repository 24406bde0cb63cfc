"""An extended model works unchanged with prepare-corpus, train (cpt, sft, lora), export, eval, generate and chat."""

from __future__ import annotations

import io
import json
from pathlib import Path

from japanese_ft.cli import main
from jft_train_utils import build_tokenizer, sft_records, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "japanese_ft" / "sample"
CONFIGS = ROOT / "configs"
COMMON = ["train.max_steps=2", "train.micro_batch_size=2", "train.global_batch_size=2", "train.eval_every=2",
          "train.eval_batches=1", "train.save_every=2", "train.warmup_steps=1", "train.device=cpu", "train.precision=fp32"]


def test_extended_model_through_the_pipeline(tmp_path, monkeypatch, capsys):
    tok = build_tokenizer(tmp_path / "tok")
    assert main(["init-model", "--preset", "tiny", "--tokenizer", str(tok), "--output", str(tmp_path / "base")]) == 0
    ext = tmp_path / "ext"
    assert main(["extend-vocab", "--model", str(tmp_path / "base"), "--corpus", str(SAMPLE / "articles.jsonl"),
                 "--add", "150", "--output", str(ext), "--report", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["added_tokens"] == 150 and report["embedding_rows"]["after"] == 768
    assert "Japanese chars/token" in capsys.readouterr().out

    corpus = tmp_path / "corpus"
    assert main(["prepare-corpus", str(SAMPLE / "articles.jsonl"), "--tokenizer", str(ext), "--output-prefix", str(corpus)]) == 0
    stats = json.loads(Path(f"{corpus}.stats.json").read_text())
    assert stats["chars_per_token"] > report["chars_per_token"]["japanese"]["before"]
    assert main(["train", "cpt", "--config", str(CONFIGS / "tiny-cpu-cpt.yaml"), f"model.name_or_path={ext}",
                 f"data.train=[{corpus}]", "data.validation=[]", "data.seq_length=32", f"output_dir={tmp_path / 'cpt'}",
                 *COMMON]) == 0
    cpt = tmp_path / "cpt" / "final"
    assert json.loads((cpt / "config.json").read_text())["vocab_size"] == 768
    sft = write_jsonl(tmp_path / "sft.jsonl", sft_records(8))
    assert main(["train", "sft", "--config", str(CONFIGS / "tiny-cpu-sft.yaml"), f"model.name_or_path={cpt}",
                 f"data.train=[{sft}]", "data.validation=[]", "data.seq_length=160", f"output_dir={tmp_path / 'sft'}",
                 *COMMON]) == 0
    assert main(["train", "lora", "--config", str(CONFIGS / "tiny-cpu-lora.yaml"), f"model.name_or_path={cpt}",
                 f"data.train=[{sft}]", "data.validation=[]", "data.seq_length=160", f"output_dir={tmp_path / 'lora'}",
                 *COMMON]) == 0
    merged = tmp_path / "merged"
    assert main(["export", "--base", str(cpt), "--adapter", str(tmp_path / "lora" / "final"), "--output", str(merged)]) == 0

    assert main(["eval", "jsquad", "--model", str(tmp_path / "sft" / "final"), "--data", str(SAMPLE / "questions_heldout.json"),
                 "--limit", "2", "--max-new-tokens", "4", "--output", str(tmp_path / "jsquad.json")]) == 0
    assert main(["eval", "perplexity", "--model", str(merged), "--data", str(SAMPLE / "heldout.jsonl"), "--limit", "2",
                 "--seq-length", "64", "--output", str(tmp_path / "ppl.json")]) == 0
    ppl = json.loads((tmp_path / "ppl.json").read_text())
    assert ppl["bits_per_char"] > 0 and ppl["model_info"]["tokenizer_vocab"] == 750
    capsys.readouterr()
    assert main(["generate", "--model", str(merged), "--prompt", "富士山は", "--max-new-tokens", "4"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("こんにちは\n/exit\n"))
    assert main(["chat", "--model", str(tmp_path / "sft" / "final"), "--max-new-tokens", "3"]) == 0
