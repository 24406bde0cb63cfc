#!/usr/bin/env python3
"""One GPU session for the lead: every GPU figure of docs/benchmarks.md in about 8 minutes on 2 GPUs.

    python benchmarks/gpu_session.py --tokenizer DIR/qwen2.5 --jsquad DIR/jsquad-valid-v1.3.json \\
        [--smol-tokenizer DIR/smollm2-tokenizer] --out "$OUT"

Inputs come by path (nothing is read from ../shared). Two lanes run side by side, then both GPUs:
  phase A, GPU 0  `jft train` with each shipped recipe (cpt, sft, lora; Qwen2.5-0.5B shape, random
                  init, the Qwen tokenizer) on 1 GPU, then plain HF eager on the same data
                  (benchmarks/train_scaling.py --nprocs 1 --hf-baseline);
  phase A, GPU 1  the GPU tests (tests/gpu, one GPU), the engine's lever sweep
                  (benchmarks/train_throughput.py --mode levers, CPT, short), JSQuAD generation
                  speed with `jft eval jsquad`'s defaults on the Qwen2.5-0.5B and SmolLM2-135M
                  shapes (benchmarks/eval_jsquad.py; random weights: all 25 tokens per question);
  phase B, 2 GPUs `jft train` on 2 GPUs with each recipe (scaling vs phase A's 1-GPU runs, same
                  data, same global batch), then the 2-GPU GPU tests.
Every step has a time limit; a step that fails or runs out of time is reported, the rest go on.
Writes to --out: one JSON per step, logs/, session.json and summary.md; prints summary.md last.
Needs only the GPU machine's packages (no rapidfuzz: the JSQuAD run builds prompts without the
scoring module when rapidfuzz is missing); the GPU tests need pytest, and are reported as skipped
without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MODES = ("cpt", "sft", "lora")


class Session:
    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out)
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self.steps: list[dict] = []
        self.lock = threading.Lock()

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def run(self, name: str, cmd: list[str], gpus: str, limit_s: float) -> dict:
        """Run one step with CUDA_VISIBLE_DEVICES=gpus and a time limit; log to logs/NAME.log."""
        if cmd[1:3] == ["-m", "pytest"] and importlib.util.find_spec("pytest") is None:
            rec = {"step": name, "gpus": gpus, "rc": "skipped: pytest is not installed (carry its wheel)", "seconds": 0}
            with self.lock:
                self.steps.append(rec)
            return rec
        limit = max(5.0, min(limit_s, self.left()))
        env = {"NCCL_NVLS_ENABLE": "0", **os.environ,  # NVLink multicast off, as the lent machines require
               "CUDA_VISIBLE_DEVICES": gpus, "PYTHONPATH": str(REPO / "src"),
               "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "TOKENIZERS_PARALLELISM": "false"}
        start = time.perf_counter()
        rec = {"step": name, "gpus": gpus, "command": " ".join(cmd), "limit_s": round(limit)}
        print(f"[{time.perf_counter() - self.t0:6.0f}s] start {name} (GPU {gpus}, limit {limit:.0f}s)", flush=True)
        with open(self.out / "logs" / f"{name}.log", "w") as log:
            try:
                proc = subprocess.run(cmd, cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT, timeout=limit)
                rec["rc"] = proc.returncode
            except subprocess.TimeoutExpired:
                rec["rc"] = "timeout"
        rec["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[{time.perf_counter() - self.t0:6.0f}s] done  {name}: rc={rec['rc']} in {rec['seconds']}s", flush=True)
        with self.lock:
            self.steps.append(rec)
        return rec


def _recipe(s: Session, a, mode: str, n: int) -> list[str]:
    cmd = [PY, "benchmarks/train_scaling.py", "--train-mode", mode, "--nprocs", str(n), "--tokenizer", a.tokenizer,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--workdir", str(a.workdir),
           "--out", str(s.out / f"recipe_{mode}_x{n}.json")]
    return cmd + (["--hf-baseline"] if n == 1 else []) + (["--dry-run"] if a.dry_run else [])


def lane_gpu0(s: Session, a) -> None:
    for mode in MODES:
        s.run(f"recipe_{mode}_x1", _recipe(s, a, mode, 1), "0", a.phase_a_s / 3 + 30)


def lane_gpu1(s: Session, a) -> None:
    s.run("gpu_tests_1gpu", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu", "-k", "not two_gpus",
                             "--junitxml", str(s.out / "gpu_tests_1gpu.xml")], "1", 150)
    s.run("levers", [PY, "benchmarks/train_throughput.py", "--mode", "levers", "--only", "cpt:", "--steps", "8",
                     "--warmup", "3", "--budget-s", str(a.levers_s), "--workdir", str(a.workdir / "levers"),
                     "--out", str(s.out / "levers.json")] + (["--dry-run"] if a.dry_run else []), "1", a.levers_s + 60)
    jsq = [PY, "benchmarks/eval_jsquad.py", "--data", a.jsquad, "--baseline-limit", "128", "--check-limit", "64"]
    jsq += ["--limit", "16", "--baseline-limit", "8", "--check-limit", "8"] if a.dry_run else []
    shapes = (("tiny", a.tokenizer), ("tiny", a.tokenizer)) if a.dry_run else \
        (("qwen2.5-0.5b", a.tokenizer), ("smollm2-135m", a.smol_tokenizer or a.tokenizer))
    for name, (shape, tok) in zip(("qwen2.5-0.5b", "smollm2-135m"), shapes):
        s.run(f"jsquad_{name}", jsq + ["--shape", shape, "--tokenizer", tok, "--out", str(s.out / f"jsquad_{name}.json")],
              "1", 150)


def phase_b(s: Session, a) -> None:
    for mode in MODES:
        s.run(f"recipe_{mode}_x2", _recipe(s, a, mode, 2), "0,1", 100)
    s.run("gpu_tests_2gpu", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu", "-k", "two_gpus",
                             "--junitxml", str(s.out / "gpu_tests_2gpu.xml")], "0,1", 120)


# ---- summary ------------------------------------------------------------------------------------

def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _run(result, name):
    return next((r for r in (result or {}).get("runs", []) if r.get("run") == name and "losses" in r), None)


def _tests(xml: Path) -> str:
    if not xml.exists():
        return "not run"
    import xml.etree.ElementTree as ET

    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, fail, err, skip = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    return f"{total - fail - err - skip} passed, {fail + err} failed, {skip} skipped"


def summarize(s: Session) -> str:
    lines = [f"# GPU session {time.strftime('%Y-%m-%d')}", ""]
    gpu = next((r.get("gpu") for m in MODES if (r := _load(s.out / f"recipe_{m}_x1.json"))), "?")
    lines += [f"Card: {gpu}. Wall time: {time.perf_counter() - s.t0:.0f} s.", "",
              "## jft train (shipped recipe) vs HF eager, 1 GPU; and 2 GPUs vs 1", "",
              "| mode | jft tok/s | HF eager tok/s | jft / HF (bar 1.8x sft/lora) | 2 GPUs tok/s | 2 GPUs / 1 (bar cpt 1.9, lora 1.8, sft 1.8) | loss max rel diff 2 vs 1 |",
              "|---|---|---|---|---|---|---|"]
    for m in MODES:
        one, two = _load(s.out / f"recipe_{m}_x1.json"), _load(s.out / f"recipe_{m}_x2.json")
        j1, hf, j2 = _run(one, "jft x1"), _run(one, "hf eager x1"), _run(two, "jft x2")
        cells = [m, f"{j1['tokens_per_s']:,.0f}" if j1 else "failed", f"{hf['tokens_per_s']:,.0f}" if hf else "failed",
                 f"**{j1['tokens_per_s'] / hf['tokens_per_s']:.2f}x**" if j1 and hf else "-",
                 f"{j2['tokens_per_s']:,.0f}" if j2 else "failed",
                 f"**{j2['tokens_per_s'] / j1['tokens_per_s']:.2f}x**" if j1 and j2 else "-"]
        if j1 and j2:
            n = min(len(j1["losses"]), len(j2["losses"]))
            cells.append(f"{max(abs(x - y) / abs(x) for x, y in zip(j1['losses'][:n], j2['losses'][:n])):.4f}")
        else:
            cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    lev = _load(s.out / "levers.json") or _load(s.out / "levers.json.partial")  # a run cut short leaves .partial
    lines += ["", "## Engine levers, CPT, 1 GPU (MFU bar 50 %)", "", "| variant | micro | tok/s | MFU | peak GiB |", "|---|---|---|---|---|"]
    for r in (lev or {}).get("results", []):
        if r.get("ok"):
            lines.append(f"| {r['variant']} | {r['settings']['micro_batch']} | {r['tokens_per_s']:,.0f} | "
                         f"{100 * r['mfu']:.1f} % | {r.get('peak_allocated_gib', 0):.1f} |")
        else:
            lines.append(f"| {r['variant']} | | {r.get('error', 'failed')[:80]} | | |")
    lines += ["", "## JSQuAD generation, `jft eval jsquad` defaults (bars: 0.5B >= 100 q/s and all in < 60 s; SmolLM2 >= 250 q/s)", "",
              "| shape | questions | mean prompt tokens | batch | cache | seconds | questions/s | model.generate batch 8 q/s | speed-up | static == dynamic |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for shape in ("qwen2.5-0.5b", "smollm2-135m"):
        r = _load(s.out / f"jsquad_{shape}.json")
        if r:
            lines.append(f"| {shape} | {r['questions']} | {r['mean_prompt_tokens']} | {r['batch_size']} | {r['cache']} | "
                         f"{r['seconds']} | **{r['questions_per_s']}** | {r.get('baseline_questions_per_s', '-')} | "
                         f"{r.get('speedup', '-')}x | {r.get('identical_outputs_static_vs_dynamic', '-')} |")
        else:
            lines.append(f"| {shape} | failed | | | | | | | | |")
    lines += ["", "## GPU tests", "", f"- one GPU: {_tests(s.out / 'gpu_tests_1gpu.xml')}",
              f"- two GPUs: {_tests(s.out / 'gpu_tests_2gpu.xml')}", "", "## Steps", "",
              "| step | GPUs | rc | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['gpus']} | {r['rc']} | {r['seconds']} |" for r in s.steps]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="the Qwen2.5 tokenizer directory")
    p.add_argument("--jsquad", required=True, help="JSQuAD validation JSON (SQuAD format)")
    p.add_argument("--smol-tokenizer", default="", help="SmolLM2's tokenizer directory (default: the Qwen one, ids folded)")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu-session"))
    p.add_argument("--workdir", default="/tmp/jft-gpu-session")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps per jft train / HF run")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of tokens/s")
    p.add_argument("--budget-s", type=float, default=500, help="the whole session (keep it under the 600 s command limit)")
    p.add_argument("--phase-a-s", type=float, default=300, help="time for phase A's GPU-0 lane (3 recipes)")
    p.add_argument("--levers-s", type=float, default=60, help="time for the lever sweep (variants start until it is spent)")
    p.add_argument("--dry-run", action="store_true", help="CPU smoke run of the whole session with tiny models")
    a = p.parse_args(argv)
    if a.dry_run:
        a.budget_s, a.phase_a_s, a.steps, a.warmup = 1800, 900, 3, 1
    a.workdir = Path(a.workdir)
    s = Session(a)
    lanes = [threading.Thread(target=lane_gpu0, args=(s, a)), threading.Thread(target=lane_gpu1, args=(s, a))]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    phase_b(s, a)
    summary = summarize(s)
    (s.out / "summary.md").write_text(summary)
    (s.out / "session.json").write_text(json.dumps({"steps": s.steps, "args": {k: str(v) for k, v in vars(a).items()}}, indent=1))
    print("\n" + summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
