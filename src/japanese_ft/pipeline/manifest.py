"""The work directory's manifest (WORKDIR/jft-run.json) and its lock.

The manifest records the recipe, the variables, the environment and, per stage: kind, title,
fingerprint, status (running, done, failed), outputs, the equivalent command, the log, start and
finish times, the stage's own wall time, a run id (new each time the stage runs; downstream stages
record the run ids they were made from) and a small summary (final loss, headline metrics).
Written atomically after every change.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import OutputLock, write_json

MANIFEST = "jft-run.json"
LOCK = ".jft-run.lock"
FORMAT = "jft-run/1"


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def manifest_path(workdir: Path) -> Path:
    return Path(workdir) / MANIFEST


def read_manifest(workdir: Path) -> dict | None:
    path = manifest_path(workdir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable run manifest ({exc}); move it away to start over") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a jft run manifest (format {data.get('format') if isinstance(data, dict) else '?'})")
    return data


def write_manifest(workdir: Path, manifest: dict) -> None:
    manifest["updated"] = now()
    write_json(manifest_path(workdir), manifest)


def check_workdir(workdir: Path, manifest: dict | None, recipe_name: str) -> None:
    """Refuse a directory that holds something else: files but no manifest, or another recipe's run."""
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"--workdir {workdir}: exists and is not a directory")
    if manifest is None:
        if workdir.exists() and any(p.name not in (LOCK, LOCK + ".pid") for p in workdir.iterdir()):
            raise UserError(f"--workdir {workdir}: not empty and not a jft run directory (no {MANIFEST}); "
                            "choose a new or empty directory")
        return
    other = manifest.get("recipe", {}).get("name")
    if other != recipe_name:
        raise UserError(f"--workdir {workdir} holds a run of recipe {other!r}, not {recipe_name!r}; "
                        "choose another --workdir (or delete that one)")


class WorkdirLock(OutputLock):
    """The work directory's lock (`files.OutputLock`): a second `jft run` on the same directory
    fails at once and says which process holds it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        super().__init__(self.workdir / LOCK, f"--workdir {self.workdir}")
