"""The ``edgeseg`` Typer app, its consoles and the helpers every command shares.

Errors: a command lets the library's errors rise. :class:`EdgesegGroup` is the one place that turns them into
one ``error:`` line and an exit code: :class:`~edgeseg.errors.UsageError` 2 (a
:class:`~edgeseg.errors.SettingError` naming its option), any other edgeseg error (and the operating system's
refusals, OSError) 1. Bad options found by the command itself are ``typer.BadParameter`` (2).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperGroup

from edgeseg.contract import FORMATS
from edgeseg.errors import EdgesegError, SettingError

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
MODEL_SUFFIXES = {f.suffix for f in FORMATS.values()}
# What a command may fail with for reasons its message explains: edgeseg's own errors, and the standard ones that
# library code and the libraries under it raise for a user's files and values.
USER_ERRORS = (EdgesegError, OSError, ValueError, ImportError)


class EdgesegGroup(TyperGroup):
    """The command group that maps every user error of every sub-command to its message and exit code."""

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        empty = _first_empty(command, rest)
        if empty:  # Path("") is the working directory: a script's unset variable would read or write there
            sub = typer.Context(command, parent=ctx, info_name=name)
            raise typer.BadParameter(f"{empty} is empty (an unset variable?): it names no file, folder or value",
                                     ctx=sub)
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SettingError as exc:  # found once the work began (a model's classes): named as its option
            command = ctx.command.get_command(ctx, ctx.invoked_subcommand)
            raise option_error(exc, typer.Context(command, parent=ctx, info_name=ctx.invoked_subcommand)) from None
        except USER_ERRORS as exc:
            raise fail(str(exc), getattr(exc, "exit_code", 1)) from None


def _first_empty(command, args: list[str]) -> str | None:
    """What the first empty word of ``args`` is given for, an option (``--out``) or "an argument"; None when
    there is none. Options of ``command``'s sub-commands count too (``bench report``)."""
    params = [*command.params, *(p for sub in getattr(command, "commands", {}).values() for p in sub.params)]
    taking = {o for p in params if p.param_type_name == "option" and not p.is_flag for o in p.opts}
    for i, arg in enumerate(args):
        if arg.startswith("--") and arg.endswith("=") and arg[:-1] in taking:
            return arg[:-1]
        if arg == "":
            return args[i - 1] if i and args[i - 1] in taking else "an argument"
    return None


def option_error(exc: SettingError, ctx: typer.Context) -> typer.BadParameter:
    """A refused setting as the command line's usage error, naming its option (exit 2): the option of the
    command's parameter of the setting's name, however it is spelt (``learning_rate`` is ``--lr``)."""
    spelt = [p.opts[0] for p in ctx.command.params if p.name == exc.setting and p.opts[0].startswith("-")]
    return typer.BadParameter(str(exc), ctx=ctx, param_hint=spelt[0] if spelt else exc.option)


app = typer.Typer(cls=EdgesegGroup, help="Train, export, run and benchmark segmentation models for edge devices.",
                  no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP_OPTIONS)
console = Console()
if not console.is_terminal:  # piped output: tables not squeezed into 80 columns, lines never wrapped
    console = Console(width=160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # no hard wraps inside file names


def _version(value: bool) -> None:
    if value:
        from edgeseg import __version__

        typer.echo(f"edgeseg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug details and the libraries' own logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    from edgeseg.cli.numbers import finite_numbers
    from edgeseg.quiet import set_quiet

    finite_numbers(ctx.command)  # before the sub-command parses its options

    set_quiet(not verbose)
    # Our own logger speaks at INFO; the libraries' (onnxruntime's quantizer logs through the root logger) only
    # with --verbose, warnings included.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.ERROR, format="%(message)s",
                        handlers=[RichHandler(console=err, show_time=False, show_path=False)], force=True)
    logging.getLogger("edgeseg").setLevel(logging.DEBUG if verbose else logging.INFO)


def need_train_extra() -> None:
    """Fail with what to install when TensorFlow is missing; else import it, quietly unless --verbose."""
    from edgeseg.quiet import native_stderr_silenced
    from edgeseg.trainer import require_train_extra

    require_train_extra()
    with native_stderr_silenced():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL since 2.16
        import tensorflow  # noqa: F401


def writable(path: Path, param: str, folder: bool = False, suffix: str | None = None) -> Path:
    """Refuse an output that cannot be written (exit 2) before any long work starts; ``suffix``: the type of file
    written (".json"), which a name with another suffix would belie (``--out report.md``)."""
    from edgeseg.io import check_writable_dir

    if suffix and path.suffix and path.suffix.lower() != suffix:
        raise typer.BadParameter(f"{path}: the results are written as {suffix[1:].upper()}; name the file *{suffix}",
                                 param_hint=param)
    if folder and not path.is_dir() and path.suffix.lower() in MODEL_SUFFIXES:  # export --out model.tflite
        raise typer.BadParameter(f"{path} is named as a model file, but {param} is a folder (the files in it are "
                                 "named for you); name a folder", param_hint=param)
    try:
        if not folder and path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; expected a file name")
        check_writable_dir(path if folder else path.parent)
    except OSError as exc:
        raise typer.BadParameter(str(exc), param_hint=param) from None
    return path


def default(settings: type, name: str):
    """The default of a settings dataclass's field, made by its factory where it has one: a CLI option's default,
    written once, in the dataclass."""
    field = settings.__dataclass_fields__[name]
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def plural(n: int, noun: str) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")  # messages hold paths and [extras], not markup
    return typer.Exit(code)


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
