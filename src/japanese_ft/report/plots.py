"""The report's figures (`figures.py`: matplotlib's Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path


def plot_loss_curves(runs: list, out_png: Path) -> Path | None:
    """One panel per training run: train loss per step and validation loss, titled with the
    run's name and mode."""
    if not runs:
        return None
    from japanese_ft.figures import pyplot, save_figure
    from japanese_ft.train.metrics import read_metrics

    plt = pyplot()

    cols = min(2, len(runs))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), dpi=100, squeeze=False)
    for ax, run in zip(axes.flat, runs):
        recs = read_metrics(run.dir / "metrics.jsonl")
        train = [(r["step"], r["loss"]) for r in recs if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in recs if "val_loss" in r]
        if train:
            ax.plot(*zip(*train), label="train loss", linewidth=1.2)
        if val:
            ax.plot(*zip(*val), "o-", label="validation loss", markersize=4)
        ax.set_title(f"{run.name} ({run.mode or '?'} mode)", fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel("loss (nats/token)", fontsize=9)
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.suptitle("Loss curves: training loss per step, validation loss at each evaluation", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_metrics(results: list, out_png: Path) -> dict | None:
    """`jft compare`'s bar chart over the result files (one bar per model, one panel per metric)."""
    from japanese_ft.errors import UserError
    from japanese_ft.eval.compare import bar_chart, compare

    scored = [r for r in results if any(s.get("task") != "generate" for s in r.results.values())]
    if not scored:
        return None
    try:
        res = compare([str(r.path) for r in scored], [r.label for r in scored])
    except UserError:
        return None
    bar_chart(res, out_png)
    return res
