"""Files on disk: atomic writes, exclusive locks on outputs, and local paths vs hub ids.

Every output jft writes goes through `atomic_output` (or `temp_path` + `publish` where several
processes take part): it is written under a temporary sibling name (`NAME.tmp`) and renamed into
place only when complete, so an interrupted run never leaves a file or directory that looks done.
`OutputLock` keeps two runs off one output (`jft run`'s work directory, `prepare-corpus`'s prefix,
`jft train`'s output_dir): the second one stops with exit code 2, naming the lock and the holder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from japanese_ft.errors import UserError

# A hub repository id as huggingface_hub accepts it: "owner/name" of letters, digits, "-", "_", ".".
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def temp_path(path: str | Path, suffix: str = ".tmp") -> Path:
    """The temporary sibling `path` is written under before `publish` renames it."""
    path = Path(path)
    return path.with_name(path.name + suffix)


def remove(path: Path) -> None:
    """Delete a file or a directory tree; nothing when it is absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(tmp: str | Path, path: str | Path) -> Path:
    """Rename the complete `tmp` to `path`, replacing what was there (a directory is removed first:
    a rename cannot replace a non-empty one)."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_dir() and path.is_dir():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


@contextmanager
def atomic_output(path: str | Path, directory: bool = False, suffix: str = ".tmp"):
    """Yield a fresh temporary path to write `path`'s content to (a new empty directory with
    `directory`); renamed to `path` when the block ends, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    remove(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    publish(tmp, path)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj) -> Path:
    """Indented UTF-8 JSON (non-ASCII kept), atomically."""
    return write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_json(path: str | Path, what: str = "file"):
    """A JSON file's content, or a one-line UserError naming the file (and the line of a syntax error)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def write_lines(path: str | Path, lines) -> Path:
    """Strings as they come (each carries its own newline), atomically; `lines` may be a generator."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line)
    return Path(path)


def write_jsonl(path: str | Path, records) -> Path:
    return write_lines(path, (json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# ---- locks ---------------------------------------------------------------------------------------


class OutputLock:
    """An exclusive lock (filelock) on an output, plus LOCK.pid naming the holding process.

    `with OutputLock(lock_file, what):` fails at once with a UserError (exit code 2) naming the
    lock file and the pid that holds it when another process holds it. The pid sits in its own
    file because a lock file is truncated by every process that tries to take it."""

    def __init__(self, lock_file: str | Path, what: str) -> None:
        self.path = Path(lock_file)
        self.pid_path = self.path.with_name(self.path.name + ".pid")
        self.what = what
        self.lock = None

    def holder(self) -> str:
        try:
            return self.pid_path.read_text().strip() or "?"
        except OSError:
            return "?"

    def __enter__(self):
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(self.path), timeout=0)
        try:
            self.lock.acquire()
        except Timeout:
            raise UserError(f"{self.what}: in use by another jft process (pid {self.holder()}, lock {self.path}); "
                            "wait for it to finish or stop it") from None
        self.pid_path.write_text(str(os.getpid()))
        return self

    def __exit__(self, *exc):
        self.pid_path.unlink(missing_ok=True)
        # Removed while still held, so no lock file stays behind (as filelock >= 4 does itself). A
        # process that opened it just before and locks it just after the release would go
        # undetected; a window of microseconds, against leftover files beside every output.
        self.path.unlink(missing_ok=True)
        self.lock.release()


# ---- names -----------------------------------------------------------------------------------------


def looks_local(name: str) -> bool:
    """True when `name` means a local path rather than a Hugging Face hub id.

    A hub id is exactly "owner/name" (letters, digits, "-", "_", "."); anything else is a path:
    it starts with ".", "/" or "~", has no "/" or more than one, or its first part exists here
    (`runs/nope` when ./runs exists). Dots are allowed in hub ids (`Qwen/Qwen2.5-0.5B`), so a
    suffix says nothing."""
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        return True
    if "--" in name or ".." in name or name.endswith((".git", ".")):
        return True
    return Path(name.split("/", 1)[0]).exists()
