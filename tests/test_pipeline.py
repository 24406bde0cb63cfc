"""`jft run RECIPE`: skipping up-to-date stages, re-running exactly what changed, resuming a killed run,
the dry-run's commands reproducing the run, and one-line errors for bad recipes.

One small recipe (tiny tokenizer and model, a few dozen steps) is run once per module and reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import japanese_ft
from japanese_ft.cli import main
from japanese_ft.pipeline.manifest import read_manifest

MINI = """
name: mini
cpu_threads: 1
vars:
  cpt_steps: 60
  sft_lr: 3.0e-3
stages:
  - {name: tok, kind: train-tokenizer, inputs: ["${sample}/articles.jsonl"], vocab_size: 400}
  - {name: corpus, kind: prepare-corpus, inputs: ["${sample}/articles.jsonl"], tokenizer: "${tok.dir}"}
  - {name: held, kind: prepare-corpus, inputs: ["${sample}/heldout.jsonl"], tokenizer: "${tok.dir}"}
  - {name: init, kind: init-model, tokenizer: "${tok.dir}", dtype: float32}
  - name: cpt
    kind: train
    mode: cpt
    model: &model {name_or_path: "${init.dir}", dtype: float32, attn_implementation: sdpa}
    data: {train: ["${corpus.prefix}"], validation: ["${held.prefix}"], seq_length: 64}
    train: &train {micro_batch_size: 4, global_batch_size: 4, max_steps: "${cpt_steps}", lr: 1.0e-2, warmup_steps: 2,
                   precision: fp32, device: cpu, eval_every: 30, eval_batches: 1, save_every: 5, keep_last: 2}
  - {name: qa, kind: build-qa, inputs: ["${sample}/articles.jsonl"], validation_ratio: 0.1}
  - name: sft
    kind: train
    mode: sft
    model: {<<: *model, name_or_path: "${cpt.final}"}
    data: {train: ["${qa.train}"], validation: ["${qa.validation}"], seq_length: 128, truncation: truncate}
    train: {<<: *train, max_steps: 4, lr: "${sft_lr}", save_every: 4}
  - name: eval-cpt
    kind: eval
    model: ${cpt.final}
    device: cpu
    dtype: float32
    evals: &evals
      - {task: perplexity, name: ppl, data: "${held.prefix}", seq_length: 64}
      - {task: generate, name: gen, prompts: [富士山は], max_new_tokens: 4}
  - {name: eval-sft, kind: eval, model: "${sft.final}", device: cpu, dtype: float32, evals: *evals}
  - {name: compare, kind: compare}
  - {name: report, kind: report}
"""
STAGES = ["tok", "corpus", "held", "init", "cpt", "qa", "sft", "eval-cpt", "eval-sft", "compare", "report"]


def _env() -> dict:
    src = str(Path(japanese_ft.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def _cut(recipe: Path, keep: tuple, path: Path) -> Path:
    """The recipe with only some of its stages (same settings, so the same outputs as in the full run)."""
    import yaml

    data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    data["stages"] = [s for s in data["stages"] if s["name"] in keep]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


UP_TO_EVAL_CPT = ("tok", "corpus", "held", "init", "cpt", "eval-cpt")


def _run_ids(workdir: Path) -> dict:
    return {n: s.get("run_id") for n, s in read_manifest(workdir)["stages"].items()}


def _scores(workdir: Path, stage: str) -> dict:
    res = json.loads((workdir / stage / "result.json").read_text(encoding="utf-8"))["results"]
    return {"ppl": res["ppl"]["perplexity"], "gen": [o["output"] for o in res["gen"]["outputs"]]}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "mini.yaml"
    path.write_text(MINI, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory) -> Path:
    """The recipe run once, uninterrupted."""
    workdir = tmp_path_factory.mktemp("ref") / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir)]) == 0
    return workdir


@pytest.mark.slow
def test_a_second_run_does_nothing(reference, recipe, capsys):
    m = read_manifest(reference)
    assert list(m["stages"]) == STAGES and m["status"] == "complete"
    before = _run_ids(reference)
    weights = (reference / "cpt" / "final" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", str(recipe), "--workdir", str(reference)]) == 0
    out = capsys.readouterr()
    assert "nothing to do" in out.out and "0 stages ran, 11 skipped" in out.out
    assert _run_ids(reference) == before
    assert (reference / "cpt" / "final" / "model.safetensors").stat().st_mtime_ns == weights
    # the dry-run agrees: every command commented out
    assert main(["run", str(recipe), "--workdir", str(reference), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "0 of 11 stages would run" in plan and "\njft " not in plan


@pytest.mark.slow
def test_changing_one_sft_setting_reruns_sft_and_what_depends_on_it(reference, recipe, tmp_path, capsys):
    import shutil

    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)  # relative paths inside the manifest are not used: copying is moving
    before, scores = _run_ids(workdir), _scores(workdir, "eval-sft")
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft.train.lr=0.02", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    would = [line.split("] ")[1].split(" ")[0] for line in plan.splitlines() if "would run (" in line]
    assert would == ["sft", "eval-sft", "compare", "report"]
    assert "train.lr=0.02" in plan
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft.train.lr=0.02"]) == 0
    after = _run_ids(workdir)
    assert {n for n in STAGES if after[n] != before[n]} == {"sft", "eval-sft", "compare", "report"}
    assert _scores(workdir, "eval-sft")["ppl"] != scores["ppl"]  # a new model: the old run was not resumed
    assert _scores(workdir, "eval-cpt") == _scores(reference, "eval-cpt")
    assert "lr: 0.02" in (workdir / "sft" / "config.yaml").read_text()
    # the same change as a recipe variable is the same fingerprint: nothing to do
    capsys.readouterr()
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02"]) == 0
    assert "0 stages ran" in capsys.readouterr().out
    # --force re-runs a stage and its downstream; --only one stage
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--force", "eval-cpt"]) == 0
    again = _run_ids(workdir)
    assert {n for n in STAGES if again[n] != after[n]} == {"eval-cpt", "compare", "report"}
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--only", "qa"]) == 0
    last = _run_ids(workdir)
    assert {n for n in STAGES if last[n] != again[n]} == {"qa"}
    # qa re-ran after sft was made from it: the next plain run brings sft and its downstream up to date
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert [line.split("] ")[1].split(" ")[0] for line in plan.splitlines() if "would run (" in line] == \
        ["sft", "eval-sft", "compare", "report"]
    # --until: only what eval-sft needs (sft is stale, eval-cpt and the rest are left alone)
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--until", "eval-sft", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert [line.split("] ")[1].split(" ")[0] for line in plan.splitlines() if "would run (" in line] == \
        ["sft", "eval-sft"]
    assert "not selected (--only/--from/--until), would be skipped" in plan
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--until", "eval-sft"]) == 0
    shown = capsys.readouterr()
    assert "(2 to run, 6 up to date, 3 not selected)" in shown.out + shown.err
    assert "[10/11] compare  not selected" in shown.out + shown.err
    until = _run_ids(workdir)
    assert {n for n in STAGES if until[n] != last[n]} == {"sft", "eval-sft"}
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--dry-run"]) == 0
    plan = capsys.readouterr().out  # compare and report are behind now
    assert [line.split("] ")[1].split(" ")[0] for line in plan.splitlines() if "would run (" in line] == \
        ["compare", "report"]
    assert main(["run", str(recipe), "--workdir", str(workdir), "sft_lr=0.02", "--only", "qa", "--until", "sft"]) == 2


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_results(reference, recipe, tmp_path):
    recipe = _cut(recipe, UP_TO_EVAL_CPT, tmp_path / "small.yaml")  # the stages after eval-cpt add time, not coverage
    workdir = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-m", "japanese_ft.cli", "run", str(recipe), "--workdir", str(workdir)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = workdir / "cpt" / "checkpoints" / "step_000005" / "trainer_state.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the run ended before its first checkpoint"
    assert not (workdir / "cpt" / "final").exists(), "the run finished training before it was killed"
    m = read_manifest(workdir)
    assert m["stages"]["cpt"]["status"] == "running"  # killed: no chance to write anything else

    assert main(["run", str(recipe), "--workdir", str(workdir)]) == 0
    assert "resuming from" in (workdir / "logs" / "cpt.log").read_text(encoding="utf-8")
    assert _scores(workdir, "eval-cpt") == _scores(reference, "eval-cpt")
    from safetensors.numpy import load_file

    a, b = (load_file(str(w / "cpt" / "final" / "model.safetensors")) for w in (workdir, reference))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
def test_a_training_stage_under_torchrun(reference, recipe, tmp_path):
    """`cpt.gpus=2` on a CPU: the stage runs under torchrun with 2 processes (gloo), its output in the stage
    log. (That 2 processes train as 1 does is the engine's own test, test_train_distributed.py.)"""
    import shutil

    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)
    args = ["run", str(recipe), "--workdir", str(workdir), "cpt.gpus=2", "cpt_steps=4", "--only", "cpt"]
    assert main(args) == 2  # global batch 4 = micro batch 4 x 2 processes? no: caught before anything runs
    assert main(args + ["cpt.train.micro_batch_size=2"]) == 0
    assert "world size 2" in (workdir / "logs" / "cpt.log").read_text(encoding="utf-8")
    rec = read_manifest(workdir)["stages"]["cpt"]
    assert rec["processes"] == 2 and rec["summary"]["steps"] == 4 and rec["command"].startswith("torchrun")
    assert (workdir / "cpt" / "recipe-config.yaml").exists() and (workdir / "cpt" / "final").is_dir()


@pytest.mark.slow
def test_dry_run_commands_reproduce_the_run(reference, recipe, tmp_path):
    """The printed commands, run by bash, make the same weights and scores as `jft run`. To keep this
    quick (every command is a new process that imports torch), the recipe is cut down to the stages up to
    eval-cpt, which `jft run` made in the reference run with the same settings. (`jft report` without a
    manifest is tested in test_demo.py.)"""
    small = _cut(recipe, UP_TO_EVAL_CPT, tmp_path / "small.yaml")
    workdir = tmp_path / "work"
    script = subprocess.run([sys.executable, "-m", "japanese_ft.cli", "run", str(small), "--workdir", str(workdir),
                             "--dry-run"], env=_env(), capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert "6 of 6 stages would run" in script
    (tmp_path / "plan.sh").write_text(script, encoding="utf-8")
    shim = tmp_path / "bin" / "jft"  # `jft` as installed: the console script runs japanese_ft.cli
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m japanese_ft.cli "$@"\n')
    shim.chmod(0o755)
    env = {**_env(), "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OMP_NUM_THREADS")  # the script exports the recipe's cpu_threads itself
    res = subprocess.run(["bash", str(tmp_path / "plan.sh")], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    from safetensors.numpy import load_file

    a, b = (load_file(str(w / "cpt" / "final" / "model.safetensors")) for w in (workdir, reference))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert _scores(workdir, "eval-cpt") == _scores(reference, "eval-cpt")


BAD = [
    # (what, recipe text, expected pieces of the one-line error)
    ("unknown kind", "stages:\n  - {name: a, kind: trian}\n", ["stage 'a'", "unknown kind 'trian'", "did you mean train"]),
    ("unknown setting", "stages:\n  - {name: a, kind: prepare-corpus, inputs: [x], tokeniser: t}\n",
     ["stage 'a'", "unknown setting 'tokeniser'", "did you mean tokenizer"]),
    ("missing setting", "stages:\n  - {name: a, kind: prepare-corpus, inputs: [x]}\n", ["stage 'a'", "missing setting 'tokenizer'"]),
    ("missing stage", "stages:\n  - {name: a, kind: init-model, tokenizer: '${tok.dir}'}\n",
     ["stage 'a'", "tokenizer", "no stage 'tok'"]),
    ("later stage", "stages:\n  - {name: a, kind: init-model, tokenizer: '${b.dir}'}\n"
     "  - {name: b, kind: train-tokenizer, inputs: [x]}\n", ["stage 'a'", "tokenizer", "stage 'b' comes later"]),
    ("unknown output", "stages:\n  - {name: b, kind: train-tokenizer, inputs: [x]}\n"
     "  - {name: a, kind: init-model, tokenizer: '${b.final}'}\n", ["stage 'a'", "tokenizer", "no output 'final'", "dir"]),
    ("unknown variable", "stages:\n  - {name: a, kind: train-tokenizer, inputs: [x], vocab_size: '${vocab}'}\n",
     ["stage 'a'", "vocab_size", "unknown variable"]),
    ("cycle", "stages:\n  - {name: a, kind: export, base: '${a.dir}', adapter: x}\n", ["stage 'a'", "base", "cycle"]),
    ("variable cycle", "vars: {x: '${y}', y: '${x}'}\nstages:\n  - {name: a, kind: train-tokenizer, inputs: [x]}\n",
     ["variable cycle", "x -> y -> x"]),
    ("train config key", "stages:\n  - {name: t, kind: train, mode: cpt, model: {name_or_path: m}, data: {train: [d]}, "
     "train: {lrr: 0.1}}\n", ["stage 't'", "unknown setting 'train.lrr'", "did you mean train.lr"]),
    ("train config value", "stages:\n  - {name: t, kind: train, mode: cpt, model: {name_or_path: m}, data: {train: [d]}, "
     "train: {max_steps: 0}}\n", ["stage 't'", "train.max_steps must be >= 1"]),
    ("train mode", "stages:\n  - {name: t, kind: train, mode: dpo}\n", ["stage 't'", "mode", "'dpo'"]),
    ("eval suite entry", "stages:\n  - {name: e, kind: eval, model: m, evals: [{task: jsquad, data: d, shotz: 1}]}\n",
     ["stage 'e'", "shotz", "did you mean shots"]),
    ("eval without suite", "stages:\n  - {name: e, kind: eval, model: m}\n", ["stage 'e'", "evals", "config"]),
    ("duplicate stage", "stages:\n  - {name: a, kind: train-tokenizer, inputs: [x]}\n"
     "  - {name: a, kind: train-tokenizer, inputs: [y]}\n", ["stage 'a'", "used twice"]),
    ("recipe key", "stagse: []\n", ["unknown recipe key 'stagse'", "did you mean stages"]),
]


@pytest.mark.parametrize("what,text,pieces", BAD, ids=[b[0] for b in BAD])
def test_bad_recipes_are_one_line_errors(what, text, pieces, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["run", str(path), "--workdir", str(tmp_path / "w"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for piece in pieces:
        assert piece in err, (piece, err)
    assert not (tmp_path / "w").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("override,pieces", [
    ("vocab=3", ["unknown variable 'vocab'"]),
    ("nope.x=1", ["no stage named 'nope'"]),
    ("sft.trian.lr=1", ["stage 'sft'", "unknown setting 'trian'", "did you mean train"]),
    ("cpt.kind=eval", ["cannot be overridden"]),
])
def test_bad_overrides_are_one_line_errors(recipe, override, pieces, tmp_path, capsys):
    assert main(["run", str(recipe), override, "--workdir", str(tmp_path / "w"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(p in err for p in pieces), err


def test_fingerprints_follow_content_not_spelling(tmp_path):
    """Editing a train stage's config file changes its fingerprint and its downstream's; writing a default
    value out, or moving the work directory, changes nothing."""
    from japanese_ft.pipeline.plan import build_plan
    from japanese_ft.pipeline.recipe import apply_overrides, load_recipe

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("train: {lr: 1.0e-3}\n")
    path = tmp_path / "r.yaml"
    path.write_text(
        "stages:\n  - {name: t, kind: train, mode: cpt, config: " + str(cfg) + ", model: {name_or_path: m},"
        " data: {train: [d]}, train: {device: cpu}}\n"
        "  - {name: e, kind: eval, model: '${t.final}', evals: [{task: perplexity, data: d}]}\n"
        "  - {name: x, kind: train-tokenizer, inputs: [d]}\n")

    def fps(workdir, *overrides):
        plan = build_plan(apply_overrides(load_recipe(str(path)), list(overrides)), tmp_path / workdir)
        return {s.name: s.fingerprint for s in plan.stages}

    base = fps("w1")
    assert fps("elsewhere/w2") == base
    assert fps("w1", "t.train.weight_decay=0.1") == base  # the default, written out
    assert fps("w1", "t.train.weight_decay=0.2")["t"] != base["t"]
    cfg.write_text("train: {lr: 2.0e-3}\n")
    changed = fps("w1")
    assert changed["t"] != base["t"] and changed["e"] != base["e"] and changed["x"] == base["x"]


def test_training_stages_use_torchrun_for_several_processes(tmp_path):
    from japanese_ft.pipeline.plan import build_plan
    from japanese_ft.pipeline.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("gpus: 2\nstages:\n"
                    "  - {name: a, kind: train, mode: cpt, model: {name_or_path: m}, data: {train: [d]}}\n"
                    "  - {name: b, kind: train, mode: cpt, model: {name_or_path: m}, data: {train: [d]}, gpus: 1}\n"
                    "  - {name: c, kind: train, mode: cpt, model: {name_or_path: m}, data: {train: [d]}, train: {device: cpu}}\n"
                    "  - {name: d, kind: train, mode: cpt, model: {name_or_path: m}, data: {train: [d]}, train: {device: cpu},"
                    " gpus: 2}\n")
    plan = build_plan(load_recipe(str(path)), tmp_path / "w")
    a, b, c, d = plan.stages
    assert a.processes == 2 and a.command.startswith("torchrun --standalone --nproc_per_node 2 -m japanese_ft.cli train cpt")
    assert b.processes == 1 and b.command.startswith("jft train cpt")
    assert c.processes == 1  # CPU training: one process, unless the stage itself asks for more
    assert d.processes == 2 and d.command.startswith("torchrun")
    assert build_plan(load_recipe(str(path)), tmp_path / "w", cli_gpus=4).stages[0].processes == 4


@pytest.mark.slow
def test_import_model_and_squad_article_stages(reference, tmp_path, capsys):
    """The real-model stages: import-model from a local HF directory, convert-squad --articles as a corpus
    for prepare-corpus with the imported tokenizer, and convert-squad --style llm-jp-eval."""
    path = tmp_path / "r.yaml"
    path.write_text(
        "stages:\n"
        f"  - {{name: model, kind: import-model, source: {reference / 'init'}}}\n"
        "  - {name: articles, kind: convert-squad, file: '${sample}/questions_train.json', articles: true}\n"
        "  - {name: corpus, kind: prepare-corpus, inputs: ['${articles.output}'], tokenizer: '${model.dir}'}\n"
        "  - {name: sft-data, kind: convert-squad, file: '${sample}/questions_train.json', style: llm-jp-eval}\n",
        encoding="utf-8")
    workdir = tmp_path / "work"
    assert main(["run", str(path), "--workdir", str(workdir), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "jft import-model" in plan and "--articles" in plan and "--style llm-jp-eval" in plan
    assert main(["run", str(path), "--workdir", str(workdir)]) == 0
    st = read_manifest(workdir)["stages"]
    assert all(s["status"] == "done" for s in st.values())
    assert (workdir / "model" / "model.safetensors").exists() and st["corpus"]["summary"]["tokens"] > 0
    first = json.loads((workdir / "articles" / "articles.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) >= {"text", "meta"}
    record = json.loads((workdir / "sft-data" / "sft-data.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert "### 応答" in record["input"]
