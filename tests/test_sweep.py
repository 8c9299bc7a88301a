"""`edgeseg evaluate --sweep`: every combination of runtime settings scored, one row each."""

import json

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import UsageError
from edgeseg.evaluation.sweep import parse_sweep
from tests.helpers import one_line, write_mask_folder

runner = CliRunner()


def test_a_sweep_scores_every_combination(shipped, tmp_path):
    data = write_mask_folder(tmp_path / "d", n=30, size=64)
    result = runner.invoke(app, ["evaluate", shipped("tflite"), "--data", str(data), "--sweep", "threshold=0.3,0.7",
                                 "--sweep", "edges=guided,bilinear", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["sweep"]
    assert [r["swept"] for r in rows] == [{"threshold": t, "edges": e} for t in (0.3, 0.7)
                                          for e in ("guided", "bilinear")]
    for row in rows:  # each row was measured with its own settings, the rest as given
        assert {k: row["settings"][k] for k in row["swept"]} == row["swept"]
        assert row["settings"]["softness"] == 0.1 and row["images"] == 3


@pytest.mark.parametrize("spec, message", [
    ("gamma=1,2", "NAME one of threshold"), ("threshold=a,b", "finite numbers"), ("threshold=nan", "finite numbers"),
    ("edges=sharp", "guided, bilinear"), ("threshold=", "finite numbers"),
    # out of range: refused by the segmenter after the model loaded, exit 1, without naming --sweep
    ("softness=0,0.2", r"softness takes 0.01 to 0.5, received 0"), ("threshold=0.5,1.5", "threshold takes 0 to 1"),
    ("smoothing=0", "smoothing takes 0.01 to 1"), ("min_blob=1", "min_blob takes 0 to 0.99")])
def test_bad_sweeps_are_usage_errors(spec, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        parse_sweep([spec])
    data = write_mask_folder(tmp_path / "d", n=10, size=32)
    result = runner.invoke(app, ["evaluate", "edge", "--data", str(data), "--sweep", spec])
    assert result.exit_code == 2 and "--sweep" in result.output


def test_a_setting_named_twice_is_refused():
    with pytest.raises(UsageError, match="twice"):
        parse_sweep(["softness=0.1", "softness=0.2"])
    # a value named twice scored the same rows twice
    with pytest.raises(UsageError, match="'threshold=0.5,0.50' names 0.5 twice"):
        parse_sweep(["threshold=0.5,0.50"])
    with pytest.raises(UsageError, match="'edges=guided,guided' names guided twice"):
        parse_sweep(["edges=guided,guided"])


def test_sweeping_smoothing_needs_flicker(tmp_path):
    # without --flicker every row was the same: single photos have no earlier mask to smooth with
    data = write_mask_folder(tmp_path / "d", n=10, size=32)
    result = runner.invoke(app, ["evaluate", "edge", "--data", str(data), "--sweep", "smoothing=0.3,0.9"])
    assert result.exit_code == 2 and "smoothing changes only the video mask" in " ".join(result.output.split())
    result = runner.invoke(app, ["evaluate", "edge", "--data", str(data), "--smoothing", "0.3"])  # was ignored
    assert result.exit_code == 2 and "Invalid value for --smoothing: it smooths the video mask, whose flicker " \
        "--flicker N measures; add --flicker" in one_line(result.output), result.output


def test_evaluate_writes_json_to_a_json_file_name(tmp_path):
    data = write_mask_folder(tmp_path / "d", n=10, size=32)
    result = runner.invoke(app, ["evaluate", "edge", "--data", str(data), "--out", str(tmp_path / "scores.csv")])
    assert result.exit_code == 2 and "name the file *.json" in " ".join(result.output.split())  # JSON in a .csv
    assert not (tmp_path / "scores.csv").exists()
