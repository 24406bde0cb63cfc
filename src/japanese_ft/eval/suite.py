"""`jft eval suite`: several evaluations of one model from a YAML file, model loaded once.

    batch_size: 16          # optional defaults for every entry
    evals:
      - task: jsquad
        data: ../../shared/data/jglue/jsquad-valid-v1.3.json
        shots: 2
        limit: 1000
      - task: jcommonsenseqa
        data: ../../shared/data/jglue/jcommonsenseqa-valid-v1.3.json
      - name: jsquad_chat    # the same prompt as a user turn of the chat template
        task: jsquad
        data: ../../shared/data/jglue/jsquad-valid-v1.3.json
        chat: true
      - name: ppl_wiki       # optional; defaults to the task (made unique)
        task: perplexity
        data: ../../shared/data/ja_wiki_sample/train_0.jsonl
        seq_length: 1024

Relative `data`/`shots_file` paths are resolved against the YAML file's directory.
"""

from __future__ import annotations

from pathlib import Path

from japanese_ft.errors import UserError

TASK_KEYS = {
    "jsquad": {"data", "shots", "shots_file", "limit", "batch_size", "max_new_tokens", "seed", "strip_title", "chat",
               "protocol"},
    "jcommonsenseqa": {"data", "shots", "shots_file", "limit", "batch_size", "max_new_tokens", "seed", "generation", "chat",
                       "protocol"},
    "perplexity": {"data", "limit", "batch_size", "seq_length", "stride", "text_key"},
}
DEFAULT_KEYS = {"batch_size", "limit", "seed"}


def load_suite_config(path: str | Path) -> list[dict]:
    """Validated entries: each a dict with name, task and the task's settings (paths resolved)."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise UserError(f"--config {path}: no such file")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("evals"), list) or not cfg["evals"]:
        raise UserError(f"{path}: expected a mapping with a non-empty 'evals' list")
    defaults = {k: v for k, v in cfg.items() if k != "evals"}
    unknown = set(defaults) - DEFAULT_KEYS
    if unknown:
        raise UserError(f"{path}: unknown top-level keys {sorted(unknown)} (allowed: evals, {', '.join(sorted(DEFAULT_KEYS))})")
    entries, names = [], set()
    for i, raw in enumerate(cfg["evals"]):
        where = f"{path}: evals[{i}]"
        if not isinstance(raw, dict) or "task" not in raw:
            raise UserError(f"{where}: each entry needs a 'task' ({', '.join(TASK_KEYS)})")
        task = raw["task"]
        if task not in TASK_KEYS:
            raise UserError(f"{where}: unknown task {task!r} (choose {', '.join(TASK_KEYS)})")
        extra = set(raw) - TASK_KEYS[task] - {"task", "name"}
        if extra:
            raise UserError(f"{where}: unknown keys {sorted(extra)} for task {task} (allowed: {', '.join(sorted(TASK_KEYS[task]))})")
        if "data" not in raw:
            raise UserError(f"{where}: missing 'data'")
        entry = {k: v for k, v in defaults.items() if k in TASK_KEYS[task]}
        entry.update(raw)
        for key in ("data", "shots_file"):
            if entry.get(key) is not None:
                p = Path(str(entry[key]))
                entry[key] = str(p if p.is_absolute() else (path.parent / p))
        name = str(entry.get("name") or task)
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.add(name)
        entry["name"] = name
        entries.append(entry)
    return entries
