"""Evaluation suites: several evaluations of one model, the model loaded once.

A suite is a YAML file (`jft eval suite --config FILE`) or, in a recipe, an inline `evals:` list:

    batch_size: 16          # optional defaults for every entry that has the setting
    evals:
      - task: jsquad
        data: ../../shared/data/jglue/jsquad-valid-v1.3.json
        shots: 2
        limit: 1000
      - name: jsquad_chat    # the same prompt as a user turn of the chat template
        task: jsquad
        data: ../../shared/data/jglue/jsquad-valid-v1.3.json
        chat: true
      - task: jcommonsenseqa
        data: ../../shared/data/jglue/jcommonsenseqa-valid-v1.3.json
      - name: ppl_wiki       # optional; defaults to the task (made unique)
        task: perplexity
        data: ../../shared/data/ja_wiki_sample/train_0.jsonl
        seq_length: 1024
      - task: generate       # sample generations, greedy; kept in the result for reports
        max_new_tokens: 40
        prompts: ["富士山は、", {text: 寿司について教えてください。, chat: true}]

Relative `data`/`shots_file` paths in a file are resolved against the file's directory.

Each task is one small dataclass (its settings, checked by `config.from_dict`) with a `run` method;
add a field there to give a task a new setting, or a class to `TASKS` for a new task.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

from japanese_ft.errors import UserError

DEFAULT_KEYS = ("batch_size", "limit", "seed")  # suite-level defaults, applied to entries that have them


def _resolve_protocol(entry, where: str, **extra) -> None:
    """Fill the protocol's defaults into shots / seed / max_new_tokens (eval/protocol.py): None means
    "the protocol's value" (jft: 0 shots, seed 0; llm-jp-eval: 4 shots from shots_file, seed 42)."""
    from japanese_ft.eval.protocol import resolve

    try:
        p = resolve(entry.task, entry.protocol, entry.shots, entry.shots_file, entry.seed, entry.max_new_tokens,
                    entry.chat, data=entry.data, **extra)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    entry.shots, entry.seed, entry.max_new_tokens = p["shots"], p["seed"], p["max_new_tokens"]


@dataclass
class JsquadEntry:
    """JSQuAD reading comprehension: llm-jp-eval prompt, greedy decoding, char-F1 / exact match."""

    data: str
    name: str = ""
    shots: int | None = None  # None: the protocol's (jft 0, llm-jp-eval 4)
    shots_file: str | None = None
    limit: int | None = None
    batch_size: str = "auto"  # auto: sized from free GPU memory (8 on CPU), or an integer
    max_new_tokens: int | None = None  # None: 25, as llm-jp-eval
    seed: int | None = None  # None: the protocol's (jft 0, llm-jp-eval 42)
    strip_title: bool = False
    chat: bool = False  # the prompt as one user turn of the model's chat template
    protocol: str = "jft"  # jft | llm-jp-eval (eval/protocol.py)
    task: ClassVar[str] = "jsquad"
    paths: ClassVar[tuple] = ("data", "shots_file")

    def check(self, where: str) -> None:
        _positive(where, limit=self.limit)
        self.batch_size = _auto_or_positive(where, self.batch_size)
        _resolve_protocol(self, where, strip_title=self.strip_title)

    def run(self, model, tokenizer, progress_factory=None) -> tuple[dict, list]:
        from japanese_ft.eval.jsquad import evaluate_jsquad, read_shots, read_squad
        from japanese_ft.eval.prompts import Shot

        items, skipped = read_squad(self.data, strip_title=self.strip_title)
        if self.protocol == "llm-jp-eval":  # its train split, as SQuAD JSON, every answerable question in file order
            pool = [Shot(it.input, it.answers[0]) for it in read_squad(self.shots_file)[0]] if self.shots_file else None
        else:
            pool = read_shots(self.shots_file, self.strip_title) if self.shots_file else None
        todo = items[: self.limit] if self.limit else items
        with _progress(progress_factory, self.name, len(todo)) as update:
            summary, records = evaluate_jsquad(model, tokenizer, todo, shots=self.shots, shot_pool=pool, pool_items=items,
                                               batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
                                               seed=self.seed, progress=update, chat=self.chat, protocol=self.protocol)
        summary["skipped_unanswerable"] = skipped
        summary["data"] = str(self.data)
        summary["shots_file"] = str(self.shots_file) if self.shots_file else None
        return summary, records


@dataclass
class JcommonsenseqaEntry:
    """JCommonsenseQA: accuracy by log-likelihood ranking, and by generating the choice number."""

    data: str
    name: str = ""
    shots: int | None = None  # None: the protocol's (jft 0, llm-jp-eval 4)
    shots_file: str | None = None  # shots from this file instead of the other questions
    limit: int | None = None
    batch_size: str = "auto"  # auto: sized from free GPU memory (8 on CPU), or an integer
    max_new_tokens: int | None = None  # None: 1, as llm-jp-eval
    seed: int | None = None  # None: the protocol's (jft 0, llm-jp-eval 42)
    generation: bool = True
    chat: bool = False  # the generation prompt as one user turn (the ranking stays a plain completion)
    protocol: str = "jft"  # jft | llm-jp-eval (eval/protocol.py)
    task: ClassVar[str] = "jcommonsenseqa"
    paths: ClassVar[tuple] = ("data", "shots_file")

    def check(self, where: str) -> None:
        _positive(where, limit=self.limit)
        self.batch_size = _auto_or_positive(where, self.batch_size)
        _resolve_protocol(self, where, generation=self.generation)

    def run(self, model, tokenizer, progress_factory=None) -> tuple[dict, list]:
        from japanese_ft.eval.jcommonsenseqa import evaluate_jcommonsenseqa, read_jcommonsenseqa

        items = read_jcommonsenseqa(self.data)
        pool = read_jcommonsenseqa(self.shots_file) if self.shots_file else items
        todo = items[: self.limit] if self.limit else items
        with _progress(progress_factory, self.name, len(todo)) as update:
            summary, records = evaluate_jcommonsenseqa(model, tokenizer, todo, shots=self.shots, pool_items=pool,
                                                       batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
                                                       seed=self.seed, generation=self.generation, progress=update,
                                                       chat=self.chat, protocol=self.protocol)
        summary["data"] = str(self.data)
        summary["shots_file"] = str(self.shots_file) if self.shots_file else None
        return summary, records


@dataclass
class PerplexityEntry:
    """Perplexity and bits per character over a token-file prefix or JSONL text."""

    data: str
    name: str = ""
    limit: int | None = None
    batch_size: int = 8
    seq_length: int = 2048
    stride: int | None = None
    text_key: str = "text"
    task: ClassVar[str] = "perplexity"
    paths: ClassVar[tuple] = ("data",)

    def check(self, where: str) -> None:
        _positive(where, limit=self.limit, batch_size=self.batch_size, seq_length=self.seq_length, stride=self.stride)

    def run(self, model, tokenizer, progress_factory=None) -> tuple[dict, list]:
        from japanese_ft.eval.perplexity import evaluate_perplexity

        return evaluate_perplexity(model, tokenizer, [self.data], seq_length=self.seq_length, stride=self.stride,
                                   batch_size=self.batch_size, limit=self.limit, text_key=self.text_key,
                                   progress_factory=progress_factory)


@dataclass
class Prompt:
    """One generation prompt: fed as is, or (chat) as one user turn in the model's chat template."""

    text: str
    chat: bool = False


@dataclass
class GenerateEntry:
    """Sample generations (greedy), kept in the result so that reports can show them."""

    prompts: list[Prompt]
    name: str = ""
    max_new_tokens: int = 64
    limit: int | None = None
    system: str | None = None  # system message for chat prompts
    task: ClassVar[str] = "generate"
    paths: ClassVar[tuple] = ()

    def check(self, where: str) -> None:
        _positive(where, limit=self.limit, max_new_tokens=self.max_new_tokens)
        if not self.prompts:
            raise UserError(f"{where}: prompts must list at least one prompt")

    def run(self, model, tokenizer, progress_factory=None) -> tuple[dict, list]:
        from japanese_ft.eval.generation import chat_messages, generate
        from japanese_ft.tokens import encode_chat

        todo = self.prompts[: self.limit] if self.limit else self.prompts
        t0 = time.perf_counter()
        records = []
        with _progress(progress_factory, self.name, len(todo)) as update:
            for p in todo:  # one at a time: no padding, so each output is what `jft generate` prints
                prompt = encode_chat(tokenizer, chat_messages(p.text, self.system)) if p.chat else p.text
                out = generate(model, tokenizer, [prompt], self.max_new_tokens, batch_size=1)[0]
                records.append({"prompt": p.text, "chat": p.chat, "output": out.text, "tokens": out.tokens,
                                "stopped": out.stopped})
                update(1)
        summary = {"task": "generate", "n": len(records), "max_new_tokens": self.max_new_tokens,
                   "outputs": records, "seconds": round(time.perf_counter() - t0, 3)}
        return summary, records


TASKS: dict[str, type] = {c.task: c for c in (JsquadEntry, JcommonsenseqaEntry, PerplexityEntry, GenerateEntry)}


def _auto_or_positive(where: str, value) -> int | str:
    """A generation batch size: "auto" or an integer >= 1."""
    if str(value).strip().isdigit() and int(value) >= 1:
        return int(value)
    if value != "auto":
        raise UserError(f"{where}: batch_size must be auto or an integer >= 1, got {value!r}")
    return value


def _positive(where: str, **values) -> None:
    for name, v in values.items():
        if v is not None and v < 1:
            raise UserError(f"{where}: {name} must be >= 1, got {v}")


class _progress:
    """`progress_factory(description, total)` as a context manager, or a no-op updater."""

    def __init__(self, factory, description: str, total: int) -> None:
        self.cm = factory(description, total) if factory is not None else None

    def __enter__(self):
        return self.cm.__enter__() if self.cm is not None else (lambda *a, **k: None)

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc) if self.cm is not None else False


# ---- building entries ----------------------------------------------------------------------


def build_entry(raw, where: str, defaults: dict | None = None, base_dir: Path | None = None):
    """One typed entry from a mapping: known task, known keys (with a suggestion), typed values,
    required settings present. Relative paths are resolved against `base_dir` when given."""
    from japanese_ft.config import from_dict

    if not isinstance(raw, dict) or "task" not in raw:
        raise UserError(f"{where}: each entry needs a 'task' ({', '.join(TASKS)})")
    task = raw["task"]
    if task not in TASKS:
        close = difflib.get_close_matches(str(task), list(TASKS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"{where}: unknown task {task!r}{hint}; choose {', '.join(TASKS)}")
    cls = TASKS[task]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra = [k for k in raw if k not in fields and k != "task"]
    if extra:
        close = difflib.get_close_matches(str(extra[0]), list(fields), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"{where}: unknown keys {extra} for task {task}{hint}; allowed: {', '.join(fields)}")
    data = {k: v for k, v in (defaults or {}).items() if k in fields}
    data.update({k: v for k, v in raw.items() if k != "task"})
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"{where}: missing {', '.join(repr(m) for m in missing)} for task {task}")
    if task == "generate" and isinstance(data.get("prompts"), list):
        data["prompts"] = [{"text": p} if isinstance(p, str) else p for p in data["prompts"]]
    entry = from_dict(cls, data, where)
    if base_dir is not None:
        for key in cls.paths:
            value = getattr(entry, key)
            if value is not None and not Path(value).is_absolute():
                setattr(entry, key, str(Path(base_dir) / value))
    entry.check(where)
    return entry


def parse_suite(cfg, where: str, base_dir: Path | None = None) -> list:
    """Typed, uniquely named entries from a suite mapping ({defaults..., evals: [...]})."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("evals"), list) or not cfg["evals"]:
        raise UserError(f"{where}: expected a mapping with a non-empty 'evals' list")
    defaults = {k: v for k, v in cfg.items() if k != "evals"}
    unknown = [k for k in defaults if k not in DEFAULT_KEYS]
    if unknown:
        raise UserError(f"{where}: unknown top-level keys {unknown} (allowed: evals, {', '.join(DEFAULT_KEYS)})")
    entries, names = [], set()
    for i, raw in enumerate(cfg["evals"]):
        entry = build_entry(raw, f"{where}: evals[{i}]", defaults, base_dir)
        name = entry.name or entry.task
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.add(name)
        entry.name = name
        entries.append(entry)
    return entries


def load_suite_config(path: str | Path) -> list:
    """Validated, typed entries of a suite YAML file (paths resolved against its directory)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise UserError(f"--config {path}: no such file")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from None
    return parse_suite(cfg, str(path), base_dir=path.parent)


def entry_dict(entry) -> dict:
    """An entry as a plain mapping, e.g. to write a suite file: task and name first, then the
    settings that differ from their defaults (a plain prompt as its text)."""
    out = {"task": entry.task, "name": entry.name}
    for f in dataclasses.fields(entry):
        value = getattr(entry, f.name)
        if f.name == "name" or (f.default is not dataclasses.MISSING and value == f.default):
            continue
        if f.name == "prompts":
            value = [p.text if not p.chat else dataclasses.asdict(p) for p in value]
        out[f.name] = value
    return out


# ---- running -------------------------------------------------------------------------------


def run_suite(model, tokenizer, entries: list, output: str | Path, *, model_dir, adapter_dir=None, label: str,
              config: str | None = None, limit: int | None = None, batch_size: int | None = None,
              log: Callable[[str], None] | None = None, progress_factory=None) -> dict:
    """Run every entry on the loaded model; write OUTPUT (the suite result) and one
    OUTPUT-stem.NAME.examples.jsonl per entry. `limit` / `batch_size` override every entry's."""
    from japanese_ft.eval.loading import model_info
    from japanese_ft.files import write_json, write_jsonl

    output = Path(output)
    stem = output.name[:-5] if output.name.endswith(".json") else output.name
    results, files = {}, {}
    t0 = time.perf_counter()
    for e in entries:
        overrides = {k: v for k, v in (("limit", limit), ("batch_size", batch_size)) if v is not None and hasattr(e, k)}
        e = dataclasses.replace(e, **overrides)
        if isinstance(getattr(e, "batch_size", None), str):
            e.batch_size = _auto_or_positive(e.name, e.batch_size)
        if log is not None:
            log(f"{e.name} ({e.task}{', ' + str(e.data) if getattr(e, 'data', None) else ''})")
        summary, records = e.run(model, tokenizer, progress_factory)
        ex = output.with_name(f"{stem}.{e.name}.examples.jsonl")
        write_jsonl(ex, records)
        results[e.name] = summary
        files[e.name] = str(ex)
    result = {"task": "suite", "label": label, "config": str(config) if config else None, "results": results,
              "examples": files, "model_info": model_info(model, tokenizer, model_dir, adapter_dir),
              "seconds": round(time.perf_counter() - t0, 3)}
    write_json(output, result)
    return result


def headline_rows(result: dict) -> list[tuple[str, object]]:
    """(name.metric, value) of the headline metrics of a suite result, for summaries (marked
    ` [chat]` / ` [llm-jp-eval]` as `jft compare` marks them)."""
    from japanese_ft.eval.compare import HEADLINE, metric_key

    rows = []
    for name, s in result["results"].items():
        for metric, _ in HEADLINE.get(s["task"], []):
            if s.get(metric) is not None:
                rows.append((metric_key(name, metric, s), s[metric]))
        rows.append((f"{name}.n", s.get("n", s.get("tokens"))))
    return rows

