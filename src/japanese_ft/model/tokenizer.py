"""Train a small byte-level BPE tokenizer and save it as a Hugging Face tokenizer directory.

Used by `jft demo` (Qwen's 151k-token vocabulary would make the output layer of a 64-wide model
hundreds of times larger than the rest of it; a 2k-token vocabulary keeps CPU training quick) and by
the tests. Byte-level BPE (as Qwen's) never produces unknown tokens, so any text round-trips exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from japanese_ft.files import atomic_output, write_json
from japanese_ft.text.chat import CHATML_TEMPLATE, IM_END, IM_START

EOS = "<|endoftext|>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END]


def train_bpe_tokenizer(texts: Iterable[str], output_dir: str | Path, vocab_size: int = 2048, min_frequency: int = 2,
                        chat_template: str | None = CHATML_TEMPLATE, pad_token: str | None = EOS,
                        chat_tokens: bool = True) -> dict:
    """Train byte-level BPE on `texts`; write tokenizer.json + tokenizer_config.json.

    Special tokens <|endoftext|> (EOS), <|im_start|>, <|im_end|> get ids 0, 1, 2 (only EOS, id 0,
    without `chat_tokens`: a plain EOS-only tokenizer). `chat_template` defaults to jft's ChatML;
    pass None for a tokenizer without one.

    Returns {"vocab_size", "special_tokens", "output"}. Written to OUTPUT.tmp and renamed.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    output_dir = Path(output_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    special = SPECIAL_TOKENS if chat_tokens else [EOS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special,  # ids 0, 1, 2
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=pad_token,
                                   additional_special_tokens=special[1:])
    if chat_template:
        fast.chat_template = chat_template
    with atomic_output(output_dir, directory=True) as tmp:
        fast.save_pretrained(str(tmp))
        # The generic fast-tokenizer class loads with transformers 4.x and 5.x alike.
        cfg_path = tmp / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        write_json(cfg_path, cfg)
    return {"vocab_size": tok.get_vocab_size(), "special_tokens": special, "output": str(output_dir)}
