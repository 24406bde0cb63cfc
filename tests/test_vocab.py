"""extend-vocab: continued BPE on tiny tokenizers and the shared Qwen tokenizer; tied and untied tiny models."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import pytest

from japanese_ft.errors import UserError
from jft_testutils import SHARED, write_jsonl
from jft_train_utils import build_tokenizer

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "japanese_ft" / "sample"
ARTICLES = SAMPLE / "articles.jsonl"
HELDOUT = SAMPLE / "heldout.jsonl"
QWEN = SHARED / "tokenizers" / "qwen2.5"


def _heldout_texts() -> list[str]:
    return [json.loads(line)["text"] for line in HELDOUT.read_text(encoding="utf-8").splitlines() if line.strip()]


def _random_texts(seed: int = 0) -> dict[str, list[str]]:
    """Random strings per script; NFC-normalised so that a normalizing tokenizer also round-trips them."""
    rng = random.Random(seed)
    pools = {
        "japanese": [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30A1, 0x30FB)]
        + [chr(rng.randrange(0x4E00, 0xA000)) for _ in range(300)] + list("、。「」（）・ー〜！？ＡＢＣ１２３ｱｲｳｴｵ　"),
        "english": [chr(c) for c in range(0x20, 0x7F)] + ["\n", "\t", " the ", " and ", "ing"],
        "emoji": ["😀", "🍣", "🗻", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", " ", "!"],
        "control": [chr(c) for c in range(0, 0x20)] + ["\x7f", "\u200b", "\ufeff", "\u2028", "a"],
        "other_scripts": list("éüßçøåñÀÉÖ") + list("Привет мир Ελληνικά") + list("안녕하세요 مرحبا שלום") + [" "],
    }
    pools["mixed"] = [c for p in pools.values() for c in p]
    out = {}
    for name, pool in pools.items():
        out[name] = [unicodedata.normalize("NFC", "".join(rng.choice(pool) for _ in range(rng.randrange(1, 60))))
                     for _ in range(60)]
    return out


def test_byte_level_table_and_japanese_rule():
    """token_bytes inverts tokenizers' ByteLevel; the rule is true exactly for text with a character in
    U+3000-U+9FFF or U+FF00-U+FFBF."""
    from tokenizers.pre_tokenizers import ByteLevel

    from japanese_ft.model.vocab_bpe import is_japanese_token, token_bytes

    level = ByteLevel(add_prefix_space=False, use_regex=False)
    for name, texts in _random_texts(2).items():
        for text in texts:
            token = "".join(piece for piece, _ in level.pre_tokenize_str(text))
            assert token_bytes(token) == text.encode("utf-8")
            expected = any(0x3000 <= ord(c) <= 0x9FFF or 0xFF00 <= ord(c) <= 0xFFBF for c in text)
            assert is_japanese_token(token) == expected, (name, text)


def _untied_model(tok_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    from japanese_ft.model.load import save_hf_checkpoint
    from japanese_ft.model.presets import preset_config
    from japanese_ft.tokens import eos_id, load_tokenizer

    tok = load_tokenizer(str(tok_dir))
    config = preset_config("tiny", len(tok), eos_id(tok))
    config.tie_word_embeddings = False
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    save_hf_checkpoint(model, tok, out)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny byte-level BPE (600 tokens), tied and untied tiny models, and both extended by 200 tokens."""
    from japanese_ft.model.load import init_model
    from japanese_ft.model.vocab import extend_vocab

    root = tmp_path_factory.mktemp("vocab")
    tok_dir = build_tokenizer(root / "tok")
    tied = root / "tied"
    init_model("tiny", str(tok_dir), tied, seed=0)
    untied = _untied_model(tok_dir, root / "untied")
    out = {"root": root, "tok": tok_dir, "tied": tied, "untied": untied}
    for name in ("tied", "untied"):
        out[f"{name}_ext"] = root / f"{name}-ext"
        out[f"{name}_info"] = extend_vocab(out[name], [ARTICLES], 200, out[f"{name}_ext"], seed=0)
    return out


def _load(path: Path):
    from japanese_ft.model.load import load_model
    from japanese_ft.tokens import load_tokenizer

    return load_model(str(path), "float32", attn_implementation="eager"), load_tokenizer(str(path), chat_template=False)


def test_report_and_saved_files(tiny):
    info = tiny["tied_info"]
    assert info["added_tokens"] == 200 and info["first_new_id"] == 600 and info["tokenizer_size"] == 800
    assert info["embedding_rows"] == {"before": 640, "after": 832}  # padded to a multiple of 64
    ja, en = info["chars_per_token"]["japanese"], info["chars_per_token"]["english"]
    assert ja["after"] > ja["before"] * 1.1  # the new tokens are used on held-out text
    assert en["after"] == en["before"]
    assert len(info["chars_per_token"]["top_new_tokens"]) == 20
    assert all(t["id"] >= 600 for t in info["chars_per_token"]["top_new_tokens"])
    out = tiny["tied_ext"]
    assert json.loads((out / "vocab_extension.json").read_text()) == info
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 832
    assert (out / "generation_config.json").read_text() == (tiny["tied"] / "generation_config.json").read_text()
    for name in ("tokenizer_config.json", "chat_template.jinja"):  # special tokens and chat template kept as they were
        assert (out / name).read_text() == (tiny["tied"] / name).read_text()


def test_roundtrip_and_unchanged_ids(tiny):
    from japanese_ft.tokens import load_tokenizer

    base = load_tokenizer(str(tiny["tied"]), chat_template=False)
    ext = load_tokenizer(str(tiny["tied_ext"]), chat_template=False)
    assert len(ext) == 800
    for tid in range(len(base)):  # existing ids never change (special tokens included)
        assert ext.convert_ids_to_tokens(tid) == base.convert_ids_to_tokens(tid)
    for name, texts in _random_texts().items():
        for text in texts:
            ids = ext(text, add_special_tokens=False)["input_ids"]
            assert ext.decode(ids) == text, (name, text)
            if name != "japanese" and name != "mixed":  # no kana/kanji: tokenized exactly as before
                assert ids == base(text, add_special_tokens=False)["input_ids"], (name, text)
    ja = _heldout_texts()[0]
    assert max(ext(ja, add_special_tokens=False)["input_ids"]) >= 600
    assert ext.encode("<|im_end|>", add_special_tokens=False) == [2]


def test_old_logits_unchanged_and_new_rows_are_means(tiny):
    import torch

    from japanese_ft.model import vocab_bpe

    ja = _heldout_texts()[:2]
    for name in ("tied", "untied"):
        base_model, base_tok = _load(tiny[name])
        ext_model, _ = _load(tiny[f"{name}_ext"])
        ids = torch.tensor([base_tok(t, add_special_tokens=False)["input_ids"][:96] for t in ja])
        with torch.no_grad():
            before = base_model(ids).logits
            after = ext_model(ids).logits
        assert after.shape[-1] == 832
        torch.testing.assert_close(after[..., :600], before[..., :600], rtol=1e-5, atol=1e-6)

        base_in, ext_in = base_model.get_input_embeddings().weight, ext_model.get_input_embeddings().weight
        base_out, ext_out = base_model.get_output_embeddings().weight, ext_model.get_output_embeddings().weight
        assert torch.equal(ext_in[:600], base_in[:600]) and torch.equal(ext_out[:600], base_out[:600])
        assert (ext_out.data_ptr() == ext_in.data_ptr()) == (name == "tied")
        backend = base_tok.backend_tokenizer
        ext_tok = json.loads((tiny[f"{name}_ext"] / "tokenizer.json").read_text())["model"]["vocab"]
        new = sorted((i, t) for t, i in ext_tok.items() if i >= 600)
        assert [i for i, _ in new] == list(range(600, 800))
        for i, token in new:
            parts = vocab_bpe.decompose(backend, token)
            assert "".join(backend.id_to_token(p) for p in parts) == token and max(parts) < 600 and len(parts) > 1
            torch.testing.assert_close(ext_in[i], base_in[parts].mean(0))
            torch.testing.assert_close(ext_out[i], base_out[parts].mean(0))
        if name == "untied":
            assert not torch.allclose(ext_out[600], ext_in[600])  # each matrix gets its own mean


def test_new_ids_inside_the_old_padding_rows(tiny, tmp_path):
    """600 tokens in 640 rows: 30 new tokens reuse padding rows, nothing is resized, old rows stay."""
    import torch

    from japanese_ft.model.vocab import extend_vocab

    info = extend_vocab(tiny["tied"], [ARTICLES], 30, tmp_path / "ext", seed=0)
    assert info["embedding_rows"] == {"before": 640, "after": 640} and info["tokenizer_size"] == 630
    base, base_tok = _load(tiny["tied"])
    ext, _ = _load(tmp_path / "ext")
    w0, w1 = base.get_input_embeddings().weight, ext.get_input_embeddings().weight
    assert torch.equal(w1[:600], w0[:600]) and torch.equal(w1[630:], w0[630:])
    assert not torch.equal(w1[600:630], w0[600:630])


def test_deterministic_for_fixed_corpus_and_seed(tiny, tmp_path):
    from japanese_ft.model.vocab import CorpusStats, corpus_texts, extend_vocab

    again = tmp_path / "again"
    extend_vocab(tiny["tied"], [ARTICLES], 200, again, seed=0)
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        assert (again / name).read_bytes() == (tiny["tied_ext"] / name).read_bytes(), name
    # Above --max-chars the corpus is a seeded sample of documents.
    sample = {seed: list(corpus_texts([ARTICLES], CorpusStats(), max_chars=8000, seed=seed)) for seed in (0, 0, 1)}
    stats = CorpusStats()
    first = list(corpus_texts([ARTICLES], stats, max_chars=8000, seed=0))
    assert first == sample[0] and first != sample[1] and stats.sampled
    assert 0 < stats.used_documents < stats.documents == 48
    assert len(list(corpus_texts([ARTICLES], CorpusStats(), max_chars=0))) == 48


def _write_tokenizer(path: Path, kind: str) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = ["the quick brown fox jumps over the lazy dog", "hello world"] * 3
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=80, special_tokens=["[UNK]"], show_progress=False)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=80, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False)
    else:  # Llama-2 style: SentencePiece-like BPE with byte fallback
        tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        trainer = trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator(texts, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(str(path))
    return path


@pytest.mark.parametrize("kind, what", [("wordpiece", "a WordPiece tokenizer"), ("unigram", "a Unigram tokenizer"),
                                        ("byte_fallback", "byte fallback")])
def test_tokenizer_that_is_not_byte_level_bpe(tmp_path, kind, what):
    from japanese_ft.model.vocab import extend_tokenizer

    tok = _write_tokenizer(tmp_path / kind, kind)
    with pytest.raises(UserError, match=f"{what}.*extend-vocab supports byte-level BPE"):
        extend_tokenizer(tok, [ARTICLES], 10)


def test_bad_input_errors(tiny, tmp_path, capsys):
    from japanese_ft.cli import main
    from japanese_ft.model.vocab import extend_tokenizer, extend_vocab

    tok = tiny["tok"]
    for add in (0, -5):
        with pytest.raises(UserError, match="--add must be a positive number"):
            extend_tokenizer(tok, [ARTICLES], add)
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"text": ""}, {"text": "  \n"}])
    with pytest.raises(UserError, match="blank.jsonl: no documents with text"):
        extend_tokenizer(tok, [blank], 10)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="empty.jsonl: file is empty"):
        extend_tokenizer(tok, [tmp_path / "empty.jsonl"], 10)
    english = write_jsonl(tmp_path / "en.jsonl", [{"text": "Only English text here, café and naïve too."}] * 5)
    with pytest.raises(UserError, match="en.jsonl: no Japanese text"):
        extend_tokenizer(tok, [english], 10)
    once = write_jsonl(tmp_path / "once.jsonl", [{"text": "あ"}, {"text": "い"}])  # no pair occurs twice
    with pytest.raises(UserError, match="learned no new Japanese tokens"):
        extend_tokenizer(tok, [once], 10)
    with pytest.raises(UserError, match="--output .* not empty"):
        extend_vocab(tiny["tied"], [ARTICLES], 10, tiny["tied_ext"])
    with pytest.raises(UserError, match="--init 'random'"):
        extend_vocab(tiny["tied"], [ARTICLES], 10, tmp_path / "x", init="random")
    capsys.readouterr()
    assert main(["extend-vocab", "--model", str(tiny["tied"]), "--corpus", str(ARTICLES), "--add", "0",
                 "--output", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "--add must be a positive number of tokens, got 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists()


@pytest.mark.shared
@pytest.mark.skipif(not (QWEN / "tokenizer.json").exists(), reason="needs ../shared/tokenizers/qwen2.5")
def test_qwen_tokenizer_extension(tmp_path):
    """The real Qwen2.5 tokenizer (151,643 BPE tokens + 22 control tokens), tokenizer only."""
    from japanese_ft.model.vocab import chars_per_token, extend_tokenizer, save_tokenizer
    from japanese_ft.tokens import load_tokenizer

    result = extend_tokenizer(QWEN, [ARTICLES], 300)
    assert result.first_id == 151665 and result.added == 300
    save_tokenizer(result, tmp_path / "tok")
    base = result.hf_tokenizer
    ext = load_tokenizer(str(tmp_path / "tok"), chat_template=False)
    assert len(ext) == 151965
    for name in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_pad|>"):
        assert ext.convert_tokens_to_ids(name) == base.convert_tokens_to_ids(name)
    for name, texts in _random_texts(1).items():
        for text in texts:
            ids = ext(text, add_special_tokens=False)["input_ids"]
            assert ext.decode(ids) == text, (name, text)
            if name != "japanese" and name != "mixed":
                assert ids == base(text, add_special_tokens=False)["input_ids"], (name, text)
    held = _heldout_texts()
    assert chars_per_token(result.extended, held) > chars_per_token(result.base, held) * 1.05
    literal = "<|im_end|>"  # typed as text (split_special_tokens) it stays text in both
    assert ext(literal, add_special_tokens=False, split_special_tokens=True)["input_ids"] == \
        base(literal, add_special_tokens=False, split_special_tokens=True)["input_ids"]
