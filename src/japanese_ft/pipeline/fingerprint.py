"""Stage fingerprints: a hash of the kind, the resolved settings (canonical JSON), the upstream
stages' fingerprints and the content identity of the external files the stage reads."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FORMAT = 1  # bump when the fingerprint's ingredients change
CHUNK = 1 << 20


def file_identity(path: Path) -> str:
    """Cheap content identity: size, mtime and the first and last MiB (like `weights_fingerprint`)."""
    st = path.stat()
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(CHUNK))
        if st.st_size > 2 * CHUNK:
            fh.seek(st.st_size - CHUNK)
            h.update(fh.read(CHUNK))
    return h.hexdigest()


def path_identity(raw: str) -> str:
    """Identity of a file, a directory (every file below it), a token-file prefix, or "missing"."""
    path = Path(raw)
    if path.is_file():
        return file_identity(path)
    if path.is_dir():
        h = hashlib.blake2b(digest_size=12)
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                h.update(f"{p.relative_to(path)}={file_identity(p)};".encode())
        return h.hexdigest()
    parts = [Path(f"{raw}{ext}") for ext in (".bin", ".idx")]
    if all(p.is_file() for p in parts):
        return "+".join(file_identity(p) for p in parts)
    return "missing"  # a hub id, or a file the stage will report missing


def externals(paths: list) -> dict:
    """{path: identity} for the settings that name files outside the work directory's stages
    (values still holding `${...}` are stage outputs, covered by the upstream fingerprints)."""
    out = {}
    for p in paths:
        if isinstance(p, str) and p and "${" not in p:
            out[os.path.normpath(p)] = path_identity(p)
    return dict(sorted(out.items()))


def fingerprint(kind: str, settings, upstream: dict, external: dict) -> str:
    doc = {"format": FORMAT, "kind": kind, "settings": settings, "upstream": upstream, "external": external}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
