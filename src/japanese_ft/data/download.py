"""`download-corpus`: fetch LLM-jp corpus files with resume, retries and verification.

Standard library only (urllib). Each file is streamed into `NAME.part`; an interrupted
transfer is resumed with an HTTP `Range: bytes=N-` request (a server that ignores Range and
answers 200 makes us start that file over). When the transfer ends, the size is checked
against the total the server announced (Content-Length, or the `/total` of Content-Range)
and, when one is known, the SHA-256; only then is `NAME.part` renamed to `NAME`. So a file
under its final name is always complete, and a run that fails leaves at most a `.part`
that the next run resumes.

LLM-jp Corpus v3 is hosted on the LLM-jp GitLab (https://gitlab.llm-jp.nii.ac.jp/datasets/llm-jp-corpus-v3);
raw files are served at `<repository>/-/raw/main/<path>`, e.g.
https://gitlab.llm-jp.nii.ac.jp/datasets/llm-jp-corpus-v3/-/raw/main/ja/ja_wiki/train_0.jsonl.gz
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import publish

LLMJP_V3_RAW = "https://gitlab.llm-jp.nii.ac.jp/datasets/llm-jp-corpus-v3/-/raw/main"


@dataclass(frozen=True)
class Corpus:
    name: str
    base_url: str
    files: tuple[str, ...]
    description: str
    sha256: dict = field(default_factory=dict)  # file name -> hex digest, where published


CORPORA: dict[str, Corpus] = {
    "ja_wiki": Corpus(
        name="ja_wiki",
        base_url=f"{LLMJP_V3_RAW}/ja/ja_wiki",
        files=tuple(f"train_{i}.jsonl.gz" for i in range(14)) + ("validation_0.jsonl.gz",),
        description="LLM-jp Corpus v3, Japanese Wikipedia (CC BY-SA 4.0), about 1.4M articles",
    ),
}

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSAT = re.compile(r"bytes\s+\*/(\d+)")
# Errors worth another try: dropped connections, timeouts, 5xx, 408, 429.
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _Retry(Exception):
    """A transient failure; the message says what happened."""


class _SafeRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s), and never from https down to http (urllib would follow
    https -> http and ftp:// silently)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old_scheme = urllib.parse.urlsplit(req.full_url).scheme.lower()
        new_scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if new_scheme not in ("http", "https"):
            raise UserError(f"{req.full_url}: redirected to {newurl}; refusing a non-HTTP(S) redirect")
        if old_scheme == "https" and new_scheme == "http":
            raise UserError(f"{req.full_url}: redirected to {newurl}; refusing an https -> http downgrade")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SafeRedirect)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    reason = getattr(exc, "reason", exc)
    return reason if isinstance(reason, ssl.SSLCertVerificationError) else None


@dataclass
class FileResult:
    name: str
    path: str
    bytes: int
    status: str  # "downloaded", "resumed", "present"
    verified: str  # "size", "size+sha256", "sha256", "unverified"
    attempts: int = 0


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"jft/{version('japanese-ft')} (+python-urllib)"
    except Exception:  # pragma: no cover - not installed as a distribution
        return "jft (+python-urllib)"


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    timeout: float = 60.0,
    progress=None,
    sleep=time.sleep,
) -> FileResult:
    """Download `url` to `dest` with resume (`dest.part`), retries and verification.

    `progress(advance_bytes, total_bytes_or_None)` is called as data arrives (and once with the
    bytes already on disk when resuming). Transient failures are retried `retries` times with
    exponential backoff (`backoff * 2**k` seconds, capped at `max_backoff`), each retry resuming
    where the last stopped. HTTP 4xx errors and verification failures raise `UserError` at once.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        if sha256 and file_sha256(dest) != sha256.lower():
            raise UserError(f"{dest}: exists but its SHA-256 does not match; delete it to download again")
        size = dest.stat().st_size
        if progress is not None:
            progress(size, size)
        return FileResult(dest.name, str(dest), size, "present", "sha256" if sha256 else "unverified")
    dest.parent.mkdir(parents=True, exist_ok=True)
    resumed_from = part.stat().st_size if part.exists() else 0
    state = _Progress(progress)
    total: int | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            total = _transfer(url, part, timeout, state)
            break
        except _Retry as exc:
            if attempt > retries:
                raise UserError(f"{url}: download failed after {attempt} attempts ({exc}); rerun to resume from {part}") from None
            sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))
    size = part.stat().st_size
    if total is not None and size != total:  # pragma: no cover - _transfer guarantees this
        raise UserError(f"{url}: got {size} bytes, expected {total}")
    verified = "size" if total is not None else "unverified"
    if sha256:
        digest = file_sha256(part)
        if digest != sha256.lower():
            part.unlink(missing_ok=True)
            raise UserError(f"{url}: SHA-256 mismatch (got {digest}, expected {sha256.lower()}); the partial file was removed")
        verified = "size+sha256" if total is not None else "sha256"
    publish(part, dest)
    return FileResult(dest.name, str(dest), size, "resumed" if resumed_from else "downloaded", verified, attempt)


class _Progress:
    """Forwards byte counts to the caller's callback and remembers how many it has reported,
    so a retry that resumes (or restarts) a file keeps the bar consistent."""

    def __init__(self, callback):
        self.callback, self.reported = callback, 0

    def to(self, position: int, total: int | None) -> None:
        if self.callback is not None and position != self.reported:
            self.callback(position - self.reported, total)  # negative when a restart discards bytes
        self.reported = position

    def add(self, n: int, total: int | None) -> None:
        self.to(self.reported + n, total)


def _transfer(url: str, part: Path, timeout: float, progress: _Progress) -> int | None:
    """One HTTP attempt appending to `part`. Returns the total size (None if not announced)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # Nothing left to send: the .part may already be complete, or longer than the file.
            m = _CONTENT_RANGE_UNSAT.match(exc.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == offset:
                progress.to(offset, offset)
                return offset
            part.unlink(missing_ok=True)
            raise _Retry("server rejected the resume range; starting over") from None
        if exc.code in _RETRY_STATUS:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except _TRANSIENT as exc:
        cert = _certificate_error(exc)
        if cert is not None:  # not transient: retrying cannot fix a certificate
            raise UserError(f"{url}: TLS certificate verification failed ({cert.verify_message or cert}); "
                            "not retrying. The server's certificate is not trusted (self-signed, expired or "
                            "for another host)") from None
        raise _Retry(str(getattr(exc, "reason", exc)) or type(exc).__name__) from None

    with response:
        status = response.status
        total: int | None = None
        if status == 206:
            m = _CONTENT_RANGE.match(response.headers.get("Content-Range", "") or "")
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retry("server sent an unexpected byte range; starting over")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        elif status == 200:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            offset, mode = 0, "wb"  # the server ignored Range (or there was none): start over
        else:
            raise _Retry(f"unexpected HTTP status {status}")
        progress.to(offset, total)
        written = offset
        try:
            with open(part, mode) as fh:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    written += len(chunk)
                    progress.add(len(chunk), total)
        except _TRANSIENT as exc:
            raise _Retry(f"connection broken after {written} bytes ({exc or type(exc).__name__})") from None
    if total is not None:
        if written < total:
            raise _Retry(f"connection closed after {written} of {total} bytes")
        if written > total:
            part.unlink(missing_ok=True)
            raise UserError(f"{url}: received {written} bytes but the server announced {total}; the partial file was removed")
    return total


def parse_checksums(items: list[str]) -> dict[str, str]:
    """`NAME=HEX` items (or a `sha256sum`-format file given as `@FILE`) -> {name: hex}."""
    out: dict[str, str] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:])
            if not path.is_file():
                raise UserError(f"--sha256 {item}: no such file")
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
                    raise UserError(f"{path}:{n}: expected '<sha256>  <file name>'")
                out[Path(parts[1].lstrip("*")).name] = parts[0].lower()
            continue
        name, sep, digest = item.partition("=")
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
            raise UserError(f"--sha256 {item!r}: expected NAME=<64 hex digits> or @SHA256SUMS")
        out[name.strip()] = digest.strip().lower()
    return out


def resolve_files(corpus: Corpus, files: list[str] | None) -> list[str]:
    """The corpus files to fetch; `files` may name a subset (comma-separated items allowed)."""
    if not files:
        return list(corpus.files)
    wanted = [f.strip() for item in files for f in item.split(",") if f.strip()]
    for name in wanted:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise UserError(f"--files {name!r}: give a plain file name such as train_0.jsonl.gz")
    return wanted


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise UserError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    return CORPORA[name]


def download_corpus(
    name: str,
    output_dir: str | Path,
    base_url: str | None = None,
    files: list[str] | None = None,
    sha256: dict[str, str] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    on_file=None,
    progress_for=None,
) -> list[FileResult]:
    """Fetch every file of corpus `name` into `output_dir` (see `download_file`).

    `progress_for(file_name)` may return a progress callback for that file; `on_file(result)`
    is called after each file.
    """
    corpus = get_corpus(name)
    base = (base_url or corpus.base_url).rstrip("/")
    if not re.match(r"^https?://", base):
        raise UserError(f"--base-url {base!r}: expected an http:// or https:// URL")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    checksums = {**corpus.sha256, **(sha256 or {})}
    names = resolve_files(corpus, files)
    unmatched = sorted(set(sha256 or {}) - set(names))
    if unmatched:
        raise UserError(f"--sha256 {', '.join(unmatched)}: no such file in this download "
                        f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); check the file name")
    results = []
    for fname in names:
        progress = progress_for(fname) if progress_for is not None else None
        result = download_file(
            f"{base}/{fname}", out / fname, sha256=checksums.get(fname), retries=retries, backoff=backoff,
            timeout=timeout, progress=progress,
        )
        results.append(result)
        if on_file is not None:
            on_file(result)
    return results
