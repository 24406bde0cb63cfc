"""jft's default chat template (ChatML), used when a tokenizer ships none.

Qwen2.5 base tokenizers have no template that training should rely on; ChatML is what Qwen's
instruct models use, and its end-of-turn token `<|im_end|>` is already in the vocabulary.
"""

from __future__ import annotations

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# Jinja form, saved into tokenizer_config.json of trained checkpoints so `apply_chat_template` works.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def render_chatml(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """Plain-Python rendering identical to CHATML_TEMPLATE (no Jinja needed)."""
    parts = [f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages]
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)
