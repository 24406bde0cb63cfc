#!/usr/bin/env python
"""JSQuAD generation throughput: batched (left padding, KV cache, longest-first) vs one question
at a time, on the same prompts in the same run.

GPU (the number for docs/benchmarks.md), random weights with the Qwen2.5-0.5B architecture:

    python benchmarks/eval_jsquad.py --preset qwen2.5-0.5b --limit 256 --batch-size 32

CPU smoke run with a tiny model:

    python benchmarks/eval_jsquad.py --preset tiny --limit 8 --batch-size 4

Random weights rarely emit EOS, so every question generates the full 25 tokens: the worst
case for throughput, and the same work in both modes. A trained `--model DIR` can be given
instead of a preset. Prints one JSON object; `--markdown` adds a table row for
docs/benchmarks.md. Output agreement (batched vs one-at-a-time) is reported; in bf16 tiny
numeric differences can flip a near-tie, in fp32 they should agree.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "src"))


def build_random_model(preset: str, tokenizer, config_path: Path, dtype, device):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config

    if preset == "qwen2.5-0.5b":
        cfg = AutoConfig.from_pretrained(str(config_path))
    elif preset == "tiny":
        cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=128, max_position_embeddings=4096,
                          tie_word_embeddings=True)
    else:
        raise SystemExit(f"unknown preset {preset}")
    torch.manual_seed(0)
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_config(cfg, **{key: dtype})
    return model.to(device).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="qwen2.5-0.5b", choices=["qwen2.5-0.5b", "tiny"])
    ap.add_argument("--model", help="A trained checkpoint directory instead of random weights.")
    ap.add_argument("--config", default=str(SHARED / "models/qwen2.5-0.5b-architecture/config.json"))
    ap.add_argument("--tokenizer", default=str(SHARED / "tokenizers/qwen2.5"))
    ap.add_argument("--data", default=str(SHARED / "data/jglue/jsquad-valid-v1.3.json"))
    ap.add_argument("--limit", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shots", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=25)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto = bfloat16 on GPU, float32 on CPU")
    ap.add_argument("--skip-single", action="store_true", help="Only time the batched run.")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import torch
    import transformers

    from japanese_ft.eval.generation import generate
    from japanese_ft.eval.jsquad import build_prompts, read_squad
    from japanese_ft.eval.loading import load_for_inference, load_tokenizer, resolve_device, resolve_dtype

    device = resolve_device(args.device)
    if args.model:
        model, tok = load_for_inference(args.model, device=device, dtype=args.dtype)
        name = Path(args.model).name
    else:
        tok = load_tokenizer(args.tokenizer)
        model = build_random_model(args.preset, tok, Path(args.config), resolve_dtype(args.dtype, device), device)
        name = f"{args.preset} (random init)"
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    items, _ = read_squad(args.data)
    todo = items[: args.limit]
    prompts = build_prompts(todo, shots=args.shots, pool_items=items)
    prompt_tokens = [len(tok(p)["input_ids"]) for p in prompts]

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    # warm-up (kernels, allocator)
    generate(model, tok, prompts[: min(2, len(prompts))], 2, batch_size=2)
    sync()
    t0 = time.perf_counter()
    batched = generate(model, tok, prompts, args.max_new_tokens, batch_size=args.batch_size)
    sync()
    t_batched = time.perf_counter() - t0
    result = {
        "model": name,
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "dtype": dtype,
        "questions": len(prompts),
        "shots": args.shots,
        "mean_prompt_tokens": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "generated_tokens": sum(g.tokens for g in batched),
        "batched_s": round(t_batched, 3),
        "batched_questions_per_s": round(len(prompts) / t_batched, 2),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if not args.skip_single:
        t0 = time.perf_counter()
        single = generate(model, tok, prompts, args.max_new_tokens, batch_size=1)
        sync()
        t_single = time.perf_counter() - t0
        result.update(
            single_s=round(t_single, 3),
            single_questions_per_s=round(len(prompts) / t_single, 2),
            speedup=round(t_single / t_batched, 2),
            identical_outputs=sum(a.text == b.text for a, b in zip(batched, single)) / len(prompts),
        )
    if device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.markdown:
        print(
            f"| {result['model']} | {result['device']} | {dtype} | {result['questions']} | {args.shots} | "
            f"{args.batch_size} | {result['batched_questions_per_s']} | {result.get('single_questions_per_s', '-')} | "
            f"{result.get('speedup', '-')}x | {result.get('identical_outputs', '-')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
