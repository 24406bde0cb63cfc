#!/usr/bin/env python3
"""Training throughput in one process: the plain Hugging Face eager baseline vs jft's engine.

Modes (``--mode``):
  throughput  (default) for each of --modes cpt,sft,lora: (a) the HF eager baseline
              (benchmarks/hf_baseline.py) and (b) the engine itself -- `loop.build_model`,
              `step.make_engine`, `step.train_step`, the calls `jft train` makes -- on the same
              saved random-init model and the same global batches; prints tokens/s, MFU, peak
              memory, (b)/(a) and whether (b)'s loss tracks (a)'s within bf16 tolerance.
  levers      the engine with one lever changed at a time (`train.gpu.SpeedOptions`: compile scope
              and mode, CUDA graphs, loss chunk size, optimizer kernel, matmul precision; micro
              batch; attention): the sweep that picks the engine's defaults.
  memory      peak memory of cpt/sft/lora with the engine's defaults at seq 2048, micro batch 2.
  dist        under torchrun: the engine (FSDP2) over all ranks (`torchrun --nproc_per_node N`).

Batches come from the engine's own data code: CPT windows from `data.pretrain.PackedWindows` over a
token file of a synthetic Zipf/Markov stream (learnable, so the loss moves); SFT rows are synthetic
chat examples (30 % prompt, masked) packed by `data.sft.pack_examples` and collated by `SFTBatches`.
Both runs clip at 1.0 and use the same linear warmup to 3e-4. FLOPs/token = 6 x parameters + 12 x
layers x hidden x seq; MFU against --peak-tflops (989, H100/H200 dense bf16).
CPU smoke test: ``python benchmarks/train_throughput.py --dry-run``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import hf_baseline  # noqa: E402
from japanese_ft.data.sft import IGNORE_INDEX  # noqa: E402
from japanese_ft.train.gpu import SpeedOptions  # noqa: E402
from japanese_ft.train.step import make_engine, train_step  # noqa: E402

LR, LR_WARMUP = 3e-4, 30  # --lr-warmup: a gentle ramp keeps the 30-step loss check out of spikes


# ---- model and data ---------------------------------------------------------------------------

def save_random_model(preset: str, workdir: Path, vocab_for_tiny: int = 1024, seed: int = 0) -> Path:
    """A randomly initialised checkpoint of the preset (bf16 for qwen2.5-0.5b, fp32 for tiny),
    saved once so the baseline and the engine load the very same weights."""
    from transformers import AutoModelForCausalLM

    from japanese_ft.model.presets import preset_config

    path = workdir / f"model-{preset}"
    if (path / "config.json").exists():
        return path
    cfg = preset_config(preset, tokenizer_size=vocab_for_tiny if preset == "tiny" else None)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.to(torch.float32 if preset == "tiny" else torch.bfloat16).save_pretrained(str(path))
    return path


def _markov_tokens(rng, rows: int, length: int, vocab: int) -> np.ndarray:
    """Zipf unigrams over 8k ids plus a fixed successor map: loss falls from ln(V) to a few nats."""
    k = min(vocab, 8192)
    p = 1.0 / np.arange(1, k + 1) ** 1.1
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


def _sft_rows(rng, n_rows: int, seq: int, vocab: int) -> list:
    """Synthetic chat examples (30 % prompt, masked) cut from one Markov stream and packed by the
    engine's `pack_examples`: the answers are learnable, so (a) and (b)'s losses can be compared."""
    from japanese_ft.data.sft import pack_examples

    stream = _markov_tokens(rng, int(n_rows * 1.1) + 2, seq, vocab).reshape(-1)
    examples, at = [], 0
    while at < len(stream) - seq:
        n = int(rng.integers(max(8, seq // 32), max(16, seq // 2)))
        ids = stream[at : at + n]
        labels = ids.copy()
        labels[: max(1, int(0.3 * n))] = IGNORE_INDEX
        examples.append((ids, labels))
        at += n
    return pack_examples(examples, seq, pad_id=0, seed=int(rng.integers(1 << 30)))[:n_rows]


def make_batches(kind: str, steps: int, rows: int, seq: int, vocab: int, workdir: Path | None = None,
                 seed: int = 0) -> list[dict]:
    """`steps` global batches of `rows` rows, as the engine's loaders produce them: packed SFT rows
    of `seq` tokens, or CPT windows of `seq` + 1 tokens (what `jft train cpt` reads for
    data.seq_length = seq) from a token file written under `workdir`."""
    rng = np.random.default_rng(seed)
    if kind == "sft":
        from japanese_ft.data.sft import SFTBatches

        packed = _sft_rows(rng, steps * rows, seq, vocab)
        assert len(packed) >= steps * rows, (len(packed), steps * rows)
        loader = SFTBatches(packed, pad_id=0, seq_length=seq, shuffle=False, packed=True)
        return [loader.next_batch(rows) for _ in range(steps)]
    from japanese_ft.data.pretrain import PackedWindows
    from japanese_ft.data.token_file import TokenFileWriter, dtype_for_vocab

    prefix = Path(workdir) / f"tokens-{steps}x{rows}x{seq}-{vocab}-{seed}"
    if not Path(f"{prefix}.idx").exists():
        writer = TokenFileWriter(prefix, dtype_for_vocab(vocab))
        for row in _markov_tokens(rng, steps * rows + 1, seq + 1, vocab):
            writer.add_document(row)
        writer.finish()
    windows = PackedWindows([str(prefix)], seq, seed=seed, shuffle=False)
    return [windows.next_batch(rows) for _ in range(steps)]


def split(batch: dict, micro: int, rank: int = 0, world: int = 1) -> list[dict]:
    """This rank's share of a global batch, cut into micro-batches of `micro` rows."""
    rows = batch["input_ids"].shape[0]
    lo, hi = rank * rows // world, (rank + 1) * rows // world
    pad = batch["input_ids"][lo:hi] != 0 if "position_ids" in batch else None
    out = []
    for at in range(lo, hi, micro):
        mb = {k: v[at : min(at + micro, hi)] for k, v in batch.items() if k != "num_tokens"}
        # packed rows: the engine's rule (SFTBatches) counts non-pad tokens; pad id 0 here
        mb["num_tokens"] = int(pad[at - lo : at - lo + micro].sum()) if pad is not None else mb["input_ids"].numel()
        out.append(mb)
    return out


# ---- variants -----------------------------------------------------------------------------------

@dataclass
class Variant:
    name: str
    mode: str = "cpt"  # cpt | sft | lora
    impl: str = "hf"  # hf: benchmarks/hf_baseline.py | jft: the engine
    micro_batch: int = 8
    attn: str = "sdpa"
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    notes: str = ""


def baseline(mode: str, micro: int) -> Variant:
    return Variant(f"{mode}:a_hf_eager", mode=mode, impl="hf", micro_batch=micro)


def engine(mode: str, micro: int, name: str = "", **speed) -> Variant:
    """The engine's defaults (packed SFT on flex attention, as `model.attn_implementation: auto`
    picks on CUDA), with `speed` overriding `SpeedOptions` fields."""
    return Variant(name or f"{mode}:b_jft", mode=mode, impl="jft", micro_batch=micro,
                   attn="flex_attention" if mode == "sft" else "sdpa", speed=SpeedOptions(**speed))


def run_config(v: Variant, model_dir: Path, seq: int, global_batch: int, device):
    from japanese_ft.config import RunConfig

    cfg = RunConfig(mode=v.mode)
    cfg.model.name_or_path, cfg.model.attn_implementation = str(model_dir), v.attn
    cfg.model.compile = v.speed.compile != "none"
    cfg.data.seq_length, cfg.data.pack = seq, v.mode != "cpt"
    t = cfg.train
    t.micro_batch_size, t.global_batch_size, t.max_steps = v.micro_batch, global_batch, 10**6
    t.lr, t.min_lr, t.schedule, t.warmup_steps = LR, LR, "constant", LR_WARMUP
    t.weight_decay, t.betas, t.grad_clip = 0.1, [0.9, 0.95], 1.0
    t.precision = "bfloat16" if device.type == "cuda" else "float32"
    cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout = 16, 32, 0.1
    return cfg


def flops_per_token(cfg, n_params: int, seq: int) -> float:
    return 6.0 * n_params + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * seq


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runner:
    """Builds one variant and steps it over the batches: (a) plain HF, (b) the engine."""

    def __init__(self, v: Variant, model_dir: Path, device, args, world=None) -> None:
        from japanese_ft.train.distributed import World

        self.v, self.device, self.args = v, device, args
        self.world = world or World(device=device)
        torch.manual_seed(args.seed)
        if v.impl == "hf":
            self.model, self.params = hf_baseline.load_model(str(model_dir), v.mode, device, v.attn, args.seed)
            self.opt = hf_baseline.optimizer(self.params, device)
            return
        from japanese_ft.train.loop import build_model

        self.cfg = run_config(v, model_dir, args.seq, args.global_batch, device)
        self.model = build_model(self.cfg, self.world, None)
        self.engine = make_engine(self.model, self.cfg, self.world, v.speed)

    def step(self, batch: dict, step: int) -> float:
        mbs = split(batch, self.v.micro_batch, self.world.rank, self.world.size)
        if self.v.impl == "hf":
            lr = LR * min(1.0, (step + 1) / LR_WARMUP)
            return hf_baseline.step(self.model, self.opt, self.params, mbs, self.device, lr)[0]
        stats = train_step(self.engine, mbs)
        if not stats.finite:
            raise FloatingPointError(f"non-finite loss at step {step}")
        return stats.loss


def run_variant(v: Variant, model_dir: Path, batches: list[dict], device, args, world=None) -> dict:
    if device.type != "cuda":  # CPU smoke runs: no compile, no flex-attention backward on CPU
        v = replace(v, attn="sdpa", speed=replace(v.speed, compile="none"))
    res = {"variant": v.name, "settings": asdict(v)}
    runner = None
    try:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            torch.set_float32_matmul_precision("high")
        t_build = time.perf_counter()
        runner = Runner(v, model_dir, device, args, world)
        model_cfg = runner.model.config if hasattr(runner.model, "config") else None
        n_params = sum(p.numel() for p in runner.model.parameters())
        res.update(parameters=n_params, trainable=sum(p.numel() for p in runner.model.parameters() if p.requires_grad))
        losses, times = [], []
        for step in range(args.steps):
            sync(device)
            t0 = time.perf_counter()
            losses.append(runner.step(batches[step % len(batches)], step))
            sync(device)
            times.append(time.perf_counter() - t0)
        timed = times[args.warmup :] or times
        med = statistics.median(timed)
        ws = runner.world.size
        tokens = batches[0]["input_ids"].numel()
        tps = tokens / med
        mfu = tps / ws * flops_per_token(model_cfg, n_params, batches[0]["input_ids"].shape[1]) / (args.peak_tflops * 1e12)
        res.update(ok=True, step_s_median=med, step_s_min=min(timed), first_step_s=times[0],
                   build_s=time.perf_counter() - t_build - sum(times), tokens_per_step=tokens, tokens_per_s=tps,
                   tokens_per_s_per_gpu=tps / ws, mfu=mfu, losses=losses)
        if device.type == "cuda":
            res["peak_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            res["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
    except Exception as exc:  # keep going with the other variants; report the failure
        import traceback

        res.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000], traceback=traceback.format_exc()[-4000:])
    finally:
        del runner
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if world is None or world.is_main:
        _print_row(res)
    return res


def _print_row(r: dict) -> None:
    if not r.get("ok"):
        print(f"{r['variant']:<44} FAILED {r.get('error', '')[:300]}", flush=True)
        return
    mem = r.get("peak_allocated_gib")
    print(
        f"{r['variant']:<44} mb={r['settings']['micro_batch']:<3} {r['tokens_per_s']:>10,.0f} tok/s "
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
    out.update(ok=True, loss_max_rel_diff=float(rel.max()), loss_mean_rel_diff=float(rel.mean()),
               loss_tracks=bool(rel.max() <= rel_tol))
    return out


# ---- modes --------------------------------------------------------------------------------------

def device_info(device) -> dict:
    import transformers

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def _data(args, kind: str, rows: int, steps: int, seed_offset: int = 1) -> list[dict]:
    return make_batches("sft" if kind == "sft" else "cpt", steps, rows, args.seq, args.vocab, args.workdir,
                        seed=args.seed + seed_offset)


def mode_throughput(args, device) -> dict:
    results, comparisons = [], []
    for mode in args.modes:
        batches = _data(args, mode, args.global_batch, min(args.steps, 30))
        jft = engine(mode, args.micro_batch, compile="layers" if args.compile else "none")
        a = run_variant(baseline(mode, args.baseline_micro), args.model_dir, batches, device, args)
        b = run_variant(jft, args.model_dir, batches, device, args)
        results += [a, b]
        if mode == "cpt" and args.extra_micro:  # the engine at (a)'s micro batch, for reference
            results.append(run_variant(replace(jft, name=f"cpt:b_jft_mb{args.extra_micro}", micro_batch=args.extra_micro),
                                       args.model_dir, batches, device, args))
        c = compare(a, b, args.loss_rel_tol)
        comparisons.append(c)
        if c.get("ok"):
            print(f"  {mode}: (b)/(a) tokens/s {c['speedup']:.2f}x, peak memory {c.get('memory_ratio', float('nan')):.2f}x, "
                  f"loss max rel diff {c['loss_max_rel_diff']:.4f} ({'tracks' if c['loss_tracks'] else 'DOES NOT TRACK'})",
                  flush=True)
    return {"results": results, "comparisons": comparisons}


def lever_plan(mb0: int, mb1: int) -> list[Variant]:
    """One lever at a time against the engine's defaults, most telling first (a time budget may
    cut the list); the slow-compiling max-autotune comes last."""
    return [
        baseline("cpt", mb0),
        engine("cpt", mb1, "cpt:b_jft (defaults)"),
        engine("cpt", 2 * mb1, f"cpt:micro={2 * mb1}"),
        engine("cpt", mb1, "cpt:compile=decoder", compile="decoder"),
        engine("cpt", mb1, "cpt:cuda_graphs (reduce-overhead)", compile_mode="reduce-overhead"),
        engine("cpt", mb1, "cpt:loss_chunk=8192", loss_chunk_size=8192),
        engine("cpt", mb1, "cpt:loss_chunk=16384", loss_chunk_size=16384),
        engine("cpt", mb1, "cpt:foreach_adamw", fused_optimizer=False),
        engine("cpt", mb1, "cpt:matmul_precision=highest", matmul_precision="highest"),
        engine("cpt", mb1 // 2, f"cpt:micro={mb1 // 2}"),
        engine("cpt", mb1, "cpt:loss_chunk=2048", loss_chunk_size=2048),
        engine("cpt", mb1, "cpt:compile=none", compile="none"),
        baseline("sft", mb0),
        engine("sft", mb1, "sft:b_jft (flex)"),
        replace(engine("sft", mb1, "sft:sdpa"), attn="sdpa"),
        baseline("lora", mb0),
        engine("lora", mb1, "lora:b_jft"),
        engine("cpt", mb1, "cpt:max-autotune-no-cudagraphs", compile_mode="max-autotune-no-cudagraphs"),
    ]


def mode_levers(args, device) -> dict:
    data = {kind: _data(args, kind, args.global_batch if kind != "cpt" else 2 * args.micro_batch, min(args.steps, 30))
            for kind in ("cpt", "sft")}
    plan = lever_plan(args.baseline_micro, args.micro_batch)
    if args.only:
        plan = [v for v in plan if any(s in v.name for s in args.only)]
    results = []
    t0 = time.perf_counter()
    for v in plan:
        if time.perf_counter() - t0 > args.budget_s:
            results.append({"variant": v.name, "ok": False, "error": "skipped: time budget"})
            print(f"{v.name:<44} SKIPPED (time budget)", flush=True)
            continue
        results.append(run_variant(v, args.model_dir, data["sft" if v.mode == "sft" else "cpt"], device, args))
        _partial(args, {"results": results})
    return {"results": results}


def _partial(args, out: dict) -> None:
    """Write what is done so far (a run killed at its time limit still leaves numbers)."""
    if args.out:
        with open(args.out + ".partial", "w") as f:
            json.dump(out, f, indent=1, default=str)


def mode_memory(args, device) -> dict:
    """The original guide's settings: seq 2048, micro batch 2 (one micro-batch per step)."""
    results = []
    margs = argparse.Namespace(**{**vars(args), "steps": 4, "warmup": 2})
    for mode in args.modes:
        data = _data(args, mode, args.memory_micro, 4, seed_offset=2)
        for v in (baseline(mode, args.memory_micro), engine(mode, args.memory_micro)):
            results.append(run_variant(v, args.model_dir, data, device, margs))
    return {"results": results}


def mode_dist(args) -> dict:
    from japanese_ft.train.distributed import setup_distributed, teardown

    world = setup_distributed("auto")
    batches = _data(args, "cpt", args.global_batch, min(args.steps, 30))
    v = engine("cpt", args.micro_batch, f"cpt:b_jft_fsdp2_x{world.size}",
               compile="layers" if args.compile and world.device.type == "cuda" else "none")
    r = run_variant(v, args.model_dir, batches, world.device, args, world=world)
    r["world_size"] = world.size
    teardown(world)
    return {"results": [r], "world_size": world.size} if world.is_main else {}


def parse_args(argv=None):
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
    p.add_argument("--only", default="", help="levers: comma-separated substrings of variant names")
    p.add_argument("--budget-s", type=float, default=1e9, help="levers: skip variants after this many seconds")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", default="", help="model and token files (default: a temporary directory)")
    p.add_argument("--out", default="", help="write the JSON result here")
    p.add_argument("--dry-run", action="store_true", help="tiny preset, CPU-sized: a smoke test")
    args = p.parse_args(argv)
    if args.dry_run:
        args.preset, args.seq, args.global_batch, args.baseline_micro, args.micro_batch = "tiny", 64, 4, 2, 4
        args.memory_micro, args.steps, args.warmup, args.loss_rel_tol = 2, 4, 1, 0.05
        if args.device == "auto":
            args.device = "cpu"
    args.modes = [m for m in args.modes.split(",") if m]
    args.only = [s for s in args.only.split(",") if s]
    return args


def main(argv=None) -> int:
    global LR_WARMUP
    args = parse_args(argv)
    LR_WARMUP = max(1, args.lr_warmup)
    from japanese_ft.ui import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="jft-throughput-") as tmp:
        args.workdir = Path(args.workdir or tmp)
        args.workdir.mkdir(parents=True, exist_ok=True)
        args.model_dir = save_random_model(args.preset, args.workdir)
        args.vocab = json.loads((args.model_dir / "config.json").read_text())["vocab_size"]
        if args.mode == "dist":
            out = mode_dist(args)
            if not out:
                return 0
            device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
        else:
            device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
            out = {"throughput": mode_throughput, "levers": mode_levers, "memory": mode_memory}[args.mode](args, device)
    out.update(mode=args.mode, date=time.strftime("%Y-%m-%d"), command=" ".join(sys.argv), info=device_info(device),
               config={k: str(v) for k, v in vars(args).items()}, flops_per_token_formula="6*params + 12*layers*hidden*seq")
    if args.out:
        from japanese_ft.files import write_text

        write_text(args.out, json.dumps(out, indent=1, default=str))
    failed = [r["variant"] for r in out.get("results", []) if not r.get("ok") and "skipped" not in r.get("error", "")]
    return 1 if failed and args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
