"""Export round trips (every format x precision), accuracy gates that must fail, and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow  # trains or exports a model
pytest.importorskip("tf2onnx")

from typer.testing import CliRunner  # noqa: E402

from edgeseg.cli import app  # noqa: E402
from edgeseg.contract import TRIMAP_MASK_WEIGHTS, ArtifactMetadata  # noqa: E402
from edgeseg.export import tflite as tflite_export  # noqa: E402
from edgeseg.export.base import (  # noqa: E402
    ArtifactReport,
    ExportError,
    Gates,
    Precision,
    ShapeMismatchError,
    ToleranceError,
    get_format,
)
from edgeseg.export.exporter import ExportOptions, export_model  # noqa: E402
from edgeseg.export.validate import compare, keras_reference  # noqa: E402
from edgeseg.runtime.backends import open_backend  # noqa: E402
from edgeseg.data import load_folder  # noqa: E402
from edgeseg.errors import NotFound  # noqa: E402
from tests.helpers import ALL_PRECISIONS, one_line  # noqa: E402

ALL = [Precision(p) for p in ALL_PRECISIONS]
EXPECTED = [("tflite", Precision.FP32), ("tflite", Precision.FP16), ("tflite", Precision.INT8),
            ("onnx", Precision.FP32), ("onnx", Precision.INT8)]  # onnx has no fp16


@pytest.fixture(scope="session")
def tiny_unet_run(oxford_session_dir, tmp_path_factory):
    """The tutorial architecture (random weights, 32 px, narrow encoder) saved as a run folder."""
    from edgeseg.trainer.models import unet_mobilenetv2

    run = tmp_path_factory.mktemp("unet") / "run"
    run.mkdir()
    unet_mobilenetv2(32, encoder_weights="none", alpha=0.35).save(run / "model.keras")
    (run / "run.json").write_text(json.dumps({"data": {"train": {"source": str(oxford_session_dir)}}}))
    return run


def test_format_table_is_the_source_of_truth():
    assert get_format("onnx").precisions == (Precision.FP32, Precision.INT8)
    with pytest.raises(ExportError, match="did you mean 'tflite'"):
        get_format("tflte")


def test_every_format_and_precision_is_written_and_checked(exported):
    assert [(a.format, Precision(a.precision)) for a in exported.artifacts] == EXPECTED
    assert any("onnx has no fp16" in n for n in exported.notes)
    # every artifact, and the Keras model, is also judged as users see it: the runtime's mask at image size
    assert 0 <= exported.keras_mask["pet_iou"] <= 1 and exported.keras_mask["images"] == 12
    for a in exported.artifacts:
        assert set(a.mask) >= {"pet_iou", "fg_iou", "boundary_f", "background_leak", "semi_transparent"}
        assert abs(a.mask["pet_iou"] - exported.keras_mask["pet_iou"]) < 0.1
    for a in exported.artifacts:
        assert a.passed, (a.name, a.failures)
        assert a.size_mb > 0 and 0.90 <= a.agreement <= 1.0
    fp32 = [a for a in exported.artifacts if a.precision == "fp32"]
    assert all(a.max_abs_prob_diff < 1e-4 for a in fp32)
    with open(f"{exported.out_dir}/export_report.json") as f:
        report = json.load(f)
    assert report["passed"] and len(report["artifacts"]) == 5


@pytest.mark.parametrize("fmt,precision", EXPECTED, ids=[f"{f}-{p.value}" for f, p in EXPECTED])
def test_round_trip_metadata_and_runtime(exported, fmt, precision):
    artifact = next(a for a in exported.artifacts if a.format == fmt and a.precision == precision.value)
    with open_backend(artifact.path) as backend:
        meta = backend.metadata
        assert meta.format == fmt and meta.precision == precision.value
        assert meta.input_size == (32, 32) and meta.classes == ("pet", "background", "border")
        assert meta.foreground_classes == (0, 2) and meta.source_model.endswith("model.keras")
        assert meta.mask_weights == TRIMAP_MASK_WEIGHTS  # a trimap-trained model: half the border
        assert backend.input.shape == (1, 32, 32, 3) and backend.output.shape[-1] == 3
        if fmt == "tflite" and precision is Precision.INT8:
            # uint8 camera pixels go straight in: scale 1, zero point 0
            assert backend.input.dtype == np.uint8 and (backend.input.scale, backend.input.zero_point) == (1.0, 0)


def test_int8_onnx_records_the_setting_the_gate_picked(exported):
    onnx_int8 = exported.artifacts[-1]
    assert onnx_int8.settings["reduce_range"] is False and onnx_int8.settings["opset"] == 17


@pytest.mark.slow
def test_tutorial_architecture_round_trip(tiny_unet_run, tmp_path):
    report = export_model(tiny_unet_run, ExportOptions(precisions=ALL, calib_size=40, out=str(tmp_path)),
                          progress=False)
    assert [(a.format, Precision(a.precision)) for a in report.artifacts] == EXPECTED
    for a in report.artifacts:
        assert a.path and np.isfinite(a.agreement), a.failures
        if a.precision == "fp32":
            assert a.passed and a.max_abs_prob_diff < 1e-4


def _perturbed_artifact(trained_run, data_dir, tmp_path, precision, noise, calibration=None):
    """(reference of the trained model, report skeleton of an artifact exported from perturbed weights)."""
    model = keras.models.load_model(trained_run / "model.keras")
    data = load_folder(data_dir, "test", 32, progress=False)
    reference = keras_reference(model, data.images, data.masks)
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, noise * (w.std() + 1e-3), w.shape).astype(w.dtype) for w in model.get_weights()])
    metadata = ArtifactMetadata(model.name, "tflite", precision.value, (32, 32))
    blob = tflite_export.export_tflite(model, [precision], lambda p: metadata, calibration)[precision]
    path = tmp_path / f"broken_{precision.value}.tflite"
    path.write_bytes(blob)
    return reference, ArtifactReport("tflite", precision.value, str(path))


def test_perturbed_weights_fail_the_fp32_gate(trained_run, oxford_session_dir, tmp_path):
    reference, artifact = _perturbed_artifact(trained_run, oxford_session_dir, tmp_path, Precision.FP32, noise=0.05)
    report = compare(artifact, reference, Gates())
    assert not report.passed
    assert any("max |dprob|" in f for f in report.failures)


def test_perturbed_weights_fail_the_int8_gate(trained_run, oxford_session_dir, tmp_path):
    calibration = load_folder(oxford_session_dir, "train", 32, progress=False).images
    reference, artifact = _perturbed_artifact(trained_run, oxford_session_dir, tmp_path, Precision.INT8, noise=1.0,
                                              calibration=calibration)
    report = compare(artifact, reference, Gates())
    assert not report.passed
    assert any(f.startswith("agreement") for f in report.failures), report.failures


def test_failed_artifact_is_moved_aside_and_keeps_its_numbers(trained_run, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "conv_deconv_int8.tflite").write_bytes(b"an earlier export's file")
    strict = Gates(int8_min_agreement=1.01)  # unreachable: this artifact must fail
    report = export_model(trained_run, ExportOptions(formats=["tflite"], precisions=[Precision.INT8], calib_size=40,
                                                     out=str(tmp_path / "out"), gates=strict), progress=False)
    (artifact,) = report.artifacts
    assert not artifact.passed and f"agreement {artifact.agreement:.2%} < 101% (int8_min_agreement)" in artifact.failures
    # Not under its final name, where a script shipping every .tflite in the folder would pick it up.
    assert not (tmp_path / "out" / "conv_deconv_int8.tflite").exists()
    assert (tmp_path / "out" / "failed" / "conv_deconv_int8.tflite").is_file()
    saved = json.loads((tmp_path / "out" / "export_report.json").read_text())
    assert saved["passed"] is False and saved["artifacts"][0]["failures"]
    assert saved["artifacts"][0]["path"] == str(tmp_path / "out" / "failed" / "conv_deconv_int8.tflite")
    with pytest.raises(ToleranceError, match="tflite int8(.|\n)*--gate NAME=VALUE"):
        report.raise_for_failures()
    # a passing rerun into the same folder leaves no stale failed file beside the passing one
    lenient = Gates(int8_min_agreement=0.0, int8_min_delta_miou=-100.0)  # this rerun must pass
    export_model(trained_run, ExportOptions(formats=["tflite"], precisions=[Precision.INT8], calib_size=40,
                                            out=str(tmp_path / "out"), gates=lenient), progress=False)
    assert (tmp_path / "out" / "conv_deconv_int8.tflite").is_file()
    assert not (tmp_path / "out" / "failed" / "conv_deconv_int8.tflite").exists()


def test_exporting_one_more_precision_keeps_the_others_checks_on_record(trained_run, tmp_path):
    # the report held only the last export's artifacts: the fp32 file beside it had no check on record
    out = tmp_path / "out"

    def export(precision):
        export_model(trained_run, ExportOptions(formats=["tflite"], precisions=[precision], out=str(out)),
                     progress=False)
        return {Path(a["path"]).name: a["passed"] for a in json.loads((out / "export_report.json").read_text())[
            "artifacts"]}

    assert export(Precision.FP32) == {"conv_deconv_fp32.tflite": True}
    assert export(Precision.FP16) == {"conv_deconv_fp32.tflite": True, "conv_deconv_fp16.tflite": True}
    assert export(Precision.FP16) == {"conv_deconv_fp32.tflite": True, "conv_deconv_fp16.tflite": True}  # once each
    (out / "conv_deconv_fp32.tflite").unlink()  # a file removed since: its entry goes with it
    assert export(Precision.FP16) == {"conv_deconv_fp16.tflite": True}


def test_a_static_batch_of_several_images_exports_checks_and_runs(trained_run, tmp_path):
    # --batch-size 4: the int8 calibration fed single images to a model of 4 (TFLite: "RESHAPE failed to prepare",
    # ONNX: "Got: 1 Expected: 4"), and the ONNX check recursed until "maximum recursion depth exceeded"
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    gates = Gates(int8_min_agreement=0.90, int8_min_delta_miou=-5.0)  # the toy model's, as in ``exported``
    options = ExportOptions(precisions=[Precision.FP32, Precision.INT8], batch_size=3, calib_size=34, eval_size=7,
                            gates=gates, out=str(tmp_path / "out"))  # neither 34 nor 7 images is a multiple of 3
    report = export_model(trained_run, options, progress=False)
    assert [a.passed for a in report.artifacts] == [True] * 4, [a.failures for a in report.artifacts]
    for artifact in report.artifacts:
        with open_backend(artifact.path) as backend:
            assert backend.input.shape[0] == 3
        with Segmenter(SegmenterOptions(artifact.path)) as segmenter:  # the runtime's one frame in a batch of 3
            assert segmenter.segment(np.zeros((40, 50, 3), np.uint8)).shape == (40, 50)


def test_fp16_and_int8_gate_logic():
    gates = Gates()
    assert gates.check(Precision.FP16, 1.0, 0.0, -0.1) == []
    assert gates.check(Precision.FP16, 1.0, 0.0, -0.3)
    assert gates.check(Precision.INT8, 0.99, 0.5, -0.9) == []
    assert len(gates.check(Precision.INT8, 0.96, 0.5, -1.1)) == 2


def test_a_failed_conversion_is_not_offered_a_gate_to_override():
    # it read "tflite fp32 (): conversion failed: ... (to accept them, override the gate named in brackets)"
    from edgeseg.export.base import ExportReport

    failed = ArtifactReport("tflite", "fp32", "", failures=["conversion failed: RuntimeError: no"])
    with pytest.raises(ToleranceError) as caught:
        ExportReport("m.keras", "out", 8, 0, 0.5, 0.5, artifacts=[failed]).raise_for_failures()
    assert "tflite fp32: conversion failed" in str(caught.value) and "gate" not in str(caught.value)
    gated = ArtifactReport("tflite", "int8", "out/m_int8.tflite", failures=Gates().check(Precision.INT8, 0.5, 0, 0))
    with pytest.raises(ToleranceError, match=r"(?s)tflite int8 \(out/m_int8.tflite\): agreement .*\(int8_min_agreement\)"
                                             r".*override the gate named in parentheses: --gate NAME=VALUE"):
        ExportReport("m.keras", "out", 8, 8, 0.5, 0.5, artifacts=[gated]).raise_for_failures()


def test_bad_input_gives_clear_errors_and_no_files(trained_run, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(NotFound, match="missing.keras not found"):
        export_model(tmp_path / "missing.keras", ExportOptions(out=str(out)), progress=False)
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    with pytest.raises(ExportError, match="is not a Keras model"):
        export_model(junk, ExportOptions(out=str(out), eval_data=str(tmp_path)), progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="output folder: .*file is a file, not a folder"):
        export_model(trained_run, ExportOptions(out=str(blocker / "sub")), progress=False)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((40, 64, 64, 3), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"shape \(40, 64, 64, 3\); expected \(N, 32, 32, 3\)"):
        export_model(trained_run, ExportOptions(precisions=[Precision.INT8], calib_data=str(wrong), out=str(out)),
                     progress=False)
    few = tmp_path / "few.npy"
    np.save(few, np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(ExportError, match="has 5 images; int8 needs at least 32"):
        export_model(trained_run, ExportOptions(precisions=[Precision.INT8], calib_data=str(few), out=str(out)),
                     progress=False)
    assert not out.exists() or not any(p.suffix in (".tflite", ".onnx") for p in out.iterdir())


def test_a_run_copied_from_another_machine_says_to_pass_its_data(trained_run, tmp_path, monkeypatch):
    # a run folder whose training data is not on this machine said "evaluation data: dataset '/elsewhere/pets' not
    # found: give 'oxford_iiit_pet' (tfds) or an existing folder", after loading the model, nothing on --eval-data
    import shutil

    from edgeseg.export import exporter

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    info = json.loads((run / "run.json").read_text())
    info["config"]["data"] = ["/elsewhere/pets"]
    for source in info.get("sources", []):
        source["location"] = "/elsewhere/pets"
    (run / "run.json").write_text(json.dumps(info))
    monkeypatch.setattr(exporter, "_load_model", lambda path: pytest.fail("the model was loaded before the data check"))
    for flags, names in (([], "--eval-data"), (["--int8"], "--eval-data and --calib-data")):
        result = CliRunner().invoke(app, ["export", str(run), *flags])
        text = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 1 and "was trained on /elsewhere/pets, which is not on this machine" in text, text
        assert f"pass {names}" in text, text


def test_failed_conversion_leaves_no_partial_artifact(trained_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(tflite_export, "convert", broken)
    report = export_model(trained_run, ExportOptions(formats=["tflite"], out=str(tmp_path)), progress=False)
    assert not report.passed and "converter crashed" in report.artifacts[0].failures[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export_report.json"]


def test_an_export_killed_before_its_check_leaves_no_artifact_to_run(trained_run, tmp_path, monkeypatch):
    from edgeseg.export import exporter
    from edgeseg.runs import RunFolder

    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "run.json", "metrics.json"):
        (run / name).write_bytes((trained_run / name).read_bytes())

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what SIGINT, or SIGTERM's default, does between the write and the check

    monkeypatch.setattr(exporter, "compare", killed)
    with pytest.raises(KeyboardInterrupt):
        export_model(run, ExportOptions(formats=["tflite"]), progress=False)
    assert RunFolder(run).artifacts() == []  # `edgeseg webcam --model RUN` must not run an unchecked file
    assert not (run / "export").exists()  # nor find an empty export/ it made
    monkeypatch.undo()
    dead = run / "export" / f".unchecked.{2**22 + 12345}.d"  # SIGTERM's default allows no clean-up: a dead pid's
    dead.mkdir(parents=True)
    (dead / "conv_deconv_fp32.tflite").write_bytes(b"half-checked")
    report = export_model(run, ExportOptions(formats=["tflite"]), progress=False)  # the rerun starts clean
    assert report.passed and [p.name for p in RunFolder(run).artifacts()] == ["conv_deconv_fp32.tflite"]
    assert sorted(p.name for p in (run / "export").iterdir()) == ["conv_deconv_fp32.tflite", "export_report.json"]


def test_cli_exit_code_follows_the_gates(trained_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(trained_run), "--formats", "onnx", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "conv_deconv_fp32.onnx" in result.output and "pass" in result.output
    result = runner.invoke(app, ["export", str(trained_run), "--formats", "onnx", "--out", str(tmp_path / "b"),
                                 "--gate", "fp32_max_abs_prob=1e-12"])
    assert result.exit_code == 1 and "accuracy check failed" in result.output and "onnx fp32" in result.output
    result = runner.invoke(app, ["export", str(trained_run), "--gate", "nope=1"])
    assert result.exit_code == 2 and "unknown gate 'nope'" in result.output
    # formats and precisions that never meet are a bad command line: it exited 1
    result = runner.invoke(app, ["export", str(trained_run), "--formats", "onnx", "--fp16", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "nothing to export: onnx has no fp16 export" in " ".join(result.output.split())
    assert not (tmp_path / "c").exists()
    result = runner.invoke(app, ["export", str(trained_run), "--formats", ","])  # said "nothing to export: "
    assert result.exit_code == 2 and "',' names no format; choose from tflite, onnx" in one_line(result.output)


def test_a_mixed_precision_run_exports_as_float32(oxford_session_dir, tmp_path):
    # its float16 casts failed TFLite's conversion (with the converter's graph dump as the message) and ONNX's
    # quantization, whose model ONNX Runtime could not load: that ended the export with no report at all
    from edgeseg.trainer.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(model="conv_deconv", data=str(oxford_session_dir), out=str(run), epochs=1, batch_size=8,
                      img_size=32, encoder_weights="none", early_stopping=0, mixed_precision=True), progress=False)
    report = export_model(run, ExportOptions(precisions=[Precision.FP32, Precision.INT8]), progress=False)
    assert [(a.format, a.precision) for a in report.artifacts] == [("tflite", "fp32"), ("tflite", "int8"),
                                                                  ("onnx", "fp32"), ("onnx", "int8")]
    assert all(a.path and Path(a.path).is_file() for a in report.artifacts), report.failures()
    assert not [f for f in report.failures() if "conversion failed" in f or "cannot run" in f]


def test_an_artifact_its_runtime_cannot_run_fails_alone(trained_run, tmp_path, monkeypatch):
    # ONNX Runtime's refusal of one artifact ended the export: no report, the other artifacts unrecorded
    from edgeseg.export import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "quantize_int8", lambda *args, **kwargs: b"not an onnx model")
    report = export_model(trained_run, ExportOptions(formats=["onnx"], precisions=[Precision.FP32, Precision.INT8],
                                                     out=str(tmp_path / "out")), progress=False)
    fp32, int8 = report.artifacts
    assert fp32.passed and not int8.passed and not int8.path
    assert any(f.startswith("its runtime cannot run it: ONNX Runtime cannot load") for f in int8.failures), int8
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["conv_deconv_fp32.onnx", "export_report.json"]


def test_a_failed_conversion_is_said_in_one_line(trained_run, tmp_path, monkeypatch):
    # the TFLite converter's error holds its whole graph (hundreds of lines), all of it in the table and the report
    from edgeseg.export import tflite as tflite_module

    def failing(*args, **kwargs):
        raise RuntimeError("could not translate the graph\n" + "  %1 = tfl.cast(...)\n" * 500)

    monkeypatch.setattr(tflite_module, "export_tflite", failing)
    report = export_model(trained_run, ExportOptions(formats=["tflite"], out=str(tmp_path / "out")), progress=False)
    assert report.artifacts[0].failures == ["conversion failed: RuntimeError: could not translate the graph"]
