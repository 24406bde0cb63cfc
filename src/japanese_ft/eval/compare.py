"""Compare result files: a before/after table and a bar chart (e.g. base vs CPT vs CPT+SFT vs LoRA).

Every JSQuAD/JCommonsenseQA row carries the prompt format it was scored in (`raw` or `chat`;
results written before the format was recorded are raw). Scores in the chat format or under the
llm-jp-eval protocol get their own rows (`jsquad.char_f1 [chat]`, `jsquad.char_f1 [llm-jp-eval]`),
so a table never puts numbers of different formats side by side as if they were one metric.
"""

from __future__ import annotations

from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import read_json

# Headline metrics per task, in display order; `higher` tells which direction is better.
HEADLINE = {
    "jsquad": [("char_f1", True), ("exact_match", True)],
    "jcommonsenseqa": [("accuracy", True), ("accuracy_generation", True)],
    "perplexity": [("perplexity", False), ("bits_per_char", False)],
}


def metric_format(res: dict, metric: str) -> str | None:
    """The prompt format a metric was scored in: raw, chat, or None (perplexity has none)."""
    if res.get("task") not in ("jsquad", "jcommonsenseqa"):
        return None
    if res.get("task") == "jcommonsenseqa" and metric == "accuracy":
        return res.get("ranking_format", "raw")  # the log-likelihood ranking is always a plain completion
    return res.get("format", "raw")


def metric_key(name: str, metric: str, res: dict) -> str:
    """`name.metric`, marked ` [chat]` / ` [llm-jp-eval]` / ` [chat, ...]` unless raw under jft's protocol."""
    marks = [m for m in (metric_format(res, metric), res.get("protocol", "jft")) if m not in (None, "raw", "jft")]
    return f"{name}.{metric}" + (f" [{', '.join(marks)}]" if marks else "")


def load_result(path: str | Path) -> tuple[str, dict[str, float], dict[str, bool], dict[str, str | None]]:
    """(label, {"task.metric": value}, {"task.metric": higher_is_better}, {"task.metric": format}) from
    a result JSON: a single evaluation (`jft eval jsquad|jcommonsenseqa|perplexity`) or a suite."""
    path = Path(path)
    obj = read_json(path, "result file")
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a jft result file")
    label = obj.get("label") or (obj.get("model_info") or {}).get("label") or path.stem
    if obj.get("task") == "suite":
        runs = list((obj.get("results") or {}).items())
    elif obj.get("task") in HEADLINE:
        runs = [(obj["task"], obj)]
    else:
        raise UserError(f"{path}: not a jft result file (no known 'task' field)")
    values: dict[str, float] = {}
    better: dict[str, bool] = {}
    formats: dict[str, str | None] = {}
    for name, res in runs:
        for metric, higher in HEADLINE.get(res.get("task"), []):
            v = res.get(metric)
            if isinstance(v, (int, float)):
                key = metric_key(name, metric, res)
                values[key] = float(v)
                better[key] = higher
                formats[key] = metric_format(res, metric)
    if not values:
        raise UserError(f"{path}: no scores found")
    return str(label), values, better, formats


def compare(paths: list[str | Path], labels: list[str] | None = None) -> dict:
    """{"labels": [...], "metrics": [...], "table": {metric: [value or None per run]}, "higher": {...},
    "formats": {metric: "raw" | "chat" | None}}."""
    if not paths:
        raise UserError("give at least one result file")
    if labels and len(labels) != len(paths):
        raise UserError(f"--labels: got {len(labels)} labels for {len(paths)} result files")
    run_labels, tables, higher, formats = [], [], {}, {}
    for i, p in enumerate(paths):
        label, values, better, fmts = load_result(p)
        run_labels.append(labels[i] if labels else label)
        tables.append(values)
        higher.update(better)
        formats.update(fmts)
    seen = {}
    for lab in run_labels:  # disambiguate repeated labels
        seen[lab] = seen.get(lab, 0) + 1
    if any(c > 1 for c in seen.values()):
        run_labels = [f"{lab} ({Path(str(p)).name})" for lab, p in zip(run_labels, paths)]
    metrics: list[str] = []
    for t in tables:
        metrics.extend(m for m in t if m not in metrics)
    table = {m: [t.get(m) for t in tables] for m in metrics}
    return {"labels": run_labels, "metrics": metrics, "table": table, "higher": higher, "formats": formats}


def format_table(result: dict) -> list[list[str]]:
    """Rows for printing: metric, its prompt format (raw/chat, "-" for perplexity), value per run, and
    change of the last run vs the first."""
    rows = []
    for m in result["metrics"]:
        vals = result["table"][m]
        cells = ["-" if v is None else f"{v:.4f}" for v in vals]
        delta = ""
        if len(vals) > 1 and vals[0] is not None and vals[-1] is not None:
            d = vals[-1] - vals[0]
            good = (d > 0) == result["higher"].get(m, True)
            delta = f"{d:+.4f}" + ("" if d == 0 else (" better" if good else " worse"))
        rows.append([m, result.get("formats", {}).get(m) or "-", *cells, delta])
    return rows


METRIC_NAMES = {
    "char_f1": "char-F1",
    "exact_match": "exact match",
    "accuracy": "accuracy (log-likelihood)",
    "accuracy_generation": "accuracy (generated)",
    "perplexity": "perplexity",
    "bits_per_char": "bits per character",
}


def metric_label(key: str) -> tuple[str, str]:
    """"heldout_ppl.perplexity" -> ("heldout_ppl", "perplexity"): the evaluation's name and a readable metric
    (a format/protocol mark stays on the metric: "jsquad.char_f1 [chat]" -> ("jsquad", "char-F1 [chat]"))."""
    base, sep, marks = key.partition(" [")
    name, _, metric = base.rpartition(".")
    return name or metric, METRIC_NAMES.get(metric, metric.replace("_", " ")) + (f" [{marks}" if sep else "")


def fmt_value(v: float) -> str:
    """Plain numbers at a sensible precision (never 1.08e+03)."""
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def bar_chart(result: dict, out_png: str | Path) -> Path:
    """One panel per metric, one bar per run (matplotlib, Agg backend; no display needed).

    Panel title = the evaluation, y label = the metric; a run without the metric gets no bar
    ("n/a"); a panel whose values are all zero keeps a 0..1 axis instead of matplotlib's -0.04..0.04."""
    from japanese_ft.figures import pyplot, save_figure

    plt = pyplot()
    metrics = result["metrics"]
    labels = result["labels"]
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, m in zip(axes.flat, metrics):
        values = result["table"][m]
        present = [i for i, v in enumerate(values) if v is not None]
        ax.bar(present, [values[i] for i in present], color=[colors[i % len(colors)] for i in present])
        name, metric = metric_label(m)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(metric + ("" if result["higher"].get(m, True) else " (lower is better)"), fontsize=8)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        top = max((values[i] for i in present), default=0.0)
        if top <= 0:
            ax.set_ylim(0, 1)
        else:
            ax.set_ylim(0, top * 1.18)
        for i, v in enumerate(values):
            ax.annotate("n/a" if v is None else fmt_value(v), (i, v or 0.0), ha="center", va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out_png, dpi=110)
