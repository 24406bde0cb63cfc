"""Tokenizer rules, in one place: loading, EOS/pad, stop tokens, and special-token-safe encoding.

Stop tokens. A turn ends at the token the chat template writes right after an assistant message
(`<|im_end|>` for ChatML, `<|eot_id|>`, `<end_of_turn>`, or EOS for templates that close turns with
it); a tokenizer without a template is rendered with jft's ChatML (text/chat.py), so its
end-of-turn is `<|im_end|>` when the vocabulary has it. `stop_token_ids` is that end-of-turn token,
then EOS. The same list is used by SFT labels (data/sft.py labels the end-of-turn token that closes
each assistant turn), by the `generation_config.json` of every saved checkpoint, and by
generation and evaluation (eval/generation.py); tests/test_tokens.py checks that they agree.

Plain text. Data is never allowed to write control tokens: message contents, prompts built from
data and typed chat input are tokenized with `split_special_tokens=True`, so a literal
`<|im_start|>` or `<tool_call>` in them is ordinary text. Only the chat template's own text (the
part between messages) is tokenized with special tokens. Roles must be system, user or assistant.

Light at import time: transformers is imported by `load_tokenizer` only.
"""

from __future__ import annotations

import re
from pathlib import Path

from japanese_ft.errors import UserError, one_line
from japanese_ft.text.chat import CHATML_TEMPLATE, IM_END, render_chatml

ROLES = ("system", "user", "assistant")
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _sentinel(i: int) -> str:
    return f"\ue000{i}\ue001"


# ---- loading -----------------------------------------------------------------------------------


def check_tokenizer_source(name_or_path: str, what: str = "tokenizer") -> None:
    """Fail fast, without transformers, on a local path that is missing or holds no tokenizer."""
    from japanese_ft.files import looks_local

    path = Path(str(name_or_path)).expanduser()
    if path.exists():
        if path.is_dir() and not any((path / f).exists() for f in _TOKENIZER_FILES):
            raise UserError(f"{what}: {name_or_path} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])})")
        return
    if looks_local(str(name_or_path)):
        raise UserError(f"{what}: {name_or_path} not found")


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False, chat_template: str | bool = "auto",
                   what: str = "tokenizer"):
    """AutoTokenizer from a local directory or hub id; a failure is one line naming `what`.

    `chat_template`: "auto" (or True) gives a tokenizer without a template jft's ChatML; "chatml"
    replaces any template with ChatML (data.chat_template=chatml trains, saves and generates with
    it); False leaves the template as it is."""
    from transformers import AutoTokenizer

    check_tokenizer_source(str(name_or_path), what)
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=trust_remote_code)
    except Exception as exc:  # missing files, hub/offline errors, bad JSON
        raise UserError(f"{what} {name_or_path}: cannot load ({one_line(exc)})") from None
    if chat_template == "chatml" or (chat_template in (True, "auto") and not getattr(tok, "chat_template", None)):
        tok.chat_template = CHATML_TEMPLATE
    return tok


# ---- special ids ---------------------------------------------------------------------------------


def token_id(tokenizer, token: str) -> int | None:
    """Id of a single (special) token, or None when the vocabulary lacks it."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tokenizer.unk_token_id is not None and tid == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return int(tid)


def eos_id(tokenizer) -> int | None:
    """The tokenizer's EOS, else a well-known end-of-text token of its vocabulary."""
    if isinstance(tokenizer.eos_token_id, int):
        return int(tokenizer.eos_token_id)
    for cand in EOS_CANDIDATES:
        tid = token_id(tokenizer, cand)
        if tid is not None:
            return tid
    return None


def eos_ids(tokenizer) -> list[int]:
    """EOS only: where llm-jp-eval's protocol stops generating."""
    tid = eos_id(tokenizer)
    return [] if tid is None else [tid]


def pad_id(tokenizer) -> int:
    """The pad token, else EOS, else 0 (padding is masked out everywhere it is used)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    tid = eos_id(tokenizer)
    return 0 if tid is None else tid


def end_of_turn_token(tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant message (`<|im_end|>`,
    `<|eot_id|>`, `<end_of_turn>`, ...), or None without a template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    marker = "\ue000jft\ue001"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # templates may reject this conversation (jinja errors of any kind)
        return None
    if marker not in text:
        return None
    after = text.split(marker, 1)[1]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    for tid in tokenizer(after, add_special_tokens=False)["input_ids"][:3]:
        if tid in special:
            return tokenizer.convert_ids_to_tokens(int(tid))
    return None


def stop_token_ids(tokenizer) -> list[int]:
    """End-of-turn first, then EOS (no duplicates): where answers end in training and generation."""
    eot = end_of_turn_token(tokenizer) if getattr(tokenizer, "chat_template", None) else IM_END
    ids: list[int] = []
    for tid in ((token_id(tokenizer, eot) if eot else None), eos_id(tokenizer)):
        if tid is not None and tid not in ids:
            ids.append(tid)
    return ids


def set_stop_tokens(generation_config, tokenizer):
    """Point a GenerationConfig at `stop_token_ids` (one id as an int) and `pad_id`."""
    stops = stop_token_ids(tokenizer)
    generation_config.eos_token_id = stops if len(stops) > 1 else (stops[0] if stops else None)
    generation_config.pad_token_id = pad_id(tokenizer)
    return generation_config


def generation_config_for(tokenizer, model_config=None):
    """A fresh GenerationConfig (greedy) that stops where `stop_token_ids` says."""
    from transformers import GenerationConfig

    gen = GenerationConfig(bos_token_id=getattr(model_config, "bos_token_id", None))
    return set_stop_tokens(gen, tokenizer)


# ---- encoding -------------------------------------------------------------------------------------


def plain_ids(tokenizer, text: str, add_special_tokens: bool = False) -> list[int]:
    """`text` as plain text: a special token's spelling inside it is not parsed as that token.
    `add_special_tokens` still adds what the tokenizer's post-processor adds (a BOS)."""
    if not text and not add_special_tokens:
        return []
    return list(tokenizer(text, add_special_tokens=add_special_tokens, split_special_tokens=True)["input_ids"])


def check_messages(messages, where: str = "") -> list[dict]:
    """[{"role", "content"}] with a known role and string content, or a UserError naming `where`."""
    prefix = f"{where}: " if where else ""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{prefix}'messages' must be a non-empty list")
    out = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise UserError(f"{prefix}messages[{k}]: every message needs string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise UserError(f"{prefix}messages[{k}].role: {m['role'][:40]!r} is not one of {', '.join(ROLES)}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def uses_chatml(tokenizer, template: str = "auto") -> bool:
    """jft's ChatML renders the conversation when asked to, or when the tokenizer has no template
    of its own (or has ChatML itself)."""
    own = getattr(tokenizer, "chat_template", None)
    return template == "chatml" or not own or own == CHATML_TEMPLATE


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = True, chatml: bool | None = None) -> str:
    """The conversation as text through the tokenizer's template, else jft's ChatML (for display
    and records; the ids come from `chat_segments`)."""
    if chatml if chatml is not None else uses_chatml(tokenizer):
        return render_chatml(messages, add_generation_prompt=add_generation_prompt)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def chat_segments(tokenizer, messages: list[dict], add_generation_prompt: bool = False,
                  chatml: bool | None = None) -> list[tuple[list[int], int | None]]:
    """The conversation as token pieces: (ids, None) for the template's own text, tokenized with
    its control tokens, and (ids, k) for message k's content, tokenized as plain text.

    The template is rendered with a sentinel in place of every content, so whatever a content
    holds, only the template can write control tokens."""
    messages = check_messages(messages)
    masked = [{"role": m["role"], "content": _sentinel(i)} for i, m in enumerate(messages)]
    parts = _SENTINEL.split(render_chat(tokenizer, masked, add_generation_prompt, chatml))
    if [int(x) for x in parts[1::2]] != list(range(len(messages))):
        raise UserError("the chat template changes or reorders message contents; use data.chat_template=chatml")
    pieces: list[tuple[list[int], int | None]] = []
    for k, piece in enumerate(parts):
        if k % 2 == 0:
            ids = list(tokenizer(piece, add_special_tokens=False)["input_ids"]) if piece else []
            pieces.append((ids, None))
        else:
            index = int(piece)
            pieces.append((plain_ids(tokenizer, messages[index]["content"]), index))
    return pieces


def encode_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = True, chatml: bool | None = None) -> list[int]:
    """The prompt ids of a conversation, ready for the assistant's reply (see `chat_segments`)."""
    return [t for ids, _ in chat_segments(tokenizer, messages, add_generation_prompt, chatml) for t in ids]

