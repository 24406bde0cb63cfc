#!/usr/bin/env python3
"""Training throughput: the plain Hugging Face eager baseline vs jft's GPU settings, one process.

Modes (``--mode``):
  throughput  (default) for each of --modes cpt,sft,lora: (a) the HF eager baseline and (b) jft's
              default GPU settings on the same random-init model and the same data; prints
              tokens/s, MFU, peak memory, (b)/(a) and checks that (b)'s loss over --steps steps
              tracks (a)'s within bf16 tolerance.
  levers      extra variants (one lever at a time) to see what pays.
  memory      peak memory of cpt/sft/lora with jft's defaults at seq 2048, micro batch 2.
  dist        run under torchrun: jft CPT with FSDP2 over all ranks (`torchrun --nproc_per_node N`).

Baseline (a): fp32 weights + bf16 autocast, SDPA, fused AdamW, loss from ``model(labels=...)``
(LoRA: PEFT r=16 all-linear on a bf16 base, fp32 adapters, autocast). jft (b): the decoder layers
compiled (`japanese_ft.train.gpu.compile_layers`), `japanese_ft.train.loss.causal_lm_loss`
(chunked linear cross-entropy, no full fp32 logits), a larger micro batch in the same global
batch. Both clip gradients at 1.0. Data: a synthetic Zipf/Markov token stream (learnable, so the
loss curve moves); SFT rows are packed documents with masked prompts and position ids that
restart per document.

FLOPs/token = 6 x parameters + 12 x layers x hidden x seq; MFU against --peak-tflops (989, H100/H200
dense bf16). CPU smoke test: ``python benchmarks/train_throughput.py --dry-run``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import numpy as np  # noqa: E402
import torch  # noqa: E402

IGNORE = -100


# ---- model config ---------------------------------------------------------------------------

def model_config(preset: str, vocab_for_tiny: int = 1024):
    try:
        from japanese_ft.model.presets import preset_config

        cfg = preset_config(preset, tokenizer_size=vocab_for_tiny if preset == "tiny" else None)
    except ImportError:  # presets not available: the exact Qwen2.5-0.5B architecture
        from transformers import Qwen2Config

        small = preset == "tiny"
        cfg = Qwen2Config(
            vocab_size=vocab_for_tiny if small else 151936, hidden_size=64 if small else 896,
            intermediate_size=128 if small else 4864, num_hidden_layers=2 if small else 24,
            num_attention_heads=4 if small else 14, num_key_value_heads=2, max_position_embeddings=32768,
            rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True,
        )
    cfg.use_cache = False
    return cfg


# ---- synthetic data ------------------------------------------------------------------------

def _markov_tokens(rng, rows: int, length: int, vocab: int) -> np.ndarray:
    """Zipf unigrams over 8k ids plus a fixed successor map: loss falls from ln(V) to a few nats."""
    k = min(vocab, 8192)
    ranks = np.arange(1, k + 1)
    p = 1.0 / ranks**1.1
    p /= p.sum()
    ids = rng.permutation(vocab)[:k]
    succ = rng.permutation(k)
    z = rng.choice(k, size=(rows, length), p=p)
    follow = rng.random((rows, length)) < 0.6
    out = np.empty((rows, length), dtype=np.int64)
    out[:, 0] = z[:, 0]
    for t in range(1, length):
        out[:, t] = np.where(follow[:, t], succ[out[:, t - 1]], z[:, t])
    return ids[out]


@dataclass
class Batch:  # one optimizer step: the global batch as rows (CPU tensors)
    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor | None
    n_targets: int  # shifted labels != -100 over the global batch


def _sft_rows(rng, n_rows: int, seq: int, vocab: int) -> list:
    """Synthetic chat examples (30% prompt, masked) packed by the engine's pack_examples.

    All examples are cut from one Zipf/Markov stream (one successor map), so the answers are
    learnable and the loss curves of (a) and (b) can be compared."""
    from japanese_ft.data.sft import pack_examples

    stream = _markov_tokens(rng, int(n_rows * 1.1) + 2, seq, vocab).reshape(-1)
    examples, at = [], 0
    while at < len(stream) - seq:
        n = int(rng.integers(max(8, seq // 32), max(16, seq // 2)))
        ids = stream[at : at + n]
        labels = ids.copy()
        labels[: max(1, int(0.3 * n))] = IGNORE
        examples.append((ids, labels))
        at += n
    rows = pack_examples(examples, seq, pad_id=0, seed=int(rng.integers(1 << 30)))
    return rows[:n_rows]


def make_batches(kind: str, steps: int, rows: int, seq: int, vocab: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    if kind == "sft":
        packed = _sft_rows(rng, steps * rows, seq, vocab)
        assert len(packed) >= steps * rows, (len(packed), steps * rows)
    else:
        toks = _markov_tokens(rng, steps * rows, seq, vocab)
    for s in range(steps):
        if kind == "sft":
            chunk = packed[s * rows : (s + 1) * rows]
            ids = torch.from_numpy(np.stack([r[0] for r in chunk]))
            labels = torch.from_numpy(np.stack([r[1] for r in chunk]))
            pos = torch.from_numpy(np.stack([r[2] for r in chunk]))
        else:
            ids = torch.from_numpy(toks[s * rows : (s + 1) * rows].copy())
            labels, pos = ids.clone(), None
        n_targets = int((labels[:, 1:] != IGNORE).sum())
        out.append(Batch(ids, labels, pos, n_targets))
    return out


# ---- variants ------------------------------------------------------------------------------

@dataclass
class Variant:
    name: str
    mode: str = "cpt"  # cpt | sft | lora
    impl: str = "hf"  # hf: model(labels=...) | jft: causal_lm_loss
    micro_batch: int = 8
    compile: str = "none"  # none | layers | model
    compile_mode: str = "default"
    params: str = "fp32"  # fp32 (+ autocast) | bf16_master (bf16 weights, fp32 master in the optimizer)
    attn: str = "sdpa"
    chunk_size: int = 4096
    lora_dropout: float = 0.1
    notes: str = ""


def baseline(mode: str, micro: int) -> Variant:
    return Variant(f"{mode}:a_hf_eager", mode=mode, impl="hf", micro_batch=micro)


def jft_default(mode: str, micro: int) -> Variant:
    """jft's GPU settings: compiled decoder layers (model.compile=true), chunked CE, a micro batch
    that fills the card; packed SFT uses flex attention (block-sparse over document boundaries)."""
    return Variant(f"{mode}:b_jft", mode=mode, impl="jft", micro_batch=micro, compile="layers",
                   attn="flex_attention" if mode == "sft" else "sdpa")


def flops_per_token(cfg, n_params: int, seq: int) -> float:
    return 6.0 * n_params + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * seq


class MasterWeights:
    """bf16 model parameters, fp32 master copies that the optimizer updates."""

    def __init__(self, params):
        self.params = [p for p in params if p.requires_grad]
        self.master = [p.detach().float().clone().requires_grad_(True) for p in self.params]

    def grads_to_master(self):
        for p, m in zip(self.params, self.master):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    @torch.no_grad()
    def master_to_params(self):
        torch._foreach_copy_(self.params, self.master)


def _engine_optimizer(model, device):
    """The engine's optimizer (japanese_ft.train.loop.build_optimizer) with the CPT recipe's values."""
    from japanese_ft.config import RunConfig
    from japanese_ft.train.distributed import World
    from japanese_ft.train.loop import build_optimizer

    rc = RunConfig()
    rc.train.lr, rc.train.weight_decay, rc.train.betas = 3e-4, 0.1, [0.9, 0.95]
    return build_optimizer(model, rc, World(device=device))


def build(v: Variant, cfg, device, seed: int):
    """(a) plain HF/PEFT; (b) the engine's pieces: japanese_ft.model.lora.apply_lora, per-layer
    compile as train/loop.py does it, the engine's fused AdamW, and (in train_step) causal_lm_loss."""
    from transformers import AutoModelForCausalLM

    from japanese_ft.train.gpu import compile_layers

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation=v.attn, dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    master = None
    if v.mode == "lora":
        import peft

        if device.type == "cuda":
            model.to(torch.bfloat16)
        if v.impl == "jft":
            from japanese_ft.model.lora import apply_lora

            model = apply_lora(model, 16, 32, v.lora_dropout, ["all-linear"])
        else:
            lcfg = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=v.lora_dropout, target_modules="all-linear",
                                   task_type="CAUSAL_LM")
            model = peft.get_peft_model(model, lcfg)
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    elif v.params == "bf16_master":
        model.to(torch.bfloat16)
    model.train()
    if device.type == "cuda":
        if v.compile == "layers":
            compile_layers(model, v.compile_mode)
        elif v.compile == "model":
            model.compile(**({} if v.compile_mode == "default" else {"mode": v.compile_mode}))
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    if v.params == "bf16_master" and v.mode != "lora":
        master = MasterWeights(trainable)
        opt_params = master.master
    elif v.impl == "jft":
        return model, _engine_optimizer(model, device), None, n_params, n_trainable
    else:
        opt_params = trainable
    decay = [p for p in opt_params if p.ndim >= 2]
    no_decay = [p for p in opt_params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-4, betas=(0.9, 0.95), fused=device.type == "cuda",
    )
    return model, opt, master, n_params, n_trainable


LR_WARMUP = 30  # --lr-warmup: linear warmup to 3e-4; a gentle ramp keeps the 30-step loss check out of spikes


def lr_at(step: int, lr: float = 3e-4) -> float:
    return lr * min(1.0, (step + 1) / LR_WARMUP)


def train_step(v: Variant, model, opt, master, batch: Batch, device, step: int, world=None):
    from japanese_ft.train.loss import causal_lm_loss

    rows = batch.input_ids.shape[0]
    ws = world.size if world is not None else 1
    rank = world.rank if world is not None else 0
    local = range(rank * rows // ws, (rank + 1) * rows // ws)
    local_ids = batch.input_ids[local.start : local.stop]
    local_labels = batch.labels[local.start : local.stop]
    local_pos = batch.position_ids[local.start : local.stop] if batch.position_ids is not None else None
    n_local = local_ids.shape[0]
    micro = min(v.micro_batch, n_local)
    assert n_local % micro == 0, (n_local, micro)
    n_micro = n_local // micro
    total = torch.zeros((), device=device, dtype=torch.float32)
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    for i in range(n_micro):
        sl = slice(i * micro, (i + 1) * micro)
        ids = local_ids[sl].to(device, non_blocking=True)
        labels = local_labels[sl].to(device, non_blocking=True)
        pos = local_pos[sl].to(device, non_blocking=True) if local_pos is not None else None
        if world is not None and world.size > 1:
            from japanese_ft.train.distributed import set_gradient_sync

            set_gradient_sync(model, i == n_micro - 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if v.impl == "hf":
                n_mb = int((local_labels[sl][:, 1:] != IGNORE).sum())
                out = model(input_ids=ids, labels=labels, position_ids=pos, use_cache=False)
                loss_sum = out.loss.float() * n_mb
            else:
                loss_sum, _ = causal_lm_loss(model, ids, labels, position_ids=pos, chunk_size=v.chunk_size)
        # grads are averaged over ranks by FSDP: scale so the result is the global-token mean
        (loss_sum * (ws / batch.n_targets)).backward()
        total += loss_sum.detach()
    if master is not None:
        master.grads_to_master()
        params = master.master
    else:
        params = [p for g in opt.param_groups for p in g["params"]]
    gn = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=device.type == "cuda")
    opt.step()
    opt.zero_grad(set_to_none=True)
    if master is not None:
        master.master_to_params()
    if world is not None and world.size > 1:
        import torch.distributed as dist

        dist.all_reduce(total)
    return total / batch.n_targets, gn


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(v: Variant, cfg, batches: list[Batch], device, args, world=None) -> dict:
    if device.type != "cuda":  # CPU smoke runs: no compile, no flex-attention backward on CPU
        v = replace(v, compile="none", attn="sdpa" if v.attn == "flex_attention" else v.attn)
    res = {"variant": v.name, "settings": asdict(v)}
    model = opt = master = None
    try:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t_build = time.perf_counter()
        model, opt, master, n_params, n_trainable = build(v, cfg, device, args.seed)
        if world is not None and world.size > 1 or (world is not None and args.fsdp_single):
            from japanese_ft.train.distributed import apply_fsdp

            apply_fsdp(model, world, bf16=device.type == "cuda")
            opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                    fused=device.type == "cuda")
        res.update(parameters=n_params, trainable=n_trainable)
        losses, times = [], []
        first_step_s = None
        for step in range(args.steps):
            b = batches[step % len(batches)]
            sync(device)
            t0 = time.perf_counter()
            loss, gn = train_step(v, model, opt, master, b, device, step, world)
            loss_v = float(loss)  # syncs
            dt = time.perf_counter() - t0
            if step == 0:
                first_step_s = dt
            if not math.isfinite(loss_v):
                raise FloatingPointError(f"non-finite loss at step {step}")
            losses.append(loss_v)
            times.append(dt)
        timed = times[args.warmup :] or times
        med = statistics.median(timed)
        ws = world.size if world is not None else 1
        tokens = batches[0].input_ids.numel()
        fpt = flops_per_token(cfg, n_params, batches[0].input_ids.shape[1])
        tps = tokens / med
        res.update(
            ok=True, step_s_median=med, step_s_min=min(timed), first_step_s=first_step_s,
            build_s=time.perf_counter() - t_build - sum(times), tokens_per_step=tokens,
            tokens_per_s=tps, tokens_per_s_per_gpu=tps / ws,
            mfu=tps / ws * fpt / (args.peak_tflops * 1e12), losses=losses,
        )
        if device.type == "cuda":
            res["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            res["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
    except Exception as exc:  # keep going with the other variants; report the failure
        import traceback

        res.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000], traceback=traceback.format_exc()[-4000:])
    finally:
        del model, opt, master
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not world or world.is_main:
        _print_row(res)
    return res


def _print_row(r: dict) -> None:
    if not r.get("ok"):
        print(f"{r['variant']:<40} FAILED {r.get('error', '')[:300]}", flush=True)
        return
    mem = r.get("peak_allocated_gib")
    print(
        f"{r['variant']:<40} mb={r['settings']['micro_batch']:<3} {r['tokens_per_s']:>10,.0f} tok/s "
        f"MFU {100 * r['mfu']:5.1f}%  step {r['step_s_median'] * 1e3:7.1f} ms  first {r['first_step_s']:.1f}s  "
        + (f"peak {mem:6.2f} GiB (reserved {r['peak_reserved_gib']:.2f})" if mem is not None else "")
        + f"  loss {r['losses'][0]:.3f}->{r['losses'][-1]:.3f}",
        flush=True,
    )


def compare(a: dict, b: dict, rel_tol: float) -> dict:
    out = {"a": a["variant"], "b": b["variant"]}
    if not (a.get("ok") and b.get("ok")):
        out["ok"] = False
        return out
    out["speedup"] = b["tokens_per_s"] / a["tokens_per_s"]
    if "peak_allocated_gib" in a:
        out["memory_ratio"] = b["peak_allocated_gib"] / a["peak_allocated_gib"]
        out["reserved_ratio"] = b["peak_reserved_gib"] / a["peak_reserved_gib"]
    la, lb = np.array(a["losses"]), np.array(b["losses"])
    n = min(len(la), len(lb))
    rel = np.abs(la[:n] - lb[:n]) / np.maximum(np.abs(la[:n]), 1e-6)
    out["loss_max_rel_diff"] = float(rel.max())
    out["loss_mean_rel_diff"] = float(rel.mean())
    out["loss_tracks"] = bool(rel.max() <= rel_tol)
    out["ok"] = True
    return out


# ---- modes ---------------------------------------------------------------------------------

def device_info(device) -> dict:
    info = {"torch": torch.__version__, "device": str(device)}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def mode_throughput(args, cfg, device) -> dict:
    results, comparisons = [], []
    for mode in args.modes:
        batches = make_batches("sft" if mode == "sft" else "cpt", min(args.steps, 30), args.global_batch, args.seq,
                               cfg.vocab_size, seed=args.seed + 1)
        a = run_variant(baseline(mode, args.baseline_micro), cfg, batches, device, args)
        b = run_variant(replace(jft_default(mode, args.micro_batch), compile="layers" if args.compile else "none"),
                        cfg, batches, device, args)
        results += [a, b]
        if mode == "cpt" and args.extra_micro:  # same settings at (a)'s micro batch, for reference
            results.append(run_variant(replace(jft_default(mode, args.extra_micro), name=f"{mode}:b_jft_mb{args.extra_micro}",
                                               compile="layers" if args.compile else "none"), cfg, batches, device, args))
        c = compare(a, b, args.loss_rel_tol)
        comparisons.append(c)
        if c.get("ok"):
            print(f"  {mode}: (b)/(a) tokens/s {c['speedup']:.2f}x, peak memory "
                  f"{c.get('memory_ratio', float('nan')):.2f}x, loss max rel diff {c['loss_max_rel_diff']:.4f} "
                  f"({'tracks' if c['loss_tracks'] else 'DOES NOT TRACK'})", flush=True)
    return {"results": results, "comparisons": comparisons}


def mode_levers(args, cfg, device) -> dict:
    steps = args.steps
    G, S = args.global_batch, args.seq
    cpt = make_batches("cpt", min(steps, 30), G, S, cfg.vocab_size, seed=args.seed + 1)
    sft = make_batches("sft", min(steps, 30), G, S, cfg.vocab_size, seed=args.seed + 1)
    mb0, mb1 = args.baseline_micro, args.micro_batch
    plan = [
        (baseline("cpt", mb0), cpt),
        (Variant("cpt:jft_eager_chunkedCE", impl="jft", micro_batch=mb0), cpt),
        (Variant("cpt:jft_compile", impl="jft", micro_batch=mb0, compile="layers"), cpt),
        (Variant("cpt:jft_compile_big_mb", impl="jft", micro_batch=mb1, compile="layers"), cpt),
        (Variant("cpt:jft_compile_big_mb_bf16master", impl="jft", micro_batch=mb1, compile="layers",
                 params="bf16_master"), cpt),
        (Variant("cpt:hf_compile_layers", impl="hf", micro_batch=mb0, compile="layers"), cpt),
        (baseline("sft", mb0), sft),
        (Variant("sft:jft_compile_big_mb", mode="sft", impl="jft", micro_batch=mb1, compile="layers"), sft),
        (Variant("sft:jft_compile_big_mb_flex", mode="sft", impl="jft", micro_batch=mb1, compile="layers",
                 attn="flex_attention"), sft),
        (baseline("lora", mb0), cpt),
        (Variant("lora:jft_compile_big_mb", mode="lora", impl="jft", micro_batch=mb1, compile="layers"), cpt),
        (Variant("cpt:jft_compile_big_mb_autotune", impl="jft", micro_batch=mb1, compile="layers",
                 compile_mode="max-autotune-no-cudagraphs"), cpt),
    ]
    if args.only:
        plan = [(v, d) for v, d in plan if any(s in v.name for s in args.only)]
    results = []
    t0 = time.perf_counter()
    for v, data in plan:
        if time.perf_counter() - t0 > args.budget_s:
            results.append({"variant": v.name, "ok": False, "error": "skipped: time budget"})
            print(f"{v.name:<40} SKIPPED (time budget)", flush=True)
            continue
        if device.type != "cuda":
            v = replace(v, compile="none")
        results.append(run_variant(v, cfg, data, device, args))
        _partial(args, {"results": results})
    return {"results": results}


def _partial(args, out: dict) -> None:
    """Write what is done so far (a run killed at its time limit still leaves numbers)."""
    if args.out:
        with open(args.out + ".partial", "w") as f:
            json.dump(out, f, indent=1, default=str)


def mode_memory(args, cfg, device) -> dict:
    """The original guide's settings: seq 2048, micro batch 2 (one micro-batch per step)."""
    results = []
    for mode in args.modes:
        data = make_batches("sft" if mode == "sft" else "cpt", 4, args.memory_micro, args.seq, cfg.vocab_size,
                            seed=args.seed + 2)
        margs = argparse.Namespace(**{**vars(args), "steps": 4, "warmup": 2})
        for v in (baseline(mode, args.memory_micro),
                  replace(jft_default(mode, args.memory_micro), compile="layers" if args.compile else "none")):
            results.append(run_variant(v, cfg, data, device, margs))
    return {"results": results}


def mode_dist(args, cfg) -> dict:
    from japanese_ft.train.distributed import setup_distributed, teardown

    world = setup_distributed("auto")
    device = world.device
    batches = make_batches("cpt", min(args.steps, 30), args.global_batch, args.seq, cfg.vocab_size,
                           seed=args.seed + 1)
    v = replace(jft_default("cpt", args.micro_batch), name=f"cpt:b_jft_fsdp2_x{world.size}",
                compile="layers" if args.compile and device.type == "cuda" else "none")
    r = run_variant(v, cfg, batches, device, args, world=world)
    r["world_size"] = world.size
    out = {"results": [r], "world_size": world.size}
    teardown(world)
    return out if world.is_main else {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["throughput", "levers", "memory", "dist"], default="throughput")
    p.add_argument("--modes", default="cpt,sft,lora", help="training modes for throughput/memory")
    p.add_argument("--preset", default="qwen2.5-0.5b")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--global-batch", type=int, default=16, help="sequences per optimizer step")
    p.add_argument("--baseline-micro", type=int, default=8, help="(a)'s micro batch (the issue's measurement)")
    p.add_argument("--micro-batch", type=int, default=16, help="jft's micro batch (per GPU)")
    p.add_argument("--memory-micro", type=int, default=2)
    p.add_argument("--extra-micro", type=int, default=0, help="throughput: also run cpt (b) at this micro batch")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    p.add_argument("--loss-rel-tol", type=float, default=0.02)
    p.add_argument("--lr-warmup", type=int, default=30, help="linear warmup steps to lr 3e-4")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--fsdp-single", action="store_true", help="dist mode: use FSDP2 even with one process")
    p.add_argument("--only", default="", help="levers: comma-separated substrings of variant names")
    p.add_argument("--budget-s", type=float, default=1e9, help="levers: skip variants after this many seconds")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="", help="write the JSON result here")
    p.add_argument("--dry-run", action="store_true", help="tiny preset, CPU-sized: a smoke test")
    args = p.parse_args(argv)
    if args.dry_run:
        args.preset, args.seq, args.global_batch, args.baseline_micro, args.micro_batch = "tiny", 64, 4, 2, 4
        args.memory_micro, args.steps, args.warmup, args.loss_rel_tol = 2, 4, 1, 0.05
        if args.device == "auto":
            args.device = "cpu"
    global LR_WARMUP
    LR_WARMUP = max(1, args.lr_warmup)
    args.modes = [m for m in args.modes.split(",") if m]
    args.only = [s for s in args.only.split(",") if s]
    from japanese_ft.train.gpu import cuda_speed_defaults

    cuda_speed_defaults()
    cfg = model_config(args.preset)
    if args.mode == "dist":
        if args.device == "cpu":
            os.environ.setdefault("JFT_FORCE_CPU", "1")
        out = mode_dist(args, cfg)
        if not out:
            return 0
        device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    else:
        dev = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(dev)
        fn = {"throughput": mode_throughput, "levers": mode_levers, "memory": mode_memory}[args.mode]
        out = fn(args, cfg, device)
    out.update(
        mode=args.mode, date=time.strftime("%Y-%m-%d"), command=" ".join(sys.argv), info=device_info(device),
        config={k: v for k, v in vars(args).items()}, flops_per_token_formula="6*params + 12*layers*hidden*seq",
    )
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1, default=str)
        os.replace(tmp, args.out)
    failed = [r["variant"] for r in out.get("results", []) if not r.get("ok") and "skipped" not in r.get("error", "")]
    return 1 if failed and args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
