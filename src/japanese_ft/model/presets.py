"""Architecture presets for `jft init-model` (Qwen2 architecture).

`qwen2.5-0.5b` is embedded here so it works without ../shared; a test checks it against
../shared/models/qwen2.5-0.5b-architecture/config.json when that file exists.
"""

from __future__ import annotations

from japanese_ft.errors import UserError

QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": True,
    "attention_dropout": 0.0,
    "use_sliding_window": False,
    "sliding_window": 32768,
    "max_window_layers": 24,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
    "use_cache": True,
}

# 2 layers, 64 wide: fast enough for CPU tests. vocab_size comes from the tokenizer.
TINY = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": None,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": True,
    "attention_dropout": 0.0,
    "use_sliding_window": False,
    "sliding_window": 4096,
    "max_window_layers": 2,
    "initializer_range": 0.02,
    "torch_dtype": "float32",
    "use_cache": True,
}

PRESETS = {"tiny": TINY, "qwen2.5-0.5b": QWEN25_05B}


def padded_vocab_size(tokenizer_size: int, multiple: int = 64) -> int:
    return -(-tokenizer_size // multiple) * multiple


def preset_dict(preset: str, tokenizer_size: int | None = None, eos_token_id: int | None = None) -> dict:
    """The preset's config values; vocab_size = max(preset vocab, tokenizer size rounded up to 64).

    For qwen2.5-0.5b with the Qwen tokenizer (151,665 tokens -> 151,680) this keeps the
    original 151,936, so the architecture stays exact.
    """
    if preset not in PRESETS:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    vocab = values["vocab_size"] or 0
    if tokenizer_size:
        vocab = max(vocab, padded_vocab_size(tokenizer_size))
    if not vocab:
        raise UserError(f"preset {preset!r} needs a tokenizer to size its vocabulary")
    values["vocab_size"] = vocab
    if values.get("eos_token_id") is None and eos_token_id is not None:
        values["bos_token_id"] = eos_token_id
        values["eos_token_id"] = eos_token_id
    return values


def preset_config(preset: str, tokenizer_size: int | None = None, eos_token_id: int | None = None):
    from transformers import Qwen2Config

    values = preset_dict(preset, tokenizer_size, eos_token_id)
    values.pop("model_type")
    return Qwen2Config(**values)  # torch_dtype is accepted by transformers 4.x and 5.x (as dtype)
