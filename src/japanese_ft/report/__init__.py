"""Run reports: REPORT_DIR/report.md, a self-contained report.html and the figures in plots/.

`write_report` works from explicit inputs (training run directories and evaluation result files);
given the manifest of a `jft run`, it adds stage times, data statistics and the commands.
"""

from __future__ import annotations

from pathlib import Path


def write_report(out_dir: str | Path, runs: list = (), results: list = (), manifest: str | Path | None = None,
                 title: str | None = None, command: str | None = None) -> dict:
    """Write OUT_DIR/report.md, OUT_DIR/report.html and OUT_DIR/plots/*.png; returns their paths."""
    from japanese_ft.files import write_text
    from japanese_ft.report.blocks import to_html, to_markdown
    from japanese_ft.report.inputs import load_inputs
    from japanese_ft.report.plots import plot_loss_curves, plot_metrics
    from japanese_ft.report.sections import SECTIONS, section_reproduce

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_inputs(out, list(runs), list(results), manifest, title)
    if plot_loss_curves(data.runs, out / "plots" / "loss_curves.png"):
        data.plots["loss"] = "plots/loss_curves.png"
    if plot_metrics(data.results, out / "plots" / "metrics.png"):
        data.plots["metrics"] = "plots/metrics.png"
    blocks = [b for section in SECTIONS for b in section(data)] + section_reproduce(data, command)
    paths = {"md": out / "report.md", "html": out / "report.html"}
    for key, text in (("md", to_markdown(blocks)), ("html", to_html(blocks, out, data.title))):
        write_text(paths[key], text)
    return {"md": str(paths["md"]), "html": str(paths["html"]),
            "plots": sorted(str(out / p) for p in data.plots.values()), "runs": len(data.runs),
            "results": len(data.results)}
