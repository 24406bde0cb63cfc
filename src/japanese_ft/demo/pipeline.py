"""`jft demo`: the whole pipeline on the built-in Japanese sample, offline, on a CPU.

Stages (each one the library function behind a `jft` command, or the same code path):

  sample      copy the packaged sample into DIR/data/
  tokenizer   train a byte-level BPE tokenizer on the training articles   -> DIR/tokenizer/
  prepare     prepare-corpus: first half of the articles (base), second half (CPT), held-out
                                                                          -> DIR/corpus/
  init        init-model --preset tiny                                   -> DIR/models/init/
  base        train cpt from the random init on the first half            -> DIR/runs/base/
  cpt         train cpt from base on the second half                      -> DIR/runs/cpt/
  qa          build-qa on the articles + convert-squad of the training questions -> DIR/qa/
  sft, lora   train sft / train lora from the CPT model                   -> DIR/runs/{sft,lora}/
  eval-*      held-out perplexity, JSQuAD-style char-F1/EM, generations   -> DIR/eval/
  export      merge the LoRA adapter into the CPT model                   -> DIR/models/lora-merged/
  report      DIR/report.md, DIR/report.html, DIR/plots/*.png

DIR/demo.json records the run id, the settings and every finished stage. Re-running into the
same directory resumes after the last finished stage (training stages resume from their own
checkpoints); a directory holding another demo's settings, or anything that is not a demo, is
refused; `force` starts over (only in a demo directory).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from japanese_ft.errors import UserError
from japanese_ft.ui import quiet_libraries

MANIFEST = "demo.json"
LOCK = ".demo.lock"
FORMAT = "jft-demo/1"
SAMPLE_FILES = ("articles.jsonl", "heldout.jsonl", "questions_train.json", "questions_heldout.json")

# Prompts for the sample generations: (kind, text). "completion" is fed as is; "chat" is one user turn
# in the chat template (what SFT/LoRA learn to answer).
PROMPTS = [
    ("completion", "富士山は、"),
    ("completion", "茶道は、"),
    ("chat", "寿司について教えてください。"),
    ("chat", "文章:四万十川（しまんとがわ）は、高知県の西部を流れる一級河川である。全長は196kmで、四国で最も長い川として知られる。\n質問:四万十川の全長は何kmか。"),
]


@dataclass
class Recipe:
    """Everything that decides the demo's numbers. Stored in demo.json; a different recipe is a different run."""

    quick: bool = False
    seed: int = 0
    vocab_size: int = 2048
    seq_length: int = 128
    micro_batch_size: int = 4  # small batches, many steps: the tiny model learns faster per second
    base_steps: int = 200
    cpt_steps: int = 120
    sft_steps: int = 200
    lora_steps: int = 200
    sft_seq_length: int = 256
    eval_every: int = 50
    threads: int = 1  # torch CPU threads: one thread is as fast for a 64-wide model and immune to busy cores
    jsquad_limit: int | None = None
    jsquad_max_new_tokens: int = 25
    generation_tokens: int = 40
    prompts: int = len(PROMPTS)

    @classmethod
    def for_mode(cls, quick: bool) -> "Recipe":
        if not quick:
            return cls()
        return cls(quick=True, vocab_size=1024, base_steps=16, cpt_steps=12, sft_steps=10, lora_steps=10,
                   eval_every=6, jsquad_limit=8, jsquad_max_new_tokens=12, generation_tokens=16, prompts=2)


# ---- sample access -----------------------------------------------------------------------


def sample_dir():
    return resources.files("japanese_ft") / "sample"


def sample_sha256() -> str:
    h = hashlib.sha256()
    for name in SAMPLE_FILES:
        h.update(name.encode())
        h.update((sample_dir() / name).read_bytes())
    return h.hexdigest()[:16]


# ---- manifest, lock, resume --------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _settings(recipe: Recipe) -> dict:
    from japanese_ft import __version__

    return {"recipe": asdict(recipe), "jft_version": __version__, "sample_sha256": sample_sha256()}


def read_manifest(out_dir: Path) -> dict | None:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable demo manifest ({exc}); remove the directory or pass --force") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a jft demo manifest (format {data.get('format') if isinstance(data, dict) else '?'})")
    return data


def write_manifest(out_dir: Path, manifest: dict) -> None:
    path = Path(out_dir) / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _describe_diff(old: dict, new: dict) -> str:
    diffs = []
    o, n = old.get("recipe", {}), new.get("recipe", {})
    for k in sorted(set(o) | set(n)):
        if o.get(k) != n.get(k):
            diffs.append(f"{k} {o.get(k)!r} -> {n.get(k)!r}")
    for k in ("jft_version", "sample_sha256"):
        if old.get(k) != new.get(k):
            diffs.append(f"{k} {old.get(k)} -> {new.get(k)}")
    return ", ".join(diffs[:4]) + (" ..." if len(diffs) > 4 else "")


def open_run(out_dir: str | Path, recipe: Recipe, force: bool = False) -> tuple[dict, str]:
    """-> (manifest, how) where how is "new", "resume" or "complete".

    Refuses (UserError) a non-empty directory that is not a demo, and a demo made with other settings
    unless `force` (which deletes the old demo's files first; never a directory that is not a demo).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output-dir {out_dir}: exists and is not a directory")
    settings = _settings(recipe)
    existing = read_manifest(out_dir) if out_dir.exists() else None
    if existing is None and out_dir.exists() and any(p.name != LOCK for p in out_dir.iterdir()):
        raise UserError(f"--output-dir {out_dir}: not empty and not a jft demo directory (no {MANIFEST}); "
                        "choose a new or empty directory (--force never deletes a directory that is not a demo)")
    if existing is not None and not force:
        if existing.get("settings") != settings:
            mode = "--quick" if existing.get("settings", {}).get("recipe", {}).get("quick") else "the full demo (no --quick)"
            raise UserError(
                f"--output-dir {out_dir} holds demo run {existing.get('run_id')} made with other settings "
                f"({_describe_diff(existing.get('settings', {}), settings)}); it was {mode}. "
                "Re-run with the same options to resume it, pass --force to delete it and start over, "
                "or choose another --output-dir"
            )
        return existing, ("complete" if existing.get("status") == "complete" else "resume")
    if existing is not None and force:
        for p in out_dir.iterdir():
            if p.name == LOCK:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "run_id": uuid.uuid4().hex[:12],
        "created": _now(),
        "status": "running",
        "settings": settings,
        "stages": {},
    }
    write_manifest(out_dir, manifest)
    return manifest, "new"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DirLock:
    """DIR/.demo.lock holds the pid of the demo writing DIR: two demos never write one directory."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK
        self.held = False

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _pid_alive(pid):
                    raise UserError(f"{self.path.parent}: another jft demo (pid {pid}) is writing this directory; "
                                    f"wait for it or stop it (a stale lock is {self.path})") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise UserError(f"{self.path}: cannot take the demo lock")

    def __exit__(self, *exc):
        if self.held:
            self.path.unlink(missing_ok=True)


# ---- the stages -------------------------------------------------------------------------


@dataclass
class Paths:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def qa(self) -> Path:
        return self.root / "qa"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def plots(self) -> Path:
        return self.root / "plots"


# Models evaluated, in report order: label -> (model dir, adapter dir or None) relative to DIR.
MODELS = {
    "base": ("runs/base/final", None),
    "cpt": ("runs/cpt/final", None),
    "cpt+sft": ("runs/sft/final", None),
    "cpt+lora": ("runs/cpt/final", "runs/lora/final"),
}


@dataclass
class StageContext:
    paths: Paths
    recipe: Recipe
    manifest: dict
    console: object = None
    commands: dict = field(default_factory=dict)

    def say(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg, highlight=False)


def _rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def stage_sample(ctx: StageContext) -> dict:
    ctx.paths.data.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in SAMPLE_FILES:
        data = (sample_dir() / name).read_bytes()
        tmp = ctx.paths.data / f"{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, ctx.paths.data / name)
        sizes[name] = len(data)
    articles = (ctx.paths.data / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    heldout = (ctx.paths.data / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    return {"files": sizes, "articles": sum(1 for l in articles if l.strip()), "heldout": sum(1 for l in heldout if l.strip())}


def stage_tokenizer(ctx: StageContext) -> dict:
    from japanese_ft.model.tokenizer import train_bpe_tokenizer

    texts = [json.loads(l)["text"] for l in (ctx.paths.data / "articles.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]
    info = train_bpe_tokenizer(texts, ctx.paths.tokenizer, vocab_size=ctx.recipe.vocab_size)
    info["trained_on_characters"] = sum(len(t) for t in texts)
    return info


CORPUS_PARTS = {  # name -> (input file, --shard, what it is)
    "base": ("articles.jsonl", "1/2", "first half of the training articles (base pre-training)"),
    "cpt": ("articles.jsonl", "2/2", "second half of the training articles (continual pre-training)"),
    "heldout": ("heldout.jsonl", None, "held-out articles (validation loss, perplexity)"),
}


def stage_prepare(ctx: StageContext) -> dict:
    from japanese_ft.data.corpus import parse_shard
    from japanese_ft.data.prepare import PrepareOptions, prepare_corpus
    from japanese_ft.text.quality import QualityConfig
    from japanese_ft.ui import count_progress

    ctx.paths.corpus.mkdir(parents=True, exist_ok=True)
    parts = {}
    with count_progress("prepare-corpus", len(CORPUS_PARTS)) as update:
        for name, (src, shard, what) in CORPUS_PARTS.items():
            opts = PrepareOptions(tokenizer=str(ctx.paths.tokenizer), quality=QualityConfig(), dedup="exact",
                                  shard=parse_shard(shard))
            stats = prepare_corpus([str(ctx.paths.data / src)], ctx.paths.corpus / name, opts)
            parts[name] = {
                "what": what,
                "input": src,
                "shard": shard,
                "documents_in": stats.documents_in,
                "documents_written": stats.documents_written,
                "dropped": stats.dropped,
                "tokens": stats.tokens,
                "characters": stats.characters,
                "chars_per_token": stats.chars_per_token,
                "seconds": stats.seconds,
            }
            update(1, name)
    return {"parts": parts}


def stage_init(ctx: StageContext) -> dict:
    from japanese_ft.model.load import init_model

    out = ctx.paths.models / "init"
    _rm(out)
    _rm(out.with_name("init.tmp"))
    out.parent.mkdir(parents=True, exist_ok=True)
    info = init_model("tiny", str(ctx.paths.tokenizer), out, seed=ctx.recipe.seed, dtype="float32")
    from japanese_ft.model.presets import TINY

    info["architecture"] = {k: TINY[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                                                  "num_attention_heads", "num_key_value_heads")}
    return info


def run_config_dict(ctx: StageContext, stage: str) -> dict:
    """The run config of a training stage (written to DIR/configs/STAGE.yaml and trained from there)."""
    r, p = ctx.recipe, ctx.paths
    common_train = {
        "micro_batch_size": r.micro_batch_size,
        "global_batch_size": r.micro_batch_size,
        "precision": "fp32",
        "eval_every": r.eval_every,
        "eval_batches": 2,
        "keep_last": 1,
        "log_every": 1,
        "seed": 1234 + r.seed,
        "device": "cpu",
        "schedule": "cosine",
    }
    if stage in ("base", "cpt"):
        steps = r.base_steps if stage == "base" else r.cpt_steps
        source = p.models / "init" if stage == "base" else p.runs / "base" / "final"
        return {
            "mode": "cpt",
            "model": {"name_or_path": str(source), "dtype": "float32", "attn_implementation": "sdpa"},
            "data": {"train": [str(p.corpus / stage)], "validation": [str(p.corpus / "heldout")], "seq_length": r.seq_length},
            "train": {**common_train, "max_steps": steps, "lr": 1.0e-2 if stage == "base" else 5.0e-3, "min_lr": 5.0e-4,
                      "warmup_steps": max(1, steps // 10), "weight_decay": 0.1, "save_every": max(1, steps // 2)},
            "output_dir": str(p.runs / stage),
        }
    steps = r.sft_steps if stage == "sft" else r.lora_steps
    cfg = {
        "mode": stage,
        "model": {"name_or_path": str(p.runs / "cpt" / "final"), "dtype": "float32", "attn_implementation": "sdpa"},
        "data": {"train": [str(p.qa / "training.jsonl"), str(p.qa / "squad_train.jsonl")],
                 "validation": [str(p.qa / "validation.jsonl")], "seq_length": r.sft_seq_length,
                 "pack": False, "truncation": "truncate"},
        "train": {**common_train, "max_steps": steps, "lr": 3.0e-3 if stage == "sft" else 1.0e-2, "min_lr": 3.0e-4,
                  "warmup_steps": max(1, steps // 10), "weight_decay": 0.0, "save_every": max(1, steps // 2)},
        "output_dir": str(p.runs / stage),
    }
    if stage == "lora":
        cfg["lora"] = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["all-linear"]}
    return cfg


def _train_stage(ctx: StageContext, stage: str) -> dict:
    import yaml

    from japanese_ft.config import load_run_config
    from japanese_ft.train.loop import train

    ctx.paths.configs.mkdir(parents=True, exist_ok=True)
    cfg_path = ctx.paths.configs / f"{stage}.yaml"
    tmp = cfg_path.with_name(cfg_path.name + ".tmp")
    header = f"# jft demo, stage {stage}: jft train {run_config_dict(ctx, stage)['mode']} --config {cfg_path}\n"
    tmp.write_text(header + yaml.safe_dump(run_config_dict(ctx, stage), sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(tmp, cfg_path)
    cfg = load_run_config(cfg_path, [], None)  # exactly what `jft train MODE --config FILE` loads
    result = train(cfg, console=ctx.console)
    if result.status == "stopped":
        raise UserError(f"stage {stage}: training was stopped at step {result.step}; re-run the demo to resume it")
    return {
        "mode": cfg.mode,
        "config": str(cfg_path),
        "output_dir": cfg.output_dir,
        "status": result.status,
        "steps": result.step,
        "loss": result.loss,
        "val_loss": result.val_loss,
        "tokens": result.tokens,
        "tokens_per_s": result.tokens_per_s,
        "train_seconds": result.seconds,
        "trainable_params": result.trainable_params,
        "total_params": result.total_params,
        "data": result.data,
    }


def stage_qa(ctx: StageContext) -> dict:
    from japanese_ft.data.qa import QAOptions, build_qa
    from japanese_ft.data.squad import convert_squad

    # the held-out questions' titles are not in articles.jsonl, so nothing needs --exclude-squad here
    opts = QAOptions(seed=42, validation_ratio=0.1)
    opts.check()
    stats = build_qa([str(ctx.paths.data / "articles.jsonl")], ctx.paths.qa, opts)
    sq = convert_squad(ctx.paths.data / "questions_train.json", ctx.paths.qa / "squad_train.jsonl", strip_title=True)
    return {
        "articles_in": stats.articles_in,
        "articles_used": stats.articles_used,
        "pairs": stats.pairs,
        "training_pairs": stats.training_pairs,
        "validation_pairs": stats.validation_pairs,
        "dropped": stats.dropped,
        "squad_questions": sq.questions,
        "squad_records": sq.written,
    }


def _model_paths(ctx: StageContext, label: str) -> tuple[Path, Path | None]:
    model, adapter = MODELS[label]
    return ctx.paths.root / model, (ctx.paths.root / adapter if adapter else None)


def _evaluate_model(ctx: StageContext, label: str) -> dict:
    from japanese_ft.eval.common import write_json_atomic, write_jsonl_atomic
    from japanese_ft.eval.generation import apply_chat, generate
    from japanese_ft.eval.jsquad import evaluate_jsquad, read_squad
    from japanese_ft.eval.loading import load_for_inference, model_info
    from japanese_ft.eval.perplexity import evaluate_perplexity
    from japanese_ft.ui import count_progress

    r = ctx.recipe
    model_dir, adapter_dir = _model_paths(ctx, label)
    m, tok = load_for_inference(model_dir, adapter_dir, device="cpu", dtype="float32")
    ppl, ppl_windows = evaluate_perplexity(m, tok, str(ctx.paths.corpus / "heldout"), seq_length=r.seq_length,
                                           batch_size=8, progress_factory=count_progress)
    # perplexity on the text CPT trained on: what CPT learned (held-out text measures generalisation)
    seen, seen_windows = evaluate_perplexity(m, tok, str(ctx.paths.corpus / "cpt"), seq_length=r.seq_length, batch_size=8)
    items, _ = read_squad(ctx.paths.data / "questions_heldout.json")
    todo = items[: r.jsquad_limit] if r.jsquad_limit else items
    with count_progress(f"jsquad {label}", len(todo)) as update:
        js, js_records = evaluate_jsquad(m, tok, todo, shots=0, pool_items=items, batch_size=8,
                                         max_new_tokens=r.jsquad_max_new_tokens, progress=update)
    js["data"] = str(ctx.paths.data / "questions_heldout.json")
    ctx.paths.eval.mkdir(parents=True, exist_ok=True)
    stem = label.replace("+", "_")
    write_jsonl_atomic(ctx.paths.eval / f"{stem}.heldout_ppl.examples.jsonl", ppl_windows)
    write_jsonl_atomic(ctx.paths.eval / f"{stem}.cpt_corpus_ppl.examples.jsonl", seen_windows)
    write_jsonl_atomic(ctx.paths.eval / f"{stem}.jsquad_heldout.examples.jsonl", js_records)
    # the format of `jft eval suite` (so `jft compare DIR/eval/*.json` works on these files)
    result = {
        "task": "suite",
        "label": label,
        "config": str(ctx.paths.configs / "evals-demo.yaml"),
        "results": {"heldout_ppl": ppl, "cpt_corpus_ppl": seen, "jsquad_heldout": js},
        "examples": {"heldout_ppl": str(ctx.paths.eval / f"{stem}.heldout_ppl.examples.jsonl"),
                     "cpt_corpus_ppl": str(ctx.paths.eval / f"{stem}.cpt_corpus_ppl.examples.jsonl"),
                     "jsquad_heldout": str(ctx.paths.eval / f"{stem}.jsquad_heldout.examples.jsonl")},
        "model_info": model_info(m, tok, model_dir, adapter_dir),
    }
    write_json_atomic(ctx.paths.eval / f"{stem}.json", result)
    gens = []
    for kind, text in PROMPTS[: r.prompts]:
        prompt = apply_chat(tok, [{"role": "user", "content": text}]) if kind == "chat" else text
        out = generate(m, tok, [prompt], r.generation_tokens, batch_size=1, add_special_tokens=kind != "chat")[0]
        gens.append({"kind": kind, "prompt": text, "output": out.text, "tokens": out.tokens, "stopped": out.stopped})
    write_json_atomic(ctx.paths.eval / f"{stem}.generations.json", gens)
    return {
        "model": str(model_dir),
        "adapter": str(adapter_dir) if adapter_dir else None,
        "perplexity": ppl["perplexity"],
        "bits_per_char": ppl["bits_per_char"],
        "nll": ppl["nll"],
        "ppl_tokens": ppl["tokens"],
        "cpt_corpus_perplexity": seen["perplexity"],
        "cpt_corpus_bits_per_char": seen["bits_per_char"],
        "char_f1": js["char_f1"],
        "exact_match": js["exact_match"],
        "jsquad_n": js["n"],
        "generations": gens,
        "result_file": str(ctx.paths.eval / f"{stem}.json"),
    }


def write_evals_yaml(ctx: StageContext) -> Path:
    import yaml

    r = ctx.recipe
    js = {"name": "jsquad_heldout", "task": "jsquad", "data": str(ctx.paths.data / "questions_heldout.json"),
          "max_new_tokens": r.jsquad_max_new_tokens, "batch_size": 8}
    if r.jsquad_limit:
        js["limit"] = r.jsquad_limit
    cfg = {"evals": [
        {"name": "heldout_ppl", "task": "perplexity", "data": str(ctx.paths.corpus / "heldout"), "seq_length": r.seq_length,
         "batch_size": 8},
        {"name": "cpt_corpus_ppl", "task": "perplexity", "data": str(ctx.paths.corpus / "cpt"), "seq_length": r.seq_length,
         "batch_size": 8},
        js,
    ]}
    ctx.paths.configs.mkdir(parents=True, exist_ok=True)
    path = ctx.paths.configs / "evals-demo.yaml"
    path.write_text("# jft demo evaluations: jft eval suite --model MODEL --config " + str(path) + "\n"
                    + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def stage_export(ctx: StageContext) -> dict:
    from japanese_ft.eval.loading import load_for_inference
    from japanese_ft.eval.perplexity import evaluate_perplexity
    from japanese_ft.model.lora import merge_adapter

    out = ctx.paths.models / "lora-merged"
    _rm(out)
    _rm(out.with_name("lora-merged.tmp"))
    info = merge_adapter(str(ctx.paths.runs / "cpt" / "final"), str(ctx.paths.runs / "lora" / "final"), out, dtype="auto")
    # the merged checkpoint must score what base + adapter scored
    m, tok = load_for_inference(out, None, device="cpu", dtype="float32")
    ppl, _ = evaluate_perplexity(m, tok, str(ctx.paths.corpus / "heldout"), seq_length=ctx.recipe.seq_length, batch_size=8)
    info["merged_perplexity"] = ppl["perplexity"]
    adapter_ppl = ctx.manifest["stages"].get("eval-cpt+lora", {}).get("info", {}).get("perplexity")
    info["adapter_perplexity"] = adapter_ppl
    if adapter_ppl is not None:
        info["max_relative_difference"] = abs(ppl["perplexity"] - adapter_ppl) / adapter_ppl
    return info


def stage_report(ctx: StageContext) -> dict:
    from japanese_ft.demo.report import write_report

    return write_report(ctx.paths.root, ctx.manifest)


@dataclass
class Stage:
    name: str
    title: str
    run: Callable[[StageContext], dict]
    command: str  # the jft command it stands for


def stages() -> list[Stage]:
    s = [
        Stage("sample", "copy the built-in sample", stage_sample, "(files)"),
        Stage("tokenizer", "train a byte-level BPE tokenizer", stage_tokenizer, "(tokenizers library)"),
        Stage("prepare", "prepare-corpus (base half, CPT half, held-out)", stage_prepare, "jft prepare-corpus"),
        Stage("init", "init-model --preset tiny", stage_init, "jft init-model"),
        Stage("base", "base pre-training (first half)", lambda c: _train_stage(c, "base"), "jft train cpt"),
        Stage("cpt", "continual pre-training (second half)", lambda c: _train_stage(c, "cpt"), "jft train cpt"),
        Stage("qa", "build-qa + convert-squad", stage_qa, "jft build-qa / jft convert-squad"),
        Stage("sft", "full SFT from the CPT model", lambda c: _train_stage(c, "sft"), "jft train sft"),
        Stage("lora", "LoRA SFT from the CPT model", lambda c: _train_stage(c, "lora"), "jft train lora"),
    ]
    for label in MODELS:
        s.append(Stage(f"eval-{label}", f"evaluate {label}", lambda c, label=label: _evaluate_model(c, label), "jft eval suite"))
    s += [
        Stage("export", "export (merge) the LoRA model", stage_export, "jft export"),
        Stage("report", "write report.md / report.html", stage_report, "(report)"),
    ]
    return s


@dataclass
class DemoResult:
    output_dir: Path
    manifest: dict
    how: str  # new | resume | complete
    ran: list = field(default_factory=list)  # stages run by this invocation
    seconds: float = 0.0


def run_demo(output_dir: str | Path, quick: bool = False, force: bool = False, console=None,
             on_stage: Callable[[int, int, Stage, str], None] | None = None) -> DemoResult:
    """Run (or resume) the demo into `output_dir`. `on_stage(i, n, stage, event)` with event
    "start", "skip" or "done" lets the CLI draw its stage list."""
    out = Path(output_dir)
    recipe = Recipe.for_mode(quick)
    t0 = time.perf_counter()
    with DirLock(out):
        manifest, how = open_run(out, recipe, force)
        result = DemoResult(out.resolve(), manifest, how)
        if how == "complete":
            return result
        quiet_libraries()
        import torch

        threads = torch.get_num_threads()
        if recipe.threads and not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(recipe.threads)
        try:
            _run_stages(out, manifest, recipe, console, on_stage, result)
        finally:
            torch.set_num_threads(threads)
        result.seconds = time.perf_counter() - t0
        return result


def _run_stages(out: Path, manifest: dict, recipe: Recipe, console, on_stage, result: DemoResult) -> None:
    import torch

    manifest.setdefault("machine", {})["torch_threads"] = torch.get_num_threads()
    ctx = StageContext(Paths(out), recipe, manifest, console)
    write_evals_yaml(ctx)
    all_stages = stages()
    done = manifest["stages"]
    for i, stage in enumerate(all_stages, 1):
        if done.get(stage.name, {}).get("status") == "done":
            if on_stage:
                on_stage(i, len(all_stages), stage, "skip")
            continue
        if on_stage:
            on_stage(i, len(all_stages), stage, "start")
        started = time.perf_counter()
        info = stage.run(ctx)
        done[stage.name] = {"status": "done", "seconds": round(time.perf_counter() - started, 2), "info": info,
                            "finished": _now()}
        result.ran.append(stage.name)
        write_manifest(out, manifest)
        if on_stage:
            on_stage(i, len(all_stages), stage, "done")
    manifest["status"] = "complete"
    manifest["finished"] = _now()
    manifest["total_seconds"] = round(sum(s.get("seconds", 0) for s in done.values()), 2)
    write_manifest(out, manifest)
