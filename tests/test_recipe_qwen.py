"""configs/recipes/qwen2.5-0.5b-ja-wiki.yaml: its dry-run as shipped, and the whole recipe on a CPU with a
tiny model and local files, through command-line overrides only (download from a local HTTP server)."""

from __future__ import annotations

import functools
import gzip
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.pipeline.manifest import read_manifest
from japanese_ft.pipeline.plan import sample_dir

REPO = Path(__file__).resolve().parents[1]
RECIPE = "configs/recipes/qwen2.5-0.5b-ja-wiki.yaml"
STAGES = ["download", "corpus", "corpus-val", "cpt", "qa", "sft", "lora", "eval-base", "eval-cpt", "eval-sft",
          "eval-lora", "export", "compare", "report"]


def test_dry_run_as_shipped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the recipe's paths (configs/...) are relative to the repository root
    assert main(["run", RECIPE, "--workdir", str(tmp_path / "w"), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "14 of 14 stages would run" in plan
    for needle in ("jft download-corpus ja_wiki", "train_13.jsonl.gz", "--tokenizer models/Qwen2.5-0.5B", "--filter",
                   "jft train cpt --config configs/qwen2.5-0.5b-cpt.yaml model.name_or_path=models/Qwen2.5-0.5B",
                   "jft train sft --config configs/qwen2.5-0.5b-sft.yaml", "jft train lora --config configs/qwen2.5-0.5b-lora.yaml",
                   "--exclude-squad ../shared/data/jglue/jsquad-valid-v1.3.json",
                   "jft eval suite --model models/Qwen2.5-0.5B --config configs/evals-jglue.yaml --label base",
                   "jft export --base", "jft compare", "jft report"):
        assert needle in plan, needle
    assert not (tmp_path / "w").exists()


@pytest.fixture
def corpus_server(tmp_path):
    """ja_wiki's file names served from 127.0.0.1: the sample's articles (train) and held-out articles (validation)."""
    root = tmp_path / "www"
    root.mkdir()
    for name, src in (("train_0.jsonl.gz", "articles.jsonl"), ("validation_0.jsonl.gz", "heldout.jsonl")):
        (root / name).write_bytes(gzip.compress((sample_dir() / src).read_bytes(), mtime=0))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _tiny_model(path: Path) -> Path:
    from japanese_ft.model.load import init_model
    from japanese_ft.model.tokenizer import train_bpe_tokenizer

    texts = [json.loads(line)["text"] for line in (sample_dir() / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    train_bpe_tokenizer(texts, path.with_name("tok"), vocab_size=400)
    init_model("tiny", str(path.with_name("tok")), path, seed=0, dtype="float32")
    return path


def test_recipe_end_to_end_with_tiny_overrides(tmp_path, monkeypatch, corpus_server):
    model = _tiny_model(tmp_path / "model")
    evals = tmp_path / "evals.yaml"
    evals.write_text(
        "evals:\n"
        f"  - {{task: jsquad, data: {sample_dir() / 'questions_heldout.json'}, max_new_tokens: 4}}\n"
        f"  - {{task: perplexity, name: ppl, data: {sample_dir() / 'heldout.jsonl'}, seq_length: 64}}\n", encoding="utf-8")
    overrides = [f"base_model={model}", f"jsquad_valid={sample_dir() / 'questions_heldout.json'}", f"evals={evals}",
                 "eval_limit=2", "workers=1", f"download.base_url={corpus_server}",
                 "download.files=[train_0.jsonl.gz, validation_0.jsonl.gz]"]
    for stage in ("cpt", "sft", "lora"):
        overrides += [f"{stage}.{k}" for k in (
            "train.max_steps=2", "train.micro_batch_size=1", "train.global_batch_size=2", "train.warmup_steps=1",
            "train.precision=fp32", "train.device=cpu", "train.eval_every=2", "train.eval_batches=1",
            "train.save_every=2", "train.keep_last=1", "model.dtype=float32")]
        overrides += [f"{stage}.data.seq_length=64"] if stage == "cpt" else [f"{stage}.data.seq_length=128",
                                                                            f"{stage}.data.truncation=truncate"]
    workdir = tmp_path / "run"
    monkeypatch.chdir(REPO)
    assert main(["run", RECIPE, *overrides, "--workdir", str(workdir)]) == 0

    m = read_manifest(workdir)
    assert list(m["stages"]) == STAGES and all(s["status"] == "done" for s in m["stages"].values())
    assert sorted(p.name for p in (workdir / "download").glob("*.gz")) == ["train_0.jsonl.gz", "validation_0.jsonl.gz"]
    assert m["stages"]["corpus"]["summary"]["documents_written"] > 40
    assert m["stages"]["cpt"]["summary"]["steps"] == 2 and m["stages"]["lora"]["summary"]["trainable_params"] > 0
    for stage in ("eval-base", "eval-cpt", "eval-sft", "eval-lora"):
        res = json.loads((workdir / stage / "result.json").read_text(encoding="utf-8"))
        assert res["results"]["jsquad"]["n"] == 2 and res["results"]["ppl"]["perplexity"] > 1
    assert (workdir / "export" / "model.safetensors").exists()
    md = (workdir / "report" / "report.md").read_text(encoding="utf-8")
    assert "jft run report: qwen2.5-0.5b-ja-wiki" in md and "plots/loss_curves.png" in md
