#!/usr/bin/env python3
"""Scaling of the real engine: `jft train cpt` under torchrun on 1 and N GPUs (FSDP2 when N > 1).

Prepares, in --workdir: a tiny byte-level BPE tokenizer (the GPU machine has no ../shared), a
randomly initialised model from `jft init-model --preset` (Qwen2.5-0.5B by default) and a synthetic
token file (a Zipf/Markov stream, so the loss falls). Then, for each N in --nprocs, runs

    torchrun --standalone --nproc_per_node N -m japanese_ft.cli train cpt \
        --config configs/qwen2.5-0.5b-cpt.yaml  train.micro_batch_size=M train.global_batch_size=G ...

with the same per-GPU micro batch M and the same global batch G (1 GPU accumulates G/M micro
batches; N GPUs accumulate G/(M*N)), reads each run's metrics.jsonl and reports tokens/s (median
after --warmup steps), the N-GPU / 1-GPU ratio and how closely the loss curves match.

CPU smoke test (gloo, tiny preset): python benchmarks/train_scaling.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_tokenizer(path: Path, vocab_size: int = 600) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if (path / "tokenizer.json").exists():
        return path
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = ["富士山は日本で最も高い山である。", "琵琶湖は滋賀県にある日本最大の湖である。",
            "味噌は大豆に麹と塩を加えて発酵させた調味料である。", "The quick brown fox jumps over the lazy dog."] * 20
    tok.train_from_iterator(text, trainer=trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "<|endoftext|>", "tokenizer_class": "PreTrainedTokenizerFast"}), encoding="utf-8")
    return path


def make_token_file(prefix: Path, n_tokens: int, vocab: int, seed: int = 0) -> Path:
    from japanese_ft.data.token_file import TokenFileWriter

    if Path(f"{prefix}.idx").exists():
        return prefix
    sys.path.insert(0, str(REPO / "benchmarks"))
    from train_throughput import _markov_tokens

    rng = np.random.default_rng(seed)
    width = 4096
    toks = _markov_tokens(rng, -(-n_tokens // width), width, vocab).reshape(-1)[:n_tokens]
    w = TokenFileWriter(prefix, np.uint16 if vocab < 65536 else np.uint32)
    at = 0
    while at < len(toks):
        n = int(rng.integers(200, 3000))
        w.add_document(toks[at : at + n])
        at += n
    w.finish()
    return prefix


def make_sft_jsonl(path: Path, n: int = 1500, seed: int = 0) -> Path:
    """{"input","output"} records cut from the built-in Japanese sample articles."""
    if path.exists():
        return path
    src = REPO / "src" / "japanese_ft" / "sample" / "articles.jsonl"
    text = "".join(json.loads(line)["text"] for line in src.read_text(encoding="utf-8").splitlines() if line.strip())
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            a, la, b, lb = (int(rng.integers(0, len(text) - 400)), int(rng.integers(30, 150)),
                            int(rng.integers(0, len(text) - 400)), int(rng.integers(50, 300)))
            f.write(json.dumps({"input": text[a : a + la] + "について説明してください。", "output": text[b : b + lb]},
                               ensure_ascii=False) + "\n")
    return path


def read_metrics(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec and "tokens_per_s" in rec:
            rows.append(rec)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/jft_scaling")
    p.add_argument("--preset", default="qwen2.5-0.5b")
    p.add_argument("--train-mode", choices=["cpt", "sft", "lora"], default="cpt")
    p.add_argument("--recipe", default="", help="default: configs/qwen2.5-0.5b-<train-mode>.yaml")
    p.add_argument("--nprocs", default="1,2")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--micro-batch", type=int, default=16, help="per GPU")
    p.add_argument("--global-batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", default="true")
    p.add_argument("--device", default="auto")
    p.add_argument("--loss-rel-tol", type=float, default=0.02)
    p.add_argument("--lr-warmup", type=int, default=30, help="train.warmup_steps of the runs")
    p.add_argument("--extra", default="", help="more key=value overrides, space-separated")
    p.add_argument("--out", default="")
    p.add_argument("--logdir", default="", help="copy each run's log here")
    p.add_argument("--dry-run", action="store_true", help="tiny preset on CPU (gloo)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.preset, args.seq, args.micro_batch, args.global_batch = "tiny", 64, 2, 4
        args.steps, args.warmup, args.compile, args.device = 4, 1, "false", "cpu"
    if args.dry_run and args.train_mode != "cpt":
        args.seq = 2048  # chat examples of the sample text need room
    args.recipe = args.recipe or str(REPO / "configs" / f"qwen2.5-0.5b-{args.train_mode}.yaml")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tok = make_tokenizer(work / "tokenizer")
    model_dir = work / f"model-{args.preset}"
    if not (model_dir / "config.json").exists():
        from japanese_ft.model.load import init_model

        init_model(args.preset, str(tok), model_dir, seed=0, dtype="float32")
    need = int(args.steps * args.global_batch * (args.seq + 1) * 1.1) + 10_000
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tok / "tokenizer.json")).get_vocab_size()
    if args.train_mode == "cpt":
        train_data = str(make_token_file(work / f"tokens-{need}-{vocab}", need, vocab))
    else:
        train_data = str(make_sft_jsonl(work / "sft.jsonl"))
    prep_s = time.perf_counter() - t0

    runs = []
    for n in [int(x) for x in args.nprocs.split(",") if x]:
        out_dir = work / f"run-{args.train_mode}-x{n}-{int(time.time())}"
        overrides = [
            f"model.name_or_path={model_dir}", f"data.tokenizer={tok}", f"data.train=[{train_data}]", "data.validation=[]",
            f"data.seq_length={args.seq}", f"train.micro_batch_size={args.micro_batch}",
            f"train.global_batch_size={args.global_batch}", f"train.max_steps={args.steps}", f"train.warmup_steps={args.lr_warmup}",
            "train.eval_every=0", "train.save_every=0", "train.log_every=1", f"model.compile={args.compile}",
            f"train.device={args.device}", f"output_dir={out_dir}",
        ] + [x for x in args.extra.split() if x]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
               "-m", "japanese_ft.cli", "train", args.train_mode, "--config", args.recipe, *overrides]
        env = dict(os.environ)
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        if args.device != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(n))
        print("$ " + " ".join(cmd), flush=True)
        t1 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True)
        wall = time.perf_counter() - t1
        log = proc.stdout + proc.stderr
        if args.logdir:
            Path(args.logdir).mkdir(parents=True, exist_ok=True)
            (Path(args.logdir) / f"{args.train_mode}_x{n}.log").write_text(log)
        rec = {"nproc": n, "rc": proc.returncode, "wall_s": wall, "command": " ".join(cmd)}
        metrics = out_dir / "metrics.jsonl"
        if proc.returncode != 0 or not metrics.exists():
            rec["error"] = log[-3000:]
            print(f"x{n}: FAILED rc={proc.returncode}\n{log[-3000:]}", flush=True)
        else:
            rows = read_metrics(metrics)
            tps = [r["tokens_per_s"] for r in rows][args.warmup :] or [r["tokens_per_s"] for r in rows]
            rec.update(losses=[r["loss"] for r in rows], tokens_per_s=statistics.median(tps),
                       tokens_per_s_per_gpu=statistics.median(tps) / n, steps=len(rows))
            print(f"x{n}: {rec['tokens_per_s']:,.0f} tok/s ({rec['tokens_per_s_per_gpu']:,.0f} per GPU), "
                  f"loss {rec['losses'][0]:.4f} -> {rec['losses'][-1]:.4f}, wall {wall:.0f}s", flush=True)
        runs.append(rec)

    result = {"date": time.strftime("%Y-%m-%d"), "argv": sys.argv, "prep_s": prep_s, "runs": runs,
              "settings": {k: v for k, v in vars(args).items()}}
    try:
        import torch

        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        result["torch"] = torch.__version__
    except Exception:
        pass
    ok = [r for r in runs if "losses" in r]
    base = next((r for r in ok if r["nproc"] == 1), None)
    for r in ok:
        if base is None or r is base:
            continue
        la, lb = np.array(base["losses"]), np.array(r["losses"])
        m = min(len(la), len(lb))
        rel = np.abs(la[:m] - lb[:m]) / np.maximum(np.abs(la[:m]), 1e-6)
        r["speedup_vs_1"] = r["tokens_per_s"] / base["tokens_per_s"]
        r["loss_max_rel_diff_vs_1"] = float(rel.max())
        r["loss_tracks_1"] = bool(rel.max() <= args.loss_rel_tol)
        print(f"x{r['nproc']} vs x1: {r['speedup_vs_1']:.2f}x tokens/s; loss max rel diff {rel.max():.4f} "
              f"({'matches' if r['loss_tracks_1'] else 'DOES NOT MATCH'})", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
