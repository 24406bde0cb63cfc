"""jft doctor (environment checks, fixes, exit codes) and jft status (run directories written by jft train)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from japanese_ft.cli import main
from japanese_ft.doctor import _path_fix, check_disk, check_model, check_tokenizer, exit_code, run_checks
from japanese_ft.errors import UserError
from japanese_ft.train.status import fmt_duration, run_status
from jft_testutils import make_tokenizer_dir

# ---- doctor ----------------------------------------------------------------------------------


def test_doctor_reports_environment_without_failing():
    checks = run_checks()
    names = [c.name for c in checks]
    for expected in ("python", "torch", "cuda", "bf16", "torch.compile", "disk", "demo sample"):
        assert expected in names
    assert exit_code(checks) == 0  # nothing was requested, so nothing can fail
    for c in checks:
        assert c.status in ("ok", "warn", "info")
        if c.status == "warn":
            assert c.fix and "\n" not in c.fix  # every problem gets a one-line fix


def test_doctor_tokenizer_checks(tmp_path):
    tok = make_tokenizer_dir(tmp_path / "tok")
    ok = check_tokenizer(str(tok))
    assert ok.status == "ok", ok
    assert "chars/token" in ok.detail and "round trip exact" in ok.detail
    missing = check_tokenizer(str(tmp_path / "nope"))
    assert missing.status == "fail" and "check the path" in missing.fix
    # a hub id that cannot load gets the download hint (not asked of the network here: offline runs retry slowly)
    assert "hf download" in _path_fix("no-such-owner/no-such-model", "tokenizer.json")


def test_doctor_model_checks(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_model(str(empty)).status == "fail"
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    res = check_model(str(adapter))
    assert res.status == "fail" and "adapter" in res.detail
    assert check_model(str(tmp_path / "missing")).status == "fail"


def test_doctor_disk_warns_with_fix(tmp_path):
    c = check_disk(tmp_path / "not" / "yet" / "created")
    assert c.status in ("ok", "warn")
    assert "GB free" in c.detail


def test_doctor_cli_exit_codes(tmp_path, capsys):
    tok = make_tokenizer_dir(tmp_path / "tok")
    assert main(["doctor", "--tokenizer", str(tok)]) == 0
    out = capsys.readouterr()
    assert "jft doctor" in out.out and "torch" in out.out
    assert main(["doctor", "--tokenizer", str(tmp_path / "missing")]) == 2
    out = capsys.readouterr()
    assert "requested check failed" in out.err
    assert "check the path" in out.out  # the fix line


def test_help_of_new_commands_does_not_import_torch():
    code = (
        "import sys\n"
        "from japanese_ft.cli import main\n"
        "for cmd in ('demo', 'doctor', 'status', 'run', 'report', 'train-tokenizer'):\n"
        "    try:\n"
        "        main([cmd, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "--output-dir" in res.stdout and "--quick" in res.stdout and "--watch" in res.stdout


# ---- status ----------------------------------------------------------------------------------


def make_run(root: Path, steps_done: int, max_steps: int = 100, final: bool = False, val: bool = True,
             checkpoint_steps=(50,), partial: int | None = None) -> Path:
    """A run directory laid out as jft train writes it (see train/loop.py, checkpoint.py, metrics.py)."""
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump({
        "mode": "cpt", "model": {"name_or_path": "runs/tiny-model"}, "train": {"max_steps": max_steps},
        "output_dir": str(root)}))
    lines = []
    for s in range(1, steps_done + 1):
        lines.append({"step": s, "loss": 8.0 - s * 0.01, "lr": 1e-3, "grad_norm": 1.0, "tokens": s * 1024,
                      "tokens_per_s": 2048.0, "loss_tokens": 1016})
        if val and s % 25 == 0:
            lines.append({"step": s, "val_loss": 7.5 - s * 0.01, "val_ppl": 100.0})
    (root / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines) + '{"step": 9', encoding="utf-8")
    for s in checkpoint_steps:
        ck = root / "checkpoints" / f"step_{s:06d}"
        ck.mkdir(parents=True)
        (ck / "trainer_state.pt").write_bytes(b"x" * 100)
        (ck / "model.safetensors").write_bytes(b"y" * 1000)
    if partial is not None:
        (root / "checkpoints" / f"step_{partial:06d}.tmp").mkdir(parents=True)
    if final:
        (root / "final").mkdir()
        (root / "final" / "config.json").write_text("{}")
    return root


def test_status_finished_run(tmp_path):
    run = make_run(tmp_path / "run", 100, final=True, checkpoint_steps=(50, 100))
    st = run_status(run)
    assert st.state == "finished"
    assert st.step == 100 and st.max_steps == 100
    assert st.loss == pytest.approx(7.0)
    assert st.val_loss == pytest.approx(6.5) and st.val_step == 100 and st.best_val_loss == pytest.approx(6.5)
    assert st.tokens_per_s == pytest.approx(2048.0)
    assert [c.step for c in st.checkpoints] == [50, 100] and all(c.complete for c in st.checkpoints)
    assert st.final_dir and st.eta_seconds is None


def test_status_running_run_has_eta(tmp_path):
    run = make_run(tmp_path / "run", 40, partial=50)
    st = run_status(run)
    assert st.state == "running"
    assert st.seconds_per_step == pytest.approx(0.5)  # 1024 tokens per step at 2048 tokens/s
    assert st.eta_seconds == pytest.approx(60 * 0.5)
    assert [(c.step, c.complete) for c in st.checkpoints] == [(50, False), (50, True)]


def test_status_stopped_run_says_how_to_resume(tmp_path):
    run = make_run(tmp_path / "run", 40)
    old = time.time() - 3600
    for p in (run / "metrics.jsonl", run / "config.yaml"):
        os.utime(p, (old, old))
    st = run_status(run)
    assert st.state == "stopped"
    assert "jft train cpt --config" in st.hint


def test_status_not_started_and_not_a_run(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"mode": "sft", "train": {"max_steps": 10}}))
    assert run_status(run).state == "not started"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UserError, match="not a jft training run"):
        run_status(plain)
    with pytest.raises(UserError, match="no such directory"):
        run_status(tmp_path / "missing")


def test_status_cli(tmp_path, capsys):
    runs = tmp_path / "runs"
    make_run(runs / "a", 100, final=True, checkpoint_steps=(100,))
    make_run(runs / "b", 40)
    assert main(["status", str(runs / "a")]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "100 / 100" in out and "step 100" in out
    assert main(["status", str(runs)]) == 0  # a directory of runs: one row each
    out = capsys.readouterr().out
    assert "a" in out and "b" in out and "running" in out
    assert main(["status", str(runs / "a"), "--watch", "--interval", "0.1"]) == 0  # finished: prints once, returns
    assert main(["status", str(tmp_path)]) == 2
    assert "not a jft training run" in capsys.readouterr().err


def test_fmt_duration():
    assert fmt_duration(5) == "5 s"
    assert fmt_duration(125) == "2 min 05 s"
    assert fmt_duration(3 * 3600 + 60) == "3 h 01 min"
