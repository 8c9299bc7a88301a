"""Fault injection: each test reproduces a broken promise from the fault report (issue 13) and keeps it fixed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app

runner = CliRunner()


def test_offline_imagenet_weights_fail_in_one_line_and_leave_no_run_folder(oxford_dir, tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from keras.src.applications import mobilenet_v2

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)
    out = tmp_path / "runs" / "pets"
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--out", str(out), "--img-size", "32",
                                 "--batch-size", "4", "--epochs", "1"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "could not download the ImageNet weights" in message and "--encoder-weights none" in message
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if "error:" in line or "Error" in line]
    assert len(error_lines) == 1, result.output
    assert not out.exists()
