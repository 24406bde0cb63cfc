"""What a report is made of, read from files only (no torch): training run directories, evaluation
result files and, when the report is written by `jft run`, the run's manifest (stage times,
data statistics, commands, environment)."""

from __future__ import annotations

import json
import os
import platform
import struct
from dataclasses import dataclass, field
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import read_json

QWEN25_05B_PARAMETERS = 494_032_768  # Qwen2.5-0.5B with tied embeddings (its config.json), the real recipe's model


@dataclass
class Run:
    """A training run directory (`jft train`'s output_dir)."""

    name: str
    dir: Path
    mode: str | None
    config: dict
    steps: int
    max_steps: int | None
    loss: float | None
    val_loss: float | None
    tokens: int
    tokens_per_s: float | None
    trainable: int | None
    total: int | None
    seconds: float | None = None  # the stage's own wall time, from the manifest


@dataclass
class Result:
    """An evaluation result file (a suite, or a single `jft eval` task)."""

    path: Path
    label: str
    results: dict  # name -> summary
    model_info: dict
    examples: dict = field(default_factory=dict)  # name -> per-example JSONL
    seconds: float | None = None
    stage: str | None = None


@dataclass
class ReportData:
    out_dir: Path
    title: str
    runs: list = field(default_factory=list)
    results: list = field(default_factory=list)
    manifest: dict | None = None
    plots: dict = field(default_factory=dict)  # "loss" / "metrics" -> path relative to out_dir

    def stages(self) -> dict:
        return (self.manifest or {}).get("stages", {})


def safetensors_parameters(path: Path) -> int | None:
    """Number of parameters in the *.safetensors files of a directory, from their headers only."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for d in info["shape"]:
                    count *= d
                total += count
    return total


def read_run(path: str | Path, seconds: float | None = None) -> Run:
    import yaml

    from japanese_ft.train.status import run_status

    path = Path(path)
    st = run_status(path)  # raises a UserError naming the directory when it is not a run
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    final = path / "final"
    trainable = total = None
    if final.is_dir():
        if (final / "adapter_config.json").exists():
            trainable = safetensors_parameters(final)
            base = Path(str((cfg.get("model") or {}).get("name_or_path", "")))
            base_n = safetensors_parameters(base) if base.is_dir() else None
            total = base_n + trainable if base_n is not None and trainable is not None else None
        else:
            trainable = total = safetensors_parameters(final)
    return Run(name=path.name, dir=path, mode=st.mode, config=cfg, steps=st.step, max_steps=st.max_steps, loss=st.loss,
               val_loss=st.val_loss, tokens=st.tokens, tokens_per_s=st.tokens_per_s, trainable=trainable, total=total,
               seconds=seconds)


def read_result(path: str | Path) -> Result:
    path = Path(path)
    obj = read_json(path, "result file")
    if not isinstance(obj, dict) or "task" not in obj:
        raise UserError(f"{path}: not a jft result file (no 'task' field)")
    results = obj.get("results") if obj["task"] == "suite" else {obj["task"]: obj}
    label = obj.get("label") or path.stem
    examples = obj.get("examples") if obj["task"] == "suite" else {}
    return Result(path=path, label=str(label), results=results or {}, model_info=obj.get("model_info") or {},
                  examples=examples or {}, seconds=obj.get("seconds"))


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable run manifest ({exc})") from None
    if not isinstance(data, dict) or "stages" not in data:
        raise UserError(f"{path}: not a jft run manifest")
    return data


def load_inputs(out_dir: Path, runs: list, results: list, manifest: str | Path | None, title: str | None) -> ReportData:
    """Read everything the report shows; with a manifest, attach each stage's own wall time."""
    man = read_manifest(manifest) if manifest else None
    stages = (man or {}).get("stages", {})
    by_dir = {}
    for name, st in stages.items():
        for value in (st.get("outputs") or {}).values():
            if isinstance(value, str):
                by_dir[os.path.realpath(value)] = (name, st)
    data = ReportData(out_dir=Path(out_dir), title=title or (man or {}).get("recipe", {}).get("name") or "jft report",
                      manifest=man)
    for r in runs:
        stage = by_dir.get(os.path.realpath(r))
        data.runs.append(read_run(r, stage[1].get("seconds") if stage else None))
    for r in results:
        res = read_result(r)
        stage = by_dir.get(os.path.realpath(r))
        if stage:
            res.stage, res.seconds = stage[0], stage[1].get("seconds")
        data.results.append(res)
    return data


def environment() -> dict:
    """Packages and devices of this machine (recorded by `jft run` when it starts)."""
    from importlib import metadata

    env = {"python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}",
           "cpu_cores": os.cpu_count(), "packages": {}}
    for name in ("japanese-ft", "torch", "transformers", "peft", "tokenizers", "safetensors", "accelerate"):
        try:
            env["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:  # pragma: no cover
        pass
    return env
