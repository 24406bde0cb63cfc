"""The typed run configuration: YAML + dotted overrides + validation with clear messages."""

from pathlib import Path

import pytest

from japanese_ft.config import RunConfig, apply_overrides, from_dict, load_run_config, save_config
from japanese_ft.errors import UserError


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


BASE = """
model: {name_or_path: m}
data: {train: [a], seq_length: 128}
train: {micro_batch_size: 2, global_batch_size: 8, lr: 1.0e-4}
"""


def test_yaml_and_overrides(tmp_path):
    cfg = load_run_config(_write(tmp_path, BASE), ["train.lr=3e-4", "data.train=[x, y]", "lora.r=8", "model.compile=true"], mode="sft")
    assert cfg.mode == "sft"
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)
    assert cfg.data.train == ["x", "y"] and cfg.data.seq_length == 128
    assert cfg.lora.r == 8 and cfg.model.compile is True
    assert cfg.train.betas == [0.9, 0.95]


def test_saved_config_round_trips(tmp_path):
    cfg = load_run_config(_write(tmp_path, BASE), ["train.max_steps=7", "train.warmup_steps=2"], mode="cpt")
    save_config(cfg, tmp_path / "saved.yaml")
    again = load_run_config(tmp_path / "saved.yaml")
    assert again == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=1", "unknown config key 'train.lrr' (did you mean train.lr?)"),
        ("trian.lr=1", "unknown config key 'trian'"),
        ("train.max_steps=many", "train.max_steps: expected an integer"),
        ("train.lr=fast", "train.lr: expected a number"),
        ("model.compile=maybe", "model.compile: expected true/false"),
        ("train.global_batch_size=7", "not divisible by train.micro_batch_size"),
        ("train.schedule=step", "train.schedule: 'step' is not one of"),
        ("data.seq_length=1", "data.seq_length must be >= 2"),
        ("noequals", "expected key=value"),
    ],
)
def test_bad_values_name_the_field(tmp_path, override, message):
    with pytest.raises(UserError) as exc:
        load_run_config(_write(tmp_path, BASE), [override], mode="cpt")
    assert message in str(exc.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_run_config(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match=r"c.yaml:2: invalid YAML"):
        load_run_config(_write(tmp_path, "a: 1\nb: : c\n"))
    with pytest.raises(UserError, match="model.name_or_path is required"):
        load_run_config(_write(tmp_path, "data: {train: [a]}"))


def test_from_dict_rejects_non_mapping_sections():
    with pytest.raises(UserError, match="train: expected a mapping"):
        from_dict(RunConfig, {"train": [1, 2]})
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_old_dtype_spelling_is_an_alias(tmp_path):
    cfg = load_run_config(_write(tmp_path, BASE), ["train.precision=bf16", "model.dtype=fp32"], mode="cpt")
    assert (cfg.train.precision, cfg.model.dtype) == ("bfloat16", "float32")
    save_config(cfg, tmp_path / "saved.yaml")
    assert "precision: bfloat16" in (tmp_path / "saved.yaml").read_text()  # one spelling on disk
    with pytest.raises(UserError, match="train.precision: 'fp16' is not one of bfloat16, float32"):
        load_run_config(_write(tmp_path, BASE), ["train.precision=fp16"], mode="cpt")


def test_validate_checks_configs_built_in_code():
    cfg = RunConfig()
    cfg.model.name_or_path, cfg.data.train = "m", ["a"]
    cfg.train.warmup_steps = 10
    cfg.validate()
    cfg.train.device = "tpu"
    with pytest.raises(UserError, match="train.device: 'tpu' is not one of auto, cpu, cuda"):
        cfg.validate()


def test_every_key_is_documented():
    """Each field has a docstring, and docs/training.md's key table names every key."""
    import dataclasses

    from japanese_ft.config import DataConfig, LoraConfig, ModelConfig, TrainingConfig, field_docs

    docs = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    sections = {"model": ModelConfig, "data": DataConfig, "train": TrainingConfig, "lora": LoraConfig}
    for cls in (RunConfig, *sections.values()):
        undocumented = [f.name for f in dataclasses.fields(cls) if not field_docs(cls).get(f.name)]
        assert not undocumented, f"{cls.__name__}: {undocumented}"
    keys = ["mode", "output_dir"] + [f"{s}.{f.name}" for s, cls in sections.items() for f in dataclasses.fields(cls)]
    assert [k for k in keys if f"`{k}`" not in docs] == []
