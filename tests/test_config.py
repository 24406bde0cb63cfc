"""The typed run configuration: YAML + dotted overrides + validation with clear messages."""

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
    cfg = load_run_config(_write(tmp_path, BASE), ["train.max_steps=7"], mode="cpt")
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
