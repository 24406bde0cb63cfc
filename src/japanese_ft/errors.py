"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem the user caused (bad path, bad input line, bad config value).

    The message should name the file, line or field that is wrong.
    """

    exit_code = 2


def one_line(exc: BaseException) -> str:
    """`Class: first line of the message` (at most 300 characters), for errors from libraries
    whose messages run over many lines."""
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0][:300] if lines else ''}"
