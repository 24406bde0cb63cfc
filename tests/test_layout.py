"""The layering rules the code relies on, checked on the source (every import, also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "japanese_ft"


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _offenders(package: str, forbidden: tuple[str, ...], top_level_only: bool = False) -> dict:
    files = sorted((PKG / package).rglob("*.py")) if (PKG / package).is_dir() else [PKG / package]
    out = {}
    for path in files:
        bad = sorted(m for m in _imports(path, top_level_only) if m.startswith(forbidden))
        if bad:
            out[str(path.relative_to(PKG))] = bad
    return out


def test_data_does_not_import_model():
    """data/ reads tokenizer rules from tokens.py, never the model layer."""
    assert _offenders("data", ("japanese_ft.model",)) == {}


def test_train_does_not_import_the_ui():
    """Training reports through the console/progress callbacks its caller passes in."""
    assert _offenders("train", ("japanese_ft.ui",)) == {}


def test_shared_rule_modules_stay_light():
    """tokens, files, runtime, figures and config import no torch/transformers/matplotlib at import time."""
    heavy = ("torch", "transformers", "matplotlib", "peft", "filelock")
    for module in ("tokens.py", "files.py", "runtime.py", "figures.py", "config.py", "errors.py"):
        assert _offenders(module, heavy, top_level_only=True) == {}, module


def test_model_does_not_import_the_layers_above_it():
    """model/ (load, import, extend-vocab, LoRA and its base record) sits under train/ and eval/."""
    above = ("japanese_ft.train", "japanese_ft.eval", "japanese_ft.pipeline", "japanese_ft.commands",
             "japanese_ft.report", "japanese_ft.cli")
    assert _offenders("model", above) == {}
