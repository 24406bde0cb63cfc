"""Figures: matplotlib on its Agg backend (no display needed), saved atomically.

`pyplot()` is the one place that picks the backend; `save_figure` writes NAME.tmp.png and renames
it, then closes the figure. Used by training curves, `jft compare --chart` and the run report.
"""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot with the Agg backend (imported on first use: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, **savefig) -> Path:
    """Save `fig` to `path` atomically (PNG; `savefig` passes dpi and the like) and close it."""
    from japanese_ft.files import atomic_output

    try:
        with atomic_output(path, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, **savefig)
    finally:
        pyplot().close(fig)
    return Path(path)
