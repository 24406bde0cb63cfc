"""Model stage kinds: import-model, init-model, train, export."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.pipeline.kinds.base import (
    Kind,
    Stage,
    choice,
    flatten,
    register,
    setting_message,
    shell,
    summary_of,
    yaml_value,
)

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ImportSettings:
    source: str  # local HF directory, hub id, or .gguf file
    dtype: str = "auto"
    trust_remote_code: bool = False


@register
class ImportModel(Kind):
    """`jft import-model SOURCE`: a plain safetensors checkpoint from a directory, hub id or GGUF. Output: dir."""

    name = "import-model"
    title = "import a model"
    Settings = ImportSettings

    def prepare(self, stage: Stage) -> None:
        from japanese_ft.model.importing import DTYPES as IMPORT_DTYPES

        choice(stage, "dtype", stage.settings.dtype, IMPORT_DTYPES)

    def external_paths(self, stage: Stage) -> list[str]:
        return [stage.symbolic.get("source")]

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "import-model", s.source, "--output", stage.dir]
        args += ["--dtype", s.dtype] if s.dtype != "auto" else []
        args += ["--trust-remote-code"] if s.trust_remote_code else []
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.train import run_import_model

        s = stage.settings
        return summary_of(run_import_model(s.source, stage.dir, s.dtype, s.trust_remote_code))


@dataclass
class InitSettings:
    tokenizer: str
    preset: str = "tiny"
    seed: int = 0
    dtype: str = "auto"


@register
class InitModel(Kind):
    """`jft init-model`: a randomly initialised Qwen2-architecture checkpoint. Output: dir."""

    name = "init-model"
    title = "initialise a model"
    Settings = InitSettings

    def prepare(self, stage: Stage) -> None:
        from japanese_ft.model.presets import PRESETS

        choice(stage, "preset", stage.settings.preset, tuple(PRESETS))
        choice(stage, "dtype", stage.settings.dtype, DTYPES)

    def external_paths(self, stage: Stage) -> list[str]:
        return [stage.symbolic.get("tokenizer")]

    def command(self, stage: Stage) -> str:
        s = stage.settings
        return shell(["jft", "init-model", "--preset", s.preset, "--tokenizer", s.tokenizer, "--output", stage.dir,
                      "--seed", s.seed, "--dtype", s.dtype])

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.train import run_init_model
        from japanese_ft.model.presets import PRESETS

        s = stage.settings
        info = run_init_model(s.preset, s.tokenizer, stage.dir, s.seed, s.dtype)
        arch = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
        preset = PRESETS[s.preset]
        info["architecture"] = {k: preset[k] for k in arch if isinstance(preset, dict) and k in preset}
        return summary_of(info)


@dataclass
class TrainSettings:
    mode: str
    config: str | None = None  # run config YAML; the sections below are merged over it
    gpus: str | None = None  # processes: auto (visible CUDA GPUs) or a number; default: --gpus, then the recipe's
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    lora: dict = field(default_factory=dict)


SECTIONS = ("model", "data", "train", "lora")


@lru_cache(maxsize=1)
def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def processes_for(gpus, device: str, explicit: bool = False) -> int:
    """How many training processes: `auto` = every visible CUDA GPU (at least 1). A stage that trains on
    the CPU uses 1 unless its own `gpus` asks for more (CPU processes, gloo)."""
    if device == "cpu" and not (explicit and gpus not in (None, "auto")):
        return 1
    if gpus in (None, "auto"):
        return max(1, visible_gpus()) if device in ("auto", "cuda") else 1
    return int(gpus)


@register
class Train(Kind):
    """`jft train MODE`: cpt, sft or lora with the run config inline and/or from a file.
    Outputs: dir (the run's output_dir, WORKDIR/<stage>), final (dir/final). Never cleaned while its
    fingerprint is unchanged: an interrupted run resumes from its last checkpoint."""

    name = "train"
    title = "train"
    Settings = TrainSettings
    keep = "unfinished"

    def outputs(self, d: Path, s) -> dict:
        return {"dir": str(d), "final": str(d / "final")}

    def _merged(self, stage: Stage, sections: dict) -> dict:
        from japanese_ft.config import load_yaml

        data = load_yaml(stage.settings.config) if stage.settings.config else {}
        for key, value in flatten("", {k: sections.get(k) or {} for k in SECTIONS}):
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[leaf] = value
        return data

    def prepare(self, stage: Stage) -> None:
        from japanese_ft.config import MODES, RunConfig, from_dict, load_run_config, to_dict

        s = stage.settings
        choice(stage, "mode", s.mode, MODES)
        for sec in SECTIONS:
            if not isinstance(getattr(s, sec), dict):
                raise stage.error(f"{sec}: expected a mapping of run-config keys, got {getattr(s, sec)!r}")
        if s.gpus is not None and s.gpus != "auto" and not (str(s.gpus).isdigit() and int(s.gpus) >= 1):
            raise stage.error(f"gpus: expected auto or a number >= 1, got {s.gpus!r}")
        if s.config and not Path(s.config).is_file():
            raise stage.error(f"config: {s.config}: no such file")
        pairs = flatten("", {k: getattr(s, k) for k in SECTIONS})
        overrides = [f"{k}={yaml_value(v)}" for k, v in pairs] + [f"output_dir={yaml_value(str(stage.dir))}"]
        try:
            cfg = load_run_config(s.config, overrides, s.mode)  # exactly what `jft train` builds from the command
        except UserError as exc:
            raise stage.error(setting_message(exc)) from None
        stage.extra["overrides"] = overrides
        stage.extra["run_config"] = to_dict(cfg)
        symbolic = self._merged(stage, {k: stage.symbolic.get(k) for k in SECTIONS})
        symbolic.update(mode=s.mode, output_dir="${workdir}/" + stage.name)
        try:
            symbolic = to_dict(from_dict(RunConfig, symbolic))  # defaults filled in: writing a default changes nothing
        except UserError:
            pass
        stage.extra["symbolic_config"] = symbolic

    def fingerprint_data(self, stage: Stage):
        return {"mode": stage.settings.mode, "run_config": stage.extra["symbolic_config"]}

    def external_paths(self, stage: Stage) -> list[str]:
        c = stage.extra["symbolic_config"]
        entries = [c.get("model", {}).get("name_or_path"), c.get("data", {}).get("tokenizer")]
        for key in ("train", "validation"):
            for item in c.get("data", {}).get(key) or []:
                entries.append(str(item).split()[-1] if str(item).strip() else item)  # "0.7 data/a" -> data/a
        return [e for e in entries if e]

    def _args(self, stage: Stage) -> list:
        s = stage.settings
        return ["train", s.mode] + (["--config", s.config] if s.config else []) + stage.extra["overrides"]

    def command(self, stage: Stage) -> str:
        if stage.processes > 1:
            return shell(["torchrun", "--standalone", "--nproc_per_node", stage.processes, "-m", "japanese_ft.cli",
                          *self._args(stage)])
        return shell(["jft", *self._args(stage)])

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.report.inputs import read_run

        if stage.processes > 1:
            self._run_torchrun(stage, ctx)
        else:
            from japanese_ft.commands.train import run_train

            s = stage.settings
            run_train(s.mode, Path(s.config) if s.config else None, stage.extra["overrides"])
        run = read_run(stage.dir)
        if not (stage.dir / "final").is_dir():
            raise stage.error(f"training stopped at step {run.steps}; run the recipe again to resume it")
        return {"mode": run.mode, "steps": run.steps, "max_steps": run.max_steps, "loss": run.loss, "val_loss": run.val_loss,
                "tokens": run.tokens, "tokens_per_s": run.tokens_per_s, "trainable_params": run.trainable,
                "total_params": run.total, "processes": stage.processes}

    def _run_torchrun(self, stage: Stage, ctx) -> None:
        """N processes: torchrun with the resolved config file, output to the stage log; the
        workers get SIGTERM (and save a checkpoint) when this process dies."""
        import yaml

        from japanese_ft.files import write_text

        cfg_path = write_text(stage.dir / "recipe-config.yaml",
                              yaml.safe_dump(stage.extra["run_config"], sort_keys=False, allow_unicode=True))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(stage.processes),
               "-m", "japanese_ft.cli", "train", stage.settings.mode, "--config", str(cfg_path)]
        ctx.log.flush()
        rc = subprocess.run(cmd, stdout=ctx.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent).returncode
        if rc != 0:
            raise stage.error(f"torchrun exited with code {rc}; see {ctx.log_path}")

    def progress(self, stage: Stage) -> str | None:
        path = stage.dir / "metrics.jsonl"
        try:
            with open(path, "rb") as fh:
                fh.seek(max(0, path.stat().st_size - 4096))
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "loss" in rec:
                total = stage.extra["run_config"]["train"]["max_steps"]
                return f"step {rec['step']}/{total} loss {rec['loss']:.3f}"
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: torchrun outlives a killed parent
        pass


@dataclass
class ExportSettings:
    base: str
    adapter: str
    dtype: str = "auto"


@register
class Export(Kind):
    """`jft export`: merge a LoRA adapter into its base. Output: dir (a plain HF checkpoint)."""

    name = "export"
    title = "merge the LoRA adapter"
    Settings = ExportSettings

    def prepare(self, stage: Stage) -> None:
        choice(stage, "dtype", stage.settings.dtype, DTYPES)

    def external_paths(self, stage: Stage) -> list[str]:
        return [stage.symbolic.get("base"), stage.symbolic.get("adapter")]

    def command(self, stage: Stage) -> str:
        s = stage.settings
        return shell(["jft", "export", "--base", s.base, "--adapter", s.adapter, "--output", stage.dir]
                     + (["--dtype", s.dtype] if s.dtype != "auto" else []))

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.train import run_export

        s = stage.settings
        return summary_of(run_export(s.base, Path(s.adapter), stage.dir, s.dtype))


@dataclass
class ExtendVocabSettings:
    model: str
    corpus: list[str]
    add: int
    seed: int = 0
    min_frequency: int = 2
    init: str = "mean"
    heldout: list[str] = field(default_factory=list)
    max_chars: int = 50_000_000
    text_key: str = "text"


@register
class ExtendVocab(Kind):
    """`jft extend-vocab`: Japanese tokens appended to the model's BPE, embeddings resized. Output: dir."""

    name = "extend-vocab"
    title = "extend the vocabulary"
    Settings = ExtendVocabSettings

    def prepare(self, stage: Stage) -> None:
        s = stage.settings
        if s.add < 1:
            raise stage.error(f"add must be >= 1, got {s.add}")
        if not s.corpus:
            raise stage.error("corpus must list at least one JSONL file or directory")
        choice(stage, "init", s.init, ("mean",))

    def external_paths(self, stage: Stage) -> list[str]:
        return [stage.symbolic.get("model"), *(stage.symbolic.get("corpus") or []), *(stage.symbolic.get("heldout") or [])]

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "extend-vocab", "--model", s.model]
        for c in s.corpus:
            args += ["--corpus", c]
        args += ["--add", s.add, "--output", stage.dir, "--seed", s.seed]
        args += ["--min-frequency", s.min_frequency] if s.min_frequency != 2 else []
        for h in s.heldout:
            args += ["--heldout", h]
        args += ["--max-chars", s.max_chars] if s.max_chars != 50_000_000 else []
        args += ["--text-key", s.text_key] if s.text_key != "text" else []
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.vocab import run_extend_vocab

        s = stage.settings
        info = run_extend_vocab(Path(s.model), [Path(c) for c in s.corpus], s.add, stage.dir, s.seed, s.min_frequency,
                                s.init, [Path(h) for h in s.heldout] or None, s.max_chars, None, s.text_key)
        cpt = info["chars_per_token"]
        return {"added_tokens": info["added_tokens"], "tokenizer_size": info["tokenizer_size"],
                "japanese_chars_per_token": [cpt["japanese"]["before"], cpt["japanese"]["after"]],
                "english_chars_per_token": [cpt["english"]["before"], cpt["english"]["after"]]}
