"""PackedWindows: Megatron-style windows over token files, shuffling, blends, rank sharding, resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from japanese_ft.data.pretrain import PackedWindows, parse_sources
from japanese_ft.data.token_file import TokenFileWriter
from japanese_ft.errors import UserError


def _write(prefix, docs):
    w = TokenFileWriter(prefix, np.uint16)
    for d in docs:
        w.add_document(d)
    w.finish()
    return str(prefix)


@pytest.fixture
def files(tmp_path):
    # file a: tokens 0..999 in documents of varying length; file b: tokens 5000..5399
    a_docs, start = [], 0
    for n in [7, 50, 3, 200, 140, 600]:
        a_docs.append(list(range(start, start + n)))
        start += n
    a = _write(tmp_path / "a", a_docs)
    b = _write(tmp_path / "b", [list(range(5000, 5200)), list(range(5200, 5400))])
    return a, b


def test_windows_span_documents_and_overlap_by_one(files):
    a, _ = files
    pw = PackedWindows([a], seq_length=10, seed=1, shuffle=False)
    assert len(pw) == (1000 - 1) // 10
    w0, w1 = pw.window(0), pw.window(1)
    assert w0.tolist() == list(range(0, 11))  # crosses the 7|50 document boundary
    assert w1.tolist() == list(range(10, 21))  # consecutive windows share one token
    batch = pw.next_batch(3)
    assert tuple(batch["input_ids"].shape) == (3, 11)
    assert batch["labels"].tolist() == batch["input_ids"].tolist()


def test_shuffle_is_a_deterministic_permutation_per_epoch(files):
    a, _ = files
    n = len(PackedWindows([a], 10, seed=1))
    order = lambda seed, start=0: [int(PackedWindows([a], 10, seed=seed).window(k)[0]) for k in range(start, start + n)]
    e0 = order(1)
    assert sorted(e0) == [10 * j for j in range(n)]  # every window once per epoch
    assert e0 == order(1)  # same seed, same order
    assert e0 != order(2)  # another seed, another order
    e1 = order(1, start=n)
    assert sorted(e1) == sorted(e0) and e1 != e0  # next epoch: reshuffled


def test_ranks_partition_the_global_stream(files):
    a, b = files
    single = PackedWindows([a, b], 10, seed=3)
    ref = single.next_windows(12)
    ranks = [PackedWindows([a, b], 10, seed=3, rank=r, world_size=3) for r in range(3)]
    parts = [r.next_windows(4) for r in ranks]
    merged = np.stack([parts[k % 3][k // 3] for k in range(12)])
    assert np.array_equal(merged, ref)
    assert all(r.state_dict()["consumed"] == 12 for r in ranks)


def test_blend_weights(files):
    a, b = files
    pw = PackedWindows(["0.75", a, "0.25", b], 10, seed=0)
    assert [round(s.weight, 2) for s in pw.sources] == [0.75, 0.25]
    src = Counter(pw.locate(k)[0] for k in range(len(pw) * 2))
    assert src[0] / (src[0] + src[1]) == pytest.approx(0.75, abs=0.01)
    # b is small, so it repeats: it still appears in proportion to its weight
    assert src[1] > pw.n_windows[1]
    assert parse_sources(["0.7 x", "0.3 y"]) == parse_sources(["0.7 x 0.3 y"])
    assert [s.weight for s in parse_sources(["x", "y"])] == [0.5, 0.5]


@pytest.mark.parametrize("bad", [["0.5 x", "y"], ["0.5"], ["-1 x"], []])
def test_bad_blends(bad):
    with pytest.raises(UserError):
        parse_sources(bad)


def test_state_dict_resumes_the_stream(files):
    a, b = files
    pw = PackedWindows(["0.6 " + a, "0.4 " + b], 10, seed=5)
    pw.next_windows(7)
    state = pw.state_dict()
    expected = pw.next_windows(9)
    fresh = PackedWindows(["0.6 " + a, "0.4 " + b], 10, seed=5)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.next_windows(9), expected)
    # the position is global: 2 ranks can resume a 1-rank run at an even position
    two = [PackedWindows(["0.6 " + a, "0.4 " + b], 10, seed=5, rank=r, world_size=2) for r in range(2)]
    pw2 = PackedWindows(["0.6 " + a, "0.4 " + b], 10, seed=5)
    pw2.load_state_dict({"consumed": 8, "seq_length": 10})
    ref = pw2.next_windows(4)
    for r in two:
        r.load_state_dict({"consumed": 8, "seq_length": 10})
    got = [t.next_windows(2) for t in two]
    assert np.array_equal(np.stack([got[0][0], got[1][0], got[0][1], got[1][1]]), ref)
    with pytest.raises(UserError):
        fresh.load_state_dict({"consumed": 0, "seq_length": 11})


def test_too_small_file_is_a_clear_error(tmp_path):
    p = _write(tmp_path / "small", [[1, 2, 3]])
    with pytest.raises(UserError, match="too few"):
        PackedWindows([p], 10)
