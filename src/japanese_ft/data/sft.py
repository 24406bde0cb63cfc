"""SFT examples: chat template -> token ids + loss mask; optional packing with document boundaries.

Records are JSONL lines, either `{"input": ..., "output": ...}` (optional `"system"`) or
`{"messages": [{"role": ..., "content": ...}, ...]}`.

Encoding (`encode_example`):
  1. Roles must be system, user or assistant (`tokens.check_messages`, with file:line).
  2. `tokens.chat_segments` renders the messages with the chat template (the tokenizer's, else
     jft's ChatML in `japanese_ft.text.chat`) and tokenizes the template's own text with its
     control tokens and every message content as plain text, so a literal `<|im_end|>` or
     `<tool_call>` in the data stays text.
  3. Labels are -100 everywhere except assistant contents plus the end-of-turn token that closes
     each assistant turn (the first of `tokens.stop_token_ids` in the template text after it).
Over-long examples are dropped or truncated (`data.truncation`), and every case is counted.

Plain text (`data.chat_template: none`, `PlainEncoder`): no template at all. `input` followed
directly by `output` + EOS, tokenized as `jft eval` tokenizes its raw prompts (the input with the
tokenizer's default special tokens, the output separately); labels cover the output and the EOS.
Records written by `convert-squad --style llm-jp-eval` are then trained in exactly the raw
format `jft eval jsquad` scores.

Packing (`pack_examples`) concatenates examples into rows of exactly seq_length tokens, resets
position_ids at each example and pads the tail (labels -100). The model must then keep examples
apart; transformers 5.x derives a block-diagonal causal mask from position_ids that restart at 0
(sdpa/eager/flex) -- tests/test_data_sft.py checks packed loss == unpacked loss. For
flash-attention kernels the micro-batch is flattened to one row, where transformers uses
position_ids for variable-length attention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from japanese_ft import tokens
from japanese_ft.errors import UserError

IGNORE_INDEX = -100
TEMPLATES = ("auto", "chatml", "none")  # data.chat_template


def record_to_messages(record: dict, where: str = "") -> list[dict]:
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object")
    if "messages" in record:
        out = tokens.check_messages(record["messages"], where)
        if not any(m["role"] == "assistant" for m in out):
            raise UserError(f"{where}: no assistant message to learn from")
        return out
    if "input" in record and "output" in record:
        if not isinstance(record["input"], str) or not isinstance(record["output"], str):
            raise UserError(f"{where}: 'input' and 'output' must be strings")
        out = []
        if isinstance(record.get("system"), str) and record["system"]:
            out.append({"role": "system", "content": record["system"]})
        out.append({"role": "user", "content": record["input"]})
        out.append({"role": "assistant", "content": record["output"]})
        return out
    raise UserError(f"{where}: expected {{\"input\", \"output\"}} or {{\"messages\": [...]}}, got keys {sorted(record)}")


class ChatEncoder:
    """Turns messages into (input_ids, labels) with the tokenizer's template or jft's ChatML."""

    def __init__(self, tokenizer, template: str = "auto") -> None:
        from japanese_ft.text.chat import IM_END, IM_START

        self.tok = tokenizer
        if template not in ("auto", "chatml"):
            raise UserError(f"data.chat_template {template!r}: choose {', '.join(TEMPLATES)}")
        self.use_chatml = tokens.uses_chatml(tokenizer, template)
        self.stop_ids = set(tokens.stop_token_ids(tokenizer))
        if self.use_chatml:
            missing = [t for t in (IM_START, IM_END) if tokens.token_id(tokenizer, t) is None]
            if missing:
                raise UserError(f"the tokenizer has no {', '.join(missing)} token needed by the ChatML template; "
                                "use a tokenizer with these special tokens or with its own chat template")
            self.stop_ids = {tokens.token_id(tokenizer, IM_END)}
        if not self.stop_ids:
            raise UserError("the tokenizer has no end-of-turn or EOS token to end answers with")

    def encode_record(self, record: dict, where: str = "") -> tuple[list[int], list[int]]:
        return self.encode(record_to_messages(record, where))

    def render(self, messages: list[dict]) -> str:
        return tokens.render_chat(self.tok, messages, add_generation_prompt=False, chatml=self.use_chatml)

    def encode(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        ids: list[int] = []
        labels: list[int] = []
        label_next_stop = False
        for piece_ids, index in tokens.chat_segments(self.tok, messages, chatml=self.use_chatml):
            if index is None:  # template text
                piece_labels = [IGNORE_INDEX] * len(piece_ids)
                if label_next_stop:
                    for j, tid in enumerate(piece_ids):
                        if tid in self.stop_ids:
                            piece_labels[: j + 1] = piece_ids[: j + 1]
                            break
                    label_next_stop = False
                ids += piece_ids
                labels += piece_labels
            else:
                ids += piece_ids
                if messages[index]["role"] == "assistant":
                    labels += piece_ids
                    label_next_stop = True
                else:
                    labels += [IGNORE_INDEX] * len(piece_ids)
        return ids, labels


class PlainEncoder:
    """`data.chat_template: none`: `input` + `output` + EOS as plain text; loss on output and EOS."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.eos = tokens.eos_id(tokenizer)
        if self.eos is None:
            raise UserError("data.chat_template=none ends every answer with EOS, but the tokenizer has no EOS token")

    def encode_record(self, record: dict, where: str = "") -> tuple[list[int], list[int]]:
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object")
        if "messages" in record:
            raise UserError(f"{where}: data.chat_template=none trains {{\"input\", \"output\"}} records as plain text; "
                            "'messages' records need a chat template (auto or chatml)")
        if not ("input" in record and "output" in record):
            raise UserError(f"{where}: expected {{\"input\", \"output\"}}, got keys {sorted(record)}")
        if not isinstance(record["input"], str) or not isinstance(record["output"], str):
            raise UserError(f"{where}: 'input' and 'output' must be strings")
        if record.get("system"):
            raise UserError(f"{where}: 'system' has no place in plain-text training (data.chat_template=none)")
        # the prompt exactly as jft eval encodes raw prompts (eval/generation.generate), the answer separately
        prompt = tokens.plain_ids(self.tok, record["input"], add_special_tokens=True)
        answer = tokens.plain_ids(self.tok, record["output"]) + [self.eos]
        return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer



def make_encoder(tokenizer, template: str = "auto"):
    """PlainEncoder for `none`, else the ChatEncoder (tokenizer's template or ChatML)."""
    if template == "none":
        return PlainEncoder(tokenizer)
    return ChatEncoder(tokenizer, template)


@dataclass
class SFTStats:
    records: int = 0
    examples: int = 0
    dropped_too_long: int = 0
    truncated: int = 0
    dropped_no_answer: int = 0
    tokens: int = 0
    answer_tokens: int = 0
    rows: int = 0  # packed rows (or examples when not packing)
    malformed: int = 0  # records skipped as not valid Unicode (a lone surrogate escape)
    malformed_examples: list[str] = field(default_factory=list)  # the first five, as file:line: reason
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def encode_example(record: dict, encoder, seq_length: int, truncation: str = "drop",
                   stats: SFTStats | None = None, where: str = ""):
    """-> (ids int32 array, labels int32 array) or None when the example is dropped (counted).
    `encoder` is a ChatEncoder or PlainEncoder (`make_encoder`)."""
    stats = stats if stats is not None else SFTStats()
    stats.records += 1
    ids, labels = encoder.encode_record(record, where)
    if len(ids) > seq_length:
        if truncation == "drop":
            stats.dropped_too_long += 1
            return None
        ids, labels = ids[:seq_length], labels[:seq_length]
        stats.truncated += 1
    if not any(l != IGNORE_INDEX for l in labels[1:]):
        stats.dropped_no_answer += 1
        return None
    stats.examples += 1
    stats.tokens += len(ids)
    stats.answer_tokens += sum(1 for l in labels[1:] if l != IGNORE_INDEX)
    return np.asarray(ids, dtype=np.int32), np.asarray(labels, dtype=np.int32)


def check_jsonl_paths(paths: list[str], what: str = "data.train") -> None:
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise UserError(f"{what}: {path} not found")
        if path.is_dir():
            raise UserError(f"{what}: {path} is a directory; list the JSONL files")
        if Path(f"{p}.bin").exists() or path.suffix in (".bin", ".idx"):
            raise UserError(f"{what}: {path} looks like a token file; sft/lora read JSONL records")


def iter_jsonl(paths: list[str]):
    import gzip

    for p in paths:
        opener = gzip.open if str(p).endswith(".gz") else open
        with opener(p, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line), f"{p}:{lineno}"
                except json.JSONDecodeError as exc:
                    raise UserError(f"{p}:{lineno}: invalid JSON ({exc.msg})") from None


PARALLEL_MIN_RECORDS = 4000  # below this, forking workers costs more than it saves
_WORKER: dict = {}  # (encoder, seq_length, truncation) for forked encoding workers, which inherit it


def _encode_chunk(chunk: list) -> tuple[list, SFTStats]:
    encoder, seq_length, truncation = _WORKER["args"]
    stats = SFTStats()
    return [encode_example(record, encoder, seq_length, truncation, stats, where) for record, where in chunk], stats


def encode_workers(n_records: int, workers: int | None = None) -> int:
    """Processes for encoding: `workers` when given, else one per core up to 8 for large inputs on
    Linux (fork start: the workers inherit the tokenizer), else 1."""
    import multiprocessing
    import os

    if workers is not None:
        return max(1, workers)
    if n_records < PARALLEL_MIN_RECORDS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(8, (os.cpu_count() or 1) - 1))


def load_examples(paths: list[str], encoder, seq_length: int, truncation: str = "drop", workers: int | None = None):
    """All examples of the JSONL files (in file order) and their counts. Large inputs are encoded
    by forked worker processes (measured: 38,730 JaQuAD prompts took ~200 s on one core; the
    Python side of chat-template encoding dominates); the result is identical for any count.
    A record holding a lone surrogate escape ("\\ud800": not valid Unicode, no tokenizer takes it)
    is skipped and counted."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from japanese_ft.data.corpus import lone_surrogate_field, surrogate_reason

    stats = SFTStats(files=[str(p) for p in paths])
    records = []
    for record, where in iter_jsonl(paths):
        bad = lone_surrogate_field(record)
        if bad is not None:
            stats.malformed += 1
            if len(stats.malformed_examples) < 5:
                stats.malformed_examples.append(f"{where}: {surrogate_reason(bad)}")
            continue
        records.append((record, where))
    n = encode_workers(len(records), workers)
    if n <= 1:
        _WORKER["args"] = (encoder, seq_length, truncation)
        parts = [_encode_chunk(records)]
    else:
        size = -(-len(records) // (4 * n))
        _WORKER["args"] = (encoder, seq_length, truncation)
        try:
            with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_encode_chunk, [records[i : i + size] for i in range(0, len(records), size)]))
        finally:
            _WORKER.clear()
    examples = []
    for encoded, part in parts:
        examples += [ex for ex in encoded if ex is not None]
        for key in ("records", "examples", "dropped_too_long", "truncated", "dropped_no_answer", "tokens", "answer_tokens"):
            setattr(stats, key, getattr(stats, key) + getattr(part, key))
    _WORKER.clear()
    return examples, stats


def pack_examples(examples, seq_length: int, pad_id: int, seed: int | None = 0):
    """Next-fit packing (after a seeded shuffle) into rows of exactly seq_length tokens.

    Returns a list of (ids, labels, position_ids) int arrays. position_ids restart at 0 for every
    example and for the padding tail; the first label of every example is -100 so no example
    predicts across a boundary.
    """
    order = np.arange(len(examples))
    if seed is not None:
        order = np.random.default_rng([seed, 3]).permutation(len(examples))
    rows = []
    cur: list = []
    used = 0

    def flush():
        ids = np.full(seq_length, pad_id, dtype=np.int64)
        labels = np.full(seq_length, IGNORE_INDEX, dtype=np.int64)
        pos = np.zeros(seq_length, dtype=np.int64)
        at = 0
        for e_ids, e_labels in cur:
            n = len(e_ids)
            ids[at : at + n] = e_ids
            labels[at : at + n] = e_labels
            labels[at] = IGNORE_INDEX
            pos[at : at + n] = np.arange(n)
            at += n
        pos[at:] = np.arange(seq_length - at)
        rows.append((ids, labels, pos))

    for i in order:
        e_ids, e_labels = examples[int(i)]
        if cur and used + len(e_ids) > seq_length:
            flush()
            cur, used = [], 0
        cur.append((e_ids, e_labels))
        used += len(e_ids)
    if cur:
        flush()
    return rows


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, 4, epoch]).permutation(n)


class SFTBatches:
    """Resumable, rank-sharded stream of SFT micro-batches (examples or packed rows).

    The global order is a per-epoch permutation from the seed; rank r of W reads positions
    r, r+W, ...; `state_dict()` is the number of samples consumed by all ranks together.
    Unpacked micro-batches are right-padded to the longest example, rounded up to a bucket of
    seq_length/16 tokens (a multiple of 8; capped at seq_length) so that a compiled model sees at
    most 16 widths; right padding never changes real tokens' outputs under causal attention.
    Batches carry `num_tokens` (tokens without padding) for throughput accounting.
    """

    def __init__(self, samples, pad_id: int, seq_length: int, seed: int = 1234, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, packed: bool = False, flatten: bool = False) -> None:
        if not samples:
            raise UserError("no SFT examples left after filtering (see the truncation counts)")
        self.samples = samples
        self.pad_id = int(pad_id)
        self.seq_length = seq_length
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.shuffle, self.packed, self.flatten = shuffle, packed, flatten
        self.consumed = 0
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _sample(self, k: int):
        n = len(self.samples)
        epoch = k // n
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(n, self.seed, epoch, self.shuffle)}
        return self.samples[int(self._orders[epoch][k % n])]

    def next_samples(self, n: int) -> list:
        ks = [self.consumed + j * self.world_size + self.rank for j in range(n)]
        self.consumed += n * self.world_size
        return [self._sample(k) for k in ks]

    def next_batch(self, n: int) -> dict:
        return self.collate(self.next_samples(n))

    def collate(self, samples) -> dict:
        import torch

        if self.packed:
            ids = torch.from_numpy(np.stack([s[0] for s in samples]))
            labels = torch.from_numpy(np.stack([s[1] for s in samples]))
            pos = torch.from_numpy(np.stack([s[2] for s in samples]))
            # padding is pad id with label -100; a plain-text example's closing EOS (often the pad id) is labelled
            real = int(((ids != self.pad_id) | (labels != IGNORE_INDEX)).sum())
            if self.flatten:
                ids, labels, pos = ids.reshape(1, -1), labels.reshape(1, -1), pos.reshape(1, -1)
            return {"input_ids": ids, "labels": labels, "position_ids": pos, "num_tokens": real}
        longest = max(len(s[0]) for s in samples)
        bucket = max(8, self.seq_length // 16 // 8 * 8)  # few distinct widths: torch.compile reuses its graphs
        width = max(min(self.seq_length, -(-longest // bucket) * bucket), longest)
        ids = torch.full((len(samples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
        for b, (e_ids, e_labels) in enumerate(samples):
            ids[b, : len(e_ids)] = torch.from_numpy(np.asarray(e_ids, dtype=np.int64))
            labels[b, : len(e_labels)] = torch.from_numpy(np.asarray(e_labels, dtype=np.int64))
        return {"input_ids": ids, "labels": labels, "num_tokens": sum(len(e[0]) for e in samples)}

    def state_dict(self) -> dict:
        return {"consumed": self.consumed, "seed": self.seed, "samples": len(self.samples)}

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("samples", len(self.samples))) != len(self.samples):
            raise UserError(f"cannot resume: the SFT data now has {len(self.samples)} samples, the checkpoint saw {state['samples']}")
        consumed = int(state["consumed"])
        if consumed % self.world_size:
            raise UserError(f"cannot resume: {consumed} consumed samples do not divide over {self.world_size} ranks")
        self.consumed = consumed


def build_sft_batches(paths, tokenizer, seq_length: int, truncation: str, template: str, pack: bool, seed: int,
                      rank: int = 0, world_size: int = 1, shuffle: bool = True, flatten: bool = False):
    """JSONL files -> (SFTBatches, SFTStats)."""
    encoder = make_encoder(tokenizer, template)
    examples, stats = load_examples(paths, encoder, seq_length, truncation)
    pid = tokens.pad_id(tokenizer)
    samples = pack_examples(examples, seq_length, pid, seed if shuffle else None) if pack else examples
    stats.rows = len(samples)
    return SFTBatches(samples, pid, seq_length, seed, rank, world_size, shuffle, pack, flatten and pack), stats
