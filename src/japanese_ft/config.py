"""The typed run configuration: YAML in, dotted `key=value` overrides, validation.

One `RunConfig` tree describes a training run; it is saved as `config.yaml` beside every
checkpoint. Unknown keys are errors (with a suggestion), so typos never pass silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from japanese_ft.errors import UserError
from japanese_ft.runtime import DTYPE_ALIASES

# Hand-written coercion, not pydantic/tyro: the GPU machine has neither and cannot install them, and
# ~60 lines give one-line messages that name the dotted key (pydantic's run over several lines).

Mode = Literal["cpt", "sft", "lora"]
MODES: tuple[str, ...] = typing.get_args(Mode)


@dataclass
class ModelConfig:
    name_or_path: str = ""
    """HF checkpoint directory or hub id ("owner/name"); required."""
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """dtype of LoRA's frozen base weights on CUDA (CPU runs use float32); full modes always keep
    float32 master weights. `bf16`/`fp16`/`fp32` are accepted for the same dtypes."""
    attn_implementation: str = "auto"
    """transformers' attention (`sdpa`, `eager`, `flash_attention_2`, `flex_attention`); auto:
    flex_attention for packed SFT/LoRA on CUDA, else sdpa."""
    trust_remote_code: bool = False
    """Run a model's own Python code from its directory or hub repository (only for models that need it)."""
    gradient_checkpointing: bool = False
    """HF activation checkpointing (non-reentrant): less memory, about a third more compute."""
    compile: bool = True
    """torch.compile each decoder layer on CUDA (ignored on CPU)."""
    allow_pickle: bool = False
    """Also load pytorch_model.bin (pickle) when the base has no safetensors (trusted files only)."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)
    """cpt: token-file prefixes (`"0.7 path/a"` weights a blend); sft/lora: JSONL files. Required."""
    validation: list[str] = field(default_factory=list)
    """Same kinds as `train`; no validation when empty."""
    seq_length: int = 2048
    """cpt: window length; sft/lora: longest example or packed row, in tokens."""
    pack: bool = True
    """sft/lora: pack examples into rows of seq_length (attention stays per example)."""
    chat_template: Literal["auto", "chatml", "none"] = "auto"
    """auto: the tokenizer's template, else ChatML; chatml: always ChatML; none: plain input + output + EOS."""
    truncation: Literal["drop", "truncate"] = "drop"
    """sft/lora: drop over-long examples or truncate them (both counted)."""
    tokenizer: str = ""
    """Tokenizer directory or hub id; empty: model.name_or_path's."""


@dataclass
class ScheduleConfig:
    """The learning-rate schedule (train/schedule.py reads exactly these fields of `train`)."""

    lr: float = 3e-4
    """Peak learning rate (> 0)."""
    min_lr: float = 3e-5
    """Final learning rate of the decay (0 <= min_lr <= lr)."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after warmup: cosine or linear to min_lr, or constant at lr."""
    warmup_steps: int = 200
    """Linear warmup: step s (0-based) uses lr x (s+1)/warmup_steps; at most max_steps."""
    max_steps: int = 1000
    """Optimizer steps of the run."""


@dataclass
class TrainingConfig(ScheduleConfig):
    micro_batch_size: int = 2
    """Sequences per forward/backward per process."""
    global_batch_size: int = 16
    """Sequences per optimizer step over all processes (a multiple of micro_batch_size x processes)."""
    weight_decay: float = 0.1
    """AdamW decay on matrices, not on norms and biases (>= 0)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas, two values in [0, 1)."""
    grad_clip: float = 1.0
    """Global gradient-norm clipping; 0 turns clipping off (>= 0)."""
    embedding_warmup_steps: int = 0
    """cpt/sft: the first N steps update only the input/output embeddings (after `jft extend-vocab`)."""
    precision: Literal["bfloat16", "float32"] = "bfloat16"
    """bfloat16: autocast on CUDA with float32 master weights; float32: no autocast. CPU runs are float32.
    The old spelling `bf16`/`fp32` is accepted for the same values."""
    eval_every: int = 100
    """Validation every N steps and at the last step; 0: never."""
    eval_batches: int = 5
    """Global batches per validation."""
    save_every: int = 100
    """Checkpoint every N steps and at the end; 0: only at the end."""
    keep_last: int = 2
    """Checkpoints kept (the newest ones)."""
    log_every: int = 1
    """A metrics.jsonl line every N steps."""
    seed: int = 1234
    """Data order, LoRA initialisation and dropout."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA when a GPU is visible, else the CPU."""
    cpu_threads: int = 0
    """CPU runs: torch threads; 0 = auto (OMP_NUM_THREADS if set, else train/threads.py's rule)."""


@dataclass
class LoraConfig:
    r: int = 16
    """Rank of the adapters (>= 1)."""
    alpha: int = 32
    """Scale numerator: adapters are scaled by alpha / r (> 0)."""
    dropout: float = 0.1
    """Dropout on the adapters' input, in [0, 1)."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """PEFT's `all-linear` (every linear layer but the head) or module names."""


@dataclass
class RunConfig:
    mode: Mode = "cpt"
    """cpt (continual pre-training on token files), sft (full fine-tuning on JSONL) or lora."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model to start from and how to run it."""
    data: DataConfig = field(default_factory=DataConfig)
    """What to train on."""
    train: TrainingConfig = field(default_factory=TrainingConfig)
    """Optimizer, schedule, batch sizes, checkpoints."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA adapters (mode lora)."""
    output_dir: str = "runs/default"
    """Run directory: checkpoints, final/, metrics (locked while a run uses it)."""

    def validate(self) -> None:
        """Every check that needs no file, model or process group; one line naming the key.
        Paths, the model's limits and the world size are checked by `train/checks.preflight`."""
        _check_choices(self)
        t, lora = self.train, self.lora
        for name in ("micro_batch_size", "global_batch_size", "max_steps", "keep_last", "log_every"):
            if getattr(t, name) < 1:
                raise UserError(f"train.{name} must be >= 1, got {getattr(t, name)}")
        for name in ("eval_every", "save_every", "eval_batches", "warmup_steps", "embedding_warmup_steps", "seed"):
            if getattr(t, name) < 0:
                raise UserError(f"train.{name} must be >= 0, got {getattr(t, name)}")
        if self.data.seq_length < 2:
            raise UserError(f"data.seq_length must be >= 2, got {self.data.seq_length}")
        if t.global_batch_size % t.micro_batch_size:
            raise UserError(
                f"train.global_batch_size ({t.global_batch_size}) is not divisible by "
                f"train.micro_batch_size ({t.micro_batch_size})"
            )
        if not self.model.name_or_path:
            raise UserError("model.name_or_path is required")
        if not self.data.train:
            raise UserError("data.train must list at least one input")
        if not str(self.output_dir).strip():
            raise UserError("output_dir must not be empty")
        _number("train.lr", t.lr, low=0.0, low_open=True)
        _number("train.min_lr", t.min_lr, low=0.0)
        if t.min_lr > t.lr:
            raise UserError(f"train.min_lr ({t.min_lr:g}) is above train.lr ({t.lr:g}); the decay would raise the rate")
        if t.warmup_steps > t.max_steps:
            raise UserError(f"train.warmup_steps ({t.warmup_steps}) is more than train.max_steps ({t.max_steps}): "
                            "the learning rate would never reach train.lr; lower train.warmup_steps")
        _number("train.weight_decay", t.weight_decay, low=0.0)
        _number("train.grad_clip", t.grad_clip, low=0.0)
        if len(t.betas) != 2:
            raise UserError(f"train.betas must have two values, got {t.betas}")
        for k, beta in enumerate(t.betas):
            _number(f"train.betas[{k}]", beta, low=0.0, high=1.0)
        if lora.r < 1:
            raise UserError(f"lora.r must be >= 1, got {lora.r}")
        _number("lora.alpha", lora.alpha, low=0.0, low_open=True)
        _number("lora.dropout", lora.dropout, low=0.0, high=1.0)
        if not lora.target_modules:
            raise UserError("lora.target_modules must name at least one module (or all-linear)")
        if t.cpu_threads < 0:
            raise UserError(f"train.cpu_threads must be >= 0 (0 = auto), got {t.cpu_threads}")
        if t.embedding_warmup_steps and self.mode == "lora":
            raise UserError("train.embedding_warmup_steps: lora keeps the embeddings frozen; use it with cpt or sft")


def _number(name: str, value: float, low: float, high: float | None = None, low_open: bool = False) -> None:
    """A finite number in [low, high) (or (low, high) with `low_open`), else a UserError naming it."""
    bad = not math.isfinite(value) or value < low or (low_open and value == low) or (high is not None and value >= high)
    if bad:
        span = f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g})'}"
        raise UserError(f"{name} must be a finite number in {span}, got {value!r}")


def _check_choices(cfg, where: str = "") -> None:
    """Every `Literal` field of the tree holds one of its values."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, path = getattr(cfg, f.name), f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            _check_choices(value, path)
        elif typing.get_origin(hints[f.name]) is Literal and value not in typing.get_args(hints[f.name]):
            _choice(path, value, typing.get_args(hints[f.name]))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def field_docs(cls) -> dict[str, str]:
    """{field: its docstring} of a config dataclass (and its bases), read from the source."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:] + [None]):
            if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


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
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, str) and value not in allowed and DTYPE_ALIASES.get(value) in allowed:
            return DTYPE_ALIASES[value]  # bf16 -> bfloat16 (runtime.py: one dtype spelling)
        _choice(path, value, allowed)
        return value
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
    from japanese_ft.files import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
