"""Benchmark: `jft prepare-corpus` end to end vs the tokenizer's own `encode_batch` (the limit).

Builds tens of MB of unique Japanese documents (sentences of the built-in sample, reshuffled and
numbered so every document is unique), then times, in this one run:
  1. `Tokenizer.encode_batch` over the same texts (Rust, all cores) - the throughput limit;
  2. `jft prepare-corpus --workers N` end to end (process start, JSON, NFC, cleanup, dedup, write).

    python benchmarks/prepare_corpus.py --tokenizer Qwen/Qwen2.5-0.5B --mb 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from japanese_ft.text import split_sentences

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "japanese_ft" / "sample" / "articles.jsonl"


def build_corpus(path: Path, megabytes: float, seed: int = 0) -> list[str]:
    sentences = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        sentences.extend(split_sentences(json.loads(line)["text"]))
    rng = random.Random(seed)
    texts, size, i = [], 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        while size < megabytes * 1e6:
            body = "".join(rng.choice(sentences) for _ in range(rng.randint(20, 60)))
            text = f"第{i}号の記事。{body}"
            rec = json.dumps({"text": text, "meta": {"id": str(i), "title": f"記事{i}", "url": ""}}, ensure_ascii=False)
            fh.write(rec + "\n")
            size += len(rec.encode("utf-8")) + 1
            texts.append(text)
            i += 1
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=str(Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "qwen2.5"))
    ap.add_argument("--mb", type=float, default=40.0, help="corpus size in MB")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--output", help="write the results as JSON here")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "corpus.jsonl"
        texts = build_corpus(src, args.mb)
        mb = src.stat().st_size / 1e6
        text_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        tok = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json"))

        t0 = time.perf_counter()
        n_tokens = 0
        for start in range(0, len(texts), 2000):
            n_tokens += sum(len(e.ids) for e in tok.encode_batch(texts[start : start + 2000], add_special_tokens=False))
        t_tok = time.perf_counter() - t0

        cmd = [sys.executable, "-m", "japanese_ft.cli", "prepare-corpus", str(src), "--tokenizer", args.tokenizer, "--output-prefix", str(Path(tmp) / "out"),
               "--workers", str(args.workers)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t_jft = time.perf_counter() - t0
        stats = json.loads((Path(tmp) / "out.stats.json").read_text())

    # Both throughputs are over the same JSONL input megabytes, so the ratio is a time ratio.
    tok_mbs, jft_mbs = mb / t_tok, mb / t_jft
    result = {
        "input_mb": round(mb, 2), "text_mb": round(text_mb, 2), "documents": len(texts), "tokens": n_tokens,
        "cores": os.cpu_count(), "workers": args.workers,
        "encode_batch_s": round(t_tok, 2), "encode_batch_mb_per_s": round(tok_mbs, 3),
        "prepare_corpus_s": round(t_jft, 2), "prepare_corpus_mb_per_s": round(jft_mbs, 3),
        "ratio": round(jft_mbs / tok_mbs, 3), "tokens_match": stats["tokens"] == n_tokens + stats["documents_written"],
    }
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0 if result["tokens_match"] else 1)


if __name__ == "__main__":
    main()
