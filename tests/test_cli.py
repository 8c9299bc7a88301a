import json

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from tests.helpers import one_line

pytest.importorskip("keras")
pytestmark = pytest.mark.slow  # trains or exports a model
runner = CliRunner()


def test_train_then_evaluate(oxford_session_dir, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(oxford_session_dir), "--model", "conv_deconv",
                                 "--img-size", "32", "--batch-size", "8", "--epochs", "1", "--augment", "strong",
                                 "--encoder-weights", "none", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pixel acc" in result.output and "pet IoU (border ignored)" in result.output and (out / "model.keras").is_file()
    assert "unreadable" not in result.output  # it said "0 unreadable images skipped"
    again = runner.invoke(app, ["train", "--data", str(oxford_session_dir), "--model", "conv_deconv",
                                "--img-size", "32", "--batch-size", "8", "--epochs", "1", "--augment", "strong",
                                "--encoder-weights", "none", "--out", str(out)])  # the same command, run again
    assert again.exit_code == 0 and "trained with these settings already; nothing to do" in one_line(again.output)
    tables = again.output.strip().split("\n")[:-1]
    assert tables and set(tables) <= set(result.output.split("\n"))  # its report: the same tables, the same scores

    metrics_json = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", str(out), "--data", str(oxford_session_dir), "--out", str(metrics_json)])
    assert result.exit_code == 0, result.output
    report = json.loads(metrics_json.read_text())
    name = oxford_session_dir.name
    assert report["images"] == 12 and 0 <= report["metrics"][name]["mean_iou"] <= 1
    assert report["mask_by_source"][name] == report["mask"]  # one source: its scores are the mean

    result = runner.invoke(app, ["evaluate", str(out), "--data", str(oxford_session_dir), "--json"])
    assert json.loads(result.stdout)["metrics"] == report["metrics"]


def test_train_prints_its_report_as_json(oxford_dir, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--model", "conv_deconv", "--img-size", "32",
                                 "--batch-size", "8", "--epochs", "1", "--encoder-weights", "none",
                                 "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # nothing but the JSON on stdout: no progress, no tables
    assert report["run_dir"] == str(tmp_path / "run") and 0 <= report["test_mask"]["pet_iou"] <= 1
    assert report == json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_clear_errors_and_exit_codes(tmp_path, oxford_dir):
    # A value on the command line that cannot work exits 2 before any work; a failure while working exits 1.
    for command in (["train"], ["evaluate", "edge"]):
        result = runner.invoke(app, [*command, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and "not found" in one_line(result.output)
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--model", "unet", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown model 'unet'" in one_line(result.output)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope.keras"), "--data", str(oxford_dir)])
    assert result.exit_code == 2 and "nope.keras not found" in one_line(result.output)
    (tmp_path / "bad.keras").write_text("not a model")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "bad.keras"), "--data", str(oxford_dir)])
    assert result.exit_code == 1 and "is not a Keras model" in one_line(result.output)
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--class-weights", "x", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "class weights must be" in one_line(result.output)
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--augment", "wild", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "'--augment': 'wild' is not one of 'none', 'standard', 'strong', 'aspect', 'webcam'" in one_line(result.output)
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--data", f"{oxford_dir}:many",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "the weight after ':' must be a number" in one_line(result.output)
    result = runner.invoke(app, ["evaluate", "edge", "--data", str(oxford_dir), "--data", str(oxford_dir)])
    assert result.exit_code == 2 and f"two sources are named '{oxford_dir.name}'" in one_line(result.output)


def test_training_commands_say_what_to_install_without_tensorflow(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"not opened without TensorFlow")
    (run / "run.json").write_text('{"config": {}}')
    for args in (["train"], ["evaluate", "m.keras", "--data", "d"], ["export", str(run)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and 'pip install "edgeseg[train]"' in result.output, args


def test_evaluate_of_an_artifact_on_a_folder_runs_without_tensorflow(oxford_dir):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tensorflow_datasets", "tf2onnx"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.argv = ["edgeseg", "evaluate", "edge", "--data", {str(oxford_dir)!r}, "--limit", "2", "--json"]
        from edgeseg.cli import app
        app()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["images"] == 2


def test_evaluate_records_the_mask_settings_it_measured_with(oxford_dir):
    reports = {}
    for edges in ("guided", "bilinear"):
        result = runner.invoke(app, ["evaluate", "edge", "--data", str(oxford_dir), "--edges", edges, "--json"])
        assert result.exit_code == 0, result.output
        reports[edges] = json.loads(result.stdout)
    assert reports["bilinear"]["settings"] == {"threshold": 0.5, "softness": 0.1, "edges": "bilinear", "min_blob": 0.0}
    assert reports["guided"]["settings"]["edges"] == "guided"
    assert reports["guided"]["mask"] != reports["bilinear"]["mask"]  # the setting reached the Segmenter


def test_training_commands_keep_tensorflows_start_up_lines_off_stderr(trained_run, oxford_dir):
    import subprocess
    import sys

    command = [sys.executable, "-m", "edgeseg", "evaluate", str(trained_run), "--data", str(oxford_dir), "--limit", "2",
               "--json"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "cudart_stub" not in quiet.stderr and "absl::InitializeLog" not in quiet.stderr, quiet.stderr
    assert json.loads(quiet.stdout)["images"] == 2


@pytest.mark.parametrize("command", [["evaluate", "edge"], ["train"]])
def test_a_limit_below_one_is_refused_not_read_as_a_slice(oxford_dir, tmp_path, command):
    result = runner.invoke(app, [*command, "--data", str(oxford_dir), "--limit", "-1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--limit" in result.output  # -1 scored all images but the last


def test_an_unknown_split_is_refused_not_read_as_the_training_split(oxford_dir):
    from edgeseg.data import DataError, iter_full_resolution

    result = runner.invoke(app, ["evaluate", "edge", "--data", str(oxford_dir), "--split", "all"])
    assert result.exit_code == 2 and "'--split': 'all' is not one of 'train', 'val', 'test'" in " ".join(
        result.output.split())
    with pytest.raises(DataError, match="split must be one of"):
        next(iter_full_resolution(str(oxford_dir), "all"))


def test_an_unknown_export_format_is_a_command_line_error(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--formats", "tflite,onxx"])
    output = one_line(result.output)
    assert result.exit_code == 2 and "unknown format 'onxx'; choose from tflite, onnx (did you mean 'onnx'?)" in output
