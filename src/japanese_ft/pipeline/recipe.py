"""Recipe files: loading (with line numbers for errors), command-line overrides and `${...}` references.

A recipe is a YAML mapping with a `stages:` list; see docs/pipeline.md. `${name}` is a recipe
variable or a built-in (`${workdir}`, `${sample}`); `${stage.key}` is an output of an earlier stage.
A value that is exactly one reference keeps the referenced value's type; references inside a
longer string are substituted as text.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from japanese_ft.errors import UserError

REF = re.compile(r"\$\{([^}]*)\}")
STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUILTINS = ("workdir", "sample")
RESERVED_STAGES = ("logs",)  # WORKDIR/logs holds the stage logs
RECIPE_KEYS = ("name", "description", "workdir", "vars", "presets", "gpus", "cpu_threads", "stages")
STAGE_KEYS = ("name", "kind", "title")  # every stage has these; the rest are the kind's settings


@dataclass
class StageSpec:
    """One entry of `stages:` as written (plus command-line overrides)."""

    index: int
    name: str
    kind: str
    title: str
    raw: dict  # the kind's settings, unresolved
    line: int | None = None


@dataclass
class Recipe:
    path: str  # as shown in messages
    name: str
    file: str = ""  # the YAML file
    description: str = ""
    workdir: str | None = None
    vars: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)
    gpus: object = "auto"
    cpu_threads: int | None = None
    stages: list = field(default_factory=list)
    lines: dict = field(default_factory=dict)  # top-level key -> line

    def where(self, stage: StageSpec | None = None) -> str:
        if stage is None:
            return self.path
        return f"{self.path}:{stage.line}: stage {stage.name!r}" if stage.line else f"{self.path}: stage {stage.name!r}"

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise UserError(f"{self.path}: no stage named {name!r}{_did_you_mean(name, [s.name for s in self.stages])}; "
                        f"stages: {', '.join(s.name for s in self.stages)}")


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def builtin_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package, by name (e.g. `demo`)."""
    root = resources.files("japanese_ft") / "recipes"
    return {p.name[:-5]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def find_recipe(source: str) -> Path:
    path = Path(source)
    if path.exists():
        if path.is_dir():
            raise UserError(f"{path}: is a directory; give a recipe YAML file")
        return path
    builtin = builtin_recipes()
    if source in builtin:
        return builtin[source]
    raise UserError(f"recipe {source!r}: no such file, and not a built-in recipe ({', '.join(sorted(builtin))})")


def _compose(path: Path):
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping with a 'stages' list")
    return node, data


def load_recipe(source: str) -> Recipe:
    """Parse and check the recipe's shape (stage names, kinds present, top-level keys)."""
    path = find_recipe(source)
    node, data = _compose(path)
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value}
    stage_lines = []
    for k, v in node.value:
        if k.value == "stages" and hasattr(v, "value") and isinstance(v.value, list):
            stage_lines = [item.start_mark.line + 1 for item in v.value]
    shown = str(path) if Path(source).exists() else f"{source} ({path})"
    for key in data:
        if key not in RECIPE_KEYS:
            raise UserError(f"{shown}:{lines.get(key, '?')}: unknown recipe key {key!r}{_did_you_mean(key, RECIPE_KEYS)}; "
                            f"known keys: {', '.join(RECIPE_KEYS)}")
    stages = data.get("stages")
    if not isinstance(stages, list) or not stages:
        raise UserError(f"{shown}: 'stages' must be a non-empty list")
    recipe = Recipe(path=shown, name=str(data.get("name") or path.stem), file=str(path),
                    description=str(data.get("description") or ""),
                    workdir=data.get("workdir"), vars=dict(data.get("vars") or {}), presets=dict(data.get("presets") or {}),
                    gpus=data.get("gpus", "auto"), cpu_threads=data.get("cpu_threads"), lines=lines)
    for name in recipe.vars:
        if not VAR_NAME.match(str(name)) or name in BUILTINS:
            raise UserError(f"{shown}:{lines.get('vars', '?')}: variable name {name!r}: use letters, digits and _ "
                            f"(and not a built-in: {', '.join(BUILTINS)})")
    seen = set()
    for i, raw in enumerate(stages):
        line = stage_lines[i] if i < len(stage_lines) else None
        at = f"{shown}:{line}" if line else shown
        if not isinstance(raw, dict):
            raise UserError(f"{at}: stages[{i}]: expected a mapping with name and kind")
        name, kind = raw.get("name"), raw.get("kind")
        if not isinstance(name, str) or not STAGE_NAME.match(name):
            raise UserError(f"{at}: stages[{i}]: 'name' must match [A-Za-z0-9_-]+, got {name!r}")
        if name in seen or name in RESERVED_STAGES:
            raise UserError(f"{at}: stage {name!r}: " + ("the name is used twice" if name in seen else "'logs' is reserved"))
        if not isinstance(kind, str):
            raise UserError(f"{at}: stage {name!r}: missing 'kind'")
        seen.add(name)
        settings = {k: v for k, v in raw.items() if k not in STAGE_KEYS}
        recipe.stages.append(StageSpec(i, name, kind, str(raw.get("title") or ""), settings, line))
    return recipe


def apply_overrides(recipe: Recipe, overrides: list[str], preset: str | None = None) -> Recipe:
    """A copy of the recipe with a preset and `key=value` overrides applied: `name=v` sets a
    variable, `STAGE.a.b=v` a stage setting (values parse as YAML, as `jft train` overrides)."""
    from japanese_ft.config import apply_overrides as set_dotted

    recipe = copy.deepcopy(recipe)
    if preset is not None:
        if preset not in recipe.presets:
            raise UserError(f"--preset {preset!r}: the recipe has {', '.join(recipe.presets) or 'no presets'}")
        values = recipe.presets[preset]
        if not isinstance(values, dict):
            raise UserError(f"{recipe.path}: presets.{preset} must map variables to values")
        for k, v in values.items():
            if k not in recipe.vars:
                raise UserError(f"{recipe.path}: presets.{preset}: unknown variable {k!r}{_did_you_mean(k, recipe.vars)}")
            recipe.vars[k] = v
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r}: expected key=value (a variable) or STAGE.key=value (a stage setting)")
        key = item.split("=", 1)[0].strip()
        if "." not in key:
            if key not in recipe.vars:
                raise UserError(f"override {item!r}: unknown variable {key!r}{_did_you_mean(key, recipe.vars)}; "
                                f"variables: {', '.join(recipe.vars) or 'none'}")
            set_dotted(recipe.vars, [item])
            continue
        stage = recipe.stage(key.split(".", 1)[0])
        rest = item.split(".", 1)[1]
        if rest.split("=", 1)[0].strip() in STAGE_KEYS:
            raise UserError(f"override {item!r}: a stage's name, kind and title cannot be overridden")
        set_dotted(stage.raw, [rest])
    return recipe


# ---- references -------------------------------------------------------------------------------


class Resolver:
    """Substitutes `${...}` in nested values. `lookup(ref)` returns the value of one reference
    (raising UserError with a reason); `where` prefixes errors."""

    def __init__(self, lookup: Callable[[str], object]) -> None:
        self.lookup = lookup

    def resolve(self, value, where: str):
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = REF.fullmatch(value)
        if whole:
            return self._one(whole.group(1), where)

        def sub(m):
            v = self._one(m.group(1), where)
            if isinstance(v, (list, dict)):
                raise UserError(f"{where}: ${{{m.group(1)}}} is a {type(v).__name__}; it cannot be part of a longer string")
            return "" if v is None else str(v)

        return REF.sub(sub, value)

    def _one(self, ref: str, where: str):
        try:
            return self.lookup(ref.strip())
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None


def refs_in(value) -> list[str]:
    """Every `${...}` reference in a nested value, in order."""
    if isinstance(value, dict):
        return [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    if isinstance(value, str):
        return [m.group(1).strip() for m in REF.finditer(value)]
    return []


def resolve_vars(recipe: Recipe, builtins: dict, keep: tuple = ()) -> dict:
    """Variables with their references resolved (variables may use built-ins and each other;
    a cycle is an error). Built-ins named in `keep` stay as `${name}` text."""
    done: dict = {}
    active: list[str] = []

    def lookup(ref: str):
        if "." in ref:
            raise UserError(f"${{{ref}}}: a variable cannot refer to a stage's outputs")
        if ref in keep:
            return "${" + ref + "}"
        if ref in builtins:
            return builtins[ref]
        if ref not in recipe.vars:
            raise UserError(f"${{{ref}}}: unknown variable{_did_you_mean(ref, list(recipe.vars) + list(builtins))}")
        if ref in done:
            return done[ref]
        if ref in active:
            raise UserError(f"variable cycle: {' -> '.join(active[active.index(ref):] + [ref])}")
        active.append(ref)
        done[ref] = Resolver(lookup).resolve(recipe.vars[ref], f"vars.{ref}")
        active.pop()
        return done[ref]

    for name in recipe.vars:
        try:
            lookup(name)
        except UserError as exc:
            raise UserError(f"{recipe.path}:{recipe.lines.get('vars', '?')}: {exc}") from None
    return done
