"""`prepare-corpus --normalize none --clean none --dedup none` writes exactly what Megatron-LM's
`tools/preprocess_data.py` (core_v0.16.1, `--tokenizer-type HuggingFaceTokenizer --append-eod`)
writes for the same JSONL and tokenizer: the same .bin bytes and the same .idx bytes.

The reference below is built from megatron-core's own parts: its HuggingFace tokenizer
(`MegatronTokenizer.from_pretrained(..., metadata_path={"library": "huggingface"})`, what the
script's `build_new_tokenizer` makes) and its `IndexedDatasetBuilder`. The few lines in between
follow `Encoder.encode` and `Partition.process_json_file` of the script (it lives in tools/ of
the Megatron-LM repository, not in the megatron-core package, so it cannot be imported).
"""

import json

import pytest

from japanese_ft.data.prepare import PrepareOptions, prepare_corpus
from jft_testutils import SHARED, make_tokenizer_dir, write_jsonl

megatron_tokenizers = pytest.importorskip("megatron.core.tokenizers")
indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")

MEGATRON_LIKE = dict(normalize="none", clean="none", dedup="none")

# Texts that a whitespace cleanup would change, plus a duplicate and NFC-sensitive text.
TEXTS = [
    "富士山は  静岡県と山梨県に\tまたがる。  \n\n\n\n標高は3776メートル。  ",
    "  先頭の空白と末尾の改行\n",
    "全角空白\u3000\u3000の連続と\u00a0\u00a0ノーブレークスペース。\r\n改行コード。",
    "富士山は  静岡県と山梨県に\tまたがる。  \n\n\n\n標高は3776メートル。  ",
    "か\u3099と が（NFC で変わる）。<|endoftext|>は文字列として現れる。",
    "短い。",
]


def megatron_preprocess(jsonl, tokenizer_dir, prefix, include_special_tokens=False):
    """preprocess_data.py --json-keys text --append-eod --tokenizer-type HuggingFaceTokenizer, one partition."""
    tok = megatron_tokenizers.MegatronTokenizer.from_pretrained(
        tokenizer_path=str(tokenizer_dir), metadata_path={"library": "huggingface"},
        vocab_file=None, merges_file=None, additional_special_tokens=[], use_fast=False,
        trust_remote_code=False, include_special_tokens=include_special_tokens,
    )
    builder = indexed_dataset.IndexedDatasetBuilder(
        f"{prefix}.bin", dtype=indexed_dataset.DType.optimal_dtype(tok.vocab_size))
    with open(jsonl, encoding="utf-8") as fin:  # text mode, as the script opens it
        for line in fin:
            ids = tok.tokenize(json.loads(line)["text"])
            lens = [len(ids)] if ids else []
            if ids:  # --append-eod: only after a non-empty document
                ids.append(tok.eod)
                lens[-1] += 1
            builder.add_document(ids, lens)
    builder.finalize(f"{prefix}.idx")
    return tok


def _same_files(a, b):
    return all(open(f"{a}{ext}", "rb").read() == open(f"{b}{ext}", "rb").read() for ext in (".bin", ".idx"))


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return make_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def bos_tok_dir(tmp_path_factory, tok_dir):
    """The tiny tokenizer with a post-processor that adds BOS (<|im_start|>, id 1), like Llama's."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    out = tmp_path_factory.mktemp("bos_tok")
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    tok.post_processor = TemplateProcessing(single="<|im_start|> $A", pair="<|im_start|> $A $B",
                                            special_tokens=[("<|im_start|>", 1)])
    tok.save(str(out / "tokenizer.json"))
    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    cfg["bos_token"] = "<|im_start|>"
    (out / "tokenizer_config.json").write_text(json.dumps(cfg))
    return out


def test_clean_none_equals_megatron_byte_for_byte(tmp_path, tok_dir):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    megatron_preprocess(src, tok_dir, tmp_path / "meg")
    stats = prepare_corpus([str(src)], tmp_path / "ours", PrepareOptions(tokenizer=str(tok_dir), **MEGATRON_LIKE))
    assert stats.documents_written == len(TEXTS)
    assert _same_files(tmp_path / "ours", tmp_path / "meg")
    # the default whitespace cleanup is what made them differ
    prepare_corpus([str(src)], tmp_path / "cleaned", PrepareOptions(tokenizer=str(tok_dir), normalize="none", dedup="none"))
    assert not _same_files(tmp_path / "cleaned", tmp_path / "meg")


def test_special_tokens_both_ways_against_megatron(tmp_path, bos_tok_dir):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    # default: no BOS, as preprocess_data.py's HuggingFaceTokenizer (include_special_tokens=False)
    megatron_preprocess(src, bos_tok_dir, tmp_path / "meg")
    prepare_corpus([str(src)], tmp_path / "ours", PrepareOptions(tokenizer=str(bos_tok_dir), **MEGATRON_LIKE))
    assert _same_files(tmp_path / "ours", tmp_path / "meg")
    # --add-special-tokens: tokenizer(text).input_ids, as --tokenizer-hf-include-special-tokens or --legacy-tokenizer
    megatron_preprocess(src, bos_tok_dir, tmp_path / "meg_bos", include_special_tokens=True)
    prepare_corpus([str(src)], tmp_path / "ours_bos",
                   PrepareOptions(tokenizer=str(bos_tok_dir), add_special_tokens=True, **MEGATRON_LIKE))
    assert _same_files(tmp_path / "ours_bos", tmp_path / "meg_bos")
    dataset = indexed_dataset.IndexedDataset(str(tmp_path / "ours_bos"))  # keep it: its views die with its map
    first = dataset[0].tolist()
    assert first[0] == 1 and first[-1] == 0  # BOS first, EOD (<|endoftext|>) last
    assert not _same_files(tmp_path / "ours", tmp_path / "ours_bos")


@pytest.mark.skipif(not (SHARED / "data" / "ja_wiki_sample" / "train_0.jsonl").exists()
                    or not (SHARED / "tokenizers" / "qwen2.5").exists(), reason="../shared not present")
def test_ja_wiki_sample_with_qwen_equals_megatron(tmp_path):
    src = SHARED / "data" / "ja_wiki_sample" / "train_0.jsonl"
    qwen = SHARED / "tokenizers" / "qwen2.5"
    megatron_preprocess(src, qwen, tmp_path / "meg")
    stats = prepare_corpus([str(src)], tmp_path / "ours", PrepareOptions(tokenizer=str(qwen), **MEGATRON_LIKE))
    assert stats.documents_written == 59
    ours = indexed_dataset.IndexedDataset(str(tmp_path / "ours"))
    theirs = indexed_dataset.IndexedDataset(str(tmp_path / "meg"))
    assert len(ours) == len(theirs) == 59
    differing = [i for i in range(59) if ours[i].tolist() != theirs[i].tolist()]
    assert differing == []
    assert _same_files(tmp_path / "ours", tmp_path / "meg")  # .bin and the whole .idx
