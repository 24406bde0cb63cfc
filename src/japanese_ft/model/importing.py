"""`jft import-model`: a pretrained model -> a plain safetensors checkpoint every jft command loads.

SOURCE is a local Hugging Face directory, a hub id, or a `.gguf` file. The output directory holds
`model.safetensors` + `config.json`, the tokenizer with its chat template, and a
`generation_config.json` that stops at the chat's end-of-turn token and at EOS.

GGUF: transformers reads the file (`from_pretrained(folder, gguf_file=name)`, needs the `gguf` and
`accelerate` packages: the `gguf` extra) and dequantizes the weights, but the model is then marked
quantized and `save_pretrained` refuses it. So a fresh model is built from the config without its
`quantization_config`, the dequantized state dict is loaded into it, and that model is saved.
`dtype="auto"` keeps GGUF weights in float32: dequantized values (fp16 scale x small integer +
fp16 offset) need more mantissa bits than bfloat16 has, so float32 keeps them exact.
"""

from __future__ import annotations

import copy
import json
import time
from contextlib import contextmanager
from pathlib import Path

from japanese_ft.errors import UserError, one_line
from japanese_ft.files import atomic_output, looks_local
from japanese_ft.runtime import stored_dtype, torch_dtype
from japanese_ft.tokens import end_of_turn_token, set_stop_tokens, stop_token_ids

DTYPES = ("auto", "bfloat16", "float32")
GGUF_INSTALL = 'pip install "japanese-ft[gguf]"'
# transformers' own minimums for GGUF loading (GGUF_MIN_VERSION, ACCELERATE_MIN_VERSION in transformers 5.x)
GGUF_REQUIREMENTS = {"gguf": "0.10", "accelerate": "1.1"}


def require_gguf_extra() -> None:
    """Raise a one-line UserError naming the install command when the gguf extra is missing or too old."""
    from importlib import import_module, metadata

    from packaging.version import Version

    problems = []
    for name, minimum in GGUF_REQUIREMENTS.items():
        try:
            import_module(name)
            version = metadata.version(name)
        except (ImportError, metadata.PackageNotFoundError):
            problems.append(f"{name} is not installed")
            continue
        if Version(version) < Version(minimum):
            problems.append(f"{name} {version} is older than {minimum}")
    if problems:
        raise UserError(f"reading GGUF files needs the gguf extra ({'; '.join(problems)}): {GGUF_INSTALL}")


def source_kind(source: str) -> tuple[str, str]:
    """("gguf" | "dir" | "hub", resolved source). Local paths are checked here, hub ids at load time."""
    path = Path(source).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise UserError(f"{source}: no such GGUF file")
        return "gguf", str(path)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{source}: expected a Hugging Face model directory, a hub id or a .gguf file")
        if not (path / "config.json").exists():
            raise UserError(f"{source}: no config.json here (not a Hugging Face model directory)")
        return "dir", str(path)
    if looks_local(source):
        raise UserError(f"{source}: no such directory or file (a hub id looks like owner/name)")
    return "hub", source


def _dequantized_copy(model):
    """A plain (not quantized) model with the same config minus `quantization_config` and the same weights."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict(), strict=True)  # tied lm_head/embedding: one tensor, loaded once
    fresh.tie_weights()
    return fresh.eval()


@contextmanager
def _quiet_gguf_progress():
    """transformers dequantizes under a bare tqdm bar (not its own switchable one): silence it."""
    import functools

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    old = getattr(gguf_utils, "tqdm", None)
    if old is not None:
        gguf_utils.tqdm = functools.partial(old, disable=True)
    try:
        yield
    finally:
        if old is not None:
            gguf_utils.tqdm = old


def _load_gguf(path: str):
    require_gguf_extra()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(Path(path).parent), Path(path).name
    try:
        with _quiet_gguf_progress():
            config = AutoConfig.from_pretrained(folder, gguf_file=name)
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            # passing the config skips a second parse of the GGUF metadata
            quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, config=config, dtype=torch.float32)
    except (ValueError, OSError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise UserError(f"{path}: transformers cannot load this GGUF file ({one_line(exc)})") from None
    model = _dequantized_copy(quantized)
    del quantized
    repair_gguf_tokenizer(tokenizer, gguf_tokenizer_meta(path))
    return model, tokenizer, model.generation_config


_GGUF_SPECIAL = {"bos_token": "bos_token_id", "eos_token": "eos_token_id", "unk_token": "unknown_token_id",
                 "pad_token": "padding_token_id"}
_BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def gguf_tokenizer_meta(path: str) -> dict:
    """The GGUF file's own tokenizer facts: `model` (gpt2 = byte-level BPE, llama = SentencePiece)
    and the special token ids (bos/eos/unknown/padding_token_id) that it declares."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    meta = {}
    for key in ("model", *_GGUF_SPECIAL.values()):
        f = fields.get(f"tokenizer.ggml.{key}")
        if f is not None:
            meta[key] = f.contents()
    return meta


def repair_gguf_tokenizer(tokenizer, meta: dict) -> list[str]:
    """Make the converted tokenizer say what the GGUF file says; returns what was changed.

    transformers' GGUF conversion differs between versions: 5.17 turns SmolLM2's byte-level BPE
    into a byte-fallback BPE with a SentencePiece decoder and takes <|im_start|> as EOS, where 5.24
    gives the byte-level BPE and <|im_end|>. The special tokens follow the file's ids; a `gpt2`
    tokenizer gets its byte-level form back (the token ids of any text are unchanged: every byte
    has a byte-level token, so byte fallback never fires)."""
    from tokenizers import Tokenizer

    changed = []
    n = len(tokenizer)
    for attr, key in _GGUF_SPECIAL.items():
        tid = meta.get(key)
        if isinstance(tid, int) and 0 <= tid < n:
            token = tokenizer.convert_ids_to_tokens(tid)
            if getattr(tokenizer, attr) != token:
                changed.append(f"{attr} {getattr(tokenizer, attr)!r} -> {token!r}")
                setattr(tokenizer, attr, token)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if meta.get("model") == "gpt2" and backend is not None:
        state = json.loads(backend.to_str())
        if state.get("model", {}).get("byte_fallback") or (state.get("decoder") or {}).get("type") != "ByteLevel":
            state["model"]["byte_fallback"] = False
            state["decoder"] = dict(_BYTE_LEVEL_DECODER)
            tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
            changed.append("byte-level BPE (no byte fallback, ByteLevel decoder)")
    return changed


def _load_hf(source: str, dtype: str, trust_remote_code: bool, allow_pickle: bool = False):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from japanese_ft.model.load import check_weights_format

    check_weights_format(source, allow_pickle)

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: cannot read the model config ({one_line(exc)})") from None
    if getattr(config, "quantization_config", None):
        raise UserError(f"{source}: the checkpoint is quantized; import its unquantized weights (or its GGUF file)")
    name = stored_dtype(config) if dtype == "auto" else dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype(name), use_safetensors=None if allow_pickle else True,
                                                     trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: cannot load ({one_line(exc)})") from None
    try:
        generation = GenerationConfig.from_pretrained(source)
    except (OSError, ValueError):
        generation = GenerationConfig.from_model_config(model.config)
    return model.eval(), tokenizer, generation


def sample_texts() -> list[str]:
    """The built-in Japanese sample articles (src/japanese_ft/sample/articles.jsonl)."""
    from importlib import resources

    raw = (resources.files("japanese_ft") / "sample" / "articles.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]


def chars_per_token(tokenizer, texts: list[str]) -> tuple[float, int, int]:
    """(characters / tokens, characters, tokens) with `add_special_tokens=False`."""
    chars = sum(len(t) for t in texts)
    tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return (round(chars / tokens, 4) if tokens else 0.0), chars, tokens


def _save(model, tokenizer, generation, out_dir: Path, kind: str) -> None:
    model.save_pretrained(str(out_dir))  # safetensors; a tied lm_head is stored once
    generation.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if kind == "gguf" and cfg.get("tokenizer_class") == "TokenizersBackend":
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # the generic class loads with transformers 4.x and 5.x
        cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def import_model(source: str, output: str | Path, dtype: str = "auto", trust_remote_code: bool = False,
                 allow_pickle: bool = False) -> dict:
    """Import SOURCE (HF directory, hub id or .gguf file) as a plain safetensors checkpoint in OUTPUT.

    Written to OUTPUT.tmp and renamed when complete; a non-empty OUTPUT is refused. Returns a summary:
    source, kind, output, architecture, model_type, parameters, vocab_size, tokenizer_size,
    context_length, dtype, tied_embeddings, chat_template, end_of_turn, eos_token, stop_token_ids,
    chars_per_token (+ sample_chars, sample_tokens) on the built-in Japanese sample, seconds.
    """
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"--output {output}: exists and is not an empty directory")
    kind, resolved = source_kind(str(source))
    if kind == "gguf":
        model, tokenizer, generation = _load_gguf(resolved)
        out_dtype = "float32" if dtype == "auto" else dtype
    else:
        model, tokenizer, generation = _load_hf(resolved, dtype, trust_remote_code, allow_pickle)
        out_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    model.to(torch_dtype(out_dtype))
    config = model.config
    context = getattr(config, "max_position_embeddings", None)
    if context and (tokenizer.model_max_length is None or tokenizer.model_max_length > 10**8):
        tokenizer.model_max_length = int(context)
    stops = stop_token_ids(tokenizer)
    if not stops:
        raise UserError(f"{source}: the tokenizer has neither an EOS nor an end-of-turn token to stop generation at")
    generation = set_stop_tokens(copy.deepcopy(generation), tokenizer)
    with atomic_output(output, directory=True) as tmp:
        _save(model, tokenizer, generation, tmp, kind)
    tied = bool(getattr(config, "tie_word_embeddings", False)) and (
        model.get_output_embeddings() is not None
        and model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr())
    cpt, chars, tokens = chars_per_token(tokenizer, sample_texts())
    params = {id(p): p.numel() for p in model.parameters()}
    return {
        "source": str(source),
        "kind": kind,
        "output": str(output),
        "architecture": (getattr(config, "architectures", None) or [type(model).__name__])[0],
        "model_type": getattr(config, "model_type", "?"),
        "parameters": int(sum(params.values())),
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": int(config.vocab_size),
        "tokenizer_size": len(tokenizer),
        "context_length": context,
        "dtype": out_dtype,
        "tied_embeddings": tied,
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "end_of_turn": end_of_turn_token(tokenizer),
        "eos_token": tokenizer.eos_token,
        "stop_token_ids": stops,
        "chars_per_token": cpt,
        "sample_chars": chars,
        "sample_tokens": tokens,
        "seconds": round(time.perf_counter() - t0, 1),
    }
