"""Errors a user can fix. The CLI prints them as one line on stderr and exits with code 2."""


class RecarenaError(Exception):
    """A problem with the user's input (scenario, path, arguments), not a bug in recarena."""
