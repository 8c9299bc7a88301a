"""The ``edgeseg`` command line: thin Typer commands over the library, one module each.

Importing this package registers every command on :data:`app`; :func:`main` is the console script.
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.markup import escape

# In the order of the pipeline, which is the order of the help's list of commands.
from edgeseg.cli import train, evaluate, export, run, label, bench  # noqa: F401, I001  (they register their commands)
from edgeseg.cli.app import app, err, plural
from edgeseg.stop_signals import set_stop_handler

__all__ = ["app", "main", "plural", "verbose_first"]

_stopped_by: list[signal.Signals] = []


def _stop_signals_unwind_like_ctrl_c() -> None:
    """SIGTERM (timeout, systemd, docker stop) and SIGHUP (a closed terminal) unwind a command as Ctrl-C does, so
    it cleans up after itself: bench's worker processes are killed, temporary files removed. ``webcam`` installs
    its own handlers while it runs, to finalise its outputs and report the signal."""

    def unwind(signum, _frame):
        _stopped_by.append(signal.Signals(signum))
        set_stop_handler(signal.SIG_IGN)  # a second signal must not cut the clean-up short
        raise KeyboardInterrupt(signal.Signals(signum).name)

    set_stop_handler(unwind)


VERBOSE_FLAGS = ("--verbose", "-v")


def verbose_first(args: list[str]) -> list[str]:
    """``edgeseg predict x --verbose`` as ``edgeseg --verbose predict x``: the flag is the top command's, and
    users put it at the end (no sub-command has options of those names; words after ``--`` are left alone)."""
    head = args[:args.index("--")] if "--" in args else args
    flags = [a for a in head if a in VERBOSE_FLAGS]
    if not flags:
        return args
    return [flags[0], *(a for a in head if a not in VERBOSE_FLAGS), *args[len(head):]]


def _argument_as_option(exc) -> str | None:
    """What to say when an argument was given as an option (``evaluate --model m``: predict and webcam take
    ``--model``), where click would list options whose names look alike; None for any other unknown option."""
    if exc.ctx is None:
        return None
    name = exc.option_name.lstrip("-").replace("-", "_")
    arguments = (p for p in exc.ctx.command.params if p.param_type_name == "argument")
    param = next((p for p in arguments if p.name in (name, f"{name}s")), None)
    if param is None:
        return None
    command = exc.ctx.command_path
    taken = "as an argument" if param.nargs == 1 else "as arguments"
    usage = f"{param.name.upper()}{'' if param.nargs == 1 else '...'}"
    return f"{command} takes the {param.name} {taken}, not {exc.option_name}: {command} {usage} [OPTIONS]"


def main() -> None:
    """The console script: usage errors exit 2, runtime errors 1, both as one ``error:`` line; a stop signal
    128 + its number."""
    try:  # typer vendors click from 0.26 on
        from typer._click.exceptions import NoSuchOption, UsageError
    except ImportError:
        from click.exceptions import NoSuchOption, UsageError

    _stop_signals_unwind_like_ctrl_c()
    try:
        code = app(args=verbose_first(sys.argv[1:]), standalone_mode=False)  # a typer.Exit comes back as its exit code (130 for Ctrl-C)
    except UsageError as exc:
        message = _argument_as_option(exc) if isinstance(exc, NoSuchOption) else None
        message = message or exc.format_message()
        if message:  # no sub-command: click printed the help and has nothing to add
            command = exc.ctx.command_path if exc.ctx else "edgeseg"
            err.print(f"[bold red]error:[/] {escape(message)} (see: {command} --help)")
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("[bold red]error:[/] aborted")
        raise SystemExit(1) from None
    if _stopped_by:
        err.print(f"[bold red]error:[/] stopped by {_stopped_by[0].name}")
        raise SystemExit(128 + _stopped_by[0])
    raise SystemExit(code if isinstance(code, int) else 0)
