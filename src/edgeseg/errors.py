"""The root of edgeseg's errors: failures a user can act on, each with a message naming the file or value.

Every error class of the library derives from :class:`EdgesegError` (and from the standard class it was
first written as, so ``except ValueError`` still catches a :class:`~edgeseg.data.DataError`). The command line
prints one ``error:`` line and exits with the error's ``exit_code``.
"""

from contextlib import contextmanager


class EdgesegError(Exception):
    """A failure the message explains: exit code 1."""

    exit_code = 1


class UsageError(EdgesegError, ValueError):
    """Settings that cannot work, refused before any work starts: exit code 2, as for a bad command line."""

    exit_code = 2


class NotFound(UsageError, FileNotFoundError):
    """A file, folder or name given that names nothing, or nothing of the kind expected (a photo given for a
    model): exit code 2, as for a bad command line. What fails once it is read (a damaged file) is exit code 1."""


class SettingError(UsageError):
    """A setting's value refused: ``setting`` is its name in the library (``img_size``), which the command line
    shows as its option (``--img-size``)."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting

    @property
    def option(self) -> str:
        return "--" + self.setting.replace("_", "-")


@contextmanager
def setting(name: str):
    """Within it, a ValueError is a :class:`SettingError` of the setting ``name``."""
    try:
        yield
    except SettingError:
        raise
    except ValueError as exc:
        raise SettingError(name, str(exc)) from None
