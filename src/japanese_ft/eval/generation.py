"""Batched generation: left padding, KV cache, longest-first batches, per-row stopping.

`generate` is the one path of `jft eval jsquad/jcommonsenseqa`, `jft generate` and `jft chat`.
Prompts are sorted by token length so each batch holds similar lengths (less padding; the batch
size comes from free memory by default), decoded by `eval.decoding.Decoder` (a KV cache; on GPU a
static cache and a CUDA-graph decode step), every sequence stops at `tokens.stop_token_ids` (the
chat template's end-of-turn token, e.g. `<|im_end|>`, and EOS: the tokens training labels and
saved checkpoints' generation_config.json use), outputs are returned in the caller's order, and the
model's own generation_config (an instruct model may ship sampling defaults and a repetition
penalty) never leaks into greedy evaluation.

Prompts are plain text: a string prompt is tokenized with `split_special_tokens=True`, and chat
prompts come from `tokens.encode_chat`, where only the template writes control tokens. So
`<|im_end|>` typed in `jft chat` or found in an evaluation question is text, never a turn boundary.

Greedy batched output equals one-at-a-time output on fp32, with either cache, and equals
transformers' own `generate` (tests/test_eval_generation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from japanese_ft.tokens import encode_chat, pad_id, plain_ids, render_chat, stop_token_ids


@dataclass
class Generated:
    text: str  # decoded continuation, special tokens removed, cut at the first stop token
    tokens: int  # generated tokens up to (excluding) the stop token
    stopped: bool  # True when a stop token ended it, False when max_new_tokens did


def generate(
    model,
    tokenizer,
    prompts: Sequence[str] | Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int | str = "auto",
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop_ids: list[int] | None = None,
    add_special_tokens: bool = True,
    sort_by_length: bool = True,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
    cache: str = "auto",
    on_token: Callable[[int], None] | None = None,
) -> list[Generated]:
    """Generate a continuation for every prompt; results are in the order of `prompts`.

    A prompt is a string (tokenized as plain text, with the tokenizer's BOS when
    `add_special_tokens`) or a list of token ids (`tokens.encode_chat`'s, used as they are).
    temperature 0 means greedy decoding; otherwise sampling with `temperature` and `top_p`.
    `batch_size` "auto" sizes batches from free accelerator memory (8 on CPU); `cache` picks the
    KV cache (see `eval.decoding`: "auto" is a static cache with a CUDA-graph decode step on GPU).
    `on_token(id)` receives every generated token as it is chosen (one prompt only; see TextStream).
    """
    import torch

    from japanese_ft.eval.batching import sorted_batches
    from japanese_ft.eval.decoding import Decoder, auto_batch_size, greedy, sampler

    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    stop_ids = stop_token_ids(tokenizer) if stop_ids is None else list(stop_ids)
    pad = pad_id(tokenizer)
    encoded = [plain_ids(tokenizer, p, add_special_tokens) if isinstance(p, str) else list(p) for p in prompts]
    if batch_size == "auto":
        batch_size = auto_batch_size(model, [len(e) for e in encoded], max_new_tokens)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")
    choose = greedy
    if temperature > 0:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        choose = sampler(temperature, top_p, generator)
    decoder = Decoder(model, cache)
    stop_set = set(stop_ids)
    results: list[Generated | None] = [None] * len(prompts)
    for idx in sorted_batches([len(e) for e in encoded], batch_size, sort_by_length):
        for i, ids in zip(idx, decoder.decode([encoded[i] for i in idx], max_new_tokens, pad, stop_ids, choose,
                                                on_token)):
            stopped = False
            for k, t in enumerate(ids):
                if t in stop_set:
                    ids, stopped = ids[:k], True
                    break
            results[i] = Generated(text=tokenizer.decode(ids, skip_special_tokens=True), tokens=len(ids), stopped=stopped)
        if progress is not None:
            progress(len(idx))
    return results  # type: ignore[return-value]


def chat_messages(text: str, system: str | None = None) -> list[dict]:
    """`text` as one user turn, after an optional system message (else only what the template
    writes itself)."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def encode_for(tokenizer, prompts: Sequence[str], chat: bool) -> tuple[list[str], list]:
    """(the prompt texts as sent, for records; what `generate` takes). Raw prompts stay strings
    (plain text plus the tokenizer's BOS); with `chat` each is one user turn through the chat
    template, as ids (the template writes any BOS)."""
    if chat:
        return ([render_chat(tokenizer, chat_messages(p)) for p in prompts],
                [encode_chat(tokenizer, chat_messages(p)) for p in prompts])
    return list(prompts), list(prompts)


class TextStream:
    """Generated token ids in, text out as soon as it is final, for `jft generate`/`chat`.

    Byte-level BPE splits a Japanese character's three UTF-8 bytes over several tokens; decoding
    after the first of them gives U+FFFD. The text is decoded from all ids so far and its tail is
    held back while it ends in U+FFFD (an incomplete character), so the written pieces join to
    exactly the final decoded text. Tokens after the first stop token are ignored."""

    def __init__(self, tokenizer, stop_ids: Sequence[int], write: Callable[[str], None], lstrip: bool = False) -> None:
        self.tokenizer, self.stop, self.write, self.lstrip = tokenizer, set(stop_ids), write, lstrip
        self.ids: list[int] = []
        self.shown = 0  # characters of the decoded text already written
        self.done = False

    def __call__(self, token: int) -> None:
        if self.done:
            return
        if token in self.stop:
            self.done = True
            return
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            self._emit(text)

    def flush(self) -> None:
        """Write whatever is still held back (at the end, an incomplete character stays U+FFFD)."""
        self._emit(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def _emit(self, text: str) -> None:
        new = text[self.shown:]
        if self.lstrip and self.shown == 0:
            new = new.lstrip()
            if not new:
                return
        self.shown = len(text)
        if new:
            self.write(new)


def generate_text(
    model,
    tokenizer,
    prompt: str,
    chat: bool = False,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    system: str | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Generated:
    """One prompt, as `jft generate` runs it; with `chat`, the prompt is one user turn.
    `on_text(piece)` receives the continuation as it is generated (pieces join to `.text`)."""
    stream = TextStream(tokenizer, stop_token_ids(tokenizer), on_text) if on_text is not None else None
    if chat:
        ids = encode_chat(tokenizer, chat_messages(prompt, system))
        res = generate(model, tokenizer, [ids], max_new_tokens, 1, temperature, top_p, seed=seed, on_token=stream)[0]
    else:
        res = generate(model, tokenizer, [prompt], max_new_tokens, 1, temperature, top_p, seed=seed, on_token=stream)[0]
    if stream is not None:
        stream.flush()
    return res


class ChatSession:
    """A conversation with history; `jft chat` drives it from input()."""

    def __init__(self, model, tokenizer, system: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.system = system
        self.max_new_tokens, self.temperature, self.top_p, self.seed = max_new_tokens, temperature, top_p, seed
        self.reset()

    def reset(self) -> None:
        self.messages: list[dict] = [{"role": "system", "content": self.system}] if self.system else []

    def prompt_text(self) -> str:
        return render_chat(self.tokenizer, self.messages)

    def send(self, user_text: str, on_text: Callable[[str], None] | None = None) -> str:
        """The assistant's reply (stripped); `on_text` receives it piece by piece as it is generated."""
        self.messages.append({"role": "user", "content": user_text})
        stream = TextStream(self.tokenizer, stop_token_ids(self.tokenizer), on_text, lstrip=True) if on_text else None
        ids = encode_chat(self.tokenizer, self.messages)
        out = generate(self.model, self.tokenizer, [ids], self.max_new_tokens, 1,
                       self.temperature, self.top_p, seed=self.seed, on_token=stream)[0]
        if stream is not None:
            stream.flush()
        reply = out.text.strip()
        self.messages.append({"role": "assistant", "content": reply})
        return reply


def run_repl(session: ChatSession, read: Callable[[str], str] = input, write: Callable[[str], None] = print,
             stream: Callable[[str], None] | None = None, interactive: bool = True) -> int:
    """Read lines until /exit or EOF; /reset clears the history. Returns the number of turns.

    `write` prints a line; `stream`, when given, receives the reply piece by piece (then a newline).
    Not `interactive` (stdin is a pipe or file): no banner and no "you> " prompt, so the output is
    only "assistant> ..." lines."""
    turns = 0
    if interactive:
        write("jft chat: type a message; /reset clears the history, /exit quits.")
    while True:
        try:
            line = read("you> " if interactive else "")
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            session.reset()
            write("(history cleared)")
            continue
        if stream is None:
            write(f"assistant> {session.send(line)}")
        else:
            stream("assistant> ")
            session.send(line, on_text=stream)
            stream("\n")
        turns += 1
    return turns
