"""The typed run configuration: YAML in, dotted `key=value` overrides, validation.

One `RunConfig` tree describes a training run; it is saved as `config.yaml` beside every
checkpoint. Unknown keys are errors (with a suggestion), so typos never pass silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from japanese_ft.errors import UserError

MODES = ("cpt", "sft", "lora")


@dataclass
class ModelConfig:
    name_or_path: str = ""
    dtype: str = "bfloat16"  # parameter dtype for lora's frozen base; full modes keep fp32 master weights
    attn_implementation: str = "auto"  # auto: flex_attention for packed SFT/LoRA on CUDA, else sdpa
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    compile: bool = True  # torch.compile each decoder layer on CUDA (ignored on CPU)
    allow_pickle: bool = False  # also load pytorch_model.bin (pickle) when the base has no safetensors


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    seq_length: int = 2048
    pack: bool = True  # sft/lora: pack examples into rows of seq_length (attention stays per example)
    chat_template: str = "auto"  # auto: the tokenizer's template, else ChatML; chatml; none: plain input+output+EOS
    truncation: str = "drop"  # sft: "drop" over-long examples or "truncate" the answer
    tokenizer: str = ""  # defaults to model.name_or_path


@dataclass
class TrainingConfig:
    micro_batch_size: int = 2
    global_batch_size: int = 16
    max_steps: int = 1000
    lr: float = 3e-4
    min_lr: float = 3e-5
    schedule: str = "cosine"  # cosine | linear | constant
    warmup_steps: int = 200
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    embedding_warmup_steps: int = 0  # cpt/sft: the first N steps update only the input/output embeddings
    precision: str = "bf16"  # bf16 | fp32
    eval_every: int = 100
    eval_batches: int = 5
    save_every: int = 100
    keep_last: int = 2
    log_every: int = 1
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda
    cpu_threads: int = 0  # CPU runs: torch threads; 0 = auto (OMP_NUM_THREADS, else train/threads.py's rule)


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


@dataclass
class RunConfig:
    mode: str = "cpt"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainingConfig = field(default_factory=TrainingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    output_dir: str = "runs/default"

    def validate(self) -> None:
        """Checks that need no files or models; path and model checks live in the trainer."""
        _choice("mode", self.mode, MODES)
        _choice("train.schedule", self.train.schedule, ("cosine", "linear", "constant"))
        _choice("train.precision", self.train.precision, ("bf16", "fp32"))
        _choice("train.device", self.train.device, ("auto", "cpu", "cuda"))
        _choice("data.truncation", self.data.truncation, ("drop", "truncate"))
        _choice("data.chat_template", self.data.chat_template, ("auto", "chatml", "none"))
        for name in ("micro_batch_size", "global_batch_size", "max_steps"):
            if getattr(self.train, name) < 1:
                raise UserError(f"train.{name} must be >= 1, got {getattr(self.train, name)}")
        if self.data.seq_length < 2:
            raise UserError(f"data.seq_length must be >= 2, got {self.data.seq_length}")
        if self.train.global_batch_size % self.train.micro_batch_size:
            raise UserError(
                f"train.global_batch_size ({self.train.global_batch_size}) is not divisible by "
                f"train.micro_batch_size ({self.train.micro_batch_size})"
            )
        if not self.model.name_or_path:
            raise UserError("model.name_or_path is required")
        if not self.data.train:
            raise UserError("data.train must list at least one input")
        if len(self.train.betas) != 2:
            raise UserError(f"train.betas must have two values, got {self.train.betas}")
        if self.lora.r < 1:
            raise UserError(f"lora.r must be >= 1, got {self.lora.r}")
        if self.train.cpu_threads < 0:
            raise UserError(f"train.cpu_threads must be >= 0 (0 = auto), got {self.train.cpu_threads}")
        if self.train.embedding_warmup_steps < 0:
            raise UserError(f"train.embedding_warmup_steps must be >= 0, got {self.train.embedding_warmup_steps}")
        if self.train.embedding_warmup_steps and self.mode == "lora":
            raise UserError("train.embedding_warmup_steps: lora keeps the embeddings frozen; use it with cpt or sft")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


# ---- generic loading ---------------------------------------------------------------------


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass `cls` from a plain dict, checking key names and value types."""
    if not isinstance(data, dict):
        raise UserError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {'.'.join(filter(None, [where, close[0]]))}?)" if close else ""
            raise UserError(f"unknown config key {path!r}{hint}; known keys: {', '.join(names)}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _coerce(tp, value, path: str):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, path)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, list):
            raise UserError(f"{path}: expected a list, got {value!r}")
        return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise UserError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"{path}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise UserError(f"{path}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{path}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{path}: expected a string, got {value!r}")
        return str(value)
    return value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings (values parsed as YAML) to a nested dict in place."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return data


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping")
    return data


def load_run_config(path: str | Path | None, overrides: list[str] = (), mode: str | None = None) -> RunConfig:
    """YAML file + overrides (+ the mode from the command line) -> validated RunConfig."""
    data = load_yaml(path) if path else {}
    apply_overrides(data, list(overrides))
    if mode is not None:
        data["mode"] = mode
    cfg = from_dict(RunConfig, data)
    cfg.validate()
    return cfg


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    import os

    path = Path(path)
    tmp = Path(f"{path}.tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, path)
