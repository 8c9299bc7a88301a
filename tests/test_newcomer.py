"""What a newcomer trips over: messages, exit codes and quiet output of the command line."""

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgeseg.cli import app, plural, verbose_first
from edgeseg.progress import status
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
    # it said "skipping ...a.png is not a readable image: ..." and then "error: source lost: ...a.png could not be
    # read": a source it never had, and the reason apart from the error
    error = one_line(result.stderr)
    assert error.count("a.png is not a readable image") == 1 and "skipping" not in error, result.stderr
    assert error.startswith("error: ") and "source lost" not in error, result.stderr


def test_counts_agree_with_their_nouns():
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs" and plural(0, "frame") == "0 frames"


def test_bench_report_without_matplotlib_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the runtime-only install: import fails
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    result = runner.invoke(app, ["bench", "report", "tests/data/bench_schema_v1.json", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "the charts need matplotlib" in one_line(result.output) and "Traceback" not in result.output
    table = (tmp_path / "r" / "README.md").read_text()
    assert "| device | model |" in table and ".png" not in table
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["README.md"]


@pytest.fixture
def without_tensorflow(monkeypatch):
    """What the runtime-only install of an edge device finds: no TensorFlow."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" else real(name, *a))


def _run_folder(root, exported: bool):
    """A run folder as train and export leave it (model.keras a stand-in: it must not be opened here)."""
    import json
    import shutil

    from edgeseg.runtime.packaged import packaged_model

    root.mkdir(parents=True)
    (root / "model.keras").write_bytes(b"not opened without TensorFlow")
    (root / "run.json").write_text(json.dumps({"config": {}}))
    if exported:
        (root / "export").mkdir()
        shutil.copy(packaged_model("edge"), root / "export" / "unet_mobilenetv2_edge_int8.tflite")
    return root


def test_webcam_on_an_unexported_run_says_what_the_folder_lacks(tmp_path, without_tensorflow):
    run = _run_folder(tmp_path / "student", exported=False)
    result = runner.invoke(app, ["webcam", "--model", str(run), "--source", "x.mp4", "--output", str(tmp_path / "o.mp4")])
    text = one_line(result.output)
    assert result.exit_code == 1 and "has no exported model" in text, text
    assert f"edgeseg export {run}" in text and 'pip install "edgeseg[train]"' in text
    assert "No module named" not in text


@pytest.mark.parametrize("command", ["predict", "webcam"])
def test_a_keras_model_without_tensorflow_says_how_to_run_it(tmp_path, without_tensorflow, command):
    # the runtime-only install said "error: No module named 'tensorflow'"
    import cv2
    import numpy as np

    model = tmp_path / "model.keras"
    model.write_bytes(b"not opened without TensorFlow")
    photo = tmp_path / "x.png"
    cv2.imwrite(str(photo), np.zeros((48, 64, 3), np.uint8))
    args = {"predict": ["predict", str(photo), "--out", str(tmp_path / "o.png")],
            "webcam": ["webcam", "--source", str(photo), "--output", str(tmp_path / "o.mp4")]}[command]
    result = runner.invoke(app, [*args, "--model", str(model)])
    text = one_line(result.output)
    assert result.exit_code == 1 and f"{model} is a Keras model, which needs TensorFlow" in text, text
    assert f"edgeseg export {model}" in text and 'pip install "edgeseg[train]"' in text and "No module" not in text


def test_evaluate_scores_a_runs_exported_artifact_without_tensorflow(tmp_path, without_tensorflow):
    from tests.helpers import write_oxford

    run = _run_folder(tmp_path / "edge", exported=True)
    data = write_oxford(tmp_path / "pets", n_trainval=2, n_test=3, size=64)
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert report["images"] == 3 and report["metrics"] == {}  # the artifact webcam runs, not model.keras


def test_evaluate_of_a_run_scores_the_validation_split_its_training_drew(tmp_path):
    # it drew the split with --val-fraction 0.1 and --seed 0 whatever the run trained with: some of the photos it
    # scored as "val" were ones the run had trained on
    import json

    from edgeseg.data import iter_full_resolution
    from tests.helpers import write_mask_folder

    run = _run_folder(tmp_path / "edge", exported=True)
    data = write_mask_folder(tmp_path / "pets", n=20, size=48)
    (run / "run.json").write_text(json.dumps({"config": {"val_fraction": 0.5, "seed": 3}}))
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(data), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    drawn = [name for name, _, _ in iter_full_resolution(str(data), "val", val_fraction=0.5, seed=3)]
    assert json.loads(result.stdout)["images"] == len(drawn) == 9  # the default draw holds 2


@pytest.mark.slow
def test_bench_of_a_run_folder_without_tensorflow_leaves_the_keras_row_out(tmp_path, without_tensorflow):
    run = _run_folder(tmp_path / "edge", exported=True)
    result = runner.invoke(app, ["bench", str(run), "--threads", "1", "--runs", "3", "--warmup", "1",
                                 "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["rows"] and all(r["status"] == "ok" for r in doc["rows"])
    assert not any("keras" in r["model"] for r in doc["rows"])
    assert "model.keras not measured: Keras models need TensorFlow" in one_line(doc["notes"][0])
    assert "note:" in result.output


@pytest.mark.slow
def test_bench_of_a_run_whose_data_is_elsewhere_measures_speed_and_says_why_not_accuracy(tmp_path, without_tensorflow):
    # a run folder copied from the machine that trained it: every row failed ("DataError: dataset '/elsewhere/pets'
    # not found"), its speed unmeasured for want of the accuracy data it defaults to
    import json

    run = _run_folder(tmp_path / "edge", exported=True)
    (run / "run.json").write_text(json.dumps({"config": {"data": ["/elsewhere/pets"]}}))
    result = runner.invoke(app, ["bench", str(run), "--threads", "1", "--runs", "3", "--warmup", "1",
                                 "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["rows"] and all(r["status"] == "ok" and r["latency_ms"]["p50"] > 0 for r in doc["rows"])
    note = one_line(" ".join(doc["notes"]))
    assert "was trained on /elsewhere/pets, which is not on this machine" in note and "--data" in note, note


@pytest.mark.slow
def test_the_keras_path_of_predict_prints_no_tensorflow_start_up_lines(tmp_path):
    keras = pytest.importorskip("keras")
    import cv2
    import numpy as np

    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs)).save(tmp_path / "m.keras")
    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40, 3), 128, np.uint8))
    result = _edgeseg("predict", str(tmp_path / "a.png"), "--model", str(tmp_path / "m.keras"), "--out",
                      str(tmp_path / "out"), env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0, result.stderr
    for line in ("absl::", "oneDNN", "cuda", "cuInit", "TensorFlow binary is optimized"):
        assert line not in result.stderr, result.stderr


def test_piped_output_has_no_blank_first_line_and_no_hard_wraps(tmp_path):
    import cv2
    import numpy as np

    deep = tmp_path / ("a-folder-with-a-long-name-" * 6)
    deep.mkdir()
    for i in range(2):
        cv2.imwrite(str(deep / f"p{i}.png"), np.full((40, 40, 3), 100, np.uint8))
    result = _edgeseg("predict", str(deep / "p0.png"), str(deep / "p1.png"), "--out", str(deep / "out"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(deep / "out" / "p0_grayscale-bg.png"), lines  # a `while read f` loop gets the files
    result = _edgeseg("webcam", "--source", str(deep / "p0.png"), "--output", str(deep / "out" / "o.mp4"),
                      "--no-window")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "o.mp4" in result.stdout, result.stdout


def test_remove_bg_with_a_colour_says_the_pngs_are_opaque_and_help_names_the_green(tmp_path):
    import cv2
    import numpy as np

    from edgeseg.runtime.effects import KEY_COLOR, KEY_HEX

    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 40, 3), 100, np.uint8))
    result = _edgeseg("predict", str(tmp_path / "a.png"), "--effect", "remove-bg", "--background", "#00FF00",
                      "--out", str(tmp_path / "out"))
    assert result.returncode == 0 and "no transparency" in one_line(result.stderr), result.stderr
    assert KEY_HEX == "#40B100" and KEY_COLOR == (0x00, 0xB1, 0x40)
    help_text = one_line(_edgeseg("webcam", "--help", env={**__import__("os").environ, "COLUMNS": "200"}).stdout)
    assert f"chroma green {KEY_HEX}" in help_text


@pytest.mark.parametrize("command", ["webcam", "predict", "evaluate"])
def test_help_at_80_columns_splits_no_choice_mid_word(command):
    import os
    import re

    from edgeseg.runtime.effects import Effect

    text = _edgeseg(command, "--help", env={**os.environ, "COLUMNS": "80"}).stdout
    assert not re.search(r"<[a-z-]+\|", text), text  # no <a|b|c> metavar to break
    cells = " ".join(line.strip("│ ") for line in text.splitlines())
    words = set(re.findall(r"[a-z]+(?:-[a-z]+)*", cells))
    if command != "evaluate":
        assert {e.value for e in Effect} <= words, {e.value for e in Effect} - words
    assert {"guided", "bilinear"} <= words


def test_a_wildcard_stream_prints_the_machines_addresses(monkeypatch):
    from edgeseg.runtime import server as server_mod

    assert "0.0.0.0" not in server_mod.machine_addresses() and "127.0.0.1" not in server_mod.machine_addresses()
    monkeypatch.setattr(server_mod, "machine_addresses", lambda: ["192.0.2.7", "198.51.100.3"])
    server = server_mod.MjpegServer("0.0.0.0", 0, token="t0k")
    try:
        port = server.httpd.server_address[1]
        assert server.urls == [f"http://192.0.2.7:{port}/?token=t0k", f"http://198.51.100.3:{port}/?token=t0k"]
    finally:
        server.httpd.server_close()
    loopback = server_mod.MjpegServer("127.0.0.1", 0)
    try:
        assert loopback.urls == [f"http://127.0.0.1:{loopback.httpd.server_address[1]}/"]
    finally:
        loopback.httpd.server_close()


def test_the_full_token_url_goes_only_to_a_terminal(capsys, monkeypatch):
    from edgeseg.runtime.pipeline import _announce

    _announce("http://192.0.2.7:8080/?token=secret")  # pytest's stderr is no terminal: a log file, say
    err = capsys.readouterr().err
    assert "secret" not in err and "?token=…" in err and "only on a terminal" in err


def test_the_bench_table_explains_x_floor_and_how_to_get_accuracy():
    result = runner.invoke(app, ["bench", "edge", "--threads", "1", "--warmup", "0", "--runs", "2"])
    text = one_line(result.output)
    assert result.exit_code == 0, text
    assert "x floor: p50 over the time" in text and "below 1 is faster" in text
    assert "No accuracy was measured: pass --data DATASET" in text


@pytest.mark.parametrize("args, option", [
    (["predict", "x.png", "--threshold", "nan"], "--threshold"),
    (["predict", "x.png", "--softness", "nan"], "--softness"),
    (["webcam", "--smoothing", "nan"], "--smoothing"),
    (["webcam", "--stream-fps", "inf"], "--stream-fps"),
    (["webcam", "--stream-fps", "nan"], "--stream-fps"),
    (["predict", "x.png", "--threads", "2147483648"], "--threads"),
    (["train", "--alpha", "inf"], "--alpha"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--dropout", "nan"], "--dropout"),
    (["train", "--val-fraction", "nan"], "--val-fraction"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--seed", "100000000000000000000"], "--seed"),
    (["train", "--bn-refresh-batches", "100000000000000000000"], "--bn-refresh-batches"),
    (["export", "run", "--batch-size", "100000000000000000000"], "--batch-size"),
    (["bench", "edge", "--min-seconds", "inf"], "--min-seconds"),
    (["bench", "edge", "--runs", "100000000000000000000"], "--runs"),
    (["bench", "edge", "--warmup", "100000000000000000000"], "--warmup"),
    (["bench", "edge", "--threads", "2147483648"], "--threads"),
    (["label", "photos", "--out", "set", "--min-fg", "nan"], "--min-fg"),
    (["label", "photos", "--out", "set", "--border-px", "100000"], "--border-px"),
])
def test_numbers_are_finite_and_in_range_or_exit_2_naming_the_option(args, option):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    assert option in one_line(result.output), result.output


@pytest.mark.parametrize("args, option", [
    (["webcam", "--output-kind", "logit"], "--output-kind"),
    (["webcam", "--input-range", "0-2"], "--input-range"),
    (["predict", "x.png", "--output-kind", "logit"], "--output-kind"),
])
def test_third_party_model_choices_are_command_line_errors(args, option):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and option in one_line(result.output), result.output


def test_an_input_range_choice_reaches_the_model(tmp_path):
    from edgeseg.runtime.model_info import INPUT_RANGES, InputRange, _parse_range

    assert _parse_range(InputRange.SIGNED) == _parse_range("-1-1") == (-1.0, 1.0)
    assert set(INPUT_RANGES) == {r.value for r in InputRange}


def _terminal():
    buffer = io.StringIO()
    return buffer, Console(file=buffer, force_terminal=True, width=120)


def test_slow_work_shows_its_status_on_a_terminal_and_quick_work_stays_silent():
    buffer, console = _terminal()
    with status("compiling things", after=0.05, console=console):
        time.sleep(0.5)
    assert "compiling things" in buffer.getvalue()
    buffer, console = _terminal()
    with status("compiling things", after=5, console=console):
        pass
    assert buffer.getvalue() == ""
    piped = io.StringIO()
    with status("compiling things", after=0.05, console=Console(file=piped, force_terminal=False)):
        time.sleep(0.2)
    assert piped.getvalue() == ""


def test_what_a_command_prints_on_stdout_under_a_status_stays_on_stdout(capsys):
    buffer, console = _terminal()
    with status("compiling things", after=0.01, console=console):
        time.sleep(0.2)
        print('{"json": 1}')
    assert capsys.readouterr().out == '{"json": 1}\n' and "json" not in buffer.getvalue()


def test_the_fused_paths_first_compilation_is_announced(monkeypatch):
    # ~13 s on a 2-core x86 CPU the first time edgeseg runs: silence looked like a hang
    pytest.importorskip("numba")
    from edgeseg.runtime import composite

    announced, real = [], composite.status
    monkeypatch.setattr(composite, "status", lambda message: announced.append(message) or real(message))
    composite.Compositor(1).close()
    assert announced == [composite.COMPILING] and "numba caches" in composite.COMPILING


def test_predict_to_an_image_file_name_writes_that_file_not_a_folder_of_that_name(tmp_path):
    # `edgeseg predict photo.jpg --out cutout.jpg` made a folder named cutout.jpg, with the result inside it
    import cv2
    import numpy as np

    photo = np.full((40, 60, 3), 100, np.uint8)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), photo)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "out.jpg")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.jpg").is_file() and cv2.imread(str(tmp_path / "out.jpg")).shape == (40, 60, 3)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--effect", "remove-bg",
                                 "--out", str(tmp_path / "cut.webp")])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "cut.webp"), cv2.IMREAD_UNCHANGED).shape == (40, 60, 4)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                 "--out", str(tmp_path / "two.png")])
    assert result.exit_code == 2 and "2 images" in one_line(result.output) and "folder" in one_line(result.output)
    assert not (tmp_path / "two.png").exists()
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--effect", "remove-bg",
                                 "--out", str(tmp_path / "cut.jpg")])  # JPEG would drop the transparency silently
    assert result.exit_code == 2 and "transparency" in one_line(result.output), result.output
    assert not (tmp_path / "cut.jpg").exists()
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "a.png")])
    assert result.exit_code == 2 and "would replace an input" in one_line(result.output)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "a.gif")])
    assert result.exit_code == 2 and "predict writes .jpg, .jpeg, .png" in one_line(result.output), result.output
    assert not (tmp_path / "a.gif").exists()  # it made a folder "a.gif" and said "1 image written to a.gif"
    (tmp_path / "shots.png").mkdir()  # a folder that happens to be named like an image stays a folder
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--out", str(tmp_path / "shots.png")])
    assert result.exit_code == 0 and (tmp_path / "shots.png" / "a_grayscale-bg.png").is_file(), result.output


@pytest.mark.parametrize(("args", "hint"), [
    (["evaluate", "--model", "edge", "--data", "pets"], "edgeseg evaluate takes the model as an argument"),
    (["bench", "run", "--model", "edge"], "edgeseg bench run takes the models as arguments"),
])
def test_an_argument_given_as_an_option_is_named_as_such(args, hint):
    # predict and webcam take --model; `edgeseg evaluate --model edge` said "No such option: --model (Possible
    # options: --help)"
    result = _edgeseg(*args)
    assert result.returncode == 2 and hint in one_line(result.stderr), result.stderr
    assert "Possible options" not in result.stderr


def test_report_titles_count_one_image_as_one_image():
    from types import SimpleNamespace

    from edgeseg.cli.tables import export_table

    report = SimpleNamespace(source="run/model.keras", keras_mean_iou=0.5, keras_mask={"pet_iou": 0.6}, eval_images=1,
                             artifacts=[], subject="pet")
    assert export_table(report).title.endswith("0.6000, 1 image)")  # it said "1 images"


@pytest.fixture(params=["with TensorFlow", "without TensorFlow"])
def either_install(request, monkeypatch):
    """The full install, and the runtime-only one (no TensorFlow)."""
    if request.param == "without TensorFlow":
        request.getfixturevalue("without_tensorflow")


def test_exporting_a_shipped_model_says_it_ships_exported(either_install):
    # without TensorFlow it said to install the training stack, which then said the model ships exported
    result = runner.invoke(app, ["export", "edge"])
    text = one_line(result.output)
    assert result.exit_code == 2 and "shipped model" in text and "already exported" in text, text
    assert "unet_mobilenetv2_edge_int8.tflite" in text, text


def test_exporting_a_folder_that_is_no_run_says_what_it_lacks(tmp_path, either_install):
    result = runner.invoke(app, ["export", str(tmp_path)])
    text = one_line(result.output)
    assert result.exit_code == 2 and "is not an edgeseg run" in text and "model.keras" in text, text


def test_blur_bg_takes_a_blur_strength_and_other_effects_refuse_it(tmp_path):
    # blur-bg's blur was fixed (21 px) with no option: a video call's "slight blur" or "strong blur" could not be had
    import cv2
    import numpy as np

    photo = tmp_path / "noise.png"
    cv2.imwrite(str(photo), cv2.resize(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8),
                                       (320, 240), interpolation=cv2.INTER_NEAREST))
    detail = {}
    for blur in ("5", "101"):
        out = tmp_path / f"blur{blur}.png"
        result = runner.invoke(app, ["predict", str(photo), "--effect", "blur-bg", "--blur", blur, "--out", str(out)])
        assert result.exit_code == 0, result.output
        detail[blur] = cv2.Laplacian(cv2.imread(str(out), cv2.IMREAD_GRAYSCALE), cv2.CV_32F).var()
    assert detail["101"] < 0.5 * detail["5"], detail  # the stronger blur leaves less detail
    for args in (["--effect", "grayscale-bg", "--blur", "31"], ["--effect", "blur-bg", "--blur", "1"],
                 ["--effect", "blur-bg", "--blur", "100000"]):
        result = runner.invoke(app, ["predict", str(photo), *args, "--out", str(tmp_path / "x.png")])
        assert result.exit_code == 2 and "--blur" in one_line(result.output), (args, result.output)


def test_evaluate_names_its_split_as_the_command_line_does(tmp_path):
    # the table's title said "(Split.TEST, 3 images, runtime mask)": an enum's name, not the --split choice
    from tests.helpers import write_oxford

    data = write_oxford(tmp_path / "pets", n_trainval=2, n_test=3, size=64)
    result = runner.invoke(app, ["evaluate", "edge", "--data", str(data)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "(test split, 3 images, runtime mask)" in one_line(result.output), result.output


def test_every_choice_prints_as_the_command_line_spells_it():
    from enum import Enum

    from edgeseg.choice import Choice
    from edgeseg.data import Split
    from edgeseg.runtime.effects import Effect

    assert f"{Split.TEST}" == str(Split.TEST) == "test" and f"{Effect.BLUR_BG:>9}" == "  blur-bg"
    assert f"{Effect.BLUR_BG!r}" == "<Effect.BLUR_BG: 'blur-bg'>"  # the repr stays the enum's: for debugging
    import edgeseg.cli  # noqa: F401  (every command's choices)
    import edgeseg.trainer  # noqa: F401

    def subclasses(cls):
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    enums = {c for c in subclasses(Enum) if c.__module__.startswith("edgeseg")}
    assert enums and all(issubclass(c, Choice) for c in enums), [c for c in enums if not issubclass(c, Choice)]


@pytest.mark.parametrize("args", [["--token", "abc"], ["--no-token"], ["--stream-fps", "5"], ["--max-clients", "3"]])
def test_stream_server_options_without_serve_are_refused(tmp_path, args):
    # they were ignored without a word: no server ran, and nothing said why
    photo = tmp_path / "a.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(photo), np.zeros((48, 64, 3), np.uint8))
    result = runner.invoke(app, ["webcam", "--source", str(photo), "--output", str(tmp_path / "o.mp4"), *args])
    text = one_line(result.output)
    assert result.exit_code == 2 and args[0] in text and "--serve" in text, text
    assert not (tmp_path / "o.mp4").exists()


def test_tables_on_an_80_column_terminal_cut_no_number():
    # on an 80-column terminal (SSH to a Raspberry Pi) the bench table's 18 columns were squeezed to "…" in every
    # cell, and the export table cut its numbers ("0.90…"): wide tables are now shown in parts, names repeated
    from types import SimpleNamespace

    from edgeseg.benchmarks.report import load_results
    from edgeseg.cli.tables import bench_table, export_table, stage_table

    result = load_results("tests/data/bench_schema_v1.json")
    row = result["rows"][0]
    row.update(model="unet_mobilenetv2_edge160 tflite int8", subject="pet", pet_iou=0.9281, fg_iou_256=0.8812,
               latency_ms={**row["latency_ms"], "p95": 23.5, "p99.9": 31.25, "cpu_percent": 187.0},
               pipeline_stage_ms={"preprocess": 0.21, "inference": 19.5, "postprocess": 0.33, "effect": 0.27},
               pipeline_ms={**row["pipeline_ms"], "p99.9": 44.44, "cpu_percent": 150.0}, frame_size=[1280, 720],
               effect="blur-bg")
    artifact = SimpleNamespace(path="export/unet_mobilenetv2_edge160_int8.tflite", name="", passed=False,
                               failures=["agreement 0.9712 < 0.98"], size_mb=2.33, agreement=0.9712,
                               max_abs_prob_diff=0.1234, mean_abs_prob_diff=0.0123, mean_iou=0.9001,
                               delta_miou_points=-0.31, mask={"pet_iou": 0.9102, "boundary_f": 0.5103})
    report = SimpleNamespace(source="runs/pets/model.keras", keras_mean_iou=0.9, keras_mask={"pet_iou": 0.91},
                             eval_images=148, artifacts=[artifact], subject="pet")
    console = Console(width=80, record=True, color_system=None)
    for renderable in (bench_table(result), stage_table(result), export_table(report)):
        console.print(renderable)
    text = console.export_text()
    assert "…" not in text, text
    assert max(map(len, text.splitlines())) <= 80
    for number in ("20.00", "23.50", "31.25", "187", "0.928", "0.881", "3.30", "120", "41.7", "0.21", "19.50",
                   "44.44", "2.33", "97.1200%", "1.2e-01", "1.2e-02", "0.9001", "-0.31", "0.9102", "0.5103"):
        assert number in text, (number, text)
    assert text.count("x floor: p50 over the time") == 1  # the caption once, under the last part
    assert "pi5: Cortex-A76 (4 cores)" in text  # no flags recorded: not "(4 cores; )"


def test_the_readmes_python_example_runs_as_written(monkeypatch):
    # the library took only a file path ("model edge not found"), and its names lived in six modules
    import re

    import cv2

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    frames = [np.full((48, 64, 3), 90, np.uint8), np.full((48, 64, 3), 160, np.uint8)]
    shown = []

    class Camera:  # no camera here: two frames, then the end
        def __init__(self, index):
            assert index == 0

        def read(self):
            return (True, frames.pop(0)) if frames else (False, None)

    monkeypatch.setattr(cv2, "VideoCapture", Camera)
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: -1)
    exec(compile(example, "README.md", "exec"), {})
    assert len(shown) == 2 and all(image.shape == (48, 64, 3) for image in shown)


@pytest.mark.parametrize("args, named", [
    (["predict", "", "--out", "{tmp}/out"], "an argument"),  # read every image of the working directory
    (["predict", "{tmp}/a.png", "--out", ""], "--out"),  # wrote into the working directory
    (["predict", "{tmp}/a.png", "--out="], "--out"),
    (["webcam", "--source", ""], "--source"),  # played the working directory's images
    (["webcam", "--source", "{tmp}/a.png", "--serve", ""], "--serve"),  # served nothing, without a word
    (["label", "{tmp}", "--out", ""], "--out"),  # labelled into the working directory
    (["train", "--data", "{tmp}", "--out", ""], "--out"),
    (["evaluate", "edge", "--data", ""], "--data"),  # ". is not a dataset folder"
    (["bench", ""], "an argument"),  # "error:  is a folder but not an edgeseg run"
    (["bench", "report", "--json", ""], "an argument"),  # --json is a flag: "" is the argument after it
])
def test_an_empty_value_is_refused_by_what_it_names_not_taken_for_the_working_directory(tmp_path, monkeypatch,
                                                                                        args, named):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    work = tmp_path / "work"
    work.mkdir()
    cv2.imwrite(str(work / "photo.png"), np.full((30, 30, 3), 90, np.uint8))
    monkeypatch.chdir(work)
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    output = one_line(result.output)
    assert result.exit_code == 2 and f"{named} is empty" in output, output
    assert sorted(p.name for p in work.iterdir()) == ["photo.png"]  # nothing written there


@pytest.mark.parametrize("args", [
    ["export", "runs/pets", "--out", "{tmp}/model.tflite"],  # made a folder model.tflite holding the artifacts
    ["train", "--data", "{tmp}", "--out", "{tmp}/pets.keras"],  # made a run folder pets.keras
    ["label", "{tmp}", "--out", "{tmp}/labels.onnx"],
    ["predict", "{tmp}/a.png", "--out", "{tmp}/cutout.tflite"],
])
def test_a_folder_named_as_a_model_file_is_refused(tmp_path, args):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2 and "is named as a model file, but --out is a folder" in one_line(result.output), \
        result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("args, option, says", [
    (["--calib-data", "photos/"], "--calib-data", "it is for int8 artifacts: add --int8"),
    (["--calib-size", "50"], "--calib-size", "it is for int8 artifacts: add --int8"),
    (["--force"], "--force", "it is for int8 artifacts: add --int8"),
    (["--fp16", "--uint8-output"], "--uint8-output", "it is for int8 artifacts: add --int8"),
    (["--int8", "--formats", "onnx", "--uint8-output"], "--uint8-output", "it is for int8 TFLite artifacts"),
])
def test_export_refuses_int8_options_it_would_ignore(args, option, says):
    # exporting fp32 with --calib-data or --force, or onnx with --uint8-output, ignored them without a word
    result = runner.invoke(app, ["export", "runs/pets", *args])
    assert result.exit_code == 2 and f"Invalid value for {option}: {says}" in one_line(result.output), result.output


@pytest.mark.parametrize("args, says", [
    (["predict", "{tmp}/a.png", "--model", "nosuch"], "no shipped model 'nosuch'"),
    (["predict", "{tmp}/a.png", "--model", "{tmp}/nosuch.tflite"], "nosuch.tflite not found"),
    (["predict", "{tmp}/a.png", "--model", "{tmp}/a.png"], "a.png: unknown model type '.png'"),
    (["predict", "{tmp}/a.png", "--model", "{tmp}"], "is a folder but not an edgeseg run"),
    (["webcam", "--source", "{tmp}/nosuch.mp4"], "source '{tmp}/nosuch.mp4' not found"),
    (["evaluate", "nosuch", "--data", "{tmp}"], "no shipped model 'nosuch'"),
    (["evaluate", "edge", "--data", "{tmp}"], "is not a dataset folder"),
    (["evaluate", "edge", "--data", "{tmp}/a.png"], "a.png is a file; expected a dataset folder"),
    (["bench", "nosuch"], "no shipped model 'nosuch'"),
    (["bench", "{tmp}/a.png"], "a.png: unknown model type '.png'"),
    (["bench", "report", "{tmp}/nosuch.json"], "nosuch.json not found: expected a benchmark result file"),
    (["bench", "report", "{tmp}"], "is a folder: expected a benchmark result file"),
    (["label", "{tmp}/nosuch", "--out", "{tmp}/labels"], "image folder {tmp}/nosuch not found"),
    (["label", "{tmp}", "--out", "{tmp}/labels", "--model", "{tmp}/nosuch.onnx"], "nosuch.onnx not found"),
    (["export", "{tmp}/nosuch.keras"], "nosuch.keras not found"),
    (["export", "{tmp}/a.png"], "a.png is not a Keras model file (.png); export reads a training run folder"),
    (["export", "{tmp}"], "is not an edgeseg run"),
    (["export", "edge"], "is a shipped model"),
])
def test_a_name_that_names_nothing_exits_2_in_every_command(tmp_path, args, says):
    # A missing --data exited 2 (a bad command line) but a missing model, source, image folder or results file 1,
    # as if something had failed while working: a script could not tell a typo from a failure.
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2 and says.replace("{tmp}", str(tmp_path)) in one_line(result.output), result.output


def test_a_damaged_keras_file_says_so_and_a_failed_export_leaves_no_export_folder(tmp_path):
    # Keras said "File not found: filepath=bad.keras" of a file that was there; and the export/ folder, made before
    # the model loaded, stayed behind empty: the folder then passed for a run ("run folder ... holds no exported
    # model") wherever a model was asked for.
    pytest.importorskip("keras")
    (tmp_path / "bad.keras").write_text("not a model")
    result = runner.invoke(app, ["export", str(tmp_path / "bad.keras")])
    assert result.exit_code == 1 and "bad.keras is not a Keras model: a .keras file is a zip archive and this one is " \
        "not" in one_line(result.output), result.output
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("x")
    (run / "run.json").write_text('{"sources": [{"location": "/elsewhere/pets"}]}')
    result = runner.invoke(app, ["export", str(run)])
    assert result.exit_code == 1 and "not on this machine" in one_line(result.output), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.keras", "run"]
    assert sorted(p.name for p in run.iterdir()) == ["model.keras", "run.json"]


def test_two_exports_into_one_folder_the_second_refused_at_once(tmp_path):
    # each wrote export_report.json from what was there when it began: the last one's report lacked the other's
    # artifacts, which then ran unchecked as far as the report could tell
    import fcntl

    pytest.importorskip("keras")
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("x")
    with open(run / ".export.lock", "w") as f:  # another process holds it (flock locks are per open file)
        f.write("4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        result = runner.invoke(app, ["export", str(run), "--eval-data", str(tmp_path)])
    assert result.exit_code == 1 and "in use by another export (pid 4242)" in one_line(result.output), result.output


@pytest.mark.parametrize("gate, says", [
    ("int8_min_agreement=95", "int8_min_agreement takes a fraction from 0 to 1 (0.95 for 95%), received 95"),
    ("fp32_min_agreement=nan", "fp32_min_agreement takes a fraction from 0 to 1 (0.95 for 95%), received nan"),
    ("fp32_max_abs_prob=-1", "fp32_max_abs_prob takes a fraction from 0 to 1"),
    ("int8_min_delta_miou=-500", "int8_min_delta_miou takes points of mIoU from -100 to 100, received -500"),
])
def test_a_gate_it_cannot_take_is_refused(gate, says):
    # int8_min_agreement=95 (meant as 95%) failed every int8 artifact; nan passed every one
    result = runner.invoke(app, ["export", "runs/pets", "--int8", "--gate", gate])
    assert result.exit_code == 2 and f"Invalid value for --gate: {says}" in one_line(result.output), result.output
