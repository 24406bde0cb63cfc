"""Small helpers shared by the evaluations: deterministic few-shot selection, atomic writes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from japanese_ft.errors import UserError

T = TypeVar("T")


def pick_shots(pool: Sequence[T], k: int, seed: int, exclude: Callable[[T], bool]) -> list[T]:
    """The first `k` items of a seeded shuffle of `pool` for which `exclude` is false.

    The shuffle does not depend on the question, so every question sees the same shots except
    where a shot would be the question itself (or share its passage), which is then skipped.
    """
    if k <= 0:
        return []
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    chosen: list[T] = []
    for i in order:
        if not exclude(pool[i]):
            chosen.append(pool[i])
            if len(chosen) == k:
                return chosen
    raise UserError(f"--shots {k}: only {len(chosen)} usable few-shot examples are available")




def examples_path(output: str | Path) -> Path:
    """Per-example JSONL beside the result: results/x.json -> results/x.examples.jsonl."""
    output = Path(output)
    stem = output.name[: -len(".json")] if output.name.endswith(".json") else output.name
    return output.with_name(stem + ".examples.jsonl")


def check_data_file(path: str | Path, flag: str = "--data") -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path}: no such file")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file")
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        raise UserError(f"{path}: data file is empty")
    return path
