"""Resolve a recipe into stages (settings, outputs, commands, fingerprints) and decide which
stages run. Nothing here runs a stage; `--dry-run` is this module plus printing."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.pipeline.fingerprint import externals, fingerprint
from japanese_ft.pipeline.kinds import KINDS, Stage
from japanese_ft.pipeline.kinds.base import parse_settings
from japanese_ft.pipeline.recipe import Recipe, Resolver, _did_you_mean, resolve_vars


@dataclass
class Plan:
    recipe: Recipe
    workdir: Path  # as given: commands use it as written
    vars: dict
    stages: list = field(default_factory=list)
    cli_gpus: int | None = None

    def stage(self, name: str) -> Stage:
        for st in self.stages:
            if st.name == name:
                return st
        names = [s.name for s in self.stages]
        raise UserError(f"no stage {name!r} in {self.recipe.path}{_did_you_mean(name, names)}; stages: {', '.join(names)}")

    def downstream(self, names: set) -> set:
        """`names` and every stage that depends on one of them, directly or not."""
        out = set(names)
        for st in self.stages:
            if any(d in out for d in st.deps):
                out.add(st.name)
        return out

    def upstream(self, names: set) -> set:
        """`names` and every stage they depend on, directly or not."""
        out = set(names)
        for st in reversed(self.stages):
            if st.name in out:
                out.update(st.deps)
        return out


NOT_SELECTED = ""  # decide()'s value for a stage that --only/--from/--until leave out (falsy: it does not run)


def sample_dir() -> Path:
    """The built-in Japanese sample (package data) used by the demo recipe as `${sample}`."""
    return Path(str(resources.files("japanese_ft") / "sample"))


def workdir_of(recipe: Recipe, given: str | Path | None) -> Path:
    """--workdir, else the recipe's `workdir:` (which may use recipe variables with plain values)."""
    if given is not None:
        return Path(given)
    if not recipe.workdir:
        raise UserError(f"{recipe.path}: the recipe names no workdir; pass --workdir DIR")

    def lookup(ref: str):
        if ref in recipe.vars and "${" not in str(recipe.vars[ref]):
            return recipe.vars[ref]
        raise UserError(f"${{{ref}}}: workdir may only use recipe variables with plain values")

    try:
        return Path(str(Resolver(lookup).resolve(recipe.workdir, "workdir")))
    except UserError as exc:
        raise UserError(f"{recipe.path}:{recipe.lines.get('workdir', '?')}: {exc}") from None


def build_plan(recipe: Recipe, workdir: Path, cli_gpus: int | None = None) -> Plan:
    """Resolve every stage in file order; the first problem is a UserError naming the stage and key."""
    builtins = {"workdir": str(workdir), "sample": str(sample_dir())}
    concrete = resolve_vars(recipe, builtins)
    symbolic = resolve_vars(recipe, builtins, keep=("workdir",))
    plan = Plan(recipe, Path(workdir), concrete, cli_gpus=cli_gpus)
    if recipe.gpus not in (None, "auto") and not (str(recipe.gpus).isdigit() and int(recipe.gpus) >= 1):
        raise UserError(f"{recipe.path}:{recipe.lines.get('gpus', '?')}: gpus: expected auto or a number >= 1")
    for spec in recipe.stages:
        plan.stages.append(_resolve_stage(plan, spec, builtins, symbolic))
    return plan


class _References:
    """Looks up `${...}` for one stage: variables, built-ins and the outputs of earlier stages
    (recording which stages it uses). Symbolic lookups keep stage outputs and ${workdir} as text."""

    def __init__(self, plan: Plan, spec, builtins: dict, symbolic_vars: dict) -> None:
        self.plan, self.spec, self.builtins, self.symbolic_vars = plan, spec, builtins, symbolic_vars
        self.earlier = {st.name: st for st in plan.stages}
        self.names = [s.name for s in plan.recipe.stages]
        self.deps: list[str] = []

    def stage_output(self, ref: str):
        name, key = ref.split(".", 1)
        if name == self.spec.name:
            raise UserError(f"${{{ref}}}: a stage cannot use its own outputs (a cycle)")
        if name not in self.earlier:
            if name in self.names:
                raise UserError(f"${{{ref}}}: stage {name!r} comes later; stages run in file order, so move it before "
                                f"{self.spec.name!r}")
            raise UserError(f"${{{ref}}}: no stage {name!r}{_did_you_mean(name, self.names)}")
        outs = self.earlier[name].outputs
        if key not in outs:
            raise UserError(f"${{{ref}}}: stage {name!r} ({self.earlier[name].kind.name}) has no output {key!r}"
                            f"{_did_you_mean(key, outs)}; its outputs: {', '.join(outs)}")
        if name not in self.deps:
            self.deps.append(name)
        return outs[key]

    def lookup(self, ref: str, symbolic: bool):
        if "." in ref:
            value = self.stage_output(ref)
            return "${" + ref + "}" if symbolic else value
        if symbolic and ref == "workdir":
            return "${workdir}"
        if ref in self.builtins:
            return self.builtins[ref]
        values = self.symbolic_vars if symbolic else self.plan.vars
        if ref not in values:
            raise UserError(f"${{{ref}}}: unknown variable{_did_you_mean(ref, list(values) + list(self.builtins))}")
        return values[ref]


def _resolve_stage(plan: Plan, spec, builtins: dict, symbolic_vars: dict) -> Stage:
    recipe = plan.recipe
    where = recipe.where(spec)
    kind = KINDS.get(spec.kind)
    if kind is None:
        raise UserError(f"{where}: unknown kind {spec.kind!r}{_did_you_mean(spec.kind, KINDS)}; kinds: {', '.join(KINDS)}")
    refs = _References(plan, spec, builtins, symbolic_vars)
    raw = {**kind.defaults(list(refs.earlier.values()), recipe), **spec.raw}
    try:
        resolved = Resolver(lambda r: refs.lookup(r, False)).resolve(raw, "")
        sym = Resolver(lambda r: refs.lookup(r, True)).resolve(raw, "")
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    settings = parse_settings(kind.Settings, resolved, where)
    stage = Stage(spec=spec, kind=kind, settings=settings, symbolic=sym, dir=plan.workdir / spec.name,
                  workdir=plan.workdir, where=where, deps=refs.deps)
    stage.outputs = kind.outputs(stage.dir, settings)
    kind.prepare(stage)
    if kind.name == "train":
        stage.processes = _processes(plan, stage)
    stage.command = kind.command(stage)
    upstream = {d: refs.earlier[d].fingerprint for d in sorted(refs.deps)}
    stage.fingerprint = fingerprint(kind.name, kind.fingerprint_data(stage), upstream,
                                    externals(kind.external_paths(stage)))
    return stage


def _processes(plan: Plan, stage: Stage) -> int:
    """A training stage's process count: its own `gpus`, else --gpus, else the recipe's; checked
    against the batch sizes now rather than after the earlier stages have run."""
    from japanese_ft.pipeline.kinds.model import processes_for

    t = stage.extra["run_config"]["train"]
    if stage.settings.gpus:
        n = processes_for(stage.settings.gpus, t["device"], explicit=True)
    else:
        n = processes_for(plan.cli_gpus if plan.cli_gpus is not None else plan.recipe.gpus, t["device"])
    if t["global_batch_size"] % (t["micro_batch_size"] * n):
        raise stage.error(f"train.global_batch_size ({t['global_batch_size']}) is not divisible by train.micro_batch_size "
                          f"({t['micro_batch_size']}) x {n} processes (gpus)")
    return n


# ---- what runs --------------------------------------------------------------------------------


def decide(plan: Plan, manifest: dict | None, force: list[str] = (), start: str | None = None,
           only: str | None = None, until: list[str] = ()) -> dict:
    """{stage: reason to run, None to skip (up to date), or NOT_SELECTED}. A stage runs when it is new, changed (fingerprint),
    unfinished, missing outputs, forced (with everything downstream), or when an upstream stage runs
    now or ran after it. `start` (--from) runs it and every later stage; `only` runs just that one; `until` limits the
    run to the named stages and the stages they depend on (like make's targets)."""
    records = (manifest or {}).get("stages", {})
    forced = plan.downstream({plan.stage(n).name for n in force})
    start_at = [s.name for s in plan.stages].index(plan.stage(start).name) if start else None
    only = plan.stage(only).name if only else None
    needed = plan.upstream({plan.stage(n).name for n in until}) if until else None
    decisions: dict = {}
    for i, st in enumerate(plan.stages):
        rec = records.get(st.name)
        if needed is not None and st.name not in needed:
            decisions[st.name] = NOT_SELECTED
            continue
        if only is not None or (start_at is not None and i < start_at):
            selected = st.name == only
            decisions[st.name] = ("--only" if selected else NOT_SELECTED)
            continue
        reason = None
        if st.name in forced:
            reason = "--force" if st.name in force else "an upstream stage is forced"
        elif start_at is not None:
            reason = "--from"
        elif rec is None:
            reason = "new"
        elif rec.get("status") != "done":
            reason = "unfinished (" + str(rec.get("status")) + ")"
        elif any(decisions.get(d) for d in st.deps):
            reason = ", ".join(d for d in st.deps if decisions.get(d)) + " runs"
        elif rec.get("fingerprint") != st.fingerprint:
            reason = "settings or inputs changed"
        elif rec.get("inputs") != {d: records.get(d, {}).get("run_id") for d in st.deps}:
            reason = "an upstream stage ran since"
        elif not st.kind.complete(st):
            reason = "outputs missing"
        decisions[st.name] = reason
    _check_inputs_ready(plan, records, decisions)
    return decisions


def _check_inputs_ready(plan: Plan, records: dict, decisions: dict) -> None:
    """With --only / --from, a stage that runs needs its skipped inputs done and present."""
    by_name = {st.name: st for st in plan.stages}
    for st in plan.stages:
        if not decisions.get(st.name):
            continue
        for d in st.deps:
            up = by_name[d]
            if not decisions.get(d) and (records.get(d, {}).get("status") != "done" or not up.kind.complete(up)):
                raise UserError(f"stage {st.name!r} needs stage {d!r}, which has not run (or its outputs are gone); "
                                "run the recipe without --only/--from first")
