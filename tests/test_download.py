"""download-corpus against a local HTTP server (127.0.0.1) that supports Range and can break connections."""

from __future__ import annotations

import hashlib
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from japanese_ft.cli import main
from japanese_ft.data.download import CORPORA, download_corpus, download_file, parse_checksums
from japanese_ft.errors import UserError

PAYLOAD = random.Random(0).randbytes(300_000)
SMALL = "夏の風鈴。\n".encode("utf-8") * 500


class FakeServer:
    """Serves `files`; behaviour is switched per test through attributes."""

    def __init__(self, files: dict[str, bytes], tls: tuple[Path, Path] | None = None):
        self.files = files
        self.redirect: str | None = None  # answer every GET with a 302 to this URL
        self.break_first = 0  # break this many GETs mid-file (after half the bytes)
        self.fail_status: int | None = None  # answer every GET with this status
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                if server.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", server.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.fail_status is not None:
                    self.send_response(server.fail_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if server.break_first > 0:
                    server.break_first -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.base = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/ja/ja_wiki"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with FakeServer({"train_0.jsonl.gz": PAYLOAD, "validation_0.jsonl.gz": SMALL}) as srv:
        yield srv


def _fetch(server, dest, **kw):
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 10)
    return download_file(f"{server.base}/train_0.jsonl.gz", dest, **kw)


def test_default_source_is_llmjp_v3_ja_wiki():
    corpus = CORPORA["ja_wiki"]
    assert corpus.base_url == "https://gitlab.llm-jp.nii.ac.jp/datasets/llm-jp-corpus-v3/-/raw/main/ja/ja_wiki"
    assert corpus.files == tuple(f"train_{i}.jsonl.gz" for i in range(14)) + ("validation_0.jsonl.gz",)


def test_resume_after_broken_connection(server, tmp_path):
    server.break_first = 1
    seen = []
    result = _fetch(server, tmp_path / "train_0.jsonl.gz", progress=lambda n, total: seen.append((n, total)))
    assert (tmp_path / "train_0.jsonl.gz").read_bytes() == PAYLOAD
    assert not (tmp_path / "train_0.jsonl.gz.part").exists()
    assert result.attempts == 2 and result.verified == "size"
    # The second request asked only for the missing bytes.
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(PAYLOAD) // 2}-"
    assert sum(n for n, _ in seen) == len(PAYLOAD) and seen[-1][1] == len(PAYLOAD)


def test_resume_a_part_file_from_an_earlier_run(server, tmp_path):
    dest = tmp_path / "train_0.jsonl.gz"
    (tmp_path / "train_0.jsonl.gz.part").write_bytes(PAYLOAD[:1234])
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    result = _fetch(server, dest, sha256=sha)
    assert dest.read_bytes() == PAYLOAD and result.status == "resumed" and result.verified == "size+sha256"
    assert server.requests == [("train_0.jsonl.gz", "bytes=1234-")]
    # Already complete: nothing is fetched again.
    assert _fetch(server, dest).status == "present" and len(server.requests) == 1


def test_complete_part_file_is_finished_after_416(server, tmp_path):
    (tmp_path / "train_0.jsonl.gz.part").write_bytes(PAYLOAD)
    result = _fetch(server, tmp_path / "train_0.jsonl.gz")
    assert (tmp_path / "train_0.jsonl.gz").read_bytes() == PAYLOAD and result.verified == "size"


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "train_0.jsonl.gz.part").write_bytes(b"stale bytes from another file")
    _fetch(server, tmp_path / "train_0.jsonl.gz")
    assert (tmp_path / "train_0.jsonl.gz").read_bytes() == PAYLOAD


def test_server_error_is_a_clear_user_error_and_no_final_file(server, tmp_path):
    server.fail_status = 503
    sleeps = []
    with pytest.raises(UserError, match=r"train_0.jsonl.gz: download failed after 3 attempts \(HTTP 503"):
        _fetch(server, tmp_path / "train_0.jsonl.gz", retries=2, backoff=0.5, sleep=sleeps.append)
    assert sleeps == [0.5, 1.0]  # exponential backoff
    assert len(server.requests) == 3
    assert not (tmp_path / "train_0.jsonl.gz").exists()


def test_not_found_fails_at_once(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download_file(f"{server.base}/nope.jsonl.gz", tmp_path / "nope.jsonl.gz", backoff=0.0, timeout=10)
    assert len(server.requests) == 1 and not (tmp_path / "nope.jsonl.gz").exists()


def test_truncated_transfer_never_reaches_the_final_name(server, tmp_path):
    server.break_first = 5
    with pytest.raises(UserError, match="connection"):
        _fetch(server, tmp_path / "train_0.jsonl.gz", retries=1)
    assert not (tmp_path / "train_0.jsonl.gz").exists()
    part = tmp_path / "train_0.jsonl.gz.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    server.break_first = 0  # the next run resumes
    _fetch(server, tmp_path / "train_0.jsonl.gz")
    assert (tmp_path / "train_0.jsonl.gz").read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_the_download(server, tmp_path):
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        _fetch(server, tmp_path / "train_0.jsonl.gz", sha256="0" * 64)
    assert not (tmp_path / "train_0.jsonl.gz").exists() and not (tmp_path / "train_0.jsonl.gz.part").exists()


def test_parse_checksums(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'a' * 64}  train_0.jsonl.gz\n{'B' * 64} *validation_0.jsonl.gz\n", encoding="utf-8")
    assert parse_checksums([f"@{sums}", f"x.gz={'c' * 64}"]) == {
        "train_0.jsonl.gz": "a" * 64, "validation_0.jsonl.gz": "b" * 64, "x.gz": "c" * 64}
    with pytest.raises(UserError):
        parse_checksums(["x.gz=123"])


def test_download_corpus_and_cli(server, tmp_path, capsys):
    server.break_first = 1
    results = download_corpus("ja_wiki", tmp_path / "a", base_url=server.base, files=["train_0.jsonl.gz,validation_0.jsonl.gz"], backoff=0.0)
    assert [r.name for r in results] == ["train_0.jsonl.gz", "validation_0.jsonl.gz"]
    assert (tmp_path / "a" / "validation_0.jsonl.gz").read_bytes() == SMALL
    rc = main(["download-corpus", "ja_wiki", "--output-dir", str(tmp_path / "b"), "--base-url", server.base,
               "--files", "validation_0.jsonl.gz", "--sha256", f"validation_0.jsonl.gz={hashlib.sha256(SMALL).hexdigest()}"])
    assert rc == 0 and (tmp_path / "b" / "validation_0.jsonl.gz").read_bytes() == SMALL
    assert "size+sha256" in capsys.readouterr().out
    assert main(["download-corpus", "nope", "--output-dir", str(tmp_path / "c")]) == 2
    assert "unknown corpus" in capsys.readouterr().err
    assert main(["download-corpus", "ja_wiki", "--output-dir", str(tmp_path / "d"), "--base-url", server.base,
                 "--files", "missing.jsonl.gz", "--retries", "0"]) == 2
    assert not (tmp_path / "d" / "missing.jsonl.gz").exists()


def test_sha256_for_a_file_not_downloaded_is_an_error(server, tmp_path):
    with pytest.raises(UserError, match=r"--sha256 validaton_0.jsonl.gz: no such file in this download"):
        download_corpus("ja_wiki", tmp_path, base_url=server.base, files=["validation_0.jsonl.gz"],
                        sha256={"validaton_0.jsonl.gz": "a" * 64})  # a typo would silently skip verification
    assert server.requests == []


def test_redirect_to_ftp_is_refused(server, tmp_path):
    server.redirect = "ftp://127.0.0.1/ja/train_0.jsonl.gz"
    sleeps = []
    with pytest.raises(UserError, match="refusing a non-HTTP"):
        _fetch(server, tmp_path / "train_0.jsonl.gz", sleep=sleeps.append)
    assert len(server.requests) == 1 and sleeps == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (openssl command line)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_untrusted_certificate_is_reported_and_not_retried(certificate, tmp_path):
    sleeps = []
    with FakeServer({"train_0.jsonl.gz": PAYLOAD}, tls=certificate) as srv:
        with pytest.raises(UserError, match="TLS certificate verification failed .*self.signed.*not retrying"):
            _fetch(srv, tmp_path / "train_0.jsonl.gz", sleep=sleeps.append)
    assert sleeps == [] and not (tmp_path / "train_0.jsonl.gz").exists()


def test_https_to_http_redirect_is_refused(certificate, server, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test certificate
    with FakeServer({"train_0.jsonl.gz": PAYLOAD}, tls=certificate) as srv:
        assert _fetch(srv, tmp_path / "ok.gz").verified == "size"  # https itself works
        srv.redirect = f"{server.base}/train_0.jsonl.gz"
        with pytest.raises(UserError, match="refusing an https -> http downgrade"):
            _fetch(srv, tmp_path / "train_0.jsonl.gz")
    assert server.requests == [] and not (tmp_path / "train_0.jsonl.gz").exists()
