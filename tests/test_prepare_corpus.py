"""prepare-corpus / merge-corpus / inspect-corpus end to end on a tiny corpus and tokenizer."""

import json

import numpy as np
import pytest

from japanese_ft.cli import main
from japanese_ft.data import prepare
from japanese_ft.data.prepare import PrepareOptions, prepare_corpus
from japanese_ft.data.token_file import TokenFile
from japanese_ft.errors import UserError
from jft_testutils import ARTICLES, SHARED, article_records, make_tokenizer_dir, write_jsonl


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return make_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture
def corpus(tmp_path):
    records = article_records(n_copies=4)
    records.insert(3, dict(records[0]))  # exact duplicate
    return write_jsonl(tmp_path / "in" / "train_0.jsonl", records)


def _decode(tok_dir, ids):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tok_dir / "tokenizer.json")).decode([int(i) for i in ids], skip_special_tokens=False)


def test_roundtrip_stats_and_eod(tmp_path, tok_dir, corpus):
    stats = prepare_corpus([str(corpus)], tmp_path / "out" / "c", PrepareOptions(tokenizer=str(tok_dir)))
    tf = TokenFile(tmp_path / "out" / "c")
    assert stats.documents_in == 21 and stats.documents_written == 20
    assert stats.dropped == {"duplicate_exact": 1}
    assert tf.dtype == np.uint16  # tiny vocab fits
    assert len(tf) == 20 and stats.tokens == int(tf.lengths.sum())
    first = json.loads(corpus.read_text().splitlines()[0])["text"]
    assert _decode(tok_dir, tf[0]) == first + "<|endoftext|>"
    saved = json.loads((tmp_path / "out" / "c.stats.json").read_text())
    for key in ("documents_in", "documents_written", "dropped", "malformed_lines", "tokens", "characters",
                "chars_per_token", "seconds", "mb_per_s"):
        assert key in saved
    assert saved["characters"] == stats.characters > 0
    assert saved["chars_per_token"] == pytest.approx(stats.characters / stats.tokens, rel=1e-3)


def test_no_eod_and_normalization(tmp_path, tok_dir):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "ｶﾀｶﾅと１２３、5月～7月。\n\n\n\n次の  段落。"}])
    prepare_corpus([str(src)], tmp_path / "o", PrepareOptions(tokenizer=str(tok_dir), normalize="nfkc", eod=False))
    assert _decode(tok_dir, TokenFile(tmp_path / "o")[0]) == "カタカナと123、5月～7月。\n\n次の 段落。"


def test_gz_input_and_directory_order(tmp_path, tok_dir):
    recs = article_records()
    write_jsonl(tmp_path / "d" / "train_1.jsonl.gz", recs[2:], gz=True)
    write_jsonl(tmp_path / "d" / "train_0.jsonl", recs[:2])
    (tmp_path / "d" / "notes.txt").write_text("ignored")
    prepare_corpus([str(tmp_path / "d")], tmp_path / "o", PrepareOptions(tokenizer=str(tok_dir), eod=False))
    tf = TokenFile(tmp_path / "o")
    assert [_decode(tok_dir, tf[i]) for i in range(len(tf))] == [r["text"] for r in recs]


def test_malformed_lines_are_counted_and_located(tmp_path, tok_dir):
    good = json.dumps(article_records()[0], ensure_ascii=False)
    lines = [good, "{not json", "[1, 2]", '{"meta": {}}', '{"text": 5}', "", good.replace("富士山", "浅間山")]
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = prepare_corpus([str(src)], tmp_path / "o", PrepareOptions(tokenizer=str(tok_dir)))
    assert stats.malformed_lines == 4 and stats.documents_written == 2
    assert stats.malformed_examples[0].startswith(f"{src}:2: invalid JSON")
    assert f"{src}:4: missing field 'text'" in stats.malformed_examples
    assert f"{src}:5: field 'text' is int, not a string" in stats.malformed_examples
    with pytest.raises(UserError, match=f"{src}:2: invalid JSON"):
        prepare_corpus([str(src)], tmp_path / "o2", PrepareOptions(tokenizer=str(tok_dir), strict=True))
    assert not (tmp_path / "o2.bin").exists() and not (tmp_path / "o2.bin.tmp").exists()


def test_cli_errors_exit_2_with_one_line(tmp_path, tok_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{oops\n')
    rc = main(["prepare-corpus", str(bad), "--tokenizer", str(tok_dir), "--output-prefix", str(tmp_path / "o"), "--strict"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}:2" in err and "Traceback" not in err
    assert main(["prepare-corpus", str(tmp_path / "missing.jsonl"), "--tokenizer", str(tok_dir), "--output-prefix", "x"]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["prepare-corpus", str(tmp_path / "empty.jsonl"), "--tokenizer", str(tok_dir), "--output-prefix", "x"]) == 2
    assert "is empty" in capsys.readouterr().err
    (tmp_path / "emptydir").mkdir()
    assert main(["prepare-corpus", str(tmp_path / "emptydir"), "--tokenizer", str(tok_dir), "--output-prefix", "x"]) == 2
    assert main(["prepare-corpus", str(bad), "--tokenizer", str(tmp_path), "--output-prefix", "x"]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    assert main(["prepare-corpus", str(bad), "--tokenizer", str(tok_dir), "--output-prefix", "x", "--dedup", "fuzzy"]) == 2
    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text("{oops\n")
    assert main(["prepare-corpus", str(only_bad), "--tokenizer", str(tok_dir), "--output-prefix", str(tmp_path / "z")]) == 2
    assert "no valid documents" in capsys.readouterr().err


def test_identical_output_for_any_worker_count(tmp_path, tok_dir, corpus, monkeypatch):
    monkeypatch.setattr(prepare, "BATCH_BYTES", 700)  # many small batches, so ordering matters
    outs = []
    for workers in (1, 2, 3):
        prefix = tmp_path / f"w{workers}"
        prepare_corpus([str(corpus)], prefix, PrepareOptions(tokenizer=str(tok_dir), workers=workers, dedup="near"))
        outs.append((prefix.with_suffix(".bin").read_bytes(), prefix.with_suffix(".idx").read_bytes()))
    assert outs[0] == outs[1] == outs[2]


def test_filter_and_near_dedup_drop_reasons(tmp_path, tok_dir):
    recs = article_records()
    near_copy = dict(recs[0], text=recs[0]["text"].replace("多くの人々", "大勢の人々"))
    spam = {"text": "ああああああああああああああああああ。" * 10}
    src = write_jsonl(tmp_path / "a.jsonl", recs + [near_copy, spam, {"text": "   \n\n  "}])
    opts = PrepareOptions(tokenizer=str(tok_dir), dedup="near",
                          quality=prepare.QualityConfig(min_japanese_chars=20))
    stats = prepare_corpus([str(src)], tmp_path / "o", opts)
    assert stats.dropped == {"duplicate_near": 1, "empty": 1, "low_hiragana_fraction": 1} or \
        stats.dropped.get("duplicate_near") == 1 and stats.dropped.get("empty") == 1 and sum(stats.dropped.values()) == 3
    assert stats.documents_written == len(recs)


def test_interrupted_run_leaves_no_finished_looking_output(tmp_path, tok_dir, corpus, monkeypatch):
    monkeypatch.setattr(prepare, "BATCH_BYTES", 500)
    prefix = tmp_path / "o"
    calls = []

    def boom(n, docs):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_corpus([str(corpus)], prefix, PrepareOptions(tokenizer=str(tok_dir)), progress=boom)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("o")) == []


def test_stale_index_never_pairs_with_new_bin(tmp_path, tok_dir, corpus, monkeypatch):
    prefix = tmp_path / "o"
    prepare_corpus([str(corpus)], prefix, PrepareOptions(tokenizer=str(tok_dir)))
    old = prefix.with_suffix(".idx").read_bytes()
    write_jsonl(tmp_path / "b.jsonl", article_records()[:2])
    prepare_corpus([str(tmp_path / "b.jsonl")], prefix, PrepareOptions(tokenizer=str(tok_dir)))
    assert prefix.with_suffix(".idx").read_bytes() != old
    assert len(TokenFile(prefix)) == 2


def test_shards_merge_to_single_run(tmp_path, tok_dir, corpus):
    for dedup in ("none", "exact"):
        single = tmp_path / f"single-{dedup}"
        prepare_corpus([str(corpus)], single, PrepareOptions(tokenizer=str(tok_dir), dedup=dedup))
        shards = []
        for k in (1, 2, 3):
            p = tmp_path / f"shard{k}-{dedup}"
            prepare_corpus([str(corpus)], p, PrepareOptions(tokenizer=str(tok_dir), dedup=dedup, shard=(k, 3)))
            shards.append(str(p))
        merged = tmp_path / f"merged-{dedup}"
        assert main(["merge-corpus", *shards, "--output-prefix", str(merged)]) == 0
        assert merged.with_suffix(".bin").read_bytes() == single.with_suffix(".bin").read_bytes()
        assert merged.with_suffix(".idx").read_bytes() == single.with_suffix(".idx").read_bytes()


def test_shard_needs_valid_spec(tmp_path, tok_dir, corpus):
    for spec in ("0/3", "4/3", "x"):
        assert main(["prepare-corpus", str(corpus), "--tokenizer", str(tok_dir), "--output-prefix",
                     str(tmp_path / "o"), "--shard", spec]) == 2


def test_megatron_core_reads_our_files(tmp_path, tok_dir, corpus):
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    prefix = tmp_path / "o"
    prepare_corpus([str(corpus)], prefix, PrepareOptions(tokenizer=str(tok_dir)))
    ours = TokenFile(prefix)
    theirs = indexed.IndexedDataset(str(prefix))
    assert len(theirs) == len(ours)
    for i in range(len(ours)):
        np.testing.assert_array_equal(theirs[i], ours[i])
    np.testing.assert_array_equal(theirs.document_indices, np.arange(len(ours) + 1))


def test_inspect_corpus(tmp_path, tok_dir, corpus, capsys):
    prefix = tmp_path / "o"
    prepare_corpus([str(corpus)], prefix, PrepareOptions(tokenizer=str(tok_dir)))
    assert main(["inspect-corpus", str(prefix), "--show", "1", "--tokenizer", str(tok_dir)]) == 0
    out = capsys.readouterr().out
    assert "documents" in out and "琵琶湖" in out
    assert main(["inspect-corpus", str(prefix), "--show", "99", "--tokenizer", str(tok_dir)]) == 2
    assert main(["inspect-corpus", str(tmp_path / "nope")]) == 2


def test_inspect_corpus_show_escapes_control_characters(tmp_path, tok_dir, capsys):
    """A document with ESC sequences and a bidi override prints them as visible escapes."""
    from tokenizers import Tokenizer

    from japanese_ft.data.token_file import TokenFileWriter, dtype_for_vocab

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    text = "琵琶湖\x1b[2J\x1b]0;owned\x07\u202eevil\x9b\n\tend"
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text  # byte-level BPE keeps the control characters
    w = TokenFileWriter(tmp_path / "c", dtype_for_vocab(tok.get_vocab_size()))
    w.add_document(ids)
    w.finish()
    assert main(["inspect-corpus", str(tmp_path / "c"), "--show", "0", "--tokenizer", str(tok_dir)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
    assert "琵琶湖\\x1b[2J\\x1b]0;owned\\x07\\u202eevil\\x9b\n" in out  # the console expands the tab


@pytest.mark.skipif(not (SHARED / "tokenizers" / "qwen2.5").exists(), reason="../shared not present")
def test_qwen_tokenizer_uses_int32_and_endoftext(tmp_path, corpus):
    prepare_corpus([str(corpus)], tmp_path / "q", PrepareOptions(tokenizer=str(SHARED / "tokenizers" / "qwen2.5")))
    tf = TokenFile(tmp_path / "q")
    assert tf.dtype == np.int32
    assert all(int(tf[i][-1]) == 151643 for i in range(len(tf)))


def _long_text(n_paragraphs: int = 60) -> str:
    """Paragraphs joined by the patterns a piece boundary must survive (or must not be placed in)."""
    seps = ["\n", "\n\n", " \n", "\r\n", "\n ", "。\n", "\n\t"]
    paras = [f"{title}は{i}番目の段落です。English {i * 37} words!「括弧」{text[:80]}"
             for i, (_, title, text) in enumerate(ARTICLES * (n_paragraphs // len(ARTICLES) + 1))][:n_paragraphs]
    return "".join(p + seps[i % len(seps)] for i, p in enumerate(paras))


@pytest.mark.parametrize("which", ["tiny", "qwen"])
def test_long_document_pieces_give_the_whole_document_tokens(tok_dir, which):
    from tokenizers import Tokenizer

    from japanese_ft.data.long_documents import can_split, encode_long, pieces_of
    from japanese_ft.data.tokenizer_files import load_tokenizer_json

    path = tok_dir if which == "tiny" else SHARED / "tokenizers" / "qwen2.5"
    if not path.exists():
        pytest.skip("../shared not present")
    spec = load_tokenizer_json(str(path))[0]
    tok = Tokenizer.from_str(spec)
    assert can_split(tok, spec, add_special_tokens=False) and not can_split(tok, spec, add_special_tokens=True)
    text = _long_text()
    for size in (50, 173, 400):
        pieces = list(pieces_of(text, size))
        assert "".join(pieces) == text and len(pieces) > 3
        assert all(p.endswith("\n") and not p[-2].isspace() for p in pieces[:-1])
        ids = [i for p in pieces for i in tok.encode(p, add_special_tokens=False).ids]
        assert ids == tok.encode(text, add_special_tokens=False).ids, size
    assert encode_long(tok, text, np.dtype(np.int32)).tolist() == tok.encode(text, add_special_tokens=False).ids


def test_metaspace_tokenizer_is_not_split(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    from japanese_ft.data.long_documents import can_split

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    assert not can_split(tok, tok.to_str(), add_special_tokens=False)


def test_prepare_corpus_long_documents_in_pieces_equal_whole(tmp_path, tok_dir, monkeypatch):
    """prepare-corpus output is byte-identical whether long documents go in pieces or whole."""
    from japanese_ft.data import long_documents

    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "短い。"}, {"text": _long_text()}, {"text": "次。\n短い文書"},
                                             {"text": _long_text(30)}])
    calls = []
    real = long_documents.encode_long
    monkeypatch.setattr(long_documents, "encode_long", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(long_documents, "LONG_CHARS", 10**9)
    prepare_corpus([str(src)], tmp_path / "whole", PrepareOptions(tokenizer=str(tok_dir)))
    assert calls == []
    monkeypatch.setattr(long_documents, "LONG_CHARS", 300)
    prepare_corpus([str(src)], tmp_path / "pieces", PrepareOptions(tokenizer=str(tok_dir)))
    assert len(calls) == 2
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"pieces{ext}").read_bytes() == (tmp_path / f"whole{ext}").read_bytes()


def _children(pid: int) -> set[int]:
    import os

    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:

    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL", "SIGINT"])
def test_workers_exit_when_prepare_corpus_is_killed(tmp_path, tok_dir, sig):
    """A real prepare-corpus --workers 2 reading a FIFO (so it is mid-run, deterministically):
    after SIGTERM/SIGKILL/SIGINT of the parent its workers exit; Ctrl-C prints one line."""
    import os
    import signal
    import subprocess
    import sys
    import time

    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    line = (json.dumps({"text": "琵琶湖は日本最大の湖である。" * 40}, ensure_ascii=False) + "\n").encode()
    code = "import sys; from japanese_ft.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "prepare-corpus", str(fifo), "--tokenizer", str(tok_dir),
                             "--output-prefix", str(tmp_path / "o"), "--workers", "2", "--dedup", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    workers: set[int] = set()
    with open(fifo, "wb") as w:
        for _ in range(3 * 1024 * 1024 // len(line)):  # 3 MB: a few batches submitted, then it waits for more
            w.write(line)
        w.flush()
        deadline = time.time() + 60
        while len(workers) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = _children(proc.pid)
        assert len(workers) >= 2, (workers, proc.poll())
        time.sleep(0.5)
        os.kill(proc.pid, getattr(signal, sig))
        proc.wait(timeout=60)
    deadline = time.time() + 20
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), [p for p in workers if _alive(p)]
    if sig == "SIGINT":
        err = [l for l in proc.stderr.read().decode().splitlines() if l.strip()]
        assert proc.returncode == 130 and err == ["error: interrupted"], err
    assert not (tmp_path / "o.bin").exists()
