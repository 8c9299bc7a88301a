"""What a newcomer trips over: messages, exit codes and quiet output of the command line."""

import logging
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app, plural, verbose_first
from tests.helpers import one_line

runner = CliRunner()


def _edgeseg(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("args", [[], ["bench"]])
def test_no_sub_command_prints_help_without_an_empty_error(args):
    result = _edgeseg(*args)
    assert result.returncode == 2 and "Usage" in result.stdout + result.stderr
    assert "error:" not in result.stderr, result.stderr


def test_verbose_is_accepted_after_the_sub_command(tmp_path):
    assert verbose_first(["predict", "a.jpg", "--verbose"]) == ["--verbose", "predict", "a.jpg"]
    assert verbose_first(["predict", "-v", "a.jpg"]) == ["-v", "predict", "a.jpg"]
    assert verbose_first(["predict", "--", "-v"]) == ["predict", "--", "-v"]  # a file named -v
    result = _edgeseg("predict", str(tmp_path / "missing.jpg"), "--out", str(tmp_path), "--verbose")
    assert "No such option" not in result.stderr and "missing.jpg" in one_line(result.stderr)


def test_library_logs_are_quiet_unless_verbose(tmp_path):
    # onnxruntime's quantizer logs through the root logger: ~1,900 lines of an int8 export
    code = ("import logging, sys\nfrom edgeseg.cli import app\n"
            "@app.command('noisy')\ndef noisy():\n"
            "    logging.info('Increased scale[0] for weight x')\n    logging.getLogger('edgeseg').info('ours')\n"
            "sys.argv = ['edgeseg', *sys.argv[1:]]\nfrom edgeseg.cli import main\nmain()\n")
    quiet = subprocess.run([sys.executable, "-c", code, "noisy"], capture_output=True, text=True, timeout=60)
    assert "ours" in quiet.stderr and "Increased scale" not in quiet.stderr, quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "noisy", "--verbose"], capture_output=True, text=True, timeout=60)
    assert "ours" in loud.stderr and "Increased scale" in loud.stderr, loud.stderr
    logging.getLogger().setLevel(logging.WARNING)


def test_no_token_with_a_token_is_refused():
    result = runner.invoke(app, ["webcam", "--serve", "0.0.0.0:8080", "--no-token", "--token", "x"])
    assert result.exit_code == 2 and "not both" in one_line(result.output)


def test_a_source_without_frames_says_its_error_once(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.png").write_bytes(b"not a png")
    result = _edgeseg("webcam", "--source", str(tmp_path / "frames"), "--output", str(tmp_path / "o.mp4"),
                      "--no-window")
    assert result.returncode == 1
    assert "0 frames" not in result.stdout and "median ms: )" not in result.stdout, result.stdout
    assert one_line(result.stderr).count("source lost") == 1, result.stderr


def test_counts_agree_with_their_nouns():
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs" and plural(0, "frame") == "0 frames"
