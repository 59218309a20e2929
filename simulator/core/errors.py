"""Errors a user can fix. The CLI prints them as one line on stderr and exits with code 2."""


class RecarenaError(Exception):
    """A problem with the user's input (scenario, path, arguments), not a bug in recarena."""


def first_line(exc: BaseException) -> str:
    """The first line of a library's error message, whitespace collapsed (its type's name when
    it has none): what a one-line error quotes of a parser's complaint."""
    text = " ".join(str(exc).strip().split("\n")[0].split())
    return text or type(exc).__name__
