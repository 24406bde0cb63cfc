#!/usr/bin/env python3
"""`jft train` itself, as users run it: the shipped recipe on 1 and N GPUs, and against plain HF.

Prepares, in --workdir: a tokenizer (--tokenizer, e.g. the Qwen2.5 one; default a tiny byte-level
BPE), a randomly initialised model (`jft init-model --preset`, Qwen2.5-0.5B by default) and
synthetic-but-realistic data built from the sentences of the built-in Japanese sample: a token
file of documents of 200-3,000 tokens for cpt; for sft/lora a JSONL of {"input","output"} records
whose questions run 30-200 characters and answers 50-1,500 (log-normal, median ~300), the ranges
of `jft build-qa`. Then, for each N in --nprocs:

    torchrun --standalone --nproc_per_node N -m japanese_ft.cli train MODE \\
        --config configs/qwen2.5-0.5b-MODE.yaml model.name_or_path=... data.train=[...] train.max_steps=...

with the recipe's own batch settings unless --micro-batch/--global-batch say otherwise (N GPUs
split the same global batch), and reads tokens/s (median after --warmup steps; real tokens only:
padding is not counted) and the loss curve from each run's metrics.jsonl.

--hf-baseline then runs plain Hugging Face eager training (benchmarks/hf_baseline.py: fp32 weights
+ bf16 autocast, SDPA, the model's own loss, fused AdamW; LoRA through PEFT) in this process on
the same data: cpt on the same windows, sft/lora on the same JSONL examples (the same token ids),
shuffled and right-padded to the longest example of each micro-batch, as many examples per micro
batch and per step as jft's packed rows hold. Its tokens/s also counts real tokens only.

CPU smoke test (gloo, tiny preset): python benchmarks/train_scaling.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "japanese_ft" / "sample" / "articles.jsonl"
sys.path.insert(0, str(REPO / "benchmarks"))


# ---- inputs -------------------------------------------------------------------------------------

def make_tokenizer(path: Path, vocab_size: int = 600) -> Path:
    """A tiny byte-level BPE with ChatML tokens (for CPU smoke runs without a real tokenizer)."""
    from japanese_ft.model.tokenizer import train_bpe_tokenizer

    if not (path / "tokenizer.json").exists():
        train_bpe_tokenizer(_sentences() * 2, path, vocab_size=vocab_size, min_frequency=0)
    return path


def _sentences() -> list[str]:
    from japanese_ft.text import split_sentences

    out = []
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.extend(split_sentences(json.loads(line)["text"]))
    return out


def make_token_file(prefix: Path, n_tokens: int, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Documents of 200-3,000 tokens of reshuffled sample sentences, each ending with EOS."""
    from transformers import AutoTokenizer

    from japanese_ft.data.token_file import TokenFileWriter, dtype_for_vocab

    if Path(f"{prefix}.idx").exists():
        return prefix
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    sentences = _sentences()
    encoded = [ids for ids in tok(sentences, add_special_tokens=False)["input_ids"] if ids]
    rng = random.Random(seed)
    writer = TokenFileWriter(prefix, dtype_for_vocab(len(tok)))
    written = 0
    while written < n_tokens:
        target, doc = rng.randint(200, 3000), []
        while len(doc) < target:
            doc.extend(rng.choice(encoded))
        writer.add_document(doc + [tok.eos_token_id])
        written += len(doc) + 1
    writer.finish()
    return prefix


def make_sft_jsonl(path: Path, n: int, seed: int = 0) -> Path:
    """{"input","output"} records: a 30-200-character question about a passage, a 50-1,500
    character answer (log-normal lengths, median ~300), both cut from the sample's sentences."""
    if path.exists():
        return path
    sentences = _sentences()
    rng = np.random.default_rng(seed)

    def text(chars: int) -> str:
        out = ""
        while len(out) < chars:
            out += sentences[int(rng.integers(len(sentences)))]
        return out[:chars]

    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            q = text(int(rng.integers(20, 190))) + "について説明してください。"
            a = text(int(np.clip(rng.lognormal(np.log(300), 0.7), 50, 1500)))
            f.write(json.dumps({"input": q, "output": a}, ensure_ascii=False) + "\n")
    return path


def read_metrics(path: Path) -> list[dict]:
    return [r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
            if "loss" in r and "tokens_per_s" in r]


# ---- jft train under torchrun -------------------------------------------------------------------

def warmup_steps(args) -> int:
    """--lr-warmup, else the recipe's warmup cut to --steps (a warmup longer than the run is a config error)."""
    import yaml

    if args.lr_warmup:
        return args.lr_warmup
    recipe = yaml.safe_load(Path(args.recipe).read_text(encoding="utf-8")) or {}
    return min(int((recipe.get("train") or {}).get("warmup_steps", 200)), args.steps)


def overrides(args, model_dir: Path, tok: Path, train_data: str, out_dir: Path) -> list[str]:
    items = [
        f"model.name_or_path={model_dir}", f"data.tokenizer={tok}", f"data.train=[{train_data}]", "data.validation=[]",
        f"train.max_steps={args.steps}", "train.eval_every=0", "train.save_every=0", "train.log_every=1",
        f"model.compile={args.compile}", f"train.device={args.device}", f"output_dir={out_dir}",
    ]
    for key, value in (("data.seq_length", args.seq), ("train.micro_batch_size", args.micro_batch),
                       ("train.global_batch_size", args.global_batch), ("train.warmup_steps", warmup_steps(args))):
        if value:
            items.append(f"{key}={value}")
    return items + [x for x in args.extra.split() if x]


def run_jft(args, n: int, model_dir: Path, tok: Path, train_data: str) -> dict:
    out_dir = Path(args.workdir) / f"run-{args.train_mode}-x{n}-{int(time.time())}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "japanese_ft.cli", "train", args.train_mode, "--config", args.recipe,
           *overrides(args, model_dir, tok, train_data, out_dir)]
    env = dict(os.environ)
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    if args.device != "cpu":  # the first n of the GPUs this process may use
        visible = env.get("CUDA_VISIBLE_DEVICES", "").split(",") if env.get("CUDA_VISIBLE_DEVICES") else None
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[:n] if visible else [str(i) for i in range(n)])
    print("$ " + " ".join(cmd), flush=True)
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True)
    wall = time.perf_counter() - t1
    log = proc.stdout + proc.stderr
    if args.logdir:
        Path(args.logdir).mkdir(parents=True, exist_ok=True)
        (Path(args.logdir) / f"{args.train_mode}_x{n}.log").write_text(log)
    rec = {"run": f"jft x{n}", "nproc": n, "rc": proc.returncode, "wall_s": wall, "command": " ".join(cmd)}
    metrics = out_dir / "metrics.jsonl"
    if proc.returncode != 0 or not metrics.exists():
        rec["error"] = log[-3000:]
        print(f"x{n}: FAILED rc={proc.returncode}\n{log[-3000:]}", flush=True)
        return rec
    rows = read_metrics(metrics)
    tps = [r["tokens_per_s"] for r in rows][args.warmup :] or [r["tokens_per_s"] for r in rows]
    rec.update(losses=[r["loss"] for r in rows], tokens_per_s=statistics.median(tps), steps=len(rows),
               tokens_per_s_per_gpu=statistics.median(tps) / n,
               config=yaml.safe_load((out_dir / "config.yaml").read_text(encoding="utf-8")))
    print(f"x{n}: {rec['tokens_per_s']:,.0f} tok/s ({rec['tokens_per_s_per_gpu']:,.0f} per GPU), "
          f"loss {rec['losses'][0]:.4f} -> {rec['losses'][-1]:.4f}, wall {wall:.0f}s", flush=True)
    return rec


# ---- plain Hugging Face on the same data --------------------------------------------------------

def _hf_steps_cpt(cfg, train_data: str, steps: int):
    from japanese_ft.data.pretrain import PackedWindows

    t = cfg.train
    windows = PackedWindows([train_data], cfg.data.seq_length, seed=t.seed)  # jft's own windows, in its order
    accum = t.global_batch_size // t.micro_batch_size
    return [[windows.next_batch(t.micro_batch_size) for _ in range(accum)] for _ in range(steps)]


def _hf_steps_sft(cfg, train_data: str, steps: int, seed: int = 0):
    """Padded micro-batches of the same examples, as many per micro-batch and per step as jft's
    packed rows carry (the packing ratio of these very examples)."""
    import torch

    from japanese_ft.data.sft import IGNORE_INDEX, ChatEncoder, load_examples, pack_examples
    from japanese_ft.tokens import pad_id
    from japanese_ft.train.loop import load_run_tokenizer

    tok = load_run_tokenizer(cfg)
    examples, _ = load_examples([train_data], ChatEncoder(tok, cfg.data.chat_template), cfg.data.seq_length,
                                cfg.data.truncation)
    per_row = len(examples) / len(pack_examples(examples, cfg.data.seq_length, pad_id(tok), seed=0))
    micro = max(1, round(cfg.train.micro_batch_size * per_row))
    accum = max(1, round(cfg.train.global_batch_size * per_row / micro))
    order = np.random.default_rng(seed).permutation(len(examples))
    pid, out, k = pad_id(tok), [], 0
    for _ in range(steps):
        step = []
        for _ in range(accum):
            chosen = [examples[int(order[(k + j) % len(order)])] for j in range(micro)]
            k += micro
            width = max(len(ids) for ids, _ in chosen)
            ids = torch.full((micro, width), pid, dtype=torch.long)
            labels = torch.full((micro, width), IGNORE_INDEX, dtype=torch.long)
            mask = torch.zeros((micro, width), dtype=torch.long)
            for r, (e_ids, e_labels) in enumerate(chosen):
                ids[r, : len(e_ids)] = torch.from_numpy(np.asarray(e_ids, dtype=np.int64))
                labels[r, : len(e_labels)] = torch.from_numpy(np.asarray(e_labels, dtype=np.int64))
                mask[r, : len(e_ids)] = 1
            step.append({"input_ids": ids, "labels": labels, "attention_mask": mask})
        out.append(step)
    return out, {"examples_per_micro_batch": micro, "micro_batches_per_step": accum, "examples_per_packed_row": per_row}


def halve_micro_batches(micro_batches: list[dict]) -> list[dict]:
    """Each micro-batch as two of half its rows (tensors whose first dimension is the batch)."""
    out = []
    for b in micro_batches:
        n = b["input_ids"].shape[0]
        if n < 2:
            raise RuntimeError("hf eager: one row of a micro-batch does not fit in memory")
        for rows in (slice(0, n // 2), slice(n // 2, n)):
            out.append({k: v[rows] if getattr(v, "ndim", 0) and v.shape[0] == n else v for k, v in b.items()})
    return out


def run_hf(args, cfg, train_data: str) -> dict:
    import torch

    import hf_baseline
    from japanese_ft.train.schedule import lr_at

    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    info = {}
    if cfg.mode == "cpt":
        steps = _hf_steps_cpt(cfg, train_data, args.steps)
    else:
        steps, info = _hf_steps_sft(cfg, train_data, args.steps)
    model, params = hf_baseline.load_model(cfg.model.name_or_path, cfg.mode, device, "sdpa", cfg.train.seed,
                                           cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout)
    opt = hf_baseline.optimizer(params, device, cfg.train.lr, tuple(cfg.train.betas), cfg.train.weight_decay)
    sched = cfg.train  # config.TrainingConfig is a ScheduleConfig
    losses, rates, splits = [], [], 0
    for i, micro_batches in enumerate(steps):
        real = sum(int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel() for b in micro_batches)
        for _ in range(splits):
            micro_batches = halve_micro_batches(micro_batches)
        while True:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            try:
                loss, _ = hf_baseline.step(model, opt, params, micro_batches, device, lr_at(i, sched))  # syncs
                break
            except torch.OutOfMemoryError:
                # HF's loss over full logits did not fit (LoRA at micro 8 on an H200, 2026-12-01): the same
                # examples in micro-batches of half the rows give the same token-weighted update
                opt.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                splits += 1
                micro_batches = halve_micro_batches(micro_batches)
                print(f"hf eager: out of memory; micro-batches split {2 ** splits} ways", flush=True)
        rates.append(real / (time.perf_counter() - t0))
        losses.append(loss)
    tps = rates[args.warmup :] or rates
    rec = {"run": "hf eager x1", "nproc": 1, "losses": losses, "tokens_per_s": statistics.median(tps),
           "micro_batch_split": 2 ** splits, **info}
    if device.type == "cuda":
        rec["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"hf eager: {rec['tokens_per_s']:,.0f} tok/s (real tokens), loss {losses[0]:.4f} -> {losses[-1]:.4f}", flush=True)
    return rec


# ---- driver -------------------------------------------------------------------------------------

def prepare(args) -> tuple[Path, Path, str]:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    tok = Path(args.tokenizer) if args.tokenizer else make_tokenizer(work / "tokenizer")
    model_dir = work / f"model-{args.preset}-{tok.name}"
    if not (model_dir / "config.json").exists():
        from japanese_ft.model.load import init_model

        init_model(args.preset, str(tok), model_dir, seed=0)
    from japanese_ft.config import load_run_config

    cfg = load_run_config(args.recipe, overrides(args, model_dir, tok, "placeholder", work), args.train_mode)
    t = cfg.train
    if args.train_mode == "cpt":
        need = int(args.steps * t.global_batch_size * (cfg.data.seq_length + 1) * 1.2) + 10_000
        data = str(make_token_file(work / f"tokens-{need}-{tok.name}", need, tok))
    else:  # ~6 examples per 2048-token row; enough that no example repeats within the run
        data = str(make_sft_jsonl(work / f"sft-{args.steps}x{t.global_batch_size}.jsonl",
                                  max(200, int(args.steps * t.global_batch_size * 8 * cfg.data.seq_length / 2048))))
    return tok, model_dir, data


def compare(runs: list[dict], tol: float) -> list[dict]:
    ok = {r["run"]: r for r in runs if "losses" in r}
    base, out = ok.get("jft x1"), []
    for r in ok.values():
        if r is base or base is None:
            continue
        la, lb = np.array(base["losses"]), np.array(r["losses"])
        m = min(len(la), len(lb))
        rel = np.abs(la[:m] - lb[:m]) / np.maximum(np.abs(la[:m]), 1e-6)
        c = {"a": "jft x1", "b": r["run"], "b_over_a_tokens_per_s": r["tokens_per_s"] / base["tokens_per_s"],
             "loss_max_rel_diff": float(rel.max()), "loss_tracks": bool(rel.max() <= tol)}
        if r["run"].startswith("hf"):  # report jft / HF
            c = {"jft_over_hf_tokens_per_s": base["tokens_per_s"] / r["tokens_per_s"],
                 "first_step_loss": [base["losses"][0], r["losses"][0]], "loss_max_rel_diff": float(rel.max())}
        out.append(c)
        print(f"{r['run']} vs jft x1: {json.dumps(c)}", flush=True)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/jft_scaling")
    p.add_argument("--preset", default="qwen2.5-0.5b")
    p.add_argument("--tokenizer", default="", help="tokenizer directory (default: a tiny BPE built in --workdir)")
    p.add_argument("--train-mode", choices=["cpt", "sft", "lora"], default="cpt")
    p.add_argument("--recipe", default="", help="default: configs/qwen2.5-0.5b-<train-mode>.yaml")
    p.add_argument("--nprocs", default="1,2")
    p.add_argument("--hf-baseline", action="store_true", help="also run plain HF eager on the same data (1 GPU)")
    p.add_argument("--seq", type=int, default=0, help="data.seq_length (default: the recipe's)")
    p.add_argument("--micro-batch", type=int, default=0, help="per GPU (default: the recipe's)")
    p.add_argument("--global-batch", type=int, default=0, help="default: the recipe's")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of tokens/s")
    p.add_argument("--compile", default="true")
    p.add_argument("--device", default="auto")
    p.add_argument("--loss-rel-tol", type=float, default=0.02)
    p.add_argument("--lr-warmup", type=int, default=0, help="train.warmup_steps (default: the recipe's)")
    p.add_argument("--extra", default="", help="more key=value overrides, space-separated")
    p.add_argument("--out", default="")
    p.add_argument("--logdir", default="", help="copy each run's log here")
    p.add_argument("--dry-run", action="store_true", help="tiny preset on CPU (gloo)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.preset, args.micro_batch, args.global_batch = "tiny", 2, 4
        args.steps, args.warmup, args.compile, args.device = 4, 1, "false", "cpu"
        args.seq = args.seq or (64 if args.train_mode == "cpt" else 512)
        args.extra = (args.extra + " train.precision=float32").strip()
    args.recipe = args.recipe or str(REPO / "configs" / f"qwen2.5-0.5b-{args.train_mode}.yaml")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from japanese_ft.ui import quiet_libraries

    quiet_libraries()
    t0 = time.perf_counter()
    tok, model_dir, data = prepare(args)
    prep_s = time.perf_counter() - t0
    runs = [run_jft(args, int(n), model_dir, tok, data) for n in args.nprocs.split(",") if n]
    if args.hf_baseline:
        from japanese_ft.config import load_run_config

        cfg = load_run_config(args.recipe, overrides(args, model_dir, tok, data, Path(args.workdir) / "hf"), args.train_mode)
        runs.append(run_hf(args, cfg, data))
    result = {"date": time.strftime("%Y-%m-%d"), "argv": sys.argv, "train_mode": args.train_mode, "prep_s": prep_s,
              "runs": runs, "comparisons": compare(runs, args.loss_rel_tol),
              "settings": {k: str(v) for k, v in vars(args).items()}}
    try:
        import torch

        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        result["torch"] = torch.__version__
    except Exception:
        pass
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    return 0 if all("losses" in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
