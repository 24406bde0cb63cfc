"""Reading LLM-jp style JSONL(.gz) corpora with line-level error accounting.

`iter_lines` yields raw lines with their `file:line` location; `parse_record` turns one raw line
into a record or a `Malformed` reason. Both are cheap, streaming, and free of torch.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from japanese_ft.errors import UserError

SUFFIXES = (".jsonl", ".jsonl.gz")


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, directories as their sorted `*.jsonl[.gz]`; clear errors otherwise."""
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(SUFFIXES))
            if not found:
                raise UserError(f"{path}: directory has no *.jsonl or *.jsonl.gz files")
            files.extend(found)
        else:
            files.append(path)
    for path in files:
        if not os.access(path, os.R_OK):
            raise UserError(f"{path}: file is not readable")
        if path.is_file() and path.stat().st_size == 0:  # a FIFO (`<(zcat ...)`) has no size yet
            raise UserError(f"{path}: file is empty")
    return files


def open_binary(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


@dataclass(frozen=True)
class Location:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def iter_lines(files: list[Path], start: int = 0, stop: int | None = None) -> Iterator[tuple[bytes, Location]]:
    """Yield (raw line, location) for global line numbers in [start, stop), blank lines included."""
    index = 0
    for path in files:
        if stop is not None and index >= stop:
            return
        try:
            with open_binary(path) as fh:
                for lineno, raw in enumerate(fh, 1):
                    if index >= start and (stop is None or index < stop):
                        yield raw, Location(str(path), lineno)
                    index += 1
                    if stop is not None and index >= stop:
                        return
        except (OSError, EOFError) as exc:  # truncated gzip, permission changes mid-run, ...
            raise UserError(f"{path}: cannot read ({exc})") from None


def count_lines(files: list[Path]) -> int:
    """Number of lines in all files (a trailing line without newline counts)."""
    total = 0
    for path in files:
        last = b"\n"
        with open_binary(path) as fh:
            while chunk := fh.read(1 << 22):
                total += chunk.count(b"\n")
                last = chunk[-1:]
        if last != b"\n":
            total += 1
    return total


def shard_range(total_lines: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Line range [start, stop) of shard K of N (1-based K), in equal contiguous slices."""
    if shard is None:
        return 0, total_lines
    k, n = shard
    return (k - 1) * total_lines // n, k * total_lines // n


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    if spec is None:
        return None
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UserError(f"--shard {spec!r}: expected K/N, e.g. 1/4") from None
    if not (1 <= k <= n):
        raise UserError(f"--shard {spec!r}: K must be between 1 and N")
    return k, n


MAX_REPORTED_MALFORMED = 5


def note_malformed(stats, loc: Location, reason: str, strict: bool) -> None:
    """The one policy for a bad line: stop (--strict) or count it and keep the first few locations.
    `stats` has `malformed_lines` and `malformed_examples`."""
    if strict:
        raise UserError(f"{loc}: {reason}")
    stats.malformed_lines += 1
    if len(stats.malformed_examples) < MAX_REPORTED_MALFORMED:
        stats.malformed_examples.append(f"{loc}: {reason}")


def progress_total(files: list[Path]) -> int | None:
    """Bytes on disk for a byte progress bar; None (no ETA) when any input is gzip-compressed,
    whose uncompressed size is unknown up front."""
    if any(f.name.endswith(".gz") for f in files):
        return None
    return sum(f.stat().st_size for f in files)


class Malformed(str):
    """Reason a line is not a usable record (a str subclass so it prints as the reason)."""


def parse_record(raw: bytes, text_key: str = "text") -> dict | Malformed | None:
    """Parse one JSONL line. Blank lines give None; bad lines give a `Malformed` reason."""
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Malformed(f"invalid JSON ({exc.msg if hasattr(exc, 'msg') else exc})")
    if not isinstance(record, dict):
        return Malformed(f"expected a JSON object, got {type(record).__name__}")
    if text_key not in record:
        return Malformed(f"missing field {text_key!r}")
    if not isinstance(record[text_key], str):
        return Malformed(f"field {text_key!r} is {type(record[text_key]).__name__}, not a string")
    bad = lone_surrogate_field(record)
    if bad is not None:
        return Malformed(surrogate_reason(bad))
    return record


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate_field(value, name: str = "") -> str | None:
    """Dotted name of the first string (or key) in a parsed JSON value that holds a lone surrogate.

    json.loads turns an escaped pair ("\\ud83d\\ude00") into one character but keeps a lone
    "\\ud800" as is; such a string is not valid Unicode and cannot be written as UTF-8."""
    if isinstance(value, str):
        return (name or "value") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            field_name = f"{name}.{key}" if name else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                return field_name
            found = lone_surrogate_field(item, field_name)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate_field(item, f"{name}[{i}]")
            if found is not None:
                return found
    return None


SURROGATE_PROBLEM = 'holds a lone surrogate escape such as "\\ud800" (not valid Unicode)'


def surrogate_reason(field_name: str) -> str:
    return f"field {field_name!r} {SURROGATE_PROBLEM}"


def iter_records(paths: list[str | Path], text_key: str = "text", strict: bool = False, on_malformed=None):
    """Yield (record, location) for every valid record; report or raise on malformed lines."""
    for raw, loc in iter_lines(expand_inputs(paths)):
        rec = parse_record(raw, text_key)
        if rec is None:
            continue
        if isinstance(rec, Malformed):
            if strict:
                raise UserError(f"{loc}: {rec}")
            if on_malformed is not None:
                on_malformed(loc, rec)
            continue
        yield rec, loc
