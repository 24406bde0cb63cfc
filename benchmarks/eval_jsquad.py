#!/usr/bin/env python
"""JSQuAD generation speed with `jft eval jsquad`'s defaults, against the path it replaced.

Times, in one run on the same prompts (JSQuAD validation, 0 shots = the CLI default, llm-jp-eval's
prompt, 25 new tokens):
  jft       `eval.generation.generate` with its defaults: --batch-size auto (from free GPU memory),
            longest-first batches, cache "auto" (a static KV cache and a CUDA-graph decode step on
            GPU); what `jft eval jsquad` runs. The time includes choosing the batch size and
            capturing the graph.
  baseline  transformers' `model.generate` on left-padded batches of 8, longest first: the
            previous default path, on the first --baseline-limit questions.
Randomly initialised models never emit a stop token, so every question generates all 25 tokens:
the worst case, identical work in both paths (a trained model stops earlier; finished rows then
leave the batch or end it). Shapes: qwen2.5-0.5b (`model.presets`), smollm2-135m (LlamaForCausalLM,
30 layers, hidden 576, 9 heads, 3 KV heads, intermediate 1536, vocab 49152, tied embeddings, rope
theta 1e5), tiny. A tokenizer with more ids than the model's vocabulary (the Qwen tokenizer on the
SmolLM2 shape) has its ids folded into the vocabulary; pass SmolLM2's own tokenizer for realistic
prompt lengths (Japanese prompts are ~2.4x longer in its tokens).

    python benchmarks/eval_jsquad.py --shape qwen2.5-0.5b --tokenizer ../shared/tokenizers/qwen2.5 \\
        --data ../shared/data/jglue/jsquad-valid-v1.3.json
    python benchmarks/eval_jsquad.py --shape tiny --limit 16 --baseline-limit 8   # CPU smoke run
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

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)


def model_config(shape: str, vocab: int):
    from transformers import LlamaConfig

    from japanese_ft.model.presets import preset_config

    if shape == "smollm2-135m":
        return LlamaConfig(**SMOLLM2_135M)
    return preset_config(shape, tokenizer_size=vocab if shape == "tiny" else None)


class FoldedTokenizer:
    """A tokenizer whose ids are folded into a smaller vocabulary (speed runs on random weights)."""

    def __init__(self, tok, vocab: int) -> None:
        self.tok, self.vocab = tok, vocab
        self.pad_token_id = tok.pad_token_id % vocab
        self.eos_token_id = tok.eos_token_id % vocab

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [i % self.vocab for i in self.tok(text, add_special_tokens=add_special_tokens)["input_ids"]]}

    def decode(self, ids, skip_special_tokens=True):
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)


def jsquad_prompts(path: str, limit: int | None) -> list[str]:
    """The prompts of `jft eval jsquad` with 0 shots (answerable questions, title kept)."""
    try:
        from japanese_ft.eval.jsquad import build_prompts, read_squad
    except ImportError:  # the scoring side needs rapidfuzz; the prompts do not
        from japanese_ft.data.squad import iter_squad
        from japanese_ft.eval.prompts import JSQUAD_INSTRUCTION, build_prompt, jsquad_input

        prompts = [build_prompt(JSQUAD_INSTRUCTION, jsquad_input(q.context, q.question))
                   for q in iter_squad(path, strip_title=False) if q.answers]
        return prompts[:limit] if limit else prompts
    items, _ = read_squad(path)
    return build_prompts(items[:limit] if limit else items)


def hf_generate(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int = 8) -> int:
    """The replaced path: transformers' generate, left padding, longest first. Returns new tokens."""
    import torch
    from transformers import GenerationConfig

    enc = [tok(p)["input_ids"] for p in prompts]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=[tok.eos_token_id],
                           pad_token_id=tok.pad_token_id)
    device, total = next(model.parameters()).device, 0
    for start in range(0, len(order), batch_size):
        rows = [enc[i] for i in order[start : start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg)
        total += (out.shape[1] - width) * len(rows)
    return total


def random_model(shape: str, tokenizer_dir: str, device: str):
    """(random-weight model in bf16 on GPU / fp32 on CPU, SDPA; its tokenizer, ids folded if needed)."""
    import torch
    from transformers import AutoModelForCausalLM

    from japanese_ft.eval.loading import inference_tokenizer

    tok = inference_tokenizer(tokenizer_dir)
    cfg = model_config(shape, len(tok))
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa").to(device).eval()
    return model, (FoldedTokenizer(tok, cfg.vocab_size) if len(tok) > cfg.vocab_size else tok)


def compare_paths(args, model, tok, prompts, stop, result: dict, sync) -> None:
    """Add the model.generate baseline's speed and the static-vs-dynamic output agreement."""
    from japanese_ft.eval.generation import generate

    if args.baseline_limit:
        sub = prompts[: args.baseline_limit]
        t0 = time.perf_counter()
        hf_generate(model, tok, sub, args.max_new_tokens)
        sync()
        base_s = time.perf_counter() - t0
        result.update(baseline_questions=len(sub), baseline_seconds=round(base_s, 2),
                      baseline_questions_per_s=round(len(sub) / base_s, 1),
                      speedup=round(result["questions_per_s"] / (len(sub) / base_s), 2))
    if args.check_limit:
        sub = prompts[: args.check_limit]
        other = "static" if result["cache"] == "dynamic" else "dynamic"
        a = generate(model, tok, sub, args.max_new_tokens, stop_ids=stop, cache=other)
        b = generate(model, tok, sub, args.max_new_tokens, stop_ids=stop, cache=result["cache"])
        result["identical_outputs_static_vs_dynamic"] = sum(x.text == y.text for x, y in zip(a, b)) / len(sub)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=["qwen2.5-0.5b", "smollm2-135m", "tiny"])
    ap.add_argument("--tokenizer", default=str(SHARED / "tokenizers/qwen2.5"))
    ap.add_argument("--data", default=str(SHARED / "data/jglue/jsquad-valid-v1.3.json"))
    ap.add_argument("--limit", type=int, default=0, help="first N questions (default: all)")
    ap.add_argument("--baseline-limit", type=int, default=256, help="questions for the model.generate baseline (0: skip)")
    ap.add_argument("--check-limit", type=int, default=64, help="questions decoded with both caches to compare outputs")
    ap.add_argument("--max-new-tokens", type=int, default=25)
    ap.add_argument("--batch-size", default="auto")
    ap.add_argument("--cache", default="auto", choices=["auto", "dynamic", "static"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)

    import torch
    import transformers

    from japanese_ft.eval.decoding import auto_batch_size, resolve_cache
    from japanese_ft.eval.generation import generate
    from japanese_ft.runtime import resolve_device
    from japanese_ft.ui import quiet_libraries

    quiet_libraries()
    device = resolve_device(args.device)
    model, tok = random_model(args.shape, args.tokenizer, device)
    dtype = next(model.parameters()).dtype
    prompts = jsquad_prompts(args.data, args.limit or None)
    lengths = [len(tok(p)["input_ids"]) for p in prompts]
    batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    stop = [tok.eos_token_id]

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    generate(model, tok, prompts[:2], 2, batch_size=2, stop_ids=stop, cache="dynamic")  # load kernels
    sync()
    t0 = time.perf_counter()
    outs = generate(model, tok, prompts, args.max_new_tokens, batch_size=batch, stop_ids=stop, cache=args.cache)
    sync()
    seconds = time.perf_counter() - t0
    result = {
        "shape": args.shape, "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__, "transformers": transformers.__version__,
        "questions": len(prompts), "mean_prompt_tokens": round(sum(lengths) / len(lengths), 1), "max_prompt_tokens": max(lengths),
        "max_new_tokens": args.max_new_tokens, "stopping": "none (random weights): every question generates max_new_tokens",
        "batch_size": auto_batch_size(model, lengths, args.max_new_tokens) if batch == "auto" else batch,
        "cache": resolve_cache(args.cache, model), "generated_tokens": sum(o.tokens for o in outs),
        "seconds": round(seconds, 2), "questions_per_s": round(len(prompts) / seconds, 1),
    }
    if device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    compare_paths(args, model, tok, prompts, stop, result, sync)
    print(json.dumps(result, ensure_ascii=False, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
