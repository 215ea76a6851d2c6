"""The failures mvit expects, and how each reaches a person.

Every expected failure (a bad file, an unknown name, no network, a full disk) is an
`MvitError`: the command-line front end catches it in one place and prints its message as one
line, so a traceback always means a bug. A `UsageError` is the user's request itself being
wrong (an unknown name, an option that cannot apply, an output that belongs to another run);
it exits 2, like the usage errors Typer reports, and everything else exits 1.
"""

from __future__ import annotations


class MvitError(Exception):
    """An expected failure; its message is one line that says what to do."""

    exit_code = 1


class UsageError(MvitError):
    """The request cannot be carried out as asked (exit status 2)."""

    exit_code = 2


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, or its type's name.

    Library errors (FFmpeg, safetensors, the unpickler, HTTP) often span many lines of
    context; a row of an output file or one line on a terminal takes only the first.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(exc).__name__
