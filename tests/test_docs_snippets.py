"""The docs' commands keep working on a fresh clone.

Always (fast): every `jft ...` command in the fenced shell blocks of README.md and docs/*.md names a
real command, the quick starts use nothing outside the repository (no ../shared), and no doc tells
users to run the deprecated `huggingface-cli`.

With JFT_DOC_SNIPPETS=1 (slow, minutes): clone the repository's HEAD into a temporary directory (no
../shared next to it) and run docs/training.md's quick start block and the README Quickstart's
demo (`jft demo --quick`) there, exactly as written:

    JFT_DOC_SNIPPETS=1 python -m pytest -q tests/test_docs_snippets.py
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_SHELL = ("bash", "sh", "shell", "console", "")


def shell_blocks(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of every ```bash / ```sh / unlabeled fenced block."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```"):
            lang, start, body = stripped[3:].strip(), i + 2, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if lang in _SHELL:
                blocks.append((start, "\n".join(body)))
        i += 1
    return blocks


def block_after(path: Path, heading: str) -> str:
    """The first shell block after the line that starts with `heading`."""
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    line = text[:start].count("\n") + 1
    for at, body in shell_blocks(path):
        if at > line:
            return body
    raise AssertionError(f"{path}: no shell block after {heading!r}")


def commands(block: str) -> list[str]:
    """Logical command lines of a block (continuations joined, comments dropped)."""
    out, cur = [], ""
    for raw in block.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    return out


def _jft_commands() -> set[str]:
    import typer

    from japanese_ft.cli import app

    names = set()

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            names.add(f"{prefix}{name}".strip())
            walk(sub, f"{prefix}{name} ")

    walk(typer.main.get_command(app), "")
    return names


def test_every_documented_jft_command_exists():
    known = _jft_commands()
    missing = []
    for doc in DOCS:
        for line, block in shell_blocks(doc):
            for cmd in commands(block):
                for part in re.split(r"&&|\|\||;|\|", cmd):
                    words = shlex.split(part.strip(), posix=True) if part.strip() else []
                    if words[:1] != ["jft"] or len(words) < 2 or words[1].startswith("-"):
                        continue
                    name = words[1] if words[1] in known else " ".join(words[1:3])
                    if name not in known:
                        missing.append(f"{doc.name}:{line}: {part.strip()}")
    assert not missing, "\n".join(missing)


def test_quick_starts_need_only_the_repository():
    block = block_after(REPO / "docs" / "training.md", "## Quick start")
    assert "../shared" not in block and "jft train cpt" in block
    for doc in DOCS:
        assert "huggingface-cli" not in doc.read_text(encoding="utf-8"), f"{doc.name}: use `hf download`"


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "jft"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert not (tmp_path / "shared").exists()
    return clone


def _run(block: str, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    bindir = cwd / ".bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "jft").write_text(f"#!/bin/sh\nexec {sys.executable} -m japanese_ft.cli \"$@\"\n")
    (bindir / "jft").chmod(0o755)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"  # `jft` runs the clone's code
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{block}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    return time.perf_counter() - t0


@pytest.mark.skipif(os.environ.get("JFT_DOC_SNIPPETS") != "1", reason="slow: set JFT_DOC_SNIPPETS=1")
def test_training_quick_start_runs_on_a_fresh_clone(tmp_path):
    clone = _clone(tmp_path)
    seconds = _run(block_after(clone / "docs" / "training.md", "## Quick start"), clone)
    assert (clone / "runs" / "tiny-lora-merged" / "model.safetensors").exists()
    print(f"docs/training.md quick start: {seconds:.0f} s")


@pytest.mark.skipif(os.environ.get("JFT_DOC_SNIPPETS") != "1", reason="slow: set JFT_DOC_SNIPPETS=1")
def test_readme_demo_runs_on_a_fresh_clone(tmp_path):
    clone = _clone(tmp_path)
    assert "jft demo" in block_after(clone / "README.md", "## Quickstart")
    seconds = _run("jft demo --quick", clone)  # the Quickstart's `jft demo`, in its quick form
    assert (clone / "jft-demo" / "report" / "report.md").exists()
    print(f"jft demo --quick: {seconds:.0f} s")
