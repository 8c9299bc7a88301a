"""The command line derives its defaults and choices from the library's dataclasses and Enums: nothing drifts.

For each command, every option named like a field of the settings dataclass it builds has that field's default,
and an option whose field is an Enum offers exactly that Enum's choices.
"""

import dataclasses
import enum
import typing

import pytest
import typer.main

from edgeseg.benchmarks.runner import BenchOptions
from edgeseg.cli import app
from edgeseg.data.label import LabelOptions
from edgeseg.export.exporter import ExportOptions
from edgeseg.runtime.pipeline import PipelineOptions
from edgeseg.runtime.segmenter import SegmenterOptions
from edgeseg.trainer.train import TrainConfig

# command -> the settings dataclasses its options fill
SETTINGS = {
    "train": [TrainConfig],
    "evaluate": [SegmenterOptions],
    "export": [ExportOptions],
    "webcam": [SegmenterOptions, PipelineOptions],
    "predict": [SegmenterOptions, PipelineOptions],
    "label": [LabelOptions],
    "bench run": [BenchOptions],
}
# Options whose default the command sets on purpose, not the dataclass's (why in each case).
OWN_DEFAULTS = {
    ("predict", "smoothing"),  # no option: photos are never smoothed
    ("export", "formats"), ("export", "calib_data"), ("export", "eval_data"),  # comma lists / repeatable, same meaning
    ("bench run", "threads"),  # a comma list: "" means the dataclass's default
    ("bench run", "frame_size"),  # WIDTHxHEIGHT, written from the dataclass's default
    ("webcam", "hud"), ("webcam", "window"),  # None: decided from the display at run time
    ("webcam", "blur"), ("predict", "blur"),  # None: not given, so other effects refuse it only when it is
    ("export", "calib_size"), ("label", "min_agreement"),  # None likewise: refused without --int8 / --teacher2
    ("evaluate", "smoothing"),  # None likewise: refused without --flicker
    ("label", "scales"),  # a comma list: "1" is (1.0,)
    ("train", "out"),  # a Path option: the same path
}


def _command(path: str):
    group = typer.main.get_command(app)
    for word in path.split():
        group = group.commands[word]
    return group


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _enum_of(cls, field: dataclasses.Field):
    hint = typing.get_type_hints(cls).get(field.name)
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None


CASES = [(path, cls, f) for path, classes in SETTINGS.items() for cls in classes for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("path, cls, field", CASES, ids=[f"{p}-{c.__name__}.{f.name}" for p, c, f in CASES])
def test_options_have_their_settings_default_and_choices(path, cls, field):
    params = {p.name: p for p in _command(path).params}
    param = params.get(field.name)
    if param is None or (path, field.name) in OWN_DEFAULTS:
        return
    default = _default(field)
    if default is not dataclasses.MISSING:
        value = param.default
        expected = default.value if isinstance(default, enum.Enum) else default
        value = value.value if isinstance(value, enum.Enum) else value
        if isinstance(expected, (list, tuple)) and isinstance(value, (list, tuple)):
            expected, value = list(expected), list(value)
        if isinstance(value, str) and isinstance(expected, int):  # a number given as text (--img-size 256x160)
            expected = str(expected)
        assert value == expected, f"{path} --{field.name.replace('_', '-')}: {value!r}, {cls.__name__}: {expected!r}"
    choices = _enum_of(cls, field)
    if choices is not None:
        assert sorted(param.type.choices) == sorted(c.value for c in choices), f"{path} --{field.name}"


def test_every_command_is_checked():
    group = typer.main.get_command(app)
    commands = {name for name in group.commands if name != "bench"} | {f"bench {n}" for n in group.commands["bench"].commands}
    assert commands - {"bench report"} == set(SETTINGS)
