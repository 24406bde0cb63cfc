"""`jft demo --quick` end to end (= `jft run demo --preset quick`): report, plots, metrics, export,
re-runs that do nothing, resuming after an interruption, the work-directory rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.pipeline.manifest import LOCK, MANIFEST, WorkdirLock, read_manifest
from japanese_ft.pipeline.plan import sample_dir
from japanese_ft.pipeline.recipe import load_recipe

PNG = b"\x89PNG\r\n\x1a\n"
SAMPLE_FILES = ("articles.jsonl", "heldout.jsonl", "questions_train.json", "questions_heldout.json")
RUNS = ("base", "cpt", "sft", "lora")
EVALS = {"base": "eval-base", "cpt": "eval-cpt", "cpt+sft": "eval-sft", "cpt+lora": "eval-lora"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--quick", "--output-dir", str(out)]) == 0
    return out


def _result(demo_dir: Path, stage: str) -> dict:
    return json.loads((demo_dir / stage / "result.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_demo_writes_report_plots_metrics_and_export(demo_dir):
    m = read_manifest(demo_dir)
    assert m["status"] == "complete"
    assert list(m["stages"]) == [s.name for s in load_recipe("demo").stages]
    assert all(s["status"] == "done" for s in m["stages"].values())

    md = (demo_dir / "report" / "report.md").read_text(encoding="utf-8")
    for needle in ("# jft demo report", "Results at a glance", "Stages", "prepare-corpus", "chars/token",
                   "byte-level BPE", "`tokenizers` library", "bits per character", "Sample generations", "Training",
                   "Reproduce", "jft run demo --preset quick", "jft train cpt", "jft train lora", "jft export --base",
                   "Qwen2.5-0.5B", "qwen2.5-0.5b-ja-wiki.yaml", "Environment", "times fewer than Qwen2.5-0.5B"):
        assert needle in md, needle
    images = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert set(images) == {"plots/loss_curves.png", "plots/metrics.png"}
    for rel in images:
        data = (demo_dir / "report" / rel).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000  # a real figure, not an empty canvas
    page = (demo_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2
    assert "<table>" in page and "富士山" in page and "fonts-noto-cjk" in page

    # every training stage logged metrics and finished; the results load in `jft compare`
    for run in RUNS:
        lines = (demo_dir / run / "metrics.jsonl").read_text().splitlines()
        assert any("val_loss" in line for line in lines) and any('"loss"' in line for line in lines)
        assert (demo_dir / run / "final").is_dir() and (demo_dir / run / "training_curve.png").exists()
        assert m["stages"][run]["summary"]["steps"] == m["stages"][run]["summary"]["max_steps"]
    assert (demo_dir / "lora" / "final" / "adapter_config.json").exists()
    from japanese_ft.eval.compare import compare

    res = compare([demo_dir / stage / "result.json" for stage in EVALS.values()])
    assert res["labels"] == list(EVALS)
    assert {"heldout_ppl.perplexity", "heldout_ppl.bits_per_char", "jsquad_heldout.char_f1"} <= set(res["metrics"])
    for stage in EVALS.values():
        r = _result(demo_dir, stage)["results"]
        assert r["heldout_ppl"]["perplexity"] > 1 and 0 < r["heldout_ppl"]["bits_per_char"] < 20
        assert 0.0 <= r["jsquad_heldout"]["char_f1"] <= 1.0 and r["jsquad_heldout"]["n"] == 8
        assert len(r["samples"]["outputs"]) == 2  # the quick preset's two prompts
    # corpus stats: the CPT half contains one of the sample's duplicate articles
    parts = {n: m["stages"][n]["summary"] for n in ("corpus-base", "corpus-cpt", "heldout")}
    assert parts["corpus-cpt"]["dropped"].get("duplicate_exact") == 1
    assert all(p["chars_per_token"] > 1 for p in parts.values())

    # export: a plain HF checkpoint that scores what base + adapter scored
    merged = demo_dir / "export"
    assert (merged / "config.json").exists() and (merged / "model.safetensors").exists()
    assert not (merged / "adapter_config.json").exists()
    a = _result(demo_dir, "eval-lora")["results"]["heldout_ppl"]["perplexity"]
    b = _result(demo_dir, "eval-merged")["results"]["heldout_ppl"]["perplexity"]
    assert abs(a - b) / a < 1e-4
    assert "largest relative difference" in md


@pytest.mark.slow
def test_status_reads_the_demo(demo_dir, capsys):
    assert main(["status", str(demo_dir)]) == 0
    out = capsys.readouterr().out
    for stage in ("tokenizer", "base", "eval-lora", "report"):
        assert stage in out
    assert "done" in out and "complete" in out
    assert main(["status", str(demo_dir / "sft")]) == 0
    assert "finished" in capsys.readouterr().out


@pytest.mark.slow
def test_report_from_explicit_inputs(demo_dir, tmp_path, capsys):
    """`jft report` as the dry-run prints it: no manifest, so no stage times, data or commands."""
    out = tmp_path / "rep"
    args = ["report", "--run", str(demo_dir / "cpt"), "--run", str(demo_dir / "lora"), "--output", str(out),
            "--result", str(demo_dir / "eval-cpt" / "result.json"), "--result", str(demo_dir / "eval-lora" / "result.json")]
    assert main(args) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Training" in md and "## Results at a glance" in md and "Sample generations" in md
    assert "## Stages" not in md and "jft report --run" in md
    assert (out / "plots" / "loss_curves.png").read_bytes().startswith(PNG)
    assert main(["report", "--output", str(out)]) == 2
    assert "--run" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_of_a_complete_demo_changes_nothing(demo_dir, capsys):
    before = read_manifest(demo_dir)
    weights = (demo_dir / "cpt" / "final" / "model.safetensors").stat().st_mtime_ns
    assert main(["demo", "--quick", "--output-dir", str(demo_dir)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    after = read_manifest(demo_dir)
    assert {n: s["run_id"] for n, s in after["stages"].items()} == {n: s["run_id"] for n, s in before["stages"].items()}
    assert (demo_dir / "cpt" / "final" / "model.safetensors").stat().st_mtime_ns == weights


@pytest.mark.slow
def test_interrupted_demo_resumes_where_it_stopped(demo_dir, capsys):
    m = read_manifest(demo_dir)
    before = {name: s["run_id"] for name, s in m["stages"].items()}
    # as if the demo had been killed during the export: export "running", its output half written
    m["stages"]["export"]["status"] = "running"
    (demo_dir / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    (demo_dir / "export" / "model.safetensors").unlink()
    (demo_dir / "report" / "report.md").unlink()

    assert main(["demo", "--quick", "--output-dir", str(demo_dir)]) == 0
    capsys.readouterr()
    after = read_manifest(demo_dir)
    assert after["status"] == "complete" and after["created"] == m["created"]
    ran = {n for n, s in after["stages"].items() if s["run_id"] != before[n]}
    assert ran == {"export", "eval-merged", "report"}  # the export, what depends on it, nothing else
    assert (demo_dir / "report" / "report.md").exists() and (demo_dir / "export" / "model.safetensors").exists()


def test_a_directory_that_is_not_a_run_is_never_touched(tmp_path, capsys):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        assert main(["demo", "--quick", "--output-dir", str(d), *extra]) == 2
        assert "not a jft run directory" in capsys.readouterr().err
    assert [p.name for p in d.iterdir()] == ["notes.txt"]


def test_a_second_run_cannot_use_the_same_work_directory(tmp_path, capsys):
    d = tmp_path / "demo"
    with WorkdirLock(d):
        assert (d / (LOCK + ".pid")).read_text() == str(os.getpid())
        assert main(["run", "demo", "--preset", "quick", "--workdir", str(d)]) == 2
    err = capsys.readouterr().err
    assert f"pid {os.getpid()}" in err and LOCK in err
    assert not (d / MANIFEST).exists()


def test_sample_and_recipe_are_package_data():
    names = {p.name for p in sample_dir().iterdir()}
    assert set(SAMPLE_FILES) <= names
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["japanese_ft"]
    from fnmatch import fnmatch

    for name in [f"sample/{n}" for n in SAMPLE_FILES] + ["recipes/demo.yaml"]:
        assert any(fnmatch(name, g) for g in globs), name
