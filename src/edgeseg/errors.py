"""The root of edgeseg's errors: failures a user can act on, each with a message naming the file or value.

Every error class of the library derives from :class:`EdgesegError` (and from the standard class it was
first written as, so ``except ValueError`` still catches a :class:`~edgeseg.data.DataError`). The command line
prints one ``error:`` line and exits with the error's ``exit_code``.
"""


class EdgesegError(Exception):
    """A failure the message explains: exit code 1."""

    exit_code = 1


class UsageError(EdgesegError, ValueError):
    """Settings that cannot work, refused before any work starts: exit code 2, as for a bad command line."""

    exit_code = 2
