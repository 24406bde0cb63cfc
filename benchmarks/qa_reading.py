#!/usr/bin/env python
"""Print a seeded random sample of `build-qa` pairs for a human reading (docs/qa-reading.md).

    python benchmarks/qa_reading.py --squad ../shared/data/jaquad/jaquad-dev.json --sample 50 --seed 2
    python benchmarks/qa_reading.py --articles ../shared/data/ja_wiki_sample/train_0.jsonl --sample 50 --seed 2

`--squad FILE` first turns a SQuAD-format file into one LLM-jp article per title (its paragraphs
in order, joined by newlines) -- a stand-in until `jft convert-squad --articles` exists. Then it
runs `build_qa` with the default options (no validation split) into `--out` (a temporary folder
by default), prints the per-kind counts and drop reasons, and prints `--sample` pairs drawn with
`random.Random(--seed)`, numbered, in full. Use a seed you did not tune on for a fair reading.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from japanese_ft.data.qa import QAOptions, build_qa


def squad_articles(squad_file: Path, out_file: Path) -> Path:
    """One {"text", "meta": {"id", "title"}} line per SQuAD article: its contexts in order."""
    data = json.loads(squad_file.read_text(encoding="utf-8"))["data"]
    with out_file.open("w", encoding="utf-8") as fh:
        for i, article in enumerate(data):
            text = "\n".join(p["context"] for p in article["paragraphs"])
            fh.write(json.dumps({"text": text, "meta": {"id": str(i), "title": article["title"]}}, ensure_ascii=False) + "\n")
    return out_file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--squad", type=Path, help="SQuAD-format JSON (e.g. JaQuAD dev) to turn into articles")
    src.add_argument("--articles", type=Path, help="LLM-jp JSONL articles")
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample (not of build-qa)")
    ap.add_argument("--out", type=Path, default=None, help="build-qa output folder (default: a temporary one)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "qa"
        articles = squad_articles(args.squad, Path(tmp) / "articles.jsonl") if args.squad else args.articles
        stats = build_qa([articles], out, QAOptions(validation_ratio=0.0))
        records = [json.loads(line) for line in (out / "training.jsonl").read_text(encoding="utf-8").splitlines()]
    print(f"articles {stats.articles_in} used {stats.articles_used} pairs {len(records)}")
    print("kinds", json.dumps(stats.pairs, ensure_ascii=False))
    print("dropped", json.dumps(stats.dropped, ensure_ascii=False))
    sample = random.Random(args.seed).sample(range(len(records)), min(args.sample, len(records)))
    for n, i in enumerate(sample, 1):
        r = records[i]
        print(f"\n[{n}] #{i} {r['meta']['kind']} | {r['meta']['title']}\nQ: {r['input']}\nA: {r['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
