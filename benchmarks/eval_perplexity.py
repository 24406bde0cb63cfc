#!/usr/bin/env python3
"""Perplexity with the chunked head vs the full-logits path it replaced, in one process.

`jft eval perplexity` scores through `train.loss.causal_lm_row_nll` (one chunk of logits at a
time). Before, it ran `model(input_ids).logits.float()` and a cross-entropy over the whole batch:
[batch, seq, vocab] fp32 logits, 5 GB per batch of 4 x 2048 with Qwen's 151,936-token vocabulary.

This script times, on the same model and token stream:
  after   `eval.perplexity.stream_nll` over the whole data (the shipped path);
  before  the old full-logits computation over the first --before-windows windows only (the whole
          data did not finish in 15 minutes on a 2-core CPU), extrapolated per token;
and checks that both give the same NLL on the windows both scored. Peak RSS is the process's
high-water mark (`ru_maxrss`) read after each part; "after" runs first, so its figure is not
inflated by the old path.

    python benchmarks/eval_perplexity.py --tokenizer ../shared/tokenizers/qwen2.5 \\
        --data ../shared/data/ja_wiki_sample/train_0.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def old_stream_nll(model, ids, seq_length: int, batch_size: int, max_windows: int):
    """The replaced implementation: full fp32 logits per batch of equal-length windows."""
    import torch

    from japanese_ft.eval.perplexity import window_plan

    plan = window_plan(len(ids), seq_length, seq_length)[:max_windows]
    ids_t = torch.as_tensor(ids, dtype=torch.long)
    total, count, k = 0.0, 0, 0
    while k < len(plan):
        width = plan[k][1] - plan[k][0]
        group = [plan[k]]
        while k + len(group) < len(plan) and len(group) < batch_size and plan[k + len(group)][1] - plan[k + len(group)][0] == width:
            group.append(plan[k + len(group)])
        inputs = torch.stack([ids_t[b:e] for b, e, _ in group])
        targets = torch.stack([ids_t[b + 1 : e + 1] for b, e, _ in group])
        with torch.inference_mode():
            logits = model(input_ids=inputs).logits.float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        for row, (_, _, scored) in enumerate(group):
            total += float(nll[row, width - scored :].sum())
            count += scored
        k += len(group)
    return total, count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="Qwen2.5 tokenizer directory (151,936-row embedding)")
    p.add_argument("--data", required=True, help="JSONL with a 'text' field")
    p.add_argument("--model", default="", help="a checkpoint; default: `jft init-model --preset tiny` in a temp dir")
    p.add_argument("--seq-length", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--before-windows", type=int, default=8, help="windows the old path scores")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)

    import torch

    from japanese_ft.eval.loading import load_for_inference
    from japanese_ft.eval.perplexity import stream_from_jsonl, stream_nll
    from japanese_ft.model.load import init_model
    from japanese_ft.ui import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or str(Path(tmp) / "tiny")
        if not args.model:
            init_model("tiny", args.tokenizer, model_dir, seed=0)
        model, tok = load_for_inference(model_dir, device="cpu", dtype="float32")
        ids, chars, docs = stream_from_jsonl([args.data], tok)
        rss_loaded = peak_rss_mib()
        t0 = time.perf_counter()
        total, count, windows = stream_nll(model, ids, args.seq_length, None, args.batch_size)
        after_s = time.perf_counter() - t0
        rss_after = peak_rss_mib()
        n_before = min(args.before_windows, len(windows))
        sub_new = sum(w["nll"] * w["scored_tokens"] for w in windows[:n_before])
        t0 = time.perf_counter()
        old_total, old_count = old_stream_nll(model, ids, args.seq_length, args.batch_size, n_before)
        before_s = time.perf_counter() - t0
        rss_before = peak_rss_mib()
    result = {
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "vocab": int(model.get_output_embeddings().weight.shape[0]), "documents": docs, "tokens": count,
        "after_seconds": round(after_s, 2), "after_tokens_per_s": round(count / after_s, 1),
        "before_windows": n_before, "before_tokens": old_count, "before_seconds": round(before_s, 2),
        "before_tokens_per_s": round(old_count / before_s, 1),
        "before_seconds_extrapolated_to_all": round(before_s * count / old_count, 1),
        "speedup": round((count / after_s) / (old_count / before_s), 2),
        "nll_rel_diff_on_shared_windows": abs(sub_new - old_total) / abs(old_total),
        "peak_rss_mib": {"model_and_data_loaded": round(rss_loaded), "after": round(rss_after), "before": round(rss_before)},
        "perplexity": float(torch.tensor(total / count).exp()),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if result["nll_rel_diff_on_shared_windows"] < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
