"""Inference-time loading: an HF checkpoint (safetensors) plus, optionally, a PEFT LoRA adapter.

`load_for_inference` refuses to apply an adapter to a model it was not trained on. The adapter's
adapters saved by `jft train` carry `base_model.json` (the base's resolved path, architecture
fields and weights fingerprint), compared with `--model` wherever the command runs. Other
adapters name their base in `adapter_config.json` (`base_model_name_or_path`); when that is a local
directory we compare its architecture (config.json) and a fingerprint of its weights with
`--model`; when it is a hub id or a path that no longer exists we can only rely on the shapes,
which PEFT checks while loading. A mismatch is a UserError that says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.files import read_json
from japanese_ft.model.lora import BASE_RECORD, SHAPE_FIELDS, weights_fingerprint  # no torch/peft at import


def _check_model_dir(model_dir: Path) -> None:
    if not model_dir.exists():
        raise UserError(f"--model {model_dir}: no such directory")
    if not model_dir.is_dir():
        raise UserError(f"--model {model_dir}: expected a checkpoint directory (config.json + *.safetensors)")
    if not (model_dir / "config.json").exists():
        if (model_dir / "adapter_config.json").exists():
            raise UserError(
                f"--model {model_dir}: this is a LoRA adapter, not a model; pass it as --adapter and its base as --model"
            )
        raise UserError(f"--model {model_dir}: no config.json (not a Hugging Face checkpoint)")
    if not any(model_dir.glob("*.safetensors")):
        raise UserError(f"--model {model_dir}: no *.safetensors weights (only safetensors checkpoints are loaded)")


def check_adapter_base(model_dir: Path, adapter_dir: Path) -> dict:
    """Raise UserError when the adapter was trained on a different base than `model_dir`.

    Returns the adapter config. Never imports torch.
    """
    if not adapter_dir.is_dir():
        raise UserError(f"--adapter {adapter_dir}: no such directory")
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.exists():
        raise UserError(f"--adapter {adapter_dir}: no adapter_config.json (not a PEFT adapter)")
    adapter_cfg = read_json(cfg_path, "adapter config")
    base = adapter_cfg.get("base_model_name_or_path")
    model_cfg = read_json(model_dir / "config.json", "model config")
    record_path = adapter_dir / BASE_RECORD
    record = read_json(record_path, "adapter base record") if record_path.exists() else {}
    if "fingerprint" in record:
        base = record.get("path", base)
        diffs = [f"{k} {v} vs {model_cfg.get(k)}" for k, v in record.get("config", {}).items()
                 if k in model_cfg and model_cfg.get(k) != v]
        if diffs:
            raise UserError(f"--adapter {adapter_dir} was trained on base {base}, whose architecture does not match "
                            f"--model {model_dir}: {'; '.join(diffs)}")
        if weights_fingerprint(model_dir) != record["fingerprint"]:
            raise UserError(f"--adapter {adapter_dir} was trained on base {base}, but --model {model_dir} has different "
                            "weights; load the adapter on the model it was trained on (or pass --allow-base-mismatch)")
        return adapter_cfg
    if base:
        base_path = Path(base)
        if not base_path.is_absolute():
            base_path = (Path.cwd() / base_path)
        if (base_path / "config.json").exists():
            base_cfg = read_json(base_path / "config.json", "adapter base config")
            diffs = [
                f"{k} {base_cfg.get(k)} vs {model_cfg.get(k)}"
                for k in SHAPE_FIELDS
                if k in base_cfg and k in model_cfg and base_cfg.get(k) != model_cfg.get(k)
            ]
            if diffs:
                raise UserError(
                    f"--adapter {adapter_dir} was trained on base {base}, whose architecture does not match "
                    f"--model {model_dir}: {'; '.join(diffs)}"
                )
            same_dir = os.path.realpath(base_path) == os.path.realpath(model_dir)
            if not same_dir and weights_fingerprint(base_path) != weights_fingerprint(model_dir):
                raise UserError(
                    f"--adapter {adapter_dir} was trained on base {base}, but --model {model_dir} has different weights; "
                    "load the adapter on the model it was trained on (or pass --allow-base-mismatch)"
                )
    return adapter_cfg


def inference_tokenizer(model_dir: str | Path, adapter_dir: str | Path | None = None, trust_remote_code: bool = False):
    """The adapter's tokenizer when it ships one (SFT may add a chat template), else the model's,
    with its own chat template (a tokenizer without one is rendered with ChatML: `tokens.render_chat`).

    Left padding (for batched generation) and a pad token (EOS when none) are set.
    """
    from japanese_ft.tokens import load_tokenizer

    source = Path(model_dir)
    if adapter_dir is not None and any((Path(adapter_dir) / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        source = Path(adapter_dir)
    tok = load_tokenizer(source, trust_remote_code, chat_template=False)
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UserError(f"{source}: tokenizer has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    return tok


def load_for_inference(
    model_dir: str | Path,
    adapter_dir: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    allow_base_mismatch: bool = False,
):
    """Load (model, tokenizer) ready for generation: eval mode, on `device`, left padding.

    `model_dir` is a local HF checkpoint (config.json + safetensors). `adapter_dir`, when given,
    is a PEFT adapter whose base must be `model_dir` (checked unless `allow_base_mismatch`).
    """
    import transformers
    from transformers import AutoModelForCausalLM

    from japanese_ft.runtime import resolve_device, resolve_dtype

    model_dir = Path(model_dir)
    _check_model_dir(model_dir)
    if adapter_dir is not None:
        adapter_dir = Path(adapter_dir)
        if allow_base_mismatch:
            if not (adapter_dir / "adapter_config.json").exists():
                raise UserError(f"--adapter {adapter_dir}: no adapter_config.json (not a PEFT adapter)")
        else:
            check_adapter_base(model_dir, adapter_dir)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    tokenizer = inference_tokenizer(model_dir, adapter_dir, trust_remote_code)
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), use_safetensors=True, trust_remote_code=trust_remote_code, **{dtype_key: torch_dtype}
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"--model {model_dir}: cannot load ({exc.__class__.__name__}: {exc})") from None
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise UserError(
            f"--model {model_dir}: tokenizer has {len(tokenizer)} tokens but the model's embedding has only {vocab} rows"
        )
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_dir))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UserError(
                f"--adapter {adapter_dir} does not fit --model {model_dir} (was it trained on another base?): "
                f"{str(exc).splitlines()[0][:300]}"
            ) from None
    model.to(device)
    model.eval()
    return model, tokenizer


def model_info(model, tokenizer, model_dir, adapter_dir=None) -> dict:
    """What to record beside scores so results can be compared later."""
    import torch

    params = sum(p.numel() for p in model.parameters())
    try:
        p0 = next(model.parameters())
        dtype, device = str(p0.dtype).replace("torch.", ""), str(p0.device)
    except StopIteration:
        dtype, device = "?", "?"
    info = {
        "model": str(model_dir),
        "adapter": str(adapter_dir) if adapter_dir else None,
        "parameters": int(params),
        "dtype": dtype,
        "device": device,
        "tokenizer_vocab": len(tokenizer),
        "torch": torch.__version__,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except Exception:  # pragma: no cover
        pass
    return info


def default_label(model_dir, adapter_dir=None) -> str:
    name = Path(str(model_dir)).name or str(model_dir)
    if adapter_dir:
        name += "+" + (Path(str(adapter_dir)).name or str(adapter_dir))
    return name
