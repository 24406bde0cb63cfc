"""`jft demo` = `jft run demo` (the built-in recipe, src/japanese_ft/recipes/demo.yaml) into --output-dir."""

from __future__ import annotations

from pathlib import Path

from japanese_ft.ui import console, out


def run_demo_command(output_dir: Path, quick: bool, force: bool) -> int:
    from japanese_ft.commands.run import run_recipe
    from japanese_ft.pipeline.recipe import load_recipe

    same = f"jft run demo --workdir {output_dir}" + (" --preset quick" if quick else "")
    console.print(f"jft demo{' --quick' if quick else ''}: the whole pipeline on the built-in Japanese sample, CPU only, "
                  f"into {output_dir} (the same as: {same})", highlight=False)
    force_all = [s.name for s in load_recipe("demo").stages] if force else []
    plan, outcome = run_recipe("demo", [], workdir=output_dir, preset="quick" if quick else None, force=force_all)
    out.print("next:", highlight=False)
    for hint in (f"jft status {output_dir}", f"jft chat --model {output_dir / 'sft' / 'final'}",
                 f"jft run demo --workdir {output_dir} --dry-run"):
        out.print(f"  {hint}", highlight=False, soft_wrap=True)
    return 0
