"""The `jft` command line: parse arguments, call the library, print a summary.

No logic lives here that a test would need; every command is a library function first.
User errors (`UserError`) print one line and exit 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from japanese_ft.errors import UserError

app = typer.Typer(
    help="jft: adapt open LLMs to Japanese - corpus preparation, continual pre-training, SFT/LoRA, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    pass  # declares --debug for the help text; `main` reads it from the arguments


# ---- corpus commands (foundation) ----------------------------------------------------------


@app.command("prepare-corpus")
def prepare_corpus_cmd(
    inputs: List[Path] = typer.Argument(..., help="JSONL / JSONL.gz files or directories of them."),
    tokenizer: str = typer.Option(..., "--tokenizer", help="Tokenizer directory or hub id."),
    output_prefix: Path = typer.Option(..., "--output-prefix", help="Writes PREFIX.bin, PREFIX.idx, PREFIX.stats.json."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field holding the document text."),
    normalize: str = typer.Option("nfc", "--normalize", help="Unicode normalization: nfc, nfkc or none."),
    clean: str = typer.Option("whitespace", "--clean", help="whitespace (collapse space runs, 3+ newlines, strip) or none (text as read)."),
    add_special_tokens: bool = typer.Option(False, "--add-special-tokens/--no-add-special-tokens",
                                            help="Add the tokenizer's BOS/EOS like tokenizer(text).input_ids (default: off, as Megatron's preprocess_data.py)."),
    filter_: bool = typer.Option(False, "--filter", help="Apply the Swallow-style quality rules."),
    filter_option: List[str] = typer.Option([], "--filter-option", help="Override a quality threshold, KEY=VALUE (repeatable)."),
    dedup: str = typer.Option("exact", "--dedup", help="exact, near (MinHash over character 5-grams) or none."),
    no_eod: bool = typer.Option(False, "--no-eod", help="Do not end each document with the EOD token."),
    workers: int = typer.Option(1, "--workers", help="Tokenizer worker processes (output is identical for any count)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Process slice K of N of the input, e.g. 2/8."),
) -> None:
    """Normalize, filter, deduplicate and tokenize a JSONL corpus into Megatron .bin/.idx files."""
    from japanese_ft.commands.corpus import run_prepare_corpus

    run_prepare_corpus(
        inputs, tokenizer, output_prefix, text_key, normalize, filter_, filter_option, dedup, not no_eod, workers, strict, shard,
        clean=clean, add_special_tokens=add_special_tokens,
    )


@app.command("merge-corpus")
def merge_corpus_cmd(
    prefixes: List[Path] = typer.Argument(..., help="Token-file prefixes to concatenate, in order."),
    output_prefix: Path = typer.Option(..., "--output-prefix", help="Prefix of the merged .bin/.idx."),
    dedup: str = typer.Option("auto", "--dedup", help="auto (from the inputs' stats), exact or none."),
) -> None:
    """Concatenate token files (dropping exact duplicates across shards when they were deduplicated)."""
    from japanese_ft.commands.corpus import run_merge_corpus

    run_merge_corpus(prefixes, output_prefix, dedup)


@app.command("inspect-corpus")
def inspect_corpus_cmd(
    prefix: Path = typer.Argument(..., help="Token-file prefix (PREFIX.bin/.idx)."),
    show: Optional[int] = typer.Option(None, "--show", help="Decode document K."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Tokenizer for --show."),
) -> None:
    """Print document/token counts of a token file and optionally decode one document."""
    from japanese_ft.commands.corpus import run_inspect_corpus

    run_inspect_corpus(prefix, show, tokenizer)


# ---- Q&A data commands (issue 3) ------------------------------------------------------------


@app.command("build-qa")
def build_qa_cmd(
    inputs: List[Path] = typer.Argument(..., help="JSONL / JSONL.gz article files or directories of them."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Writes DIR/training.jsonl, DIR/validation.jsonl, DIR/stats.json."),
    seed: int = typer.Option(42, "--seed", help="Chooses phrasings and the train/validation split (same seed, same bytes)."),
    validation_ratio: float = typer.Option(0.05, "--validation-ratio", help="Share of articles (not pairs) put in validation."),
    chunk_chars: int = typer.Option(800, "--chunk-chars", help="Target size of the sentence-aligned chunks."),
    max_input_chars: int = typer.Option(200, "--max-input-chars", help="Drop pairs whose question is longer."),
    min_output_chars: int = typer.Option(50, "--min-output-chars", help="Drop pairs whose answer is shorter."),
    max_output_chars: int = typer.Option(1500, "--max-output-chars", help="Drop pairs whose answer is longer."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field holding the article text."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed line."),
    exclude_squad: List[Path] = typer.Option([], "--exclude-squad", help="Skip articles whose title is in this SQuAD JSON (repeatable), e.g. the JSQuAD eval set."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report: pairs and drop reasons per kind, text repairs, examples."),
) -> None:
    """Turn Wikipedia-style articles into question/answer pairs for SFT."""
    from japanese_ft.commands.qa import run_build_qa

    run_build_qa(inputs, output_dir, seed, validation_ratio, chunk_chars, max_input_chars, min_output_chars,
                 max_output_chars, text_key, strict, exclude_squad, report=report)


@app.command("convert-squad")
def convert_squad_cmd(
    file: Path = typer.Argument(..., help="SQuAD v1.1/v2.0 JSON, e.g. JaQuAD or jsquad-train-v1.3.json."),
    output: Path = typer.Option(..., "--output", help="Output JSONL: SFT records {input, output, meta}, or with --articles corpus documents {text, meta}."),
    keep_title: bool = typer.Option(False, "--keep-title", help="Keep JSQuAD's 'title [SEP] ' context prefix."),
    style: str = typer.Option("plain", "--style", help="SFT input: plain (文章:…\\n質問:…) or llm-jp-eval (the whole prompt jft eval jsquad sends)."),
    articles: bool = typer.Option(False, "--articles", help="Write each unique article's paragraphs as one LLM-jp JSONL document (a CPT corpus)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed question or paragraph (default: skip and count it)."),
) -> None:
    """Convert SQuAD-format reading comprehension (JSQuAD, JaQuAD) to SFT records or to a corpus of its articles."""
    from japanese_ft.commands.qa import run_convert_squad, run_squad_articles

    if articles:
        run_squad_articles(file, output, strip_title=not keep_title, strict=strict)
    else:
        run_convert_squad(file, output, strip_title=not keep_title, style=style, strict=strict)


@app.command("download-corpus")
def download_corpus_cmd(
    name: str = typer.Argument(..., help="Corpus name: ja_wiki (LLM-jp Corpus v3 Japanese Wikipedia)."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Directory for the downloaded files."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Mirror or local server to fetch from instead of the LLM-jp GitLab."),
    files: List[str] = typer.Option([], "--files", help="Only these file names (repeatable or comma-separated), e.g. train_0.jsonl.gz."),
    sha256: List[str] = typer.Option([], "--sha256", help="Expected checksum NAME=HEX (repeatable) or @SHA256SUMS file."),
    retries: int = typer.Option(5, "--retries", help="Retries per file after a broken connection or server error."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds without data before a connection counts as broken."),
) -> None:
    """Download corpus files with resume (HTTP Range), retries and size/checksum checks."""
    from japanese_ft.commands.qa import run_download_corpus

    run_download_corpus(name, output_dir, base_url, files, sha256, retries, timeout)


# ---- model and training commands (issue 4) --------------------------------------------------


@app.command("init-model")
def init_model_cmd(
    preset: str = typer.Option(..., "--preset", help="tiny (2 layers, 64 wide) or qwen2.5-0.5b (the exact architecture)."),
    tokenizer: str = typer.Option(..., "--tokenizer", help="Tokenizer directory or hub id (vocab padded to a multiple of 64)."),
    output: Path = typer.Option(..., "--output", help="Directory for the HF checkpoint."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the initialisation."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (the preset's), float32, bfloat16 or float16."),
) -> None:
    """Write a randomly initialised Qwen2-architecture HF checkpoint (safetensors, config, tokenizer)."""
    from japanese_ft.commands.train import run_init_model

    run_init_model(preset, tokenizer, output, seed, dtype)


@app.command("train-tokenizer")
def train_tokenizer_cmd(
    inputs: List[Path] = typer.Argument(..., help="JSONL / JSONL.gz files or directories of them."),
    output: Path = typer.Option(..., "--output", help="Directory for the Hugging Face tokenizer."),
    vocab_size: int = typer.Option(2048, "--vocab-size", help="Vocabulary size, special tokens included."),
    min_frequency: int = typer.Option(2, "--min-frequency", help="Merge only pairs seen at least this often."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field holding the text."),
) -> None:
    """Train a small byte-level BPE tokenizer (ChatML template) on JSONL text, e.g. for a tiny model."""
    from japanese_ft.commands.train import run_train_tokenizer

    run_train_tokenizer(inputs, output, vocab_size, min_frequency, text_key)


_PICKLE_HELP = ("Also load pickle weights (pytorch_model.bin, adapter_model.bin) when there are no .safetensors; "
                "unpickling can run code, so only for files you trust.")


@app.command("import-model")
def import_model_cmd(
    source: str = typer.Argument(..., help="A local Hugging Face model directory, a hub id, or a .gguf file."),
    output: Path = typer.Option(..., "--output", help="Directory for the safetensors checkpoint (must be new or empty)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (GGUF: float32; HF: the stored dtype), bfloat16 or float32."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the model's own code (HF sources only)."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help=_PICKLE_HELP),
) -> None:
    """Import a pretrained model (HF directory, hub id or GGUF) as a plain safetensors checkpoint."""
    from japanese_ft.commands.train import run_import_model

    run_import_model(source, output, dtype, trust_remote_code, allow_pickle)


@app.command("extend-vocab")
def extend_vocab_cmd(
    model: Path = typer.Option(..., "--model", help="HF model directory with a byte-level BPE tokenizer."),
    corpus: List[Path] = typer.Option(..., "--corpus", help="Japanese LLM-jp JSONL / JSONL.gz file or directory (repeatable)."),
    add: int = typer.Option(..., "--add", help="Number of tokens to add (e.g. 16000)."),
    output: Path = typer.Option(..., "--output", help="Directory for the extended model and tokenizer."),
    seed: int = typer.Option(0, "--seed", help="Seeds the corpus sample (above --max-chars) and the padding rows."),
    min_frequency: int = typer.Option(2, "--min-frequency", help="A merge needs at least this many occurrences."),
    init: str = typer.Option("mean", "--init", help="New embedding rows: mean (of the base tokens each new token splits into)."),
    heldout: Optional[List[Path]] = typer.Option(None, "--heldout", help="Held-out Japanese JSONL for the chars/token report (default: the built-in sample)."),
    max_chars: int = typer.Option(50_000_000, "--max-chars", help="Learn from a seeded sample of documents of about this many characters (0 = all)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the report JSON here."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field holding the document text."),
) -> None:
    """Add Japanese tokens to a model's tokenizer (continued BPE) and resize its embeddings."""
    from japanese_ft.commands.vocab import run_extend_vocab

    run_extend_vocab(model, corpus, add, output, seed, min_frequency, init, heldout, max_chars, report, text_key)


train_app = typer.Typer(help="Train: continual pre-training (cpt), full SFT (sft) or LoRA SFT (lora). Re-run to resume.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

_TRAIN_HELP = {
    "cpt": """Continual pre-training: every parameter trains on token files (jft prepare-corpus output).

    data.train lists token-file prefixes (PREFIX.bin/.idx), optionally weighted ("0.7 data/a");
    final/ is a Hugging Face checkpoint. Recipes: configs/*-cpt.yaml. Re-run the same command to
    resume from the newest checkpoint. Keys and defaults: docs/training.md.""",
    "sft": """Full supervised fine-tuning: every parameter trains on {"input","output"} or {"messages"} JSONL.

    The loss covers the assistant's answers only; examples are packed into data.seq_length rows.
    final/ is a Hugging Face checkpoint. Recipes: configs/*-sft.yaml. Re-run the same command to
    resume. Keys and defaults: docs/training.md.""",
    "lora": """LoRA fine-tuning: the base stays frozen and only PEFT adapters train, on the same JSONL as sft.

    lora.r, lora.alpha, lora.dropout and lora.target_modules shape the adapters; final/ is a PEFT
    adapter (use it with --adapter, or merge it with jft export). Recipes: configs/*-lora.yaml.
    Re-run the same command to resume. Keys and defaults: docs/training.md.""",
}


def _train_command(mode: str) -> None:
    def command(
        overrides: Optional[List[str]] = typer.Argument(None, metavar="KEY=VALUE",
                                                        help="Config overrides with dotted keys, e.g. train.lr=1e-4 data.train=[a.jsonl]."),
        config: Optional[Path] = typer.Option(None, "--config", help="Run config YAML (see configs/); without it, the overrides are the whole config."),
    ) -> None:
        from japanese_ft.commands.train import run_train

        run_train(mode, config, list(overrides or []))

    command.__doc__ = _TRAIN_HELP[mode]
    train_app.command(mode, context_settings={"allow_extra_args": False})(command)


for _mode in ("cpt", "sft", "lora"):
    _train_command(_mode)


@app.command("export")
def export_cmd(
    base: str = typer.Option(..., "--base", help="Base HF checkpoint the adapter was trained on."),
    adapter: Path = typer.Option(..., "--adapter", help="LoRA adapter directory (a lora run's final/)."),
    output: Path = typer.Option(..., "--output", help="Directory for the merged HF checkpoint."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (the base checkpoint's), float32, bfloat16 or float16."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help=_PICKLE_HELP),
) -> None:
    """Merge a LoRA adapter into its base model and save an HF checkpoint."""
    from japanese_ft.commands.train import run_export

    run_export(base, adapter, output, dtype, allow_pickle)


# ---- evaluation and generation commands (issue 5) -------------------------------------------


eval_app = typer.Typer(help="Evaluate a model: jsquad, jcommonsenseqa, perplexity, suite.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

_MODEL_HELP = "Model checkpoint directory (config.json + safetensors)."
_ADAPTER_HELP = "PEFT/LoRA adapter directory trained on --model."


_DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N."
_DTYPE_HELP = "auto (bfloat16 on a GPU that supports it, else float32), float32, bfloat16 or float16."
_LABEL_HELP = "Name of this run in results and comparisons (default: the model directory's name, + the adapter's)."
_MISMATCH_HELP = "Apply --adapter even when the base it was trained on differs from --model (config or weights)."
_MAX_NEW_HELP = "Stop after this many generated tokens."
_TOP_P_HELP = "Nucleus sampling: keep the smallest set of tokens whose probabilities reach this (1 = all); with --temperature > 0."
_CHAT_HELP = "Send the prompt as one user turn through the model's chat template (stops at its end-of-turn token)."
_PROTOCOL_HELP = "jft (default) or llm-jp-eval (v1.3.0: 4 shots from the train split given as --shots-file, seed 42, stop at EOS only)."


@eval_app.command("jsquad")
def eval_jsquad_cmd(
    model: Path = typer.Option(..., "--model", help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="JSQuAD / SQuAD-format JSON."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
    output: Optional[Path] = typer.Option(None, "--output", help="Result JSON (default results/LABEL-jsquad.json); examples go beside it."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score only the first N questions."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Few-shot examples per prompt (jft: 0; llm-jp-eval: 4)."),
    shots_file: Optional[Path] = typer.Option(None, "--shots-file", help="Take shots from this file (SQuAD JSON; jft also JSONL input/output) instead of the other questions."),
    batch_size: str = typer.Option("auto", "--batch-size", help="Questions per batch, or auto (from free GPU memory; 8 on CPU)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="Default 25, llm-jp-eval's output_length."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the deterministic shot selection (jft: 0; llm-jp-eval: 42)."),
    strip_title: bool = typer.Option(False, "--strip-title", help="Drop the 'title [SEP] ' prefix of contexts (llm-jp-eval keeps it)."),
    chat: bool = typer.Option(False, "--chat", help=_CHAT_HELP),
    protocol: str = typer.Option("jft", "--protocol", help=_PROTOCOL_HELP),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=_DTYPE_HELP),
    label: Optional[str] = typer.Option(None, "--label", help=_LABEL_HELP),
    allow_base_mismatch: bool = typer.Option(False, "--allow-base-mismatch", help=_MISMATCH_HELP),
) -> None:
    """JSQuAD reading comprehension, llm-jp-eval prompt and char-F1."""
    from japanese_ft.commands.evaluate import run_eval_jsquad

    run_eval_jsquad(model, adapter, data, output, limit, shots, shots_file, batch_size, max_new_tokens, seed, device, dtype,
                    label, strip_title, allow_base_mismatch, chat, protocol)


@eval_app.command("jcommonsenseqa")
def eval_jcqa_cmd(
    model: Path = typer.Option(..., "--model", help=_MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="JSONL with question, choice0..choice4, label."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
    output: Optional[Path] = typer.Option(None, "--output", help="Result JSON (default results/LABEL-jcommonsenseqa.json)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score only the first N questions."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Few-shot examples per prompt (jft: 0, other questions; llm-jp-eval: 4)."),
    shots_file: Optional[Path] = typer.Option(None, "--shots-file", help="Take shots from this JSONL (e.g. the JCommonsenseQA train split)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Questions per batch (log-likelihood ranking and generation)."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="For accuracy_generation; default 1 (llm-jp-eval's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the shot selection (jft: 0; llm-jp-eval: 42)."),
    no_generation: bool = typer.Option(False, "--no-generation", help="Only the log-likelihood ranking."),
    chat: bool = typer.Option(False, "--chat", help=_CHAT_HELP + " Applies to the generated answer; the ranking stays raw."),
    protocol: str = typer.Option("jft", "--protocol", help=_PROTOCOL_HELP),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=_DTYPE_HELP),
    label: Optional[str] = typer.Option(None, "--label", help=_LABEL_HELP),
    allow_base_mismatch: bool = typer.Option(False, "--allow-base-mismatch", help=_MISMATCH_HELP),
) -> None:
    """JCommonsenseQA: accuracy by log-likelihood ranking and by generating the choice number."""
    from japanese_ft.commands.evaluate import run_eval_jcqa

    run_eval_jcqa(model, adapter, data, output, limit, shots, batch_size, max_new_tokens, seed, device, dtype, label,
                  no_generation, allow_base_mismatch, chat, protocol, shots_file)


@eval_app.command("perplexity")
def eval_perplexity_cmd(
    model: Path = typer.Option(..., "--model", help=_MODEL_HELP),
    data: List[Path] = typer.Option(..., "--data", help="Token-file PREFIX (PREFIX.bin/.idx) or JSONL file(s)/directories."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
    output: Optional[Path] = typer.Option(None, "--output", help="Result JSON (default results/LABEL-perplexity.json)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N documents."),
    seq_length: int = typer.Option(2048, "--seq-length", help="Window length, as in training."),
    stride: Optional[int] = typer.Option(None, "--stride", help="Window step (default = --seq-length: no overlap)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Windows per forward pass."),
    text_key: str = typer.Option("text", "--text-key", help="JSONL field with the text."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=_DTYPE_HELP),
    label: Optional[str] = typer.Option(None, "--label", help=_LABEL_HELP),
    allow_base_mismatch: bool = typer.Option(False, "--allow-base-mismatch", help=_MISMATCH_HELP),
) -> None:
    """Perplexity and bits per character over held-out text."""
    from japanese_ft.commands.evaluate import run_eval_perplexity

    run_eval_perplexity(model, adapter, data, output, limit, batch_size, seq_length, stride, text_key, device, dtype, label,
                        allow_base_mismatch)


@eval_app.command("suite")
def eval_suite_cmd(
    model: Path = typer.Option(..., "--model", help=_MODEL_HELP),
    config: Path = typer.Option(..., "--config", help="evals YAML, e.g. configs/evals-jglue.yaml."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
    output: Optional[Path] = typer.Option(None, "--output", help="Suite result JSON (default results/LABEL-suite.json)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Override every entry's limit (quick runs)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Override every entry's batch size."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=_DTYPE_HELP),
    label: Optional[str] = typer.Option(None, "--label", help=_LABEL_HELP),
    allow_base_mismatch: bool = typer.Option(False, "--allow-base-mismatch", help=_MISMATCH_HELP),
) -> None:
    """Run the evaluations listed in a YAML file, loading the model once."""
    from japanese_ft.commands.evaluate import run_eval_suite

    run_eval_suite(model, adapter, config, output, limit, device, dtype, label, allow_base_mismatch, batch_size)


@app.command("compare")
def compare_cmd(
    results: List[Path] = typer.Argument(..., help="Result JSON files (single evals or suites), first = baseline."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated names for the runs."),
    chart: Optional[Path] = typer.Option(None, "--chart", help="Bar chart PNG (default compare.png beside the last result)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the table as JSON (labels, metrics, values)."),
) -> None:
    """Before/after table of evaluation results and a bar chart."""
    from japanese_ft.commands.evaluate import run_compare

    run_compare(results, [s.strip() for s in labels.split(",")] if labels else None, chart, output)


@app.command("generate")
def generate_cmd(
    model: Path = typer.Option(..., "--model", help=_MODEL_HELP),
    prompt: str = typer.Option(..., "--prompt", help="Prompt text ('-' reads stdin)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
    chat: bool = typer.Option(False, "--chat", help="Wrap the prompt as a user turn with the chat template (ChatML if none)."),
    system: Optional[str] = typer.Option(None, "--system", help="System message for --chat."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help=_MAX_NEW_HELP),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    top_p: float = typer.Option(1.0, "--top-p", help=_TOP_P_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=_DTYPE_HELP),
    allow_base_mismatch: bool = typer.Option(False, "--allow-base-mismatch", help=_MISMATCH_HELP),
) -> None:
    """Generate a continuation (or a chat reply) for one prompt."""
    from japanese_ft.commands.evaluate import run_generate

    run_generate(model, adapter, prompt, chat, max_new_tokens, temperature, top_p, seed, system, device, dtype,
                 allow_base_mismatch)


@app.command("chat")
def chat_cmd(
    model: Path = typer.Option(..., "--model", help=_MODEL_HELP),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help=_ADAPTER_HELP),
    system: Optional[str] = typer.Option(None, "--system", help="System message."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help=_MAX_NEW_HELP),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    top_p: float = typer.Option(1.0, "--top-p", help=_TOP_P_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling."),
    device: str = typer.Option("auto", "--device", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", "--dtype", help=_DTYPE_HELP),
    allow_base_mismatch: bool = typer.Option(False, "--allow-base-mismatch", help=_MISMATCH_HELP),
) -> None:
    """Interactive chat with history (/reset clears it, /exit or Ctrl-D quits)."""
    from japanese_ft.commands.evaluate import run_chat

    run_chat(model, adapter, system, max_new_tokens, temperature, top_p, seed, device, dtype, allow_base_mismatch)


# ---- pipeline: run, report, demo; doctor, status ---------------------------------------------


@app.command("run")
def run_cmd(
    recipe: str = typer.Argument(..., help="Recipe YAML file (configs/recipes/) or a built-in recipe name (demo)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="name=value sets a recipe variable; STAGE.key=value a stage setting."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan as jft commands (which stages would run); run nothing."),
    start: Optional[str] = typer.Option(None, "--from", help="Run this stage and every later one, even if up to date."),
    only: Optional[str] = typer.Option(None, "--only", help="Run only this stage (its inputs must exist)."),
    until: List[str] = typer.Option([], "--until", help="Run only this stage and the stages it needs, skipping up-to-date ones (repeatable)."),
    force: List[str] = typer.Option([], "--force", help="Run this stage and everything downstream of it again (repeatable)."),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Work directory (default: the recipe's workdir)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="Processes per training stage (default: the recipe's, else every visible GPU)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A named set of variable values from the recipe's presets."),
) -> None:
    """Run a recipe: every stage of the pipeline, skipping the ones that are up to date."""
    from japanese_ft.commands.run import run_recipe

    run_recipe(recipe, list(overrides or []), dry_run, start, only, list(force), workdir, gpus, preset, until=list(until))


@app.command("report")
def report_cmd(
    run: List[Path] = typer.Option([], "--run", help="A training run directory (repeatable): loss curves, final losses."),
    result: List[Path] = typer.Option([], "--result", help="An evaluation result JSON (repeatable): comparison, generations."),
    output: Path = typer.Option(..., "--output", help="Directory for report.md, report.html and plots/."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="A jft run manifest (WORKDIR/jft-run.json): adds stage times, data and commands."),
    title: Optional[str] = typer.Option(None, "--title", help="The report's title."),
) -> None:
    """Write report.md and a self-contained report.html from training runs and evaluation results."""
    from japanese_ft.commands.report import run_report

    run_report(list(run), list(result), output, manifest, title)


@app.command("demo")
def demo_cmd(
    output_dir: Path = typer.Option(Path("jft-demo"), "--output-dir", help="Work directory for everything the demo writes (report/report.html inside)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer steps and questions (under a minute; for tests)."),
    force: bool = typer.Option(False, "--force", help="Run every stage again, even those that are up to date."),
) -> None:
    """The whole pipeline offline on the built-in Japanese sample, with a report (CPU, about a minute): jft run demo."""
    from japanese_ft.commands.demo import run_demo_command

    run_demo_command(output_dir, quick, force)


@app.command("doctor")
def doctor_cmd(
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Check that this tokenizer directory or hub id loads."),
    model: Optional[str] = typer.Option(None, "--model", help="Check that this model checkpoint (directory or hub id) loads."),
    path: Path = typer.Option(Path("."), "--path", help="Where free disk space is checked (runs, checkpoints)."),
) -> None:
    """Check the environment: Python, torch, CUDA/GPUs, bf16, torch.compile, disk; a one-line fix per problem."""
    from japanese_ft.commands.doctor import run_doctor

    run_doctor(tokenizer, model, path)  # a failed --tokenizer/--model check raises UserError (exit 2)


@app.command("status")
def status_cmd(
    run_dir: Path = typer.Argument(..., help="A jft run work directory, a training run's output_dir, or a directory of runs."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until the run finishes (Ctrl-C stops watching)."),
    interval: float = typer.Option(5.0, "--interval", help="Seconds between refreshes with --watch."),
) -> None:
    """Last step, loss, validation loss, tokens/s, ETA and checkpoints of a running or finished run."""
    from japanese_ft.commands.status import run_status

    run_status(run_dir, watch, interval)


from japanese_ft.commands.help_format import use_classic_help  # noqa: E402  (after every command is registered)

use_classic_help(app, eval_app, train_app)
# click's usage-error base class, from the click typer runs on (typer >= 0.2x vendors its own copy of click)
_CLICK_ERROR = next(k for k in typer.BadParameter.__mro__ if k.__name__ == "ClickException")


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: run the app, turning UserError into one line and exit code 2."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rv = app(args=args, standalone_mode=False)  # returns typer.Exit's code instead of raising
    except UserError as exc:
        if debug:
            raise
        from japanese_ft.ui import error

        error(str(exc))
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        from japanese_ft.ui import error

        error("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except _CLICK_ERROR as exc:  # usage errors: a missing option, an unknown command, a bad value
        exc.show()
        return 2
    if rv == 130:  # typer turns Ctrl-C inside a command into a silent exit code 130
        from japanese_ft.ui import error

        error("interrupted")
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
