"""`jft run RECIPE`: the pipeline as stages of one recipe file, each skipped while it is up to date.

recipe.py   the recipe file: loading, overrides, `${...}` references
kinds/      one class per stage kind (settings, outputs, jft command, run)
plan.py     resolve a recipe into stages, fingerprints and decisions (nothing runs)
manifest.py the work directory's manifest and lock
runner.py   run the stages that need it, with per-stage logs
"""
