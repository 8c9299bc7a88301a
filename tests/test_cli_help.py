"""The command line as a new user meets it: help on every option, --version, -h, one error format."""

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from edgeseg import __version__
from edgeseg.cli import app

runner = CliRunner()


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_option_of_every_command_has_help():
    root = typer.main.get_command(app)
    missing = [f"{' '.join(path)} {param.name}" for path, command in _commands(root)
               for param in command.params if not getattr(param, "help", None)]
    assert not missing, missing


@pytest.mark.parametrize("args", [["--version"], ["-h"], ["bench", "-h"], ["bench", "report", "-h"], ["label", "-h"]])
def test_version_and_short_help(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    if args == ["--version"]:
        assert result.output.strip() == f"edgeseg {__version__}"
    if args[:2] == ["bench", "report"]:
        assert "Merge result files" in result.output and "Run folders, model files" not in result.output


def test_flags_show_no_value_placeholder():
    result = runner.invoke(app, ["predict", "--help"], terminal_width=200)
    assert "<bool>" not in result.output


def test_bench_takes_the_shipped_names(tmp_path):
    import json

    result = runner.invoke(app, ["bench", "tutorial", "edge", "--threads", "1", "--warmup", "0", "--runs", "2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["model"] for r in rows] == ["tutorial tflite int8", "edge tflite int8", "edge onnx int8"]
    assert all(r["status"] == "ok" for r in rows)


def test_usage_and_runtime_errors_share_one_format_and_their_exit_codes(tmp_path):
    usage = subprocess.run([sys.executable, "-m", "edgeseg", "predict", "x.jpg", "--threshold", "2"],
                           capture_output=True, text=True)
    runtime = subprocess.run([sys.executable, "-m", "edgeseg", "predict", str(tmp_path / "x.jpg"), "--model", "edge",
                              "--out", str(tmp_path)], capture_output=True, text=True)
    assert usage.returncode == 2 and runtime.returncode == 1
    for proc in (usage, runtime):
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
        assert "╭" not in proc.stderr and "Traceback" not in proc.stderr


def test_bench_names_files_of_the_same_name_by_their_folder(tmp_path):
    import shutil

    from edgeseg.benchmarks.runner import collect_models
    from edgeseg.runtime.packaged import packaged_model

    (tmp_path / "new").mkdir()
    shutil.copy(packaged_model("edge"), tmp_path / "new" / packaged_model("edge").name)
    labels = [e.label for e in collect_models([str(packaged_model("edge")),
                                               str(tmp_path / "new" / packaged_model("edge").name)])]
    assert labels == ["models/unet_mobilenetv2_edge_int8.tflite", "new/unet_mobilenetv2_edge_int8.tflite"]
    exports = []
    for run in ("run_a", "run_b"):  # two runs' export/ folders: the runs name them, not "export"
        (tmp_path / run / "export").mkdir(parents=True)
        exports.append(tmp_path / run / "export" / packaged_model("edge").name)
        shutil.copy(packaged_model("edge"), exports[-1])
    labels = [e.label for e in collect_models([str(p) for p in exports])]
    assert labels == ["run_a/unet_mobilenetv2_edge_int8.tflite", "run_b/unet_mobilenetv2_edge_int8.tflite"]
    (tmp_path / "x" / "run_a" / "export").mkdir(parents=True)  # the same run names under another folder
    twin = tmp_path / "x" / "run_a" / "export" / packaged_model("edge").name
    shutil.copy(packaged_model("edge"), twin)
    labels = [e.label for e in collect_models([str(exports[0]), str(twin)])]
    assert labels == [str(exports[0]), str(twin)]


def test_tflite_and_onnx_rows_have_their_own_names():
    from edgeseg.benchmarks.runner import collect_models
    from edgeseg.runtime.packaged import manifest

    onnx = next(name for name in manifest()["files"] if name.endswith(".onnx"))
    labels = [e.label for e in collect_models([manifest()["aliases"]["edge"], onnx])]
    assert len(set(labels)) == 2 and labels[1].endswith(".onnx")


def test_a_shipped_alias_is_benched_in_every_format_it_ships_and_runs_never_look_like_one(tmp_path):
    import shutil

    from edgeseg.benchmarks.runner import collect_models
    from edgeseg.runtime.packaged import packaged_model

    entries = collect_models(["edge"])
    assert [e.label for e in entries] == ["edge tflite int8", "edge onnx int8"]
    assert [e.label for e in collect_models(["edge", str(packaged_model("edge"))])] == [e.label for e in entries]
    run = tmp_path / "edge"  # a run folder of the alias's name
    (run / "export").mkdir(parents=True)
    shutil.copy(packaged_model("edge"), run / "export" / packaged_model("edge").name)
    labels = [e.label for e in collect_models(["edge", str(run)])]
    assert labels == ["edge tflite int8", "edge onnx int8", f"{run}/ tflite int8"]
