"""Help text in the classic Unix style: `Usage: jft prepare-corpus [OPTIONS] INPUTS...`.

typer 0.2x prints required arguments as `{inputs}...` and types as `<list[Path]>` or `<str>`;
`use_classic_help(app)` gives every command of an app a command class that prints argument names
in capitals and types as TEXT, INTEGER, FLOAT or PATH instead.
"""

from __future__ import annotations

import re

from typer.core import TyperCommand

_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "Path": "PATH", "bool": ""}
_TYPE = re.compile(r"<(list\[)?(\w+)\]?>")


def _type_word(match: re.Match) -> str:
    word = _TYPE_WORDS.get(match.group(2), match.group(2).upper())
    return f"{word}..." if match.group(1) and word else word


def _arg_name(param) -> str:
    name = (param.metavar or param.name or "").upper()
    return name + ("..." if param.nargs != 1 else "")


class ClassicHelpCommand(TyperCommand):
    """A typer command whose usage line and option list read like classic Unix help."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _arg_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx, formatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if param.param_type_name == "argument":
                args.append((_arg_name(param), text))
            else:
                opts.append((_TYPE.sub(_type_word, name).rstrip(), text))
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


def use_classic_help(*apps) -> None:
    """Give every command registered on these typer apps the classic help (call before running)."""
    for app in apps:
        for info in app.registered_commands:
            if info.cls in (None, TyperCommand):
                info.cls = ClassicHelpCommand
