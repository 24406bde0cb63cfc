"""Run metrics: metrics.jsonl (one object per step, plus validation lines), TensorBoard events,
and training_curve.png at the end. Only rank 0 writes.

TensorBoard is optional (`pip install "japanese-ft[tensorboard]"`): without it the run writes
metrics.jsonl and the PNG, which `jft status` and the reports read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from japanese_ft.files import write_text


class MetricsLogger:
    def __init__(self, output_dir: str | Path, enabled: bool = True, resume_step: int = 0, tensorboard: bool = True) -> None:
        self.dir = Path(output_dir)
        self.path = self.dir / "metrics.jsonl"
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._truncate_after(resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.dir / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:  # the tensorboard extra is not installed: jsonl + png still work
                self.writer = None

    def _truncate_after(self, step: int) -> None:
        """On resume, drop lines of steps after the checkpoint (they will be redone); fresh run: start empty."""
        if not self.path.exists():
            return
        keep = []
        if step > 0:
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        keep.append(line)
                except json.JSONDecodeError:
                    continue
        write_text(self.path, "".join(line + "\n" for line in keep))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.writer is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    tag = f"val/{key}" if key.startswith("val_") else f"train/{key}"
                    self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_training_curve(metrics_path: str | Path, png_path: str | Path, title: str | None = None) -> Path | None:
    """Train loss (and validation loss) against step (`figures.py`: Agg backend, atomic save). The
    title defaults to the run directory's name."""
    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    if not train and not val:
        return None
    from japanese_ft.figures import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or f"training loss: {Path(metrics_path).resolve().parent.name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, png_path)
