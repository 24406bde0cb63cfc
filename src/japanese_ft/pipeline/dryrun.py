"""`jft run --dry-run`: the plan as the `jft` commands a user could paste into bash."""

from __future__ import annotations

import shlex

from japanese_ft.pipeline.plan import NOT_SELECTED, Plan


def dry_run_text(plan: Plan, decisions: dict, invocation: str) -> str:
    n = len(plan.stages)
    todo = [st for st in plan.stages if decisions.get(st.name)]
    lines = [f"# {invocation}",
             f"# recipe {plan.recipe.path}, work directory {plan.workdir}",
             f"# {len(todo)} of {n} stages would run; the others stay commented out.",
             "# Paths are relative to the directory this was printed in.",
             "set -e"]
    if plan.recipe.cpu_threads:
        lines.append(f"export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-{int(plan.recipe.cpu_threads)}}}   # the recipe's cpu_threads")
    lines.append(f"mkdir -p {shlex.quote(str(plan.workdir))}")
    for i, st in enumerate(plan.stages, 1):
        reason = decisions.get(st.name)
        skipped = "not selected (--only/--from/--until)" if reason == NOT_SELECTED else "up to date"
        state = f"would run ({reason})" if reason else f"{skipped}, would be skipped"
        lines += ["", f"# [{i}/{n}] {st.name} ({st.kind.name}): {st.title} - {state}"]
        lines.append(st.command if reason else "\n".join("# " + line for line in st.command.splitlines()))
    return "\n".join(lines) + "\n"
