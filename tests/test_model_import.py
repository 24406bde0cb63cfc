"""jft import-model: an HF directory or a GGUF file -> a plain safetensors checkpoint whose logits,
tokenizer and chat template equal the source's, and that every jft command loads."""

from __future__ import annotations

import json
import sys

import pytest

from eval_testutils import run_cli
from japanese_ft.errors import UserError
from japanese_ft.model.importing import import_model
from japanese_ft.text.chat import CHATML_TEMPLATE
from jft_testutils import make_tokenizer_dir

TEXT = "富士山は日本で最も高い山である。The capital of France is Paris."


def _tiny_llama(path, tie: bool = True):
    """A random Llama (tied embeddings) with a ChatML tokenizer, saved in bf16 like real checkpoints."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    make_tokenizer_dir(path, 400, chat_template=CHATML_TEMPLATE, pad_token="<|endoftext|>")
    tok = AutoTokenizer.from_pretrained(str(path))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=tie, eos_token_id=tok.eos_token_id, bos_token_id=None,
                      pad_token_id=tok.pad_token_id, initializer_range=0.5)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(str(path))
    return path


def _logits(model_dir, text=TEXT, **kw):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, **kw).eval()
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits, tok, model


def test_hf_directory_import_keeps_logits_tokenizer_and_template(tmp_path):
    import torch

    src = _tiny_llama(tmp_path / "src")
    info = import_model(str(src), tmp_path / "out")
    ref, ref_tok, _ = _logits(src)
    got, tok, model = _logits(tmp_path / "out")
    assert torch.equal(ref, got)
    assert tok(TEXT)["input_ids"] == ref_tok(TEXT)["input_ids"]
    assert tok.chat_template == CHATML_TEMPLATE
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    gen = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [im_end, tok.eos_token_id]  # end-of-turn first, then EOS
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert info["dtype"] == "bfloat16" and info["tied_embeddings"] and info["end_of_turn"] == "<|im_end|>"
    assert info["architecture"] == "LlamaForCausalLM" and info["vocab_size"] == len(tok)
    assert info["context_length"] == 256 and tok.model_max_length == 256
    assert info["chars_per_token"] > 0 and info["sample_tokens"] > 0
    assert not (tmp_path / "out.tmp").exists()


def test_dtype_choice_and_refusals(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    src = _tiny_llama(tmp_path / "src")
    info = import_model(str(src), tmp_path / "fp32", dtype="float32")
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "fp32"))
    assert info["dtype"] == "float32" and model.model.embed_tokens.weight.dtype == torch.float32
    with pytest.raises(UserError, match="not an empty directory"):
        import_model(str(src), tmp_path / "fp32")
    with pytest.raises(UserError, match="--dtype"):
        import_model(str(src), tmp_path / "x", dtype="int8")
    with pytest.raises(UserError, match="no such GGUF file"):
        import_model(str(tmp_path / "missing.gguf"), tmp_path / "y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        import_model(str(tmp_path / "empty"), tmp_path / "z")


def test_end_of_turn_token_is_read_from_the_template(tmp_path):
    from transformers import AutoTokenizer

    from japanese_ft.tokens import end_of_turn_token

    tok = AutoTokenizer.from_pretrained(str(make_tokenizer_dir(tmp_path / "t", 300, chat_template=CHATML_TEMPLATE)))
    assert end_of_turn_token(tok) == "<|im_end|>"
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}[Q] {{ m['content'] }}\n"
                         "{% else %}[A] {{ m['content'] }}{{ eos_token }}\n{% endif %}{% endfor %}")
    assert end_of_turn_token(tok) == "<|endoftext|>"
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"  # no special token after a turn
    assert end_of_turn_token(tok) is None
    tok.chat_template = None
    assert end_of_turn_token(tok) is None


def test_missing_gguf_extra_names_the_install_command(tmp_path, monkeypatch):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now fails as if it were not installed
    code, text = run_cli(["import-model", str(fake), "--output", str(tmp_path / "out")])
    assert code == 2
    assert 'pip install "japanese-ft[gguf]"' in text and "gguf is not installed" in text
    assert len([line for line in text.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "out").exists()


# ---- the real model (SmolLM2-135M-Instruct GGUF), skipped when absent -----------------------


@pytest.mark.slow
def test_gguf_import_equals_transformers_own_gguf_load(smollm2_gguf, smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(smollm2_gguf.parent), smollm2_gguf.name
    ref_tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    ref = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    got, tok, model = _logits(smollm2_dir)
    ids = ref_tok(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = ref(input_ids=ids).logits
    assert tok(TEXT)["input_ids"] == ids[0].tolist()
    assert torch.equal(expected, got)
    # SmolLM2 ties its embeddings: one tensor after loading, stored once
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    messages = [{"role": "user", "content": "日本の首都は？"}]
    assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        ref_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>" in tok.chat_template
    gen = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id


def _run_config(path, mode: str, model_dir, train_file, out_dir, template: str) -> str:
    path.write_text(f"""mode: {mode}
model: {{name_or_path: {model_dir}, dtype: float32, attn_implementation: sdpa}}
data: {{train: [{train_file}], seq_length: 512, chat_template: {template}}}
train: {{micro_batch_size: 1, global_batch_size: 1, max_steps: 1, lr: 1.0e-5, min_lr: 1.0e-5, warmup_steps: 0,
        precision: fp32, eval_every: 0, save_every: 0, keep_last: 1, device: cpu}}
lora: {{r: 4, alpha: 8, dropout: 0.0}}
output_dir: {out_dir}
""", encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_imported_gguf_works_with_every_command(smollm2_dir, tmp_path):
    """train (plain SFT on llm-jp-eval records, LoRA with the chat template), eval raw and --chat,
    generate --chat, chat with piped input, export; one step and short prompts keep it quick."""
    from eval_testutils import write_squad
    from japanese_ft.data.squad import convert_squad

    squad = write_squad(tmp_path / "squad.json")
    convert_squad(squad, tmp_path / "plain.jsonl", style="llm-jp-eval")
    convert_squad(squad, tmp_path / "chat.jsonl")
    code, text = run_cli(["generate", "--model", str(smollm2_dir), "--chat", "--prompt", "What is the capital of France?",
                          "--max-new-tokens", "12", "--device", "cpu"])
    assert code == 0 and "Paris" in text, text  # the dequantized instruct model still answers
    code, text = run_cli(["chat", "--model", str(smollm2_dir), "--max-new-tokens", "6", "--device", "cpu"],
                         stdin="Hello!\n/exit\n")
    assert code == 0 and "assistant>" in text, text
    cfg = _run_config(tmp_path / "sft.yaml", "sft", smollm2_dir, tmp_path / "plain.jsonl", tmp_path / "sft", "none")
    code, text = run_cli(["train", "sft", "--config", cfg])
    assert code == 0, text
    suite = tmp_path / "evals.yaml"
    suite.write_text(f"evals:\n  - {{task: jsquad, data: {squad}, max_new_tokens: 4}}\n"
                     f"  - {{name: jsquad_chat, task: jsquad, data: {squad}, max_new_tokens: 4, chat: true}}\n")
    out = tmp_path / "eval.json"
    code, text = run_cli(["eval", "suite", "--model", str(tmp_path / "sft" / "final"), "--config", str(suite),
                          "--limit", "2", "--device", "cpu", "--output", str(out)])
    assert code == 0, text
    assert [r["format"] for r in json.loads(out.read_text())["results"].values()] == ["raw", "chat"]
    cfg = _run_config(tmp_path / "lora.yaml", "lora", smollm2_dir, tmp_path / "chat.jsonl", tmp_path / "lora", "auto")
    code, text = run_cli(["train", "lora", "--config", cfg])
    assert code == 0, text
    merged = tmp_path / "merged"
    code, text = run_cli(["export", "--base", str(smollm2_dir), "--adapter", str(tmp_path / "lora" / "final"),
                          "--output", str(merged)])
    assert code == 0, text
    tok_cfg = json.loads((merged / "tokenizer_config.json").read_text())
    gen = json.loads((merged / "generation_config.json").read_text())
    assert tok_cfg["eos_token"] == "<|im_end|>" and (merged / "model.safetensors").exists()
    assert gen["eos_token_id"] in (2, [2])  # still stops at <|im_end|>


def _broken_like_transformers_5_17(src, dst):
    """The tiny byte-level tokenizer as transformers 5.17 converts a GGUF one: byte fallback on, a
    SentencePiece decoder chain, and <|im_start|> as EOS."""
    from transformers import AutoTokenizer

    raw = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    raw["model"]["byte_fallback"] = True
    raw["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, raw["decoder"]]}
    dst.mkdir()
    (dst / "tokenizer.json").write_text(json.dumps(raw), encoding="utf-8")
    (dst / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_start|>", "bos_token": "<|im_start|>"}))
    return AutoTokenizer.from_pretrained(str(dst))


def test_gguf_tokenizer_repair_restores_byte_level_bpe_and_the_files_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    from japanese_ft.model.importing import repair_gguf_tokenizer

    good_dir = make_tokenizer_dir(tmp_path / "good")
    good = AutoTokenizer.from_pretrained(str(good_dir))
    broken = _broken_like_transformers_5_17(good_dir, tmp_path / "broken")
    assert broken.eos_token == "<|im_start|>"
    meta = {"model": "gpt2", "bos_token_id": 1, "eos_token_id": 2, "unknown_token_id": 0, "padding_token_id": 2}
    changed = repair_gguf_tokenizer(broken, meta)
    assert any("eos_token" in c for c in changed) and any("byte-level" in c for c in changed)
    assert (broken.eos_token, broken.pad_token, broken.unk_token) == ("<|im_end|>", "<|im_end|>", "<|endoftext|>")
    state = json.loads(broken.backend_tokenizer.to_str())
    assert state["model"]["byte_fallback"] is False and state["decoder"]["type"] == "ByteLevel"
    for text in (TEXT, "日本の首都は東京です。 ▁ spaces  and\ttabs", "🍣 と ｶﾀｶﾅ"):
        ids = broken(text, add_special_tokens=False)["input_ids"]
        assert ids == good(text, add_special_tokens=False)["input_ids"]
        assert broken.decode(ids) == text
    assert repair_gguf_tokenizer(broken, meta) == []  # nothing left to repair
    # an id outside the vocabulary is ignored, and a SentencePiece (llama) GGUF keeps its decoder
    other = _broken_like_transformers_5_17(good_dir, tmp_path / "sp")
    repair_gguf_tokenizer(other, {"model": "llama", "eos_token_id": 10**6})
    assert other.eos_token == "<|im_start|>"
    assert json.loads(other.backend_tokenizer.to_str())["model"]["byte_fallback"] is True


def test_gguf_tokenizer_meta_reads_the_files_special_ids(smollm2_gguf):
    from japanese_ft.model.importing import gguf_tokenizer_meta

    assert gguf_tokenizer_meta(str(smollm2_gguf)) == {
        "model": "gpt2", "bos_token_id": 1, "eos_token_id": 2, "unknown_token_id": 0, "padding_token_id": 2}
