"""Help text: every option of every command says what it does; usage lines read like Unix help;
`jft train cpt|sft|lora --help` describes that mode."""

from __future__ import annotations

import pytest
import typer

from japanese_ft.cli import app, main


def _commands(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"prepare-corpus", "train cpt", "train sft", "train lora", "eval jsquad", "generate", "chat"} <= names
    assert len(names) >= 25


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_and_argument_has_a_description(path, cmd):
    missing = [p.name for p in cmd.params if not (getattr(p, "help", None) or "").strip()]
    assert not missing, f"jft {' '.join(path)}: no help for {missing}"


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_has_no_template_braces_or_type_brackets(path, cmd, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: ") and f" {' '.join(path)}" in usage
    assert "{" not in usage and "<" not in usage, usage
    for line in text.splitlines():
        assert "<list[" not in line and "<str>" not in line and "<int>" not in line and "<path>" not in line, line


def test_usage_names_arguments_in_capitals(capsys):
    assert main(["prepare-corpus", "--help"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(" prepare-corpus [OPTIONS] INPUTS...")
    assert main(["train", "sft", "--help"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(" train sft [OPTIONS] [KEY=VALUE...]")


def test_train_modes_have_their_own_help(capsys):
    texts = {}
    for mode in ("cpt", "sft", "lora"):
        assert main(["train", mode, "--help"]) == 0
        texts[mode] = capsys.readouterr().out
    assert "token files" in texts["cpt"] and "configs/*-cpt.yaml" in texts["cpt"]
    assert "Full supervised fine-tuning" in texts["sft"] and "configs/*-sft.yaml" in texts["sft"]
    assert "PEFT adapter" in texts["lora"] and "lora.r" in texts["lora"]
    assert len(set(texts.values())) == 3


def test_unknown_train_mode_is_a_usage_error():
    assert main(["train", "dpo", "--config", "x.yaml"]) == 2


def test_a_missing_option_is_a_usage_error_not_a_traceback(capsys):
    assert main(["prepare-corpus", "x.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "Missing option '--tokenizer'" in err and "Traceback" not in err
