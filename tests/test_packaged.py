"""The model shipped inside the package: checksums, both runtimes, and the commands that default to it."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.runtime import packaged
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions


def test_shipped_files_match_their_checksums():
    checks = packaged.verify()
    assert checks and all(checks.values()), checks
    assert packaged.manifest()["default"] in checks


@pytest.mark.parametrize("name", sorted(json.loads((packaged.MODELS_DIR / "manifest.json").read_text())["files"])
                         if (packaged.MODELS_DIR / "manifest.json").is_file() else [])
def test_shipped_model_runs(name):
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(packaged.packaged_model(name))) as seg:
        assert seg.info.source == "metadata" and seg.info.foreground_classes == (0, 2)
        alpha = seg.segment(frame)
    assert alpha.shape == (240, 320) and 0 <= alpha.min() <= alpha.max() <= 1


def test_predict_defaults_to_the_shipped_model(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "cat.jpg"), np.full((60, 80, 3), 120, np.uint8))
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "cat.jpg"), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"][str(tmp_path / "cat.jpg")].endswith("cat_grayscale-bg.png")


def test_missing_shipped_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(packaged, "MODELS_DIR", tmp_path)
    result = CliRunner().invoke(app, ["predict", str(tmp_path)])
    assert result.exit_code == 2 and "ships no model: pass --model PATH" in result.output


def test_shipped_models_by_alias_and_clear_errors(tmp_path):
    assert packaged.resolve_model("edge").name == "unet_mobilenetv2_edge_int8.tflite"
    assert packaged.resolve_model(None) == packaged.packaged_model()
    with pytest.raises(packaged.NoPackagedModel, match="shipped: .*edge"):
        packaged.resolve_model("edgy")
    with pytest.raises(FileNotFoundError, match="model models/missing.tflite not found"):
        packaged.resolve_model("models/missing.tflite")
    with pytest.raises(FileNotFoundError, match="model mymodel.onnx not found"):
        packaged.resolve_model("mymodel.onnx")
    assert packaged.resolve_model("unet_mobilenetv2_edge_int8.tflite") == packaged.resolve_model("edge")
