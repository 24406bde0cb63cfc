"""`jft demo --quick` end to end (report, plots, metrics, export), and its resume / refuse rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.demo.pipeline import (
    LOCK,
    MANIFEST,
    SAMPLE_FILES,
    DirLock,
    Recipe,
    open_run,
    read_manifest,
    sample_dir,
    stages,
)
from japanese_ft.errors import UserError

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--quick", "--output-dir", str(out)]) == 0
    return out


def test_demo_writes_report_plots_metrics_and_export(demo_dir):
    m = read_manifest(demo_dir)
    assert m["status"] == "complete"
    assert [n for n, s in m["stages"].items() if s["status"] == "done"] == [s.name for s in stages()]

    md = (demo_dir / "report.md").read_text(encoding="utf-8")
    for needle in ("# jft demo report", "Results at a glance", "What ran", "prepare-corpus", "chars/token",
                   "byte-level BPE", "`tokenizers` library", "Before and after CPT", "bits per character",
                   "Sample generations", "Reproduce each stage", "jft train cpt --config", "jft train lora --config",
                   "jft export --base", "Qwen2.5-0.5B", "configs/qwen2.5-0.5b-cpt.yaml", "jft download-corpus ja_wiki"):
        assert needle in md, needle
    images = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert set(images) == {"plots/loss_curves.png", "plots/metrics.png"}
    for rel in images:
        data = (demo_dir / rel).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000  # a real figure, not an empty canvas
    page = (demo_dir / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2
    assert "<table>" in page and "富士山" in page

    # every training stage logged metrics and finished; the results load in `jft compare`
    for run in ("base", "cpt", "sft", "lora"):
        lines = (demo_dir / "runs" / run / "metrics.jsonl").read_text().splitlines()
        assert any("val_loss" in l for l in lines) and any('"loss"' in l for l in lines)
        assert (demo_dir / "runs" / run / "final").is_dir()
        assert (demo_dir / "configs" / f"{run}.yaml").exists()
    assert (demo_dir / "runs" / "lora" / "final" / "adapter_config.json").exists()
    from japanese_ft.eval.compare import compare

    res = compare([demo_dir / "eval" / f for f in ("base.json", "cpt.json", "cpt_sft.json", "cpt_lora.json")])
    assert res["labels"] == ["base", "cpt", "cpt+sft", "cpt+lora"]
    assert {"heldout_ppl.perplexity", "heldout_ppl.bits_per_char", "jsquad_heldout.char_f1"} <= set(res["metrics"])
    for label in ("base", "cpt", "cpt+sft", "cpt+lora"):
        info = m["stages"][f"eval-{label}"]["info"]
        assert info["perplexity"] > 1 and 0 < info["bits_per_char"] < 20
        assert 0.0 <= info["char_f1"] <= 1.0 and len(info["generations"]) >= 1
    # corpus stats: the CPT half contains one of the sample's duplicate articles
    parts = m["stages"]["prepare"]["info"]["parts"]
    assert parts["cpt"]["dropped"].get("duplicate_exact") == 1
    assert all(p["chars_per_token"] > 1 for p in parts.values())

    # export: a plain HF checkpoint that scores what base + adapter scored
    merged = demo_dir / "models" / "lora-merged"
    assert (merged / "config.json").exists() and (merged / "model.safetensors").exists()
    assert not (merged / "adapter_config.json").exists()
    ex = m["stages"]["export"]["info"]
    assert ex["max_relative_difference"] < 1e-4


def test_status_reads_demo_runs(demo_dir, capsys):
    assert main(["status", str(demo_dir / "runs")]) == 0
    out = capsys.readouterr().out
    for run in ("base", "cpt", "sft", "lora"):
        assert run in out
    assert "finished" in out


def test_rerun_of_a_complete_demo_changes_nothing(demo_dir, capsys):
    before = read_manifest(demo_dir)
    assert main(["demo", "--quick", "--output-dir", str(demo_dir)]) == 0
    assert "already complete" in capsys.readouterr().out
    assert read_manifest(demo_dir) == before


def test_other_settings_are_refused(demo_dir, capsys):
    before = read_manifest(demo_dir)
    assert main(["demo", "--output-dir", str(demo_dir)]) == 2  # full demo into a --quick directory
    err = capsys.readouterr().err
    assert before["run_id"] in err and "--force" in err and "quick" in err
    assert read_manifest(demo_dir) == before


def test_interrupted_demo_resumes_where_it_stopped(demo_dir, capsys):
    m = read_manifest(demo_dir)
    finished = {name: s["finished"] for name, s in m["stages"].items()}
    # as if the demo had been killed during the export: later stages missing, export half written
    for name in ("export", "report"):
        del m["stages"][name]
    m["status"] = "running"
    (demo_dir / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    (demo_dir / "report.md").unlink()
    (demo_dir / "models" / "lora-merged" / "model.safetensors").unlink()

    assert main(["demo", "--quick", "--output-dir", str(demo_dir)]) == 0
    out = capsys.readouterr()
    assert "resumed" in out.err + out.out
    after = read_manifest(demo_dir)
    assert after["run_id"] == m["run_id"] and after["status"] == "complete"
    for name, when in finished.items():
        if name in ("export", "report"):
            continue
        assert after["stages"][name]["finished"] == when, name  # not re-run
    assert (demo_dir / "report.md").exists()
    assert (demo_dir / "models" / "lora-merged" / "model.safetensors").exists()


def test_a_directory_that_is_not_a_demo_is_never_touched(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(UserError, match="not a jft demo directory"):
            open_run(d, Recipe.for_mode(True), force=force)
    assert (d / "notes.txt").read_text() == "keep me"
    assert main(["demo", "--quick", "--output-dir", str(d), "--force"]) == 2


def test_force_starts_a_new_run(tmp_path):
    d = tmp_path / "demo"
    m1, how = open_run(d, Recipe.for_mode(True))
    assert how == "new"
    (d / "runs").mkdir()
    (d / "runs" / "old.txt").write_text("x")
    m2, how = open_run(d, Recipe.for_mode(True))
    assert how == "resume" and m2["run_id"] == m1["run_id"]
    with pytest.raises(UserError, match="other settings"):
        open_run(d, Recipe.for_mode(False))
    m3, how = open_run(d, Recipe.for_mode(False), force=True)
    assert how == "new" and m3["run_id"] != m1["run_id"] and not (d / "runs").exists()


def test_a_second_demo_cannot_write_the_same_directory(tmp_path):
    d = tmp_path / "demo"
    d.mkdir()
    (d / LOCK).write_text(str(os.getppid()))  # a live process that is not us
    with pytest.raises(UserError, match="another jft demo"):
        with DirLock(d):
            pass
    (d / LOCK).write_text("999999999")  # a dead process: the stale lock is taken over
    with DirLock(d):
        assert (d / LOCK).read_text() == str(os.getpid())
    assert not (d / LOCK).exists()


def test_sample_is_package_data():
    names = {p.name for p in sample_dir().iterdir()}
    assert set(SAMPLE_FILES) <= names
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["japanese_ft"]
    from fnmatch import fnmatch

    for name in SAMPLE_FILES:
        assert any(fnmatch(f"sample/{name}", g) for g in globs), name
