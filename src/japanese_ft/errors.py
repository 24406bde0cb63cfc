"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem the user caused (bad path, bad input line, bad config value).

    The message should name the file, line or field that is wrong.
    """

    exit_code = 2
