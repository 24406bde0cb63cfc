"""Batched generation: equals one-at-a-time greedy (either KV cache) and transformers' own generate,
stops per row, keeps order; chat templates; REPL."""

import pytest

from eval_testutils import tiny_model_dir

PROMPTS = [
    "富士山",
    "琵琶湖は滋賀県にある日本最大の湖である。湖の水は",
    "質問",
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。",
    "味噌は大豆に",
    "新幹線",
    "日本",
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from japanese_ft.eval.loading import load_for_inference

    return load_for_inference(tiny_model_dir(tmp_path_factory), device="cpu", dtype="float32")


def _hf_greedy_config(max_new_tokens: int, pad_id: int, stop_ids=()):
    """transformers' own greedy decoding, the reference for ours."""
    from transformers import GenerationConfig

    return GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=0, do_sample=False, num_beams=1,
                            repetition_penalty=1.0, no_repeat_ngram_size=0, eos_token_id=list(stop_ids),
                            pad_token_id=pad_id)


def _unbatched(model, tok, prompts, n, stop_ids):
    from japanese_ft.eval.generation import generate

    return [generate(model, tok, [p], n, batch_size=1, stop_ids=stop_ids)[0] for p in prompts]


def test_batched_greedy_equals_unbatched(loaded):
    from japanese_ft.eval.generation import generate

    model, tok = loaded
    one = _unbatched(model, tok, PROMPTS, 12, stop_ids=[])
    assert len({o.text for o in one}) > 3, "outputs should differ between prompts for the test to mean anything"
    for bs in (2, 3, 7):
        many = generate(model, tok, PROMPTS, 12, batch_size=bs, stop_ids=[])
        assert [m.text for m in many] == [o.text for o in one]
        assert all(m.tokens == 12 and not m.stopped for m in many)
    unsorted = generate(model, tok, PROMPTS, 12, batch_size=4, stop_ids=[], sort_by_length=False)
    assert [m.text for m in unsorted] == [o.text for o in one]


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_both_caches_equal_one_at_a_time_and_transformers(loaded, cache):
    """fp32 CPU: the static and the dynamic cache give one-at-a-time greedy outputs at any batch
    size (a short last batch is padded with dummy rows in the static cache), and so does
    transformers' generate on the same left-padded batch."""
    import torch

    from japanese_ft.eval.generation import generate

    model, tok = loaded
    one = _unbatched(model, tok, PROMPTS, 12, stop_ids=[])
    for bs in (3, 4, 7):
        got = generate(model, tok, PROMPTS, 12, batch_size=bs, stop_ids=[], cache=cache)
        assert [g.text for g in got] == [o.text for o in one], (cache, bs)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)  # the tokenizer pads on the left
    with torch.no_grad():
        hf = model.generate(**enc, generation_config=_hf_greedy_config(12, tok.pad_token_id))
    ref = [tok.decode(row[enc["input_ids"].shape[1]:].tolist(), skip_special_tokens=True) for row in hf]
    assert [o.text for o in one] == ref


def test_finished_rows_leave_the_batch(loaded, monkeypatch):
    """With stop tokens hit at different steps, both caches agree with one-at-a-time decoding
    (the dynamic cache drops finished rows from the batch on the way)."""
    from transformers import DynamicCache

    from japanese_ft.eval.generation import generate

    model, tok = loaded
    raw = _raw_greedy(model, tok, 10)
    stops = sorted({raw[0][2], raw[1][3], raw[2][4]})  # rows 0-2 stop early, at different steps
    one = _unbatched(model, tok, PROMPTS, 10, stop_ids=stops)
    assert sum(o.stopped for o in one) >= 3 and any(not o.stopped for o in one)
    kept = []
    real = DynamicCache.reorder_cache
    monkeypatch.setattr(DynamicCache, "reorder_cache", lambda self, idx: (kept.append(len(idx)), real(self, idx))[1])
    for cache in ("dynamic", "static"):
        got = generate(model, tok, PROMPTS, 10, batch_size=len(PROMPTS), stop_ids=stops, cache=cache)
        assert [(g.text, g.tokens, g.stopped) for g in got] == [(o.text, o.tokens, o.stopped) for o in one], cache
    assert kept and min(kept) < len(PROMPTS)  # the dynamic batch shrank


def _raw_greedy(model, tok, n):
    """transformers' greedy token ids per prompt, one prompt at a time, no stop tokens."""
    import torch

    raw = []
    for p in PROMPTS:
        enc = tok([p], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, generation_config=_hf_greedy_config(n, tok.pad_token_id))
        raw.append(out[0, enc["input_ids"].shape[1]:].tolist())
    return raw


def test_each_row_stops_at_its_own_stop_token(loaded):
    import torch

    from japanese_ft.eval.generation import generate

    model, tok = loaded
    # raw greedy token ids without stopping
    raw = []
    for p in PROMPTS:
        enc = tok([p], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, generation_config=_hf_greedy_config(10, tok.pad_token_id))
        raw.append(out[0, enc["input_ids"].shape[1]:].tolist())
    stop = raw[0][3]  # a token the first prompt emits at step 4
    many = generate(model, tok, PROMPTS, 10, batch_size=len(PROMPTS), stop_ids=[stop])
    for ids, got in zip(raw, many):
        cut = ids.index(stop) if stop in ids else len(ids)
        assert got.tokens == cut
        assert got.stopped == (stop in ids)
        assert got.text == tok.decode(ids[:cut], skip_special_tokens=True)
    assert many[0].tokens <= 3 and many[0].stopped
    assert any(not g.stopped for g in many), "other rows must keep going"


def test_stop_ids_include_end_of_turn(loaded):
    from japanese_ft.tokens import stop_token_ids

    _, tok = loaded
    ids = stop_token_ids(tok)
    assert tok.eos_token_id in ids
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids


def test_model_generation_config_does_not_leak(loaded):
    """An instruct checkpoint may ship do_sample/temperature/repetition_penalty defaults."""
    from japanese_ft.eval.generation import generate

    model, tok = loaded
    base = [g.text for g in generate(model, tok, PROMPTS[:3], 8, stop_ids=[])]
    old = model.generation_config
    try:
        model.generation_config.do_sample = True
        model.generation_config.temperature = 5.0
        model.generation_config.repetition_penalty = 3.0
        model.generation_config.top_k = 2
        again = [g.text for g in generate(model, tok, PROMPTS[:3], 8, stop_ids=[])]
    finally:
        model.generation_config = old
        model.generation_config.do_sample = False
        model.generation_config.repetition_penalty = 1.0
    assert again == base


def test_sampling_is_seeded(loaded):
    from japanese_ft.eval.generation import generate

    model, tok = loaded
    a = generate(model, tok, PROMPTS[:3], 8, temperature=1.0, top_p=0.9, seed=1, stop_ids=[])
    b = generate(model, tok, PROMPTS[:3], 8, temperature=1.0, top_p=0.9, seed=1, stop_ids=[])
    assert [x.text for x in a] == [x.text for x in b]


def test_chat_template_fallback_and_own_template(loaded):
    from japanese_ft.text.chat import render_chatml
    from japanese_ft.tokens import render_chat as apply_chat

    _, tok = loaded
    msgs = [{"role": "user", "content": "こんにちは"}]
    assert not getattr(tok, "chat_template", None)
    assert apply_chat(tok, msgs) == render_chatml(msgs, add_generation_prompt=True)
    assert apply_chat(tok, msgs).endswith("<|im_start|>assistant\n")
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    try:
        assert apply_chat(tok, msgs) == "[user]こんにちは[assistant]"
    finally:
        tok.chat_template = None


def test_chat_session_history_and_repl(loaded):
    from japanese_ft.eval.generation import ChatSession, run_repl

    model, tok = loaded
    session = ChatSession(model, tok, system="あなたは親切です。", max_new_tokens=5)
    lines = iter(["こんにちは", "", "富士山は？", "/reset", "日本", "/exit", "never read"])
    said = []
    turns = run_repl(session, read=lambda _p: next(lines), write=said.append)
    assert turns == 3
    assert "(history cleared)" in said
    # after /reset only the system message and the last exchange remain
    assert [m["role"] for m in session.messages] == ["system", "user", "assistant"]
    assert session.messages[1]["content"] == "日本"
    assert session.prompt_text().startswith("<|im_start|>system\nあなたは親切です。<|im_end|>\n")


def test_repl_stops_on_eof(loaded):
    from japanese_ft.eval.generation import ChatSession, run_repl

    model, tok = loaded

    def read(_p):
        raise EOFError

    assert run_repl(ChatSession(model, tok, max_new_tokens=2), read=read, write=lambda s: None) == 0


_JA = "日本語のテキストです。鰻丼🍣"


def _split_characters(tok, text):
    """ids of text, checked to split at least one character's UTF-8 bytes over several tokens."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tok.decode(ids[:k]) for k in range(1, len(ids)))  # a naive stream would show U+FFFD
    return ids


def test_text_stream_holds_back_incomplete_characters(loaded):
    from japanese_ft.eval.generation import TextStream

    _, tok = loaded
    ids = _split_characters(tok, _JA)
    pieces = []
    stream = TextStream(tok, [tok.convert_tokens_to_ids("<|im_end|>")], pieces.append)
    for t in ids + [tok.convert_tokens_to_ids("<|im_end|>")] + ids[:3]:  # tokens after the stop are ignored
        stream(t)
    stream.flush()
    assert "".join(pieces) == _JA and len(pieces) > 3
    assert not any("\ufffd" in p for p in pieces)


def test_generate_streams_through_the_decoder(loaded, monkeypatch, tmp_path_factory):
    """Scripted greedy choices through the real Decoder: streamed pieces join to the result text,
    and `jft generate` prints the characters whole."""
    import torch

    from eval_testutils import run_cli
    from japanese_ft.eval import decoding
    from japanese_ft.eval.generation import generate_text

    model, tok = loaded
    script = _split_characters(tok, _JA) + [tok.convert_tokens_to_ids("<|im_end|>")]
    state = {"k": 0}

    def scripted(logits):
        state["k"] += 1
        return torch.tensor([script[min(state["k"] - 1, len(script) - 1)]] * logits.shape[0])

    monkeypatch.setattr(decoding, "greedy", scripted)
    pieces = []
    res = generate_text(model, tok, "富士山は", max_new_tokens=len(script) + 5, on_text=pieces.append)
    assert res.text == _JA and res.stopped and "".join(pieces) == _JA and len(pieces) > 3
    assert not any("\ufffd" in p for p in pieces)
    state["k"] = 0
    pieces = []
    res = generate_text(model, tok, "富士山は", chat=True, max_new_tokens=len(script) + 5, on_text=pieces.append)
    assert res.text == _JA == "".join(pieces)
    state["k"] = 0
    code, text = run_cli(["generate", "--model", str(tiny_model_dir(tmp_path_factory)), "--prompt", "富士山は",
                          "--max-new-tokens", "40", "--device", "cpu"])
    assert code == 0 and f"{_JA}\n" in text and "\ufffd" not in text, text
