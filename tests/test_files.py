"""files.py: atomic writes, locks on outputs (two processes), local paths vs hub ids; figures.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.errors import UserError
from japanese_ft.files import atomic_output, looks_local, write_json, write_jsonl
from jft_testutils import article_records, make_tokenizer_dir
from jft_testutils import write_jsonl as write_records


def test_atomic_output_replaces_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # no temporary left
    write_jsonl(target, [{"b": "日本"}, {"c": 2}])
    assert target.read_text(encoding="utf-8") == '{"b": "日本"}\n{"c": 2}\n'


def test_atomic_directory_replaces_the_old_one(tmp_path):
    d = tmp_path / "model"
    for n in (1, 2):
        with atomic_output(d, directory=True) as tmp:
            (tmp / f"file{n}").write_text(str(n))
            assert not (d / f"file{n}").exists()
    assert [p.name for p in d.iterdir()] == ["file2"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_figure_is_atomic(tmp_path):
    from japanese_ft.figures import pyplot, save_figure

    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "plots" / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["f.png"]


def test_hub_ids_and_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for hub in ("Qwen/Qwen2.5-0.5B", "HuggingFaceTB/SmolLM2-135M-Instruct", "llm-jp/llm-jp-3-1.8b", "owner/name"):
        assert not looks_local(hub), hub
    for local in ("runs/nope", "./model", "../model", "/abs/model", "~/model", "a/b/c", "tiny-model", "owner/name/",
                  "owner--x/name", "owner/na..me", "model.gguf"):
        assert looks_local(local), local


def test_a_missing_local_model_is_not_tried_as_a_hub_id(tmp_path, monkeypatch, capsys):
    from japanese_ft.train.checks import check_model_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(UserError, match="model.name_or_path: runs/nope not found"):
        check_model_path("runs/nope")
    check_model_path("Qwen/Qwen2.5-0.5B")  # a hub id: left to the loader
    assert main(["export", "--base", "runs/nope", "--adapter", str(tmp_path), "--output", "out"]) == 2
    assert main(["import-model", "runs/nope", "--output", "out"]) == 2
    assert "runs/nope: no such directory" in capsys.readouterr().err


# ---- two processes on one output -----------------------------------------------------------------

HOLD = """
import sys, time
from japanese_ft.files import OutputLock
with OutputLock(sys.argv[1], "holder"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture()
def holder():
    """Start a second process that holds the lock on a given file; yields (start, its pid)."""
    procs = []

    def start(lock_file: Path) -> int:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_second_prepare_corpus_on_one_prefix_exits_2(tmp_path, holder, capsys):
    corpus = write_records(tmp_path / "c.jsonl", article_records())
    tok = make_tokenizer_dir(tmp_path / "tok", 300)
    prefix = tmp_path / "out" / "corpus"
    lock = prefix.with_name(".corpus.jft-lock")
    pid = holder(lock)
    assert main(["prepare-corpus", str(corpus), "--tokenizer", str(tok), "--output-prefix", str(prefix)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"pid {pid}" in err and str(lock) in err
    assert not any(p.name.startswith("corpus") for p in prefix.parent.iterdir())  # nothing written
    assert main(["prepare-corpus", str(corpus), "--tokenizer", str(tok), "--output-prefix", str(tmp_path / "free")]) == 0
    assert not (tmp_path / ".free.jft-lock").exists()  # released and removed


def test_second_train_on_one_output_dir_exits_2(tmp_path, holder, capsys):
    from jft_train_utils import make_assets

    assets = make_assets(tmp_path / "assets")
    out = tmp_path / "run"
    pid = holder(out / ".jft-train.lock")
    args = ["train", "cpt", f"model.name_or_path={assets['model']}", f"data.train=[{assets['corpus']}]",
            "data.seq_length=32", "train.max_steps=1", "train.warmup_steps=1", "train.micro_batch_size=2",
            "train.global_batch_size=2", "train.device=cpu", "train.precision=float32", f"output_dir={out}"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"pid {pid}" in err and str(out / ".jft-train.lock") in err and "output_dir" in err
    assert sorted(p.name for p in out.iterdir()) == [".jft-train.lock", ".jft-train.lock.pid"]  # the holder's only


def test_metrics_without_the_tensorboard_extra(tmp_path, monkeypatch):
    """TensorBoard is an extra: without it, metrics.jsonl and the training curve are still written."""
    from japanese_ft.train.metrics import MetricsLogger, plot_training_curve, read_metrics

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` now raises ImportError
    logger = MetricsLogger(tmp_path / "run")
    assert logger.writer is None
    for step in (1, 2):
        logger.log({"step": step, "loss": 3.0 / step, "lr": 1e-3})
    assert [r["loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [3.0, 1.5]
    assert plot_training_curve(tmp_path / "run" / "metrics.jsonl", tmp_path / "run" / "curve.png").stat().st_size > 1000
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_read_json_errors_name_the_file_and_line(tmp_path):
    from japanese_ft.files import read_json

    good = tmp_path / "ok.json"
    good.write_text('{"a": [1, "日本"]}', encoding="utf-8")
    assert read_json(good) == {"a": [1, "日本"]}
    with pytest.raises(UserError, match=r"nope\.json: no such result file$"):
        read_json(tmp_path / "nope.json", "result file")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  oops\n}', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.json:3: invalid JSON \("):
        read_json(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(UserError, match=r"latin\.json: not UTF-8 \(invalid continuation byte at byte 7\)"):
        read_json(latin)
