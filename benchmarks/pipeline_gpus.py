#!/usr/bin/env python3
"""`jft run` on GPUs: the built-in demo recipe with its training stages on CUDA, once with 1 process per
training stage (in the `jft run` process) and once with N (torchrun, FSDP2 / replicated LoRA).

    python benchmarks/pipeline_gpus.py --out $OUT [--nprocs 2] [--preset quick]

For each run: wall time, per-stage times (from WORKDIR/jft-run.json), final train/validation losses
of every training stage and the headline metrics of every eval stage; then the N-process run against
the 1-process run (the engine gives the same update for any process count, so losses should agree to
about 1e-4). Prints a summary table and writes OUT/pipeline_gpus.json. A run of the second kind also
checks that the GPU count is picked up without --gpus (`auto`) when N equals the visible GPUs.

CPU smoke test: python benchmarks/pipeline_gpus.py --out /tmp/pg --device cpu --nprocs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TRAIN_STAGES = ("base", "cpt", "sft", "lora")
GLOBAL_BATCH = 4  # the demo recipe's global batch (vars.micro_batch)


def run(out: Path, name: str, nprocs: int, device: str, preset: str | None) -> dict:
    workdir = out / name
    overrides = []
    if GLOBAL_BATCH % nprocs:
        raise SystemExit(f"--nprocs must divide the demo's global batch ({GLOBAL_BATCH})")
    for st in TRAIN_STAGES:
        # the same global batch of 4 sequences: 1 process x 4, or N processes x 4/N
        overrides += [f"{st}.train.device={device}", f"{st}.model.compile=false",
                      f"{st}.train.micro_batch_size={GLOBAL_BATCH // nprocs}"]
        if device == "cpu":
            overrides.append(f"{st}.gpus={nprocs}")  # CPU stages need the stage's own setting (gloo processes)
    for st in ("eval-base", "eval-cpt", "eval-sft", "eval-lora", "eval-merged"):
        overrides += [f"{st}.device={'cuda' if device == 'cuda' else 'cpu'}"]
    cmd = [sys.executable, "-m", "japanese_ft.cli", "run", "demo", "--workdir", str(workdir), *overrides]
    if preset:
        cmd += ["--preset", preset]
    if device == "cuda":
        cmd += ["--gpus", str(nprocs)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{name}: jft run failed ({res.returncode}):\n{res.stderr[-4000:]}")
    m = json.loads((workdir / "jft-run.json").read_text())
    st = m["stages"]
    return {
        "name": name, "processes": nprocs, "device": device, "wall_s": round(wall, 1),
        "stage_s": {k: v.get("seconds") for k, v in st.items()},
        "processes_used": {k: st[k].get("processes") for k in TRAIN_STAGES},
        "losses": {k: [st[k]["summary"].get("loss"), st[k]["summary"].get("val_loss")] for k in TRAIN_STAGES},
        "metrics": {k: v["summary"].get("metrics") for k, v in st.items() if v.get("kind") == "eval"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "pipeline-gpus")))
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--preset", default="quick", help="demo preset (quick), or '' for the full demo")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    one = run(args.out, "one", 1, args.device, args.preset or None)
    many = run(args.out, f"n{args.nprocs}", args.nprocs, args.device, args.preset or None)
    rows, worst = [], 0.0
    for st in TRAIN_STAGES:
        for i, what in enumerate(("loss", "val_loss")):
            a, b = one["losses"][st][i], many["losses"][st][i]
            if a is not None and b is not None:
                worst = max(worst, abs(a - b) / max(abs(a), 1e-9))
            rows.append((f"{st} {what}", a, b))
    result = {"date": time.strftime("%Y-%m-%d"), "runs": [one, many], "max_relative_loss_difference": worst}
    try:
        import torch

        result["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a CPU-only smoke test
        result["gpus"] = []
    (args.out / "pipeline_gpus.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':22} {'1 process':>12} {f'{args.nprocs} processes':>14}")
    print(f"{'wall time (s)':22} {one['wall_s']:>12} {many['wall_s']:>14}")
    print(f"{'processes used':22} {str(one['processes_used']['cpt']):>12} {str(many['processes_used']['cpt']):>14}")
    for label, a, b in rows:
        print(f"{label:22} {a if a is None else round(a, 5):>12} {b if b is None else round(b, 5):>14}")
    print(f"max relative loss difference: {worst:.2e}   ->  {args.out / 'pipeline_gpus.json'}")


if __name__ == "__main__":
    main()
