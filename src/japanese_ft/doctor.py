"""`jft doctor`: what this machine can run, and a one-line fix for each problem.

Each check returns a `Check(name, status, detail, fix)`; status is "ok", "warn" (works, but
something is missing or slow), "fail" (a check the user asked for failed) or "info". Only the
checks the user requested (`--tokenizer`, `--model`) can fail: the exit code is 1 then, else 0.
"""

from __future__ import annotations

import importlib
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from japanese_ft.errors import one_line
from japanese_ft.files import looks_local

CPU_TORCH = "pip install torch==2.13.0   # CPU build; for CUDA see https://pytorch.org/get-started/locally/"


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "?"))


def check_python() -> Check:
    v = sys.version_info
    detail = f"{platform.python_version()} ({sys.executable})"
    if v < (3, 10):
        return Check("python", "warn", detail, "jft needs Python >= 3.10: install a newer Python and re-install jft")
    return Check("python", "ok", detail)


def check_packages() -> list[Check]:
    out = []
    from japanese_ft import __version__

    out.append(Check("jft", "ok", f"{__version__} ({Path(__file__).resolve().parent})"))
    for module, pip_name, needed in (("transformers", "transformers", True), ("tokenizers", "tokenizers", True),
                                     ("peft", "peft", True), ("safetensors", "safetensors", True),
                                     ("matplotlib", "matplotlib", True), ("tensorboard", "tensorboard", False)):
        v = _version(module)
        if v is None:
            out.append(Check(module, "warn" if needed else "info", "not installed",
                             f'pip install "{pip_name}"' + ("" if needed else "   # optional: TensorBoard event files")))
        else:
            out.append(Check(module, "ok", v))
    return out


def check_sample() -> Check:
    from importlib import resources

    try:
        names = {p.name for p in (resources.files("japanese_ft") / "sample").iterdir()}
    except Exception as exc:  # pragma: no cover
        return Check("demo sample", "warn", f"unreadable ({exc})", 'reinstall: pip install -e ".[dev]"')
    missing = {"articles.jsonl", "heldout.jsonl", "questions_train.json", "questions_heldout.json"} - names
    if missing:
        return Check("demo sample", "warn", f"missing {', '.join(sorted(missing))}", 'reinstall: pip install -e ".[dev]"')
    return Check("demo sample", "ok", "built-in Japanese sample present (jft demo works offline)")


def check_torch() -> tuple[list[Check], object | None]:
    try:
        import torch
    except Exception as exc:
        return [Check("torch", "warn", f"cannot import ({exc.__class__.__name__}: {exc})", CPU_TORCH)], None
    checks = [Check("torch", "ok", f"{torch.__version__} ({torch.get_num_threads()} CPU threads)")]
    return checks, torch


def check_cuda(torch) -> list[Check]:
    if torch is None:
        return []
    out = []
    if not torch.cuda.is_available():
        built = getattr(torch.version, "cuda", None)
        if built:
            fix = "no GPU visible: check nvidia-smi and CUDA_VISIBLE_DEVICES"
        else:
            fix = "CPU-only torch build: for GPUs install a CUDA build (https://pytorch.org/get-started/locally/)"
        out.append(Check("cuda", "warn", f"not available (torch built with CUDA {built or 'none'}); jft runs on the CPU "
                         "(the demo and tiny recipes only)", fix))
        return out
    out.append(Check("cuda", "ok", f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
                     f"{torch.cuda.device_count()} GPU(s)"))
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        out.append(Check(f"gpu {i}", "ok", f"{p.name}, {total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free), "
                         f"compute capability {p.major}.{p.minor}"))
    return out


def check_bf16(torch) -> Check:
    if torch is None:
        return Check("bf16", "info", "unknown (no torch)")
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return Check("bf16", "ok", "supported on the GPU (train.precision: bfloat16, the recipes' default)")
        return Check("bf16", "warn", "not supported by this GPU", "use train.precision=float32 (the qwen2.5-0.5b recipes default to bfloat16)")
    return Check("bf16", "info", "CPU: jft trains in float32 on the CPU (train.precision=bfloat16 applies on CUDA only)")


def check_compile(torch) -> Check:
    if torch is None:
        return Check("torch.compile", "info", "unknown (no torch)")
    if not hasattr(torch, "compile"):
        return Check("torch.compile", "warn", "missing (torch < 2.0)", "upgrade torch; keep model.compile: false meanwhile")
    if torch.cuda.is_available():
        v = _version("triton")
        if v is None:
            return Check("torch.compile", "warn", "triton not installed: GPU kernels cannot be compiled",
                         "pip install triton (or keep model.compile: false)")
        return Check("torch.compile", "ok", f"available (triton {v}); used when model.compile is true")
    cxx = next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)
    if cxx is None:
        return Check("torch.compile", "info", "no C++ compiler (jft compiles on CUDA only, so CPU runs do not need one)")
    return Check("torch.compile", "ok", f"available ({cxx}); jft compiles on CUDA only (model.compile)")


def check_disk(path: str | Path = ".") -> Check:
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_gb = usage.free / 1e9
    detail = f"{free_gb:,.1f} GB free of {usage.total / 1e9:,.1f} GB under {probe.resolve()}"
    # A Qwen2.5-0.5B full-weight checkpoint holds fp32 weights (~2 GB) + AdamW moments (~4 GB); the
    # recipe keeps 2 checkpoints + final/, and the ja_wiki token files take a few GB more.
    if free_gb < 1:
        return Check("disk", "warn", detail, "free space: even the demo writes ~20 MB and checkpoints grow quickly")
    if free_gb < 25:
        return Check("disk", "warn", detail + "; the Qwen2.5-0.5B recipes need about 25 GB "
                     "(2 checkpoints of ~6 GB, final/, token files)", "free space or run with --path on a bigger disk "
                     "(output_dir=...), or lower train.keep_last")
    return Check("disk", "ok", detail)


def check_tokenizer(name: str) -> Check:
    t0 = time.perf_counter()
    if not Path(name).expanduser().exists() and looks_local(name):
        return Check(f"tokenizer {name}", "fail", "no such directory", _path_fix(name, "tokenizer.json"))
    try:
        from japanese_ft.tokens import eos_id, load_tokenizer

        tok = load_tokenizer(name)
    except Exception as exc:
        fix = _path_fix(name, "tokenizer.json")
        return Check(f"tokenizer {name}", "fail", one_line(exc), fix)
    eos = eos_id(tok)
    sample = "富士山は日本で最も高い山である。"
    ids = tok(sample, add_special_tokens=False)["input_ids"]
    roundtrip = tok.decode(ids) == sample
    detail = (f"loads in {time.perf_counter() - t0:.1f} s: {len(tok):,} tokens, EOS id {eos}, "
              f"{len(sample) / max(len(ids), 1):.2f} chars/token on a Japanese sentence, round trip "
              f"{'exact' if roundtrip else 'NOT exact'}")
    if eos is None:
        return Check(f"tokenizer {name}", "fail", detail + "; no EOS token",
                     "use a tokenizer with an EOS token (prepare-corpus ends documents with it)")
    return Check(f"tokenizer {name}", "ok" if roundtrip else "warn", detail,
                 "" if roundtrip else "decode(encode(text)) changes Japanese text: check the tokenizer's normalizer")


def check_model(name: str) -> Check:
    t0 = time.perf_counter()
    p = Path(name).expanduser()
    if not p.exists() and looks_local(name):
        return Check(f"model {name}", "fail", "no such directory", _path_fix(name, "config.json"))
    if p.is_dir() and not (p / "config.json").exists():
        if (p / "adapter_config.json").exists():
            return Check(f"model {name}", "fail", "this is a LoRA adapter, not a model",
                         "pass the base model as --model (and the adapter with --adapter where a command takes one)")
        return Check(f"model {name}", "fail", "no config.json here", _path_fix(name, "config.json"))
    try:
        from transformers import AutoConfig

        from japanese_ft.model.load import load_model
        from japanese_ft.runtime import stored_dtype

        config = AutoConfig.from_pretrained(str(name))
        dtype = stored_dtype(config)
        model = load_model(str(name), dtype)
    except Exception as exc:
        return Check(f"model {name}", "fail", one_line(exc), _path_fix(name, "config.json"))
    params = sum(q.numel() for q in model.parameters())
    detail = (f"loads in {time.perf_counter() - t0:.1f} s: {config.model_type}, {params / 1e6:,.1f} M parameters, "
              f"{dtype}, {config.num_hidden_layers} layers, max positions {getattr(config, 'max_position_embeddings', '?')}")
    return Check(f"model {name}", "ok", detail)


def _path_fix(name: str, needed: str) -> str:
    p = Path(name).expanduser()
    if p.exists():
        return f"point it at a directory with {needed} (a jft init-model/train output, or a downloaded HF checkpoint)"
    if not looks_local(name):
        return (f"hub id: check the spelling and the network (or HF_HUB_OFFLINE); to work offline, "
                f"download once: hf download {name} --local-dir models/{name.split('/')[-1]}")
    return f"{name} does not exist: check the path"


def run_checks(tokenizer: str | None = None, model: str | None = None, disk_path: str | Path = ".") -> list[Check]:
    checks = [check_python(), *check_packages(), check_sample()]
    torch_checks, torch = check_torch()
    checks += torch_checks
    checks += check_cuda(torch)
    checks += [check_bf16(torch), check_compile(torch), check_disk(disk_path)]
    if tokenizer:
        checks.append(check_tokenizer(tokenizer))
    if model:
        checks.append(check_model(model))
    return checks


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0
