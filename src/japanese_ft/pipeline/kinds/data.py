"""Data stage kinds: download-corpus, prepare-corpus, build-qa, convert-squad, train-tokenizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from japanese_ft.data.qa_article import QAOptions  # plain dataclass, no heavy imports
from japanese_ft.pipeline.kinds.base import Kind, Stage, choice, register, shell, summary_of


@dataclass
class DownloadSettings:
    corpus: str = "ja_wiki"
    base_url: str | None = None
    files: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    retries: int = 5
    timeout: float = 60.0


@register
class DownloadCorpus(Kind):
    """`jft download-corpus`. Outputs: dir, files, train (train_* files), validation (validation_* files).
    Never cleaned: complete files are kept and partial ones resumed."""

    name = "download-corpus"
    title = "download a corpus"
    Settings = DownloadSettings
    keep = "always"

    def _names(self, s) -> list[str]:
        from japanese_ft.data.download import get_corpus, resolve_files

        return resolve_files(get_corpus(s.corpus), s.files or None)

    def outputs(self, d: Path, s) -> dict:
        names = self._names(s)
        return {"dir": str(d), "files": [str(d / n) for n in names],
                "train": [str(d / n) for n in names if n.startswith("train")],
                "validation": [str(d / n) for n in names if n.startswith("validation")]}

    def prepare(self, stage: Stage) -> None:
        from japanese_ft.data.download import CORPORA

        choice(stage, "corpus", stage.settings.corpus, tuple(CORPORA))

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "download-corpus", s.corpus, "--output-dir", stage.dir]
        args += ["--base-url", s.base_url] if s.base_url else []
        for f in s.files:
            args += ["--files", f]
        for c in s.sha256:
            args += ["--sha256", c]
        args += (["--retries", s.retries] if s.retries != 5 else []) + (["--timeout", s.timeout] if s.timeout != 60.0 else [])
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.qa import run_download_corpus

        s = stage.settings
        results = run_download_corpus(s.corpus, stage.dir, s.base_url, s.files, s.sha256, s.retries, s.timeout)
        return {"corpus": s.corpus, "files": len(results), "bytes": sum(r.bytes for r in results),
                "status": {r.name: r.status for r in results}}


@dataclass
class PrepareSettings:
    inputs: list[str]
    tokenizer: str
    text_key: str = "text"
    normalize: str = "nfc"
    clean: str = "whitespace"  # whitespace | none (text as read: Megatron's preprocess_data.py)
    add_special_tokens: bool = False  # the tokenizer's own BOS/EOS around each document (Megatron's default)
    filter: bool = False
    filter_options: dict = field(default_factory=dict)
    dedup: str = "exact"
    eod: bool = True
    workers: int = 1
    strict: bool = False
    shard: str | None = None


@register
class PrepareCorpus(Kind):
    """`jft prepare-corpus`. Output: prefix (WORKDIR/<stage>/<stage>.bin/.idx/.stats.json)."""

    name = "prepare-corpus"
    title = "prepare token files"
    Settings = PrepareSettings

    def outputs(self, d: Path, s) -> dict:
        return {"prefix": str(d / d.name)}

    def prepare(self, stage: Stage) -> None:
        from japanese_ft.data.corpus import parse_shard
        from japanese_ft.text.dedup import DEDUP_MODES
        from japanese_ft.text.normalize import NORMALIZATIONS

        s = stage.settings
        choice(stage, "normalize", s.normalize, NORMALIZATIONS)
        choice(stage, "clean", s.clean, ("whitespace", "none"))
        if not isinstance(s.filter_options, dict):
            raise stage.error(f"filter_options: expected a mapping of quality thresholds, got {s.filter_options!r}")
        choice(stage, "dedup", s.dedup, DEDUP_MODES)
        if s.workers < 1:
            raise stage.error(f"workers must be >= 1, got {s.workers}")
        if not s.inputs:
            raise stage.error("inputs must list at least one file or directory")
        try:
            parse_shard(s.shard)
        except Exception as exc:
            raise stage.error(f"shard: {exc}") from None

    def external_paths(self, stage: Stage) -> list[str]:
        return list(stage.symbolic.get("inputs") or []) + [stage.symbolic.get("tokenizer")]

    def _options(self, s) -> list[str]:
        return [f"{k}={v}" for k, v in s.filter_options.items()]

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "prepare-corpus", *s.inputs, "--tokenizer", s.tokenizer, "--output-prefix", stage.outputs["prefix"]]
        args += ["--filter"] if s.filter else []
        for o in self._options(s):
            args += ["--filter-option", o]
        args += ["--text-key", s.text_key] if s.text_key != "text" else []
        args += ["--normalize", s.normalize] if s.normalize != "nfc" else []
        args += ["--clean", s.clean] if s.clean != "whitespace" else []
        args += ["--add-special-tokens"] if s.add_special_tokens else []
        args += ["--dedup", s.dedup] if s.dedup != "exact" else []
        args += ["--no-eod"] if not s.eod else []
        args += ["--workers", s.workers] if s.workers != 1 else []
        args += ["--strict"] if s.strict else []
        args += ["--shard", s.shard] if s.shard else []
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.corpus import run_prepare_corpus

        s = stage.settings
        stats = run_prepare_corpus([Path(p) for p in s.inputs], s.tokenizer, Path(stage.outputs["prefix"]), s.text_key,
                                   s.normalize, s.filter, self._options(s), s.dedup, s.eod, s.workers, s.strict, s.shard,
                                   clean=s.clean, add_special_tokens=s.add_special_tokens)
        wanted = ("documents_in", "documents_written", "dropped", "malformed_lines", "tokens", "characters",
                "chars_per_token", "seconds")
        out = {k: v for k, v in summary_of(stats).items() if k in wanted}
        out["inputs"] = ", ".join(Path(p).name for p in s.inputs) + (f" (--shard {s.shard})" if s.shard else "")
        return out


@dataclass
class BuildQASettings:  # defaults are build-qa's own (QAOptions), so a stage that omits a key runs the command's default
    inputs: list[str]
    seed: int = QAOptions.seed
    validation_ratio: float = QAOptions.validation_ratio
    chunk_chars: int = QAOptions.chunk_chars
    max_input_chars: int = QAOptions.max_input_chars
    min_output_chars: int = QAOptions.min_output_chars
    max_output_chars: int = QAOptions.max_output_chars
    text_key: str = QAOptions.text_key
    strict: bool = QAOptions.strict
    exclude_squad: list[str] = field(default_factory=list)
    report: bool = False  # also write WORKDIR/<stage>/report.json (pairs and drop reasons per kind, examples)


_QA_DEFAULTS = BuildQASettings(inputs=[])


@register
class BuildQA(Kind):
    """`jft build-qa`. Outputs: dir, train (training.jsonl), validation (validation.jsonl), and report
    (report.json) when `report` is on."""

    name = "build-qa"
    title = "build Q&A pairs"
    Settings = BuildQASettings

    def outputs(self, d: Path, s) -> dict:
        out = {"dir": str(d), "train": str(d / "training.jsonl"), "validation": str(d / "validation.jsonl")}
        return {**out, "report": str(d / "report.json")} if s.report else out

    def prepare(self, stage: Stage) -> None:
        s = stage.settings
        if not s.inputs:
            raise stage.error("inputs must list at least one file or directory")
        try:
            QAOptions(seed=s.seed, validation_ratio=s.validation_ratio, chunk_chars=s.chunk_chars,
                      max_input_chars=s.max_input_chars, min_output_chars=s.min_output_chars,
                      max_output_chars=s.max_output_chars).check()
        except Exception as exc:
            raise stage.error(str(exc)) from None

    def external_paths(self, stage: Stage) -> list[str]:
        return list(stage.symbolic.get("inputs") or []) + list(stage.symbolic.get("exclude_squad") or [])

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "build-qa", *s.inputs, "--output-dir", stage.dir]
        for key in ("seed", "validation_ratio", "chunk_chars", "max_input_chars", "min_output_chars", "max_output_chars",
                    "text_key"):
            if getattr(s, key) != getattr(_QA_DEFAULTS, key):
                args += ["--" + key.replace("_", "-"), getattr(s, key)]
        args += ["--strict"] if s.strict else []
        for f in s.exclude_squad:
            args += ["--exclude-squad", f]
        args += ["--report", stage.outputs["report"]] if s.report else []
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.qa import run_build_qa

        s = stage.settings
        stats = run_build_qa([Path(p) for p in s.inputs], stage.dir, s.seed, s.validation_ratio, s.chunk_chars,
                             s.max_input_chars, s.min_output_chars, s.max_output_chars, s.text_key, s.strict,
                             [Path(p) for p in s.exclude_squad], Path(stage.outputs["report"]) if s.report else None)
        wanted = ("articles_in", "articles_used", "pairs", "training_pairs", "validation_pairs", "dropped", "malformed_lines")
        return {k: v for k, v in summary_of(stats).items() if k in wanted}


@dataclass
class ConvertSquadSettings:
    file: str
    keep_title: bool = False
    articles: bool = False  # one LLM-jp corpus document per article instead of Q&A records
    style: str = "plain"  # plain | llm-jp-eval (the exact prompt `jft eval jsquad` sends)


@register
class ConvertSquad(Kind):
    """`jft convert-squad`. Output: output (WORKDIR/<stage>/<stage>.jsonl)."""

    name = "convert-squad"
    title = "convert SQuAD-format questions"
    Settings = ConvertSquadSettings

    def outputs(self, d: Path, s) -> dict:
        return {"output": str(d / f"{d.name}.jsonl")}

    def prepare(self, stage: Stage) -> None:
        choice(stage, "style", stage.settings.style, ("plain", "llm-jp-eval"))

    def external_paths(self, stage: Stage) -> list[str]:
        return [stage.symbolic.get("file")]

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "convert-squad", s.file, "--output", stage.outputs["output"]]
        args += ["--keep-title"] if s.keep_title else []
        args += ["--articles"] if s.articles else []
        args += ["--style", s.style] if s.style != "plain" else []
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.qa import run_convert_squad, run_squad_articles

        s = stage.settings
        out = Path(stage.outputs["output"])
        if s.articles:  # as the command: --articles writes corpus documents, --style does not apply
            return summary_of(run_squad_articles(Path(s.file), out, strip_title=not s.keep_title))
        return summary_of(run_convert_squad(Path(s.file), out, strip_title=not s.keep_title, style=s.style))


@dataclass
class TokenizerSettings:
    inputs: list[str]
    vocab_size: int = 2048
    min_frequency: int = 2
    text_key: str = "text"


@register
class TrainTokenizer(Kind):
    """`jft train-tokenizer`: a byte-level BPE tokenizer trained on JSONL text. Output: dir."""

    name = "train-tokenizer"
    title = "train a BPE tokenizer"
    Settings = TokenizerSettings

    def external_paths(self, stage: Stage) -> list[str]:
        return list(stage.symbolic.get("inputs") or [])

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "train-tokenizer", *s.inputs, "--output", stage.dir, "--vocab-size", s.vocab_size]
        args += ["--min-frequency", s.min_frequency] if s.min_frequency != 2 else []
        args += ["--text-key", s.text_key] if s.text_key != "text" else []
        return shell(args)

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.train import run_train_tokenizer

        s = stage.settings
        info = run_train_tokenizer([Path(p) for p in s.inputs], stage.dir, s.vocab_size, s.min_frequency, s.text_key)
        return {k: info[k] for k in ("vocab_size", "special_tokens", "documents", "characters")}
