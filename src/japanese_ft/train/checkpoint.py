"""Checkpoints: model or adapter (safetensors), optimizer, scheduler, RNG and data position.

Layout of `OUTPUT_DIR/checkpoints/step_000100/`:
  full modes  config.json, model.safetensors, generation_config.json, tokenizer files (an HF checkpoint)
  lora        adapter_config.json, adapter_model.safetensors, tokenizer files (a PEFT adapter)
  optimizer.pt        full (unsharded) optimizer state keyed by parameter name
  trainer_state.pt    step, scheduler, data position, counters
  rng_rank{R}.pt      torch / CUDA / Python RNG states of every rank
  config.yaml         the resolved run config
A checkpoint is written to `step_000100.tmp/` and renamed when complete, so an interrupted save
never looks like a checkpoint; only the newest `keep_last` are kept. torch states are read with
`torch.load(weights_only=True)`. Resuming checks the newest checkpoint's files first (weights
readable, optimizer and trainer state loadable) and falls back to the previous complete one, with a
warning, when a file is truncated or empty (a disk that filled up, a copy that was cut short).
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Callable

import torch

from japanese_ft.config import RunConfig
from japanese_ft.files import publish, remove, temp_path
from japanese_ft.train.distributed import World, barrier
from japanese_ft.train.structure import is_fsdp

_STEP_DIR = re.compile(r"^step_(\d+)$")


def _state_dict_api():
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )

    return StateDictOptions, get_model_state_dict, get_optimizer_state_dict, set_optimizer_state_dict


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


class Checkpointer:
    """The checkpoints of a run: OUTPUT_DIR/checkpoints/step_N/, the newest `train.keep_last` kept."""

    def __init__(self, cfg: RunConfig, world: World) -> None:
        self.lora = cfg.mode == "lora"
        self.keep_last = cfg.train.keep_last
        self.world = world
        self.root = Path(cfg.output_dir) / "checkpoints"
        self._loaded: tuple[Path, dict] | None = None  # states read while checking a resume point

    # ---- discovery ----
    def checkpoints(self) -> list[tuple[int, Path]]:
        if not self.root.exists():
            return []
        found = []
        for p in self.root.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and p.is_dir() and (p / "trainer_state.pt").exists():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1][1] if found else None

    def resume_point(self, warn: Callable[[str], None]) -> Path | None:
        """The newest checkpoint whose files all load; each broken newer one is reported through warn."""
        for _, path in reversed(self.checkpoints()):
            problem = self._load_states(path)
            if problem is None:
                return path
            warn(f"warning: checkpoint {path} is not usable ({problem}); trying the previous one")
        return None

    def _load_states(self, path: Path) -> str | None:
        """Load and keep the checkpoint's torch states (reused by load_training_state); the problem, or None."""
        from safetensors import safe_open

        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            return "no .safetensors weights file"
        for w in weights:
            try:
                with safe_open(str(w), "pt") as f:  # checks the header and that the file covers every tensor
                    f.keys()
            except Exception as e:  # noqa: BLE001 - any unreadable weights file means "not usable"
                return f"{w.name}: {_first_line(e)}"
        states = {}
        for name in ("trainer_state.pt", "optimizer.pt", f"rng_rank{self.world.rank}.pt"):
            if name.startswith("rng_") and not (path / name).exists():
                continue
            try:
                states[name] = torch.load(path / name, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - truncated zip, empty file, missing file
                return f"{name}: {_first_line(e) or type(e).__name__ + ' (empty or truncated)'}"
        trainer = states["trainer_state.pt"]
        if not isinstance(trainer, dict) or not {"step", "scheduler", "data"} <= set(trainer):
            return "trainer_state.pt lacks step/scheduler/data"
        self._loaded = (path, states)
        return None

    def clean_partial(self) -> None:
        if self.world.is_main and self.root.exists():
            for p in self.root.glob("*.tmp"):
                shutil.rmtree(p, ignore_errors=True)
        barrier(self.world)

    # ---- saving ----
    def save(self, step: int, model, optimizer, scheduler, trainer_state: dict, tokenizer, run_config) -> Path:
        """Collective: every rank must call it."""
        from japanese_ft.config import save_config

        final = self.root / f"step_{step:06d}"
        tmp = temp_path(final)
        if self.world.is_main:
            remove(tmp)
            tmp.mkdir(parents=True)
        barrier(self.world)
        save_model(model, tmp, tokenizer, self.lora, self.world)
        optim_state = optimizer_state_dict(model, optimizer, self.world)
        if self.world.is_main:
            torch.save(optim_state, tmp / "optimizer.pt")
            torch.save({**trainer_state, "step": step, "scheduler": scheduler.state_dict()}, tmp / "trainer_state.pt")
            save_config(run_config, tmp / "config.yaml")
        torch.save(rng_state(), tmp / f"rng_rank{self.world.rank}.pt")
        barrier(self.world)
        if self.world.is_main:
            publish(tmp, final)
            for _, old in self.checkpoints()[: -max(1, self.keep_last)]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(self.world)
        return final

    # ---- loading (the model itself is loaded from the directory by the model builder) ----
    def load_training_state(self, path: Path, model, optimizer, scheduler) -> dict:
        StateDictOptions, _, _, set_optimizer_state_dict = _state_dict_api()
        if self._loaded is None or self._loaded[0] != path:
            problem = self._load_states(path)
            if problem is not None:
                raise RuntimeError(f"checkpoint {path} is not usable: {problem}")
        states = self._loaded[1]
        self._loaded = None
        set_optimizer_state_dict(model, optimizer, states["optimizer.pt"], options=StateDictOptions(full_state_dict=True))
        state = states["trainer_state.pt"]
        scheduler.load_state_dict(state["scheduler"])
        rng = states.get(f"rng_rank{self.world.rank}.pt")
        if rng is not None:
            set_rng_state(rng)
        return state


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else ""


def full_model_state_dict(model, world: World):
    """Unsharded CPU state dict on rank 0 (collective under FSDP); None on other ranks."""
    StateDictOptions, get_model_state_dict, _, _ = _state_dict_api()
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not world.is_main:
        return None
    # tied weights (Qwen's lm_head = embed_tokens) are stored once, as save_pretrained does
    first: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            sd.pop(name, None)
        else:
            first[id(p)] = name
    return sd


def optimizer_state_dict(model, optimizer, world: World):
    StateDictOptions, _, get_optimizer_state_dict, _ = _state_dict_api()
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_model(model, out_dir: Path, tokenizer, lora: bool, world: World) -> None:
    """HF checkpoint (full modes) or PEFT adapter (lora) + tokenizer + generation config. Collective."""
    from japanese_ft.model.load import save_hf_checkpoint
    from japanese_ft.tokens import generation_config_for

    if lora:
        if world.is_main:
            from japanese_ft.model.lora import record_base

            out_dir.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(out_dir))
            record_base(out_dir, model.peft_config["default"].base_model_name_or_path)
            tokenizer.save_pretrained(str(out_dir))
            generation_config_for(tokenizer, None).save_pretrained(str(out_dir))
        return
    state = full_model_state_dict(model, world) if (is_fsdp(model) or world.distributed) else None
    if world.is_main:
        save_hf_checkpoint(model, tokenizer, out_dir, state_dict=state)
