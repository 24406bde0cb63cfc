"""What every stage kind provides, and the resolved `Stage` the engine works with.

A kind is one small class: a typed settings dataclass (the settings of the matching `jft`
command, checked by `config.from_dict`), its outputs under WORKDIR/<stage>/ (known before
anything runs), its equivalent `jft` command line, and `run()`, which calls the same function
as that command. Register a new kind with `@register`.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from japanese_ft.errors import UserError

KINDS: dict[str, "Kind"] = {}


def register(cls):
    KINDS[cls.name] = cls()
    return cls


@dataclass
class Stage:
    """A stage with its settings resolved: what the engine plans, fingerprints and runs."""

    spec: object  # recipe.StageSpec
    kind: "Kind"
    settings: object  # the kind's Settings instance (references resolved)
    symbolic: dict  # settings with stage outputs and ${workdir} left as written (for the fingerprint)
    dir: Path  # WORKDIR/<name>
    workdir: Path
    where: str  # error prefix: "recipe.yaml:12: stage 'cpt'"
    outputs: dict = field(default_factory=dict)
    deps: list = field(default_factory=list)  # upstream stage names
    extra: dict = field(default_factory=dict)  # kind-specific resolved data (train overrides, eval entries, ...)
    fingerprint: str = ""
    command: str = ""
    processes: int = 1

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title or self.kind.title

    def error(self, message: str) -> UserError:
        return UserError(f"{self.where}: {message}")


class Kind:
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Settings: ClassVar[type] = object
    # When the stage runs again, its old directory is deleted first ("never" kept), kept when the same stage
    # (same fingerprint and inputs) was interrupted so that the command resumes ("unfinished"), or always
    # kept because the command verifies and reuses what is there ("always").
    keep: ClassVar[str] = "never"

    def defaults(self, earlier: list, recipe) -> dict:
        """Settings filled in from earlier stages when the recipe leaves them out (as references)."""
        return {}

    def outputs(self, stage_dir: Path, settings) -> dict:
        return {"dir": str(stage_dir)}

    def prepare(self, stage: Stage) -> None:
        """Checks that need more than the settings' types; may fill `stage.extra`."""

    def fingerprint_data(self, stage: Stage):
        return stage.symbolic

    def external_paths(self, stage: Stage) -> list[str]:
        """Input files/directories named in the settings (their content identity enters the fingerprint)."""
        return []

    def command(self, stage: Stage) -> str:
        raise NotImplementedError

    def run(self, stage: Stage, ctx) -> dict:
        """Do the work; return a small summary for the manifest."""
        raise NotImplementedError

    def progress(self, stage: Stage) -> str | None:
        """One line about a running stage (e.g. the training step), or None."""
        return None

    def complete(self, stage: Stage) -> bool:
        return all(output_exists(v) for v in stage.outputs.values())


def output_exists(value) -> bool:
    if isinstance(value, list):
        return all(output_exists(v) for v in value)
    p = Path(str(value))
    return p.exists() or (Path(f"{p}.bin").exists() and Path(f"{p}.idx").exists())


def parse_settings(cls, raw: dict, where: str):
    """Typed settings from a mapping; unknown keys, wrong types and missing required settings are
    one-line errors naming the stage and the key."""
    from japanese_ft.config import from_dict

    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = [n for n, f in fields.items() if n not in raw and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    try:
        if missing and all(k in fields for k in raw):  # an unknown key (often the misspelt missing one) comes first
            raise UserError(f"missing setting {missing[0]!r}; settings: {', '.join(fields)}")
        return from_dict(cls, raw)
    except UserError as exc:
        raise UserError(f"{where}: {setting_message(exc)}") from None


def setting_message(exc: Exception) -> str:
    """config.from_dict's wording ("unknown config key") in a recipe's terms."""
    return str(exc).replace("unknown config key", "unknown setting").replace("known keys:", "settings:")


def as_dict(settings) -> dict:
    return dataclasses.asdict(settings)


def choice(stage: Stage, key: str, value, allowed) -> None:
    if value not in allowed:
        raise stage.error(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")


# ---- command lines -------------------------------------------------------------------------


def yaml_value(value) -> str:
    """A value as `key=value` override text that `config.apply_overrides` parses back to exactly
    `value` (plain text where YAML reads it back unchanged, else YAML flow style)."""
    import yaml

    if isinstance(value, str):
        try:
            if value and yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    text = text.removesuffix("...").strip()
    if yaml.safe_load(text) != value:  # pragma: no cover - a value YAML cannot spell in one line
        raise UserError(f"cannot write {value!r} as a command-line override")
    return text


def flatten(prefix: str, value) -> list[tuple[str, object]]:
    """Nested mapping -> (dotted key, leaf value) pairs, in order."""
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in flatten(f"{prefix}.{k}" if prefix else str(k), v)]
    return [(prefix, value)]


def shell(args: list, width: int = 100) -> str:
    """Quote for bash; wrap long lines before options (`--x`) and overrides (`k=v`)."""
    words = [shlex.quote(str(a)) for a in args]
    lines, line = [], ""
    for i, w in enumerate(words):
        tok, prev = str(args[i]), str(args[i - 1]) if i else ""
        breakable = i >= 2 and not (prev.startswith("--") and not tok.startswith("--"))  # keep --option VALUE together
        if line and breakable and len(line) + 1 + len(w) > width:
            lines.append(line + " \\")
            line = "    " + w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "\n".join(lines)


def heredoc(path: Path, text: str) -> str:
    """Shell lines that write `text` to `path` (a quoted heredoc: nothing in it is expanded)."""
    return f"mkdir -p {shlex.quote(str(path.parent))}\ncat > {shlex.quote(str(path))} <<'JFT_EOF'\n{text.rstrip()}\nJFT_EOF"


def summary_of(obj) -> dict:
    """A stats object (dataclass or dict) as JSON-safe data for the manifest."""
    data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else dict(obj or {})
    return json.loads(json.dumps(data, default=str))
