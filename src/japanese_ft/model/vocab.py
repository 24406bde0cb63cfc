"""`jft extend-vocab`: add Japanese tokens to a model's byte-level BPE tokenizer and resize its embeddings.

`extend_tokenizer()` is the tokenizer-only part (no model needed); `extend_vocab()` adds the model:
new embedding rows start as the mean of the base tokens each new token decomposes into, and the
vocabulary is padded to a multiple of 64. Existing token ids never change, and every existing
embedding row (input and output) is copied unchanged. The merges are learned in `vocab_bpe.py`.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from japanese_ft.errors import UserError
from japanese_ft.model import vocab_bpe

DEFAULT_MAX_CHARS = 50_000_000
INIT_SCHEMES = ("mean",)
REPORT_FILE = "vocab_extension.json"
_TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
                    "chat_template.json")


def _sample(name: str) -> Path:
    return Path(str(resources.files("japanese_ft") / "sample" / name))


def default_heldout() -> Path:
    return _sample("heldout.jsonl")


def english_sample() -> Path:
    return _sample("english.jsonl")


@dataclass
class CorpusStats:
    files: list[str] = field(default_factory=list)
    documents: int = 0  # documents with text
    used_documents: int = 0  # after sampling down to max_chars
    characters: int = 0  # of the used documents
    sampled: bool = False
    malformed_lines: int = 0
    malformed_examples: list[str] = field(default_factory=list)


def _texts(paths, text_key: str, stats: CorpusStats | None = None):
    """Non-blank texts of JSONL files; malformed lines are counted in `stats` (and skipped)."""
    from japanese_ft.data.corpus import iter_records

    def malformed(loc, reason):
        if stats is not None:
            stats.malformed_lines += 1
            if len(stats.malformed_examples) < 5:
                stats.malformed_examples.append(f"{loc}: {reason}")

    for rec, _ in iter_records(paths, text_key, on_malformed=malformed):
        if rec[text_key].strip():
            yield rec[text_key]


def corpus_texts(paths, stats: CorpusStats, text_key: str = "text", max_chars: int | None = DEFAULT_MAX_CHARS,
                 seed: int = 0):
    """Texts of LLM-jp JSONL files; above `max_chars` characters, a seeded random sample of documents."""
    from japanese_ft.data.corpus import expand_inputs

    files = expand_inputs(paths)
    stats.files = [str(f) for f in files]
    keep = 1.0
    if max_chars:
        total = sum(len(t) for t in _texts(files, text_key))
        if total > max_chars:
            keep, stats.sampled = max_chars / total, True
    rng = random.Random(seed)
    for text in _texts(files, text_key, stats):
        stats.documents += 1
        if keep < 1.0 and rng.random() >= keep:
            continue
        stats.used_documents += 1
        stats.characters += len(text)
        yield text


@dataclass
class TokenizerExtension:
    """Result of `extend_tokenizer`: the base and extended tokenizers and what was added."""

    source: str  # the tokenizer's directory (or hub id)
    hf_tokenizer: object  # the base transformers tokenizer (special tokens, chat template)
    base: object  # tokenizers.Tokenizer of the base
    extended: object  # tokenizers.Tokenizer with the new merges and tokens
    extended_json: dict
    extension: vocab_bpe.Extension
    corpus: CorpusStats
    japanese_words: int

    @property
    def first_id(self) -> int:
        return self.extension.first_id

    @property
    def added(self) -> int:
        return len(self.extension.tokens)


def extend_tokenizer(tokenizer, corpus, add: int, min_frequency: int = 2, max_chars: int | None = DEFAULT_MAX_CHARS,
                     seed: int = 0, text_key: str = "text", say: Callable[[str], None] | None = None) -> TokenizerExtension:
    """Learn up to `add` Japanese tokens from `corpus` (LLM-jp JSONL files) as a continuation of the
    tokenizer's BPE. `tokenizer` is a directory/hub id or a loaded transformers tokenizer."""
    from japanese_ft.tokens import load_tokenizer

    if add <= 0:
        raise UserError(f"--add must be a positive number of tokens, got {add}")
    if min_frequency < 1:
        raise UserError(f"--min-frequency must be >= 1, got {min_frequency}")
    say = say or (lambda msg: None)
    name = str(tokenizer) if isinstance(tokenizer, (str, Path)) else getattr(tokenizer, "name_or_path", "tokenizer")
    hf_tok = load_tokenizer(str(tokenizer), chat_template=False) if isinstance(tokenizer, (str, Path)) else tokenizer
    base = hf_tok.backend_tokenizer
    base_json = json.loads(base.to_str())
    vocab_bpe.check_byte_level_bpe(base_json, name)
    first_id = len(vocab_bpe.contiguous_model_vocab(base_json, name))

    stats = CorpusStats()
    words = vocab_bpe.CorpusWords(base)
    say("reading and pre-tokenizing the corpus")
    for batch in vocab_bpe.iter_batches(corpus_texts(corpus, stats, text_key, max_chars, seed)):
        words.add(batch)
    names = ", ".join(stats.files)
    if stats.used_documents == 0:
        raise UserError(f"--corpus {names}: no documents with text (field {text_key!r})")
    if not words.words:
        raise UserError(f"--corpus {names}: no Japanese text (kana, kanji or full-width forms) to learn tokens from")

    n_merges = int(add * 1.25) + 64
    while True:
        say(f"learning merges (BPE over {len(words.words):,} distinct Japanese pre-tokens)")
        learned = vocab_bpe.learn_merges(words.words, n_merges, min_frequency)
        ext = vocab_bpe.map_back(learned, base_json, add, first_id)
        if len(ext.tokens) >= add or len(learned) < n_merges:  # enough, or the corpus has no more pairs
            break
        n_merges *= 2  # many learned merges were not Japanese: learn more and map again
    if not ext.tokens:
        raise UserError(f"--corpus {names}: learned no new Japanese tokens (corpus too small for --min-frequency {min_frequency})")
    ext_json, extended = vocab_bpe.build_extended(base, base_json, ext, name)
    return TokenizerExtension(name, hf_tok, base, extended, ext_json, ext, stats, words.occurrences)


def save_tokenizer(result: TokenizerExtension, out_dir) -> None:
    """The base tokenizer's own files (special tokens, chat template), copied as they are, plus the
    extended tokenizer.json. Checks that transformers loads it back as built."""
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = Path(result.source)
    if (source / "tokenizer_config.json").exists():
        for name in _TOKENIZER_FILES:
            if (source / name).exists():
                shutil.copyfile(source / name, out_dir / name)
    else:  # a hub id or a tokenizer object: let transformers write its files
        result.hf_tokenizer.save_pretrained(str(out_dir))
        for stale in ("vocab.json", "merges.txt"):  # slow-tokenizer files of the base vocabulary
            (out_dir / stale).unlink(missing_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(result.extended_json, ensure_ascii=False), encoding="utf-8")
    reloaded = AutoTokenizer.from_pretrained(str(out_dir))  # our invariant: transformers sees what we built
    probes = ["日本語の文章です。「東京」（とうきょう）", "English text, 123 and tabs\t.", "絵文字🍣と改行\n\n", "<|im_end|>"]
    same = all(reloaded(p, add_special_tokens=False)["input_ids"] == result.extended.encode(p, add_special_tokens=False).ids
               for p in probes)
    if len(reloaded) != result.extended.get_vocab_size() or not same:
        raise RuntimeError(f"{out_dir}: transformers ({type(reloaded).__name__}) does not load the extended tokenizer as built")


def chars_per_token(tokenizer, texts: list[str]) -> float:
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return round(sum(len(t) for t in texts) / max(tokens, 1), 4)


def measure(result: TokenizerExtension, heldout, english, top: int = 20) -> dict:
    """Characters per token before/after on held-out Japanese and English, and the most used new tokens."""
    ja, en = list(_texts(heldout, "text")), list(_texts(english, "text"))
    if not ja:
        raise UserError(f"--heldout {', '.join(map(str, heldout))}: no documents with text")
    counts = Counter()
    for enc in result.extended.encode_batch(ja, add_special_tokens=False):
        counts.update(i for i in enc.ids if i >= result.first_id)
    return {
        "japanese": {"files": [str(p) for p in heldout], "characters": sum(map(len, ja)),
                     "before": chars_per_token(result.base, ja), "after": chars_per_token(result.extended, ja)},
        "english": {"files": [str(p) for p in english], "characters": sum(map(len, en)),
                    "before": chars_per_token(result.base, en), "after": chars_per_token(result.extended, en)},
        "top_new_tokens": [{"id": i, "token": vocab_bpe.display_token(result.extended.id_to_token(i)), "count": c}
                           for i, c in counts.most_common(top)],
    }


def init_new_rows(model, result: TokenizerExtension, rows: int, seed: int = 0) -> bool:
    """Resize to `rows` and set each new token's input row (and output row, when untied) to the mean
    of its base tokens' rows. Returns whether the embeddings are tied."""
    import torch

    old_rows = model.get_input_embeddings().weight.shape[0]
    torch.manual_seed(seed)  # padding rows beyond the old matrix get transformers' (seeded) init
    if rows != old_rows:
        model.resize_token_embeddings(rows, mean_resizing=False)
    inp = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is None or out.weight.data_ptr() == inp.data_ptr()
    parts = [vocab_bpe.decompose(result.base, tok) for tok in result.extension.tokens]
    flat = torch.tensor([i for p in parts for i in p], dtype=torch.long)
    segment = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(p) for p in parts]))
    lo, hi = result.first_id, result.first_id + len(parts)
    with torch.no_grad():
        for weight in [inp] if tied else [inp, out.weight]:
            sums = torch.zeros(len(parts), weight.shape[1], dtype=torch.float32).index_add_(0, segment, weight[flat].float())
            weight[lo:hi] = (sums / torch.bincount(segment, minlength=len(parts)).unsqueeze(1)).to(weight.dtype)
    return tied


def extend_vocab(model_dir, corpus, add: int, output, seed: int = 0, min_frequency: int = 2, init: str = "mean",
                 heldout=None, max_chars: int | None = DEFAULT_MAX_CHARS, report=None, text_key: str = "text",
                 say: Callable[[str], None] | None = None) -> dict:
    """Extend a model's tokenizer with up to `add` Japanese tokens learned from `corpus`, resize the model,
    and save both (plus the generation config) to `output`. Returns the report (also written to
    OUTPUT/vocab_extension.json and, if given, to `report`)."""
    import time

    from japanese_ft.files import atomic_output, write_json
    from japanese_ft.model.load import load_model
    from japanese_ft.model.presets import padded_vocab_size
    from japanese_ft.runtime import stored_dtype
    from japanese_ft.tokens import generation_config_for

    start = time.time()
    say = say or (lambda msg: None)
    model_dir, output = Path(model_dir), Path(output)
    if init not in INIT_SCHEMES:
        raise UserError(f"--init {init!r}: choose one of {', '.join(INIT_SCHEMES)}")
    if not (model_dir / "config.json").exists():
        raise UserError(f"--model {model_dir}: no config.json here (a Hugging Face model directory is needed)")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output}: directory exists and is not empty")
    heldout = [Path(p) for p in (heldout or [default_heldout()])]
    result = extend_tokenizer(model_dir, corpus, add, min_frequency, max_chars, seed, text_key, say)
    say("loading the model")
    dtype = stored_dtype(model_dir)
    model = load_model(str(model_dir), dtype=dtype, attn_implementation=None)
    old_rows = model.get_input_embeddings().weight.shape[0]
    if old_rows < result.first_id:
        raise UserError(f"--model {model_dir}: {old_rows} embedding rows but the tokenizer has {result.first_id} tokens")
    new_len = result.extended.get_vocab_size()
    rows = padded_vocab_size(max(old_rows, new_len))
    tied = init_new_rows(model, result, rows, seed)

    say("measuring characters per token")
    info = {
        "model": str(model_dir), "output": str(output), "seed": seed, "init": init, "min_frequency": min_frequency,
        "base_tokenizer_size": result.first_id, "first_new_id": result.first_id, "added_tokens": result.added,
        "requested_tokens": add, "tokenizer_size": new_len, "embedding_rows": {"before": old_rows, "after": rows},
        "tied_embeddings": tied, "dtype": dtype,
        "merges": {k: v for k, v in asdict(result.extension).items() if k not in ("merges", "tokens", "first_id")}
        | {"appended": len(result.extension.merges)},
        "corpus": asdict(result.corpus) | {"japanese_pre_tokens": result.japanese_words},
        "chars_per_token": measure(result, heldout, [english_sample()]),
    }
    say("saving")
    with atomic_output(output, directory=True) as tmp:
        model.save_pretrained(str(tmp))
        if (model_dir / "generation_config.json").exists():
            shutil.copyfile(model_dir / "generation_config.json", tmp / "generation_config.json")
        else:
            generation_config_for(result.hf_tokenizer, model.config).save_pretrained(str(tmp))
        save_tokenizer(result, tmp)
        info["seconds"] = round(time.time() - start, 1)
        write_json(tmp / REPORT_FILE, info)
    if report is not None:
        write_json(report, info)
    return info
