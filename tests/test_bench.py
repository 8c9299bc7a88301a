"""edgeseg bench on a tiny exported model; report merging; schema versions."""

import json
import os
import re
import shutil

import pytest

from edgeseg.benchmarks.report import ResultsError, accuracy_axis, load_results, markdown, merged, write_report
from edgeseg.benchmarks.runner import BenchOptions, collect_models, run_bench
from tests.helpers import SHARED  # noqa: F401
from pathlib import Path
from typer.testing import CliRunner
from edgeseg.cli import app
from tests.helpers import damaged_copy_of_the_default_model, one_line

runner = CliRunner()

pytest.importorskip("keras")
pytestmark = pytest.mark.slow  # trains or exports a model
OLD_RESULT = "tests/data/bench_schema_v1.json"
COLUMNS = {"model", "path", "format", "precision", "threads", "size_mb", "status", "load_ms", "first_inference_ms",
           "latency_ms", "fps", "pipeline_ms", "pipeline_fps", "miou", "fg_iou", "fg_iou_256", "pet_iou", "boundary_f",
           "peak_rss_mb", "macs", "subject",
           "floor_ms",
           "x_floor"}


@pytest.fixture(scope="module")
def bench_result(exported, trained_run, oxford_session_dir, tmp_path_factory):
    broken = tmp_path_factory.mktemp("broken") / "broken.tflite"
    broken.write_bytes(b"TFL3 not really a model")
    # --foreground is for third-party models: it must not override the exported models' own classes
    options = BenchOptions(threads=[1, 2], warmup=1, runs=3, data=str(oxford_session_dir), eval_size=6,
                           foreground={8: 1.0, 12: 1.0})
    return run_bench([str(trained_run), str(broken)], options, progress=False)


def test_every_model_gets_every_column(bench_result):
    rows = [r for r in bench_result["rows"] if r["status"] == "ok"]
    assert [(r["model"].split(" ", 1)[1], r["threads"]) for r in rows] == [
        (name, t) for name in ("keras fp32", "tflite fp16", "tflite fp32", "tflite int8", "onnx fp32", "onnx int8")
        for t in (1, 2)]
    for one, two in zip(rows[::2], rows[1::2]):  # accuracy is measured once per model, shared by thread counts
        assert (one["miou"], one["fg_iou"]) == (two["miou"], two["fg_iou"])
    for row in rows:
        assert COLUMNS <= set(row), COLUMNS - set(row)
        assert set(row["latency_ms"]) == {"mean", "p50", "p90", "p95", "p99", "p99.9", "n", "cpu_percent"}
        assert row["latency_ms"]["n"] >= 3 and row["latency_ms"]["cpu_percent"] >= 0
        assert 0 <= row["miou"] <= 1 and 0 <= row["fg_iou"] <= 1 and 0 <= row["fg_iou_256"] <= 1 and row["x_floor"] > 0
        assert row["subject"] == "pet"  # the trimap model's first class
    assert len({r["macs"] for r in rows}) == 1  # the same network in every format
    device = bench_result["device"]
    assert {"cpu", "cores", "os", "python", "libraries", "edgeseg", "commit", "date"} <= set(device)
    assert bench_result["schema_version"] == 1 and bench_result["peak_gflops"]["1"] > 0


def test_a_failing_backend_is_reported_and_the_run_continues(bench_result):
    failed = bench_result["rows"][-1]
    assert failed["model"] == "broken.tflite" and failed["status"] == "failed" and failed["error"]
    assert sum(r["status"] == "ok" for r in bench_result["rows"]) == 12


def test_export_verdicts_become_status(exported, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    report = json.loads((run / "export" / "export_report.json").read_text())
    report["artifacts"][0]["passed"] = False
    (run / "export" / "export_report.json").write_text(json.dumps(report))
    entries = {e.label.split(" ", 1)[1]: e for e in collect_models([str(run)])}
    assert entries["tflite fp32"].export_passed is False and entries["onnx int8"].export_passed is True
    with pytest.raises(FileNotFoundError, match="not found"):
        collect_models([str(tmp_path / "nope")])


def test_report_merges_devices_deterministically(bench_result, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(bench_result))
    other = json.loads(json.dumps(bench_result))
    other["device"]["name"] = "second-device"
    b.write_text(json.dumps(other))
    written = write_report([a, b, OLD_RESULT], tmp_path / "r1")
    assert [p.name for p in written] == ["README.md", "latency.png", "accuracy.png"]
    text = (tmp_path / "r1" / "README.md").read_text()
    for device in (bench_result["device"]["name"], "second-device", "pi5"):
        assert f"| {device} |" in text
    write_report([b, OLD_RESULT, a], tmp_path / "r2")  # order of the inputs does not matter
    for name in ("README.md", "latency.png", "accuracy.png"):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name


def test_schema_versions(tmp_path):
    old = load_results(OLD_RESULT)  # a file written by schema 1 stays readable
    assert "| pi5 | x tflite int8 | 4 | ok | 20.00 |" in markdown([old])
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**old, "schema_version": 99}))
    with pytest.raises(ResultsError, match=re.escape("schema_version 99; this edgeseg reads schema_version 1")):
        load_results(future)  # said "reads (1,)"
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ResultsError, match="not a readable benchmark result"):
        load_results(tmp_path / "junk.json")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # not text: said only "'utf-8' codec can't decode"
    with pytest.raises(ResultsError, match="photo.png is not a readable benchmark result"):
        load_results(tmp_path / "photo.png")
    for doc, says in (([], "is a JSON list, not a benchmark result"),
                      ({"model": "edge", "mask": {}}, "is not a benchmark result (edgeseg bench --out): it has no "
                                                      "schema_version"),  # an evaluate --out: "schema_version None"
                      ({"schema_version": 1, "rows": []}, "lacks device, peak_gflops"),
                      ({**old, "rows": [{"model": "x"}]}, "lacks rows[].status, rows[].threads"),
                      ({**old, "device": {"name": "pi"}}, "lacks device.cores, device.cpu")):
        (tmp_path / "other.json").write_text(json.dumps(doc))  # valid JSON, not what edgeseg bench --out writes
        with pytest.raises(ResultsError, match=re.escape(f"other.json {says}")):
            load_results(tmp_path / "other.json")


def test_a_report_without_accuracy_draws_no_empty_chart_and_names_threads(tmp_path):
    doc = load_results(OLD_RESULT)
    for row in doc["rows"]:
        for key in ("miou", "fg_iou", "fg_iou_256", "pet_iou"):
            row.pop(key, None)
    (tmp_path / "speed.json").write_text(json.dumps(doc))
    written = write_report([tmp_path / "speed.json"], tmp_path / "r")
    assert [p.name for p in written] == ["README.md", "latency.png"]
    assert "accuracy" not in (tmp_path / "r" / "README.md").read_text()


def test_repeated_runs_of_a_device_are_one_bar_at_their_median_with_their_range(tmp_path, monkeypatch):
    # the latency chart drew every run's bar at the last run's p50, under identical legend entries
    pytest.importorskip("matplotlib")
    from edgeseg.benchmarks import report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append(fig))
    paths = []
    for i, (device, p50) in enumerate((("pi5", 20.0), ("pi5", 60.0), ("pi5", 30.0), ("jetson", 5.0))):
        doc = load_results(OLD_RESULT)
        doc["device"]["name"] = device
        doc["rows"][0]["latency_ms"]["p50"] = p50
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(doc))
    report.charts([load_results(p) for p in paths], tmp_path)
    ax = figures[0].axes[0]
    assert sorted(ax.get_legend_handles_labels()[1]) == ["jetson (4 threads)", "pi5 (4 threads, median of 3 runs)"]
    assert sorted(bar.get_width() for bar in ax.patches) == [5.0, 30.0]  # pi5's median, not its last run
    spans = [sorted(x for x, _ in segment) for lines in ax.collections for segment in lines.get_segments()]
    assert spans == [[20.0, 60.0]]  # pi5's runs span 20-60 ms; jetson's one run has no span


def test_repeated_runs_of_a_device_are_one_table_row_at_their_medians(tmp_path):
    # the table listed every run's rows one after another (49 rows for 7 runs of 7 models), unnamed
    docs = []
    for device, p50, commit in (("pi5", 20.0, "aaa"), ("pi5", 60.0, "bbb"), ("pi5", 30.0, "ccc"), ("jetson", 5.0, "ddd")):
        doc = load_results(OLD_RESULT)
        doc["device"].update(name=device, commit=commit)
        doc["rows"][0]["latency_ms"]["p50"] = p50
        doc["peak_gflops"] = {"1": 1.0, "4": 3.0}
        docs.append(doc)
    text = markdown(docs)
    rows = [line for line in text.splitlines() if line.startswith("| pi5 | x tflite int8 |")]
    assert len(rows) == 1 and rows[0].startswith("| pi5 | x tflite int8 | 4 | ok | 30.00 |"), rows  # the median
    assert rows[0].endswith("| 3 |") and "| jetson | x tflite int8 | 4 | ok | 5.00 |" in text  # runs: 3
    devices = [line for line in text.splitlines() if line.startswith("- **pi5**")]
    assert len(devices) == 1 and "3 runs" in devices[0] and all(c in devices[0] for c in ("aaa", "bbb", "ccc"))
    assert "peak fp32 GFLOP/s: 1.00 on 1 thread, 3.00 on 4 threads" in devices[0], devices  # was a Python dict


def test_bench_report_prints_the_table_and_writes_files_only_with_out(tmp_path, monkeypatch):
    # it wrote files only, and without --out it said "Missing option '--out'"
    result_file = Path(OLD_RESULT).resolve()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["bench", "report", str(result_file)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("| device | model |") and "| pi5 | x tflite int8 | 4 | ok | 20.00 |" in result.stdout
    assert not list(tmp_path.iterdir())


def test_bench_report_prints_json_a_script_can_read(tmp_path):
    # every other command took --json; bench report said "No such option: --json"
    docs = []
    for i, (device, p50) in enumerate((("pi5", 20.0), ("pi5", 60.0), ("pi5", 30.0), ("jetson", 5.0))):
        doc = load_results(OLD_RESULT)
        doc["device"].update(name=device, commit=f"c{i}")
        doc["rows"][0]["latency_ms"]["p50"] = p50
        docs.append(tmp_path / f"{i}.json")
        docs[-1].write_text(json.dumps(doc))
    result = runner.invoke(app, ["bench", "report", *map(str, docs), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pi5 = next(r for r in report["rows"] if r["device"] == "pi5")
    assert pi5["model"] == "x tflite int8" and pi5["threads"] == 4 and pi5["p50_ms"] == 30.0 and pi5["runs"] == 3
    assert [run["commit"] for run in report["devices"]["pi5"]["runs"]] == ["c0", "c1", "c2"]
    assert report == merged([load_results(p) for p in docs])  # what the Markdown table shows, as data
    assert "| pi5 | x tflite int8 | 4 | ok | 30.00 |" in markdown([load_results(p) for p in docs])


def test_bench_report_out_a_markdown_file_writes_that_file_with_its_charts_beside_it(tmp_path):
    # --out report.md made a folder named report.md holding README.md
    pytest.importorskip("matplotlib")
    result = runner.invoke(app, ["bench", "report", str(Path(OLD_RESULT).resolve()), "--out", str(tmp_path / "report.md")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-accuracy.png", "report-latency.png", "report.md"]
    page = (tmp_path / "report.md").read_text()
    assert "| pi5 | x tflite int8 | 4 | ok | 20.00 |" in page and "(report-latency.png)" in page
    for name in ("report.html", "report.json"):  # each made a folder of that name
        result = runner.invoke(app, ["bench", "report", str(Path(OLD_RESULT).resolve()), "--out", str(tmp_path / name)])
        assert result.exit_code == 2 and "name a folder or a .md file" in one_line(result.output), result.output
        assert not (tmp_path / name).exists()


def test_the_accuracy_chart_plots_the_headline_pet_iou_where_measured(bench_result):
    rows = [r for r in bench_result["rows"] if r["status"] == "ok"]
    assert accuracy_axis(rows)[0] == "pet_iou"  # fg IoU counts the border band: it rewards halos
    assert accuracy_axis(load_results(OLD_RESULT)["rows"])[0] == "fg_iou"  # files from before pet IoU
    assert accuracy_axis([{"model": "x", "threads": 1}]) is None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the worker through /proc (Linux)")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_stopped_bench_takes_its_worker_with_it(tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "results.json"
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", "bench", "edge", "--threads", "1", "--runs", "10000000",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def workers() -> list[int]:  # the timing processes this bench started
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and b"edgeseg.benchmarks.worker" in (entry / "cmdline").read_bytes() \
                        and f"PPid:\t{proc.pid}\n" in (entry / "status").read_text():
                    found.append(int(entry.name))
            except OSError:
                pass
        return found

    deadline = time.monotonic() + 60
    while not (started := workers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started, "the worker never started"
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=60)
    try:
        if sig == "SIGKILL":  # no clean-up runs in the bench: the worker notices its parent is gone
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 128 + getattr(signal, sig) and f"stopped by {sig}" in stderr, stderr[-2000:]
        for pid in started:  # a worker left behind would time 10 million runs on a core nobody is watching
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes() \
                    and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert time.monotonic() < deadline, f"worker {pid} outlived the bench"
        assert not out.exists()
    finally:
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_bench_finishes_every_row_then_exits_1_naming_the_models_that_failed(tmp_path):
    import json

    damaged = damaged_copy_of_the_default_model(tmp_path)
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["bench", "edge", str(damaged), "--threads", "1", "--warmup", "0", "--runs", "2",
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    rows = json.loads(out.read_text())["rows"]  # written all the same, the good row measured
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]  # edge's .tflite and .onnx, the damaged file
    assert rows[2]["error"].startswith("BackendError: LiteRT cannot load")  # the message, not a traceback's path
    assert "1 of 3 rows failed: damaged.tflite" in " ".join(result.output.split())


@pytest.mark.parametrize("args, message", [
    (["--threads", "a"], "'a': expected thread counts from 1 to 256, e.g. 1,2,4"),
    (["--threads", "2,0"], "'2,0': expected thread counts from 1 to 256, e.g. 1,2,4"),
    (["--threads", "1,2,1"], "'1,2,1' names 1 twice"),  # each model was measured twice on one thread
    (["--out", "{tmp}/report.md"], "report.md: the results are written as JSON; name the file *.json"),  # JSON in report.md
    (["--data", "{tmp}/nowhere"], "nowhere' not found: give 'oxford_iiit_pet' (tfds) or an existing folder"),
])
def test_bench_refuses_bad_options_before_measuring_anything(tmp_path, args, message):
    out = tmp_path / "results.json"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["bench", "edge", "--runs", "1", "--out", str(out), *args])
    assert result.exit_code == 2 and message in one_line(result.output), result.output
    assert not out.exists() and not (tmp_path / "report.md").exists()


def test_the_live_step_is_measured_at_the_frame_size_and_effect_asked_for(shipped, tmp_path):
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["bench", "edge", "--threads", "1", "--warmup", "1", "--runs", "3",
                                 "--frame-size", "320x240", "--effect", "blur-bg", "--frame-path", "opencv",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Live step at 320x240, blur-bg, opencv frame path" in result.output
    row = json.loads(out.read_text())["rows"][0]
    assert row["frame_size"] == [320, 240] and row["effect"] == "blur-bg" and row["frame_path"] == "opencv"
    assert set(row["pipeline_stage_ms"]) == {"preprocess", "inference", "postprocess", "effect"}
    assert {"p95", "p99.9", "cpu_percent"} <= set(row["pipeline_ms"])
    for bad in ("320", "0x240", "axb"):
        result = runner.invoke(app, ["bench", "edge", "--frame-size", bad])
        assert result.exit_code == 2 and "--frame-size" in result.output
    tiny = tmp_path / "tiny.json"  # a frame smaller than the 4 x 4 blocks the test picture is drawn from
    result = runner.invoke(app, ["bench", "edge", "--threads", "1", "--warmup", "1", "--runs", "2", "--frame-size", "3x2",
                                 "--effect", "blur-bg", "--out", str(tiny)])
    assert result.exit_code == 0 and json.loads(tiny.read_text())["rows"][0]["frame_size"] == [3, 2], result.output
