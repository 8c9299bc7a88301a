"""A two-class (person / background) model through the whole pipeline: what its masks show is named by its
data, in the artifact's metadata, the evaluate report, the run report and the HUD."""

import json

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.contract import CLASS_NAMES, TRIMAP_MASK_WEIGHTS, is_trimap, trimap_classes
from helpers import write_mask_folder, write_video


def test_trimap_classes_name_the_subject_and_refuse_the_other_classes():
    assert trimap_classes("person") == ("person", "background", "border")
    assert trimap_classes() == CLASS_NAMES
    assert is_trimap(("person", "background", "border")) and not is_trimap(("background", "person"))
    for bad in ("", "background", "a b", "x/y"):
        with pytest.raises(ValueError, match="subject"):
            trimap_classes(bad)


def test_a_bad_subject_is_refused_before_training(tmp_path):
    data = write_mask_folder(tmp_path / "people", n=10)
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--subject", "back ground", "--out",
                                      str(tmp_path / "run")])
    assert result.exit_code == 2 and "subject" in result.output


@pytest.mark.slow
def test_a_person_model_trains_exports_and_runs_as_person(tmp_path, monkeypatch):
    """At a landscape input (WIDTHxHEIGHT 64x32), as a webcam's frames are."""
    pytest.importorskip("tf2onnx")
    from edgeseg.export.base import Precision
    from edgeseg.export.exporter import ExportOptions, export_model
    from edgeseg.runtime import pipeline
    from edgeseg.trainer.train import TrainConfig, train

    data = write_mask_folder(tmp_path / "people", n=40, size=64)
    run = tmp_path / "run"
    trained = train(TrainConfig(model="conv_deconv", data=str(data), out=str(run), epochs=2, batch_size=8,
                                img_size="64x32", early_stopping=0, subject="person"), progress=False)
    assert trained.subject == "person" and trained.test_metrics["people"].class_names == ("person", "background")
    assert json.loads((run / "run.json").read_text())["classes"] == ["person", "background", "border"]
    report = export_model(run, ExportOptions(formats=["tflite"], precisions=[Precision.FP32],
                                             out=str(tmp_path / "export")), progress=False)
    artifact = report.artifacts[0].path
    assert report.subject == "person"
    table = CliRunner().invoke(app, ["export", str(run), "--formats", "tflite", "--out", str(tmp_path / "again")])
    assert "person IoU" in table.output and "pet" not in table.output, table.output  # the table said "pet IoU"
    from edgeseg.runtime.backends import open_backend

    with open_backend(artifact) as backend:
        assert backend.metadata.classes == ("person", "background", "border")
        assert backend.metadata.mask_weights == TRIMAP_MASK_WEIGHTS  # the trimap rule holds for any subject
        assert backend.metadata.input_size == (32, 64)  # (height, width)

    result = CliRunner().invoke(app, ["evaluate", artifact, "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["subject"] == "person"
    result = CliRunner().invoke(app, ["evaluate", artifact, "--data", str(data)])
    assert "person IoU" in result.output and "pet" not in result.output

    hud = []
    monkeypatch.setattr(pipeline, "draw_hud", lambda out, fps, stages, effect, subject, **kw: hud.append(subject))
    video = write_video(tmp_path / "call.avi", frames=3)
    result = CliRunner().invoke(app, ["webcam", "--model", artifact, "--source", str(video), "--hud", "--no-window",
                                      "--output", str(tmp_path / "out.avi"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["subject"] == "person"
    assert hud == ["person"] * 3


def test_the_webcam_augmentation_needs_backgrounds(tmp_path):
    data = write_mask_folder(tmp_path / "people", n=10)
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--augment", "webcam", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--backgrounds" in result.output
