"""Evaluation stage kinds: eval (a suite on one model), compare, report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.pipeline.kinds.base import Kind, Stage, choice, heredoc, register, shell


@dataclass
class EvalSettings:
    model: str
    adapter: str | None = None
    evals: list | None = None  # inline suite entries (paths relative to the current directory) ...
    config: str | None = None  # ... or a suite file (paths relative to the file)
    label: str | None = None  # default: the stage name
    limit: int | None = None  # overrides every entry's limit
    batch_size: int | None = None  # overrides every entry's batch size
    device: str = "auto"
    dtype: str = "auto"
    allow_base_mismatch: bool = False


@register
class Eval(Kind):
    """`jft eval suite` on one model (+ adapter). Output: result (WORKDIR/<stage>/result.json; per-example
    files beside it). Inline `evals:` are written to WORKDIR/<stage>/suite.yaml, with absolute paths."""

    name = "eval"
    title = "evaluate"
    Settings = EvalSettings

    def outputs(self, d: Path, s) -> dict:
        return {"result": str(d / "result.json")}

    def prepare(self, stage: Stage) -> None:
        from japanese_ft.eval.suite import load_suite_config, parse_suite

        s = stage.settings
        if (s.evals is None) == (s.config is None):
            raise stage.error("give either evals: (a list of suite entries) or config: (a suite file), not both")
        choice(stage, "device", s.device if not s.device.startswith("cuda:") else "cuda", ("auto", "cpu", "cuda"))
        choice(stage, "dtype", s.dtype, ("auto", "float32", "bfloat16", "float16"))
        for key in ("limit", "batch_size"):
            if getattr(s, key) is not None and getattr(s, key) < 1:
                raise stage.error(f"{key} must be >= 1, got {getattr(s, key)}")
        try:
            if s.config is not None:
                stage.extra["entries"] = load_suite_config(s.config)
            else:
                stage.extra["entries"] = parse_suite({"evals": s.evals}, "evals")
        except UserError as exc:
            raise stage.error(str(exc)) from None

    def suite_file(self, stage: Stage) -> Path:
        return Path(stage.settings.config) if stage.settings.config else stage.dir / "suite.yaml"

    def suite_text(self, stage: Stage) -> str:
        import yaml

        from japanese_ft.eval.suite import entry_dict

        entries = []
        for e in stage.extra["entries"]:
            d = entry_dict(e)
            for key in e.paths:
                if d.get(key):
                    d[key] = os.path.abspath(d[key])  # the file lives in the work directory
            entries.append(d)
        return (f"# evaluations of stage {stage.name} (written by jft run)\n"
                + yaml.safe_dump({"evals": entries}, sort_keys=False, allow_unicode=True))

    def fingerprint_data(self, stage: Stage):
        return {k: v for k, v in stage.symbolic.items() if k != "label"} | {"label": stage.settings.label or stage.name}

    def external_paths(self, stage: Stage) -> list[str]:
        out = [stage.symbolic.get("model"), stage.symbolic.get("adapter")]
        if stage.settings.config:
            out.append(stage.settings.config)
            out += [getattr(e, k) for e in stage.extra["entries"] for k in e.paths]
        else:
            out += [e.get(k) for e in stage.symbolic.get("evals") or [] if isinstance(e, dict)
                    for k in ("data", "shots_file")]
        return [p for p in out if p]

    def _args(self, stage: Stage) -> list:
        s = stage.settings
        args = ["jft", "eval", "suite", "--model", s.model]
        args += ["--adapter", s.adapter] if s.adapter else []
        args += ["--config", self.suite_file(stage), "--label", s.label or stage.name, "--output", stage.outputs["result"]]
        args += ["--limit", s.limit] if s.limit else []
        args += ["--batch-size", s.batch_size] if s.batch_size else []
        args += ["--device", s.device] if s.device != "auto" else []
        args += ["--dtype", s.dtype] if s.dtype != "auto" else []
        args += ["--allow-base-mismatch"] if s.allow_base_mismatch else []
        return args

    def command(self, stage: Stage) -> str:
        cmd = shell(self._args(stage))
        return cmd if stage.settings.config else heredoc(self.suite_file(stage), self.suite_text(stage)) + "\n" + cmd

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.evaluate import run_eval_suite
        from japanese_ft.eval.suite import headline_rows

        s = stage.settings
        if not s.config:
            path = self.suite_file(stage)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.suite_text(stage), encoding="utf-8")
        result = run_eval_suite(Path(s.model), Path(s.adapter) if s.adapter else None, self.suite_file(stage),
                                Path(stage.outputs["result"]), s.limit, s.device, s.dtype, s.label or stage.name,
                                s.allow_base_mismatch, s.batch_size)
        metrics = {k: v for k, v in headline_rows(result) if not k.endswith(".n")}
        return {"label": result["label"], "metrics": metrics, "parameters": result["model_info"].get("parameters")}


def _earlier(earlier: list, kind: str, key: str) -> list[str]:
    return ["${" + f"{st.name}.{key}" + "}" for st in earlier if st.kind.name == kind]


@dataclass
class CompareSettings:
    results: list[str] = field(default_factory=list)  # default: every earlier eval stage, in order
    labels: list[str] = field(default_factory=list)


@register
class Compare(Kind):
    """`jft compare`. Outputs: table (compare.json), chart (compare.png)."""

    name = "compare"
    title = "compare the evaluations"
    Settings = CompareSettings

    def defaults(self, earlier: list, recipe) -> dict:
        return {"results": _earlier(earlier, "eval", "result")}

    def outputs(self, d: Path, s) -> dict:
        return {"table": str(d / "compare.json"), "chart": str(d / "compare.png")}

    def prepare(self, stage: Stage) -> None:
        s = stage.settings
        if not s.results:
            raise stage.error("results: nothing to compare (no eval stage comes before it)")
        if s.labels and len(s.labels) != len(s.results):
            raise stage.error(f"labels: {len(s.labels)} labels for {len(s.results)} results")

    def external_paths(self, stage: Stage) -> list[str]:
        return list(stage.symbolic.get("results") or [])

    def command(self, stage: Stage) -> str:
        s = stage.settings
        return shell(["jft", "compare", *s.results, "--chart", stage.outputs["chart"], "--output", stage.outputs["table"]]
                     + (["--labels", ",".join(s.labels)] if s.labels else []))

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.commands.evaluate import run_compare

        s = stage.settings
        res = run_compare([Path(r) for r in s.results], s.labels or None, Path(stage.outputs["chart"]),
                          Path(stage.outputs["table"]))
        return {"labels": res["labels"], "metrics": len(res["metrics"])}


@dataclass
class ReportSettings:
    runs: list[str] = field(default_factory=list)  # default: every earlier train stage's directory
    results: list[str] = field(default_factory=list)  # default: every earlier eval stage's result
    heading: str | None = None  # the report's title; default: "jft run report: RECIPE"


@register
class Report(Kind):
    """`jft report`: report.md and report.html (loss curves, comparison, generations, stage times,
    environment, commands). Outputs: md, html (WORKDIR/<stage>/report.*)."""

    name = "report"
    title = "write the report"
    Settings = ReportSettings

    def defaults(self, earlier: list, recipe) -> dict:
        return {"runs": _earlier(earlier, "train", "dir"), "results": _earlier(earlier, "eval", "result"),
                "heading": f"jft run report: {recipe.name}"}

    def outputs(self, d: Path, s) -> dict:
        return {"md": str(d / "report.md"), "html": str(d / "report.html")}

    def external_paths(self, stage: Stage) -> list[str]:
        return list(stage.symbolic.get("runs") or []) + list(stage.symbolic.get("results") or [])

    def command(self, stage: Stage) -> str:
        s = stage.settings
        args = ["jft", "report"]
        for r in s.runs:
            args += ["--run", r]
        for r in s.results:
            args += ["--result", r]
        return shell(args + ["--output", stage.dir] + (["--title", s.heading] if s.heading else []))

    def run(self, stage: Stage, ctx) -> dict:
        from japanese_ft.report import write_report

        s = stage.settings
        info = write_report(stage.dir, s.runs, s.results, manifest=ctx.manifest_path, title=s.heading, command=stage.command)
        return {"md": info["md"], "html": info["html"], "runs": info["runs"], "results": info["results"]}
