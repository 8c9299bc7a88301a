"""edgeseg label: a teacher the test builds (brightness as the foreground score) labels a tiny folder."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.data import load_folder
from tests.helpers import heic_header, one_line, synthetic_sample

onnx = pytest.importorskip("onnx")
runner = CliRunner()
SIZE = 32


def brightness_teacher(path, invert: bool = False):
    """A 2-class ONNX 'segmenter' without metadata (so it takes 0-1 floats): foreground score =
    (mean channel value - 0.5) * 25, negated if ``invert``."""
    from onnx import TensorProto, helper

    sign = -25.0 if invert else 25.0
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[3], keepdims=1),
        helper.make_node("Sub", ["m", "half"], ["d"]),
        helper.make_node("Mul", ["d", "s"], ["fg"]),
        helper.make_node("Neg", ["fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["y"], axis=3),
    ]
    graph = helper.make_graph(
        nodes, "teacher", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, SIZE, SIZE, 2])],
        [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]), helper.make_tensor("s", TensorProto.FLOAT, [], [sign])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        image, _ = synthetic_sample(rng, 96)
        cv2.imwrite(str(folder / f"pet{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(folder / "empty.png"), np.full((96, 96, 3), 20, np.uint8))  # no foreground
    cv2.imwrite(str(folder / "full.png"), np.full((96, 96, 3), 230, np.uint8))  # all foreground
    split = np.full((96, 96, 3), 20, np.uint8)
    cv2.circle(split, (24, 48), 14, (230, 230, 230), -1)
    cv2.circle(split, (72, 48), 14, (230, 230, 230), -1)
    cv2.imwrite(str(folder / "two.png"), split)  # two equal blobs: fragmented
    cv2.imwrite(str(folder / "broken.jpg"), np.zeros((4, 4, 3), np.uint8))
    (folder / "broken.jpg").write_bytes((folder / "broken.jpg").read_bytes()[:20])  # truncated
    return folder


def test_label_writes_an_oxford_dataset_train_can_read_and_resumes(photos, tmp_path):
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    out = tmp_path / "dataset"
    args = ["label", str(photos), "--out", str(out), "--model", str(teacher), "--foreground", "1", "--flip",
            "--scales", "0.75,1", "--border-px", "5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(report["kept"]) == [f"pet{i}" for i in range(6)]
    assert set(report["rejected"]) == {"empty", "full", "two", "broken"}
    assert report["reasons"] == {"too little foreground": 1, "too much foreground": 1, "fragmented": 1,
                                 "unreadable": 1}
    trimap = cv2.imread(str(out / "annotations" / "trimaps" / "pet0.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(trimap)) == {1, 2, 3} and trimap.shape == (96, 96)
    band = np.count_nonzero(trimap == 3) / np.count_nonzero(trimap != 2)
    assert 0.1 < band < 0.9  # a band around the outline, not everything
    assert (out / "images" / "pet0.jpg").read_bytes() == (photos / "pet0.jpg").read_bytes()  # original bytes
    lists = [(out / "annotations" / f).read_text().split() for f in ("trainval.txt", "test.txt")]
    assert sum(len(words) for words in lists) == 6 * 4
    train = load_folder(out, "train", 32, val_fraction=0.0, progress=False)  # what edgeseg train reads
    assert len(train) == len(lists[0]) // 4 and set(np.unique(train.masks)) == {0, 1, 2}

    stamp = (out / "annotations" / "trimaps" / "pet0.png").stat().st_mtime_ns
    again = json.loads(runner.invoke(app, args).stdout)  # the same command again
    assert again["resumed"] == 9 and sorted(again["kept"]) == sorted(report["kept"])  # the unreadable one retried
    assert again["reasons"]["unreadable"] == 1
    assert (out / "annotations" / "trimaps" / "pet0.png").stat().st_mtime_ns == stamp  # not redone


def test_a_rerun_tries_unreadable_images_again(photos, tmp_path):
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    args = ["label", str(photos), "--out", str(tmp_path / "dataset"), "--model", str(teacher), "--foreground", "1",
            "--json"]
    assert json.loads(runner.invoke(app, args).stdout)["rejected"]["broken"].startswith("unreadable")
    (photos / "broken.jpg").write_bytes((photos / "pet0.jpg").read_bytes())  # the user restores the file
    again = json.loads(runner.invoke(app, args).stdout)
    assert "broken" in again["kept"] and "unreadable" not in again["reasons"]


def test_label_masks_layout_and_two_teacher_agreement(photos, tmp_path):
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    contrary = brightness_teacher(tmp_path / "contrary.onnx", invert=True)
    out = tmp_path / "masks"
    result = runner.invoke(app, ["label", str(photos), "--out", str(out), "--model", str(teacher), "--foreground", "1",
                                 "--layout", "masks", "--json"])
    assert result.exit_code == 0, result.output
    mask = cv2.imread(str(out / "masks" / "pet1.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) == {0, 255}
    # its split lists, as the Oxford layout's: without them a tenth was drawn anew whenever photos were added
    kept = json.loads(result.stdout)["kept"]
    listed = {split: [line.split()[0] for line in (out / f"{split}.txt").read_text().splitlines()]
              for split in ("trainval", "test")}
    assert sorted(listed["trainval"] + listed["test"]) == sorted(kept) and listed["trainval"]
    read = [load_folder(out, split, 32, progress=False).names for split in ("train", "val")]
    assert sorted(read[0] + read[1]) == listed["trainval"]  # the reader takes its split from them
    result = runner.invoke(app, ["label", str(photos), "--out", str(tmp_path / "agree"), "--model", str(teacher),
                                 "--foreground", "1", "--teacher2", str(contrary), "--teacher2-foreground", "1",
                                 "--json"])
    report = json.loads(result.stdout)
    assert not report["kept"] and report["reasons"]["teachers disagree"] >= 6


def test_a_rerun_with_other_settings_is_refused_not_mixed_in(photos, tmp_path):
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    out = tmp_path / "dataset"
    args = ["label", str(photos), "--out", str(out), "--model", str(teacher), "--foreground", "1"]
    assert runner.invoke(app, args).exit_code == 0
    summary = (out / "label_summary.json").read_text()
    result = runner.invoke(app, [*args, "--min-fg", "0.2", "--flip"])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "holds labels made with other settings (flip False -> True, min_fg 0.03 -> 0.2)" in output
    assert (out / "label_summary.json").read_text() == summary  # which still describes what is there


def test_a_rerun_with_other_foreground_classes_is_refused_not_mixed_in(photos, tmp_path):
    # the teachers' foreground classes were not among the settings compared: labels of class 0 were added to class 1's
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    out = tmp_path / "dataset"
    args = ["label", str(photos), "--out", str(out), "--model", str(teacher)]
    assert runner.invoke(app, [*args, "--foreground", "1"]).exit_code == 0
    result = runner.invoke(app, [*args, "--foreground", "0"])
    assert result.exit_code == 1 and "holds labels made with other settings (foreground" in one_line(result.output)
    assert runner.invoke(app, [*args, "--foreground", "1:1"]).exit_code == 0  # the same classes resume


def test_another_photo_folder_into_the_same_dataset_is_refused_not_mixed_in(photos, tmp_path):
    # labelling more/ into the dataset of photos/ dropped photos/' labels from its lists, and more/'s pet0.jpg (another
    # photo) counted as "decided by an earlier run": photos/' pet0 and its mask stood in for it
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    out = tmp_path / "dataset"
    more = tmp_path / "more"
    more.mkdir()
    cv2.imwrite(str(more / "pet0.jpg"), np.full((96, 96, 3), 200, np.uint8))
    args = ["--out", str(out), "--model", str(teacher), "--foreground", "1"]
    assert runner.invoke(app, ["label", str(photos), *args]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["label", str(more), *args])
    output = one_line(result.output)
    assert result.exit_code == 1 and f"{out} holds the labels of {photos}" in output, output
    assert f"--data {out} --data" in output  # how to train on both
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert runner.invoke(app, ["label", str(photos), *args]).exit_code == 0  # its own folder still resumes


@pytest.mark.parametrize("args, message", [
    # the option was named as the library's setting ("min_fg"), or not at all ("Invalid value: scales must ...")
    (["--min-fg", "0.9", "--max-fg", "0.1"], "Invalid value for --min-fg: the least foreground (0.9) must be below "
                                             "the most (--max-fg 0.1)"),
    (["--scales", "1,abc"], "Invalid value for --scales: '1,abc': expected numbers, e.g. 0.75,1,1.25"),
    (["--scales", "0"], "Invalid value for --scales: scales must lie in (0, 4.0], received 0.0"),
    (["--scales", "1,100"], "Invalid value for --scales: scales must lie in (0, 4.0], received 1.0, 100.0"),
    (["--scales", "1,0.75,1.0"], "Invalid value for --scales: 1.0 is named twice"),  # ran twice, weighed double
    (["--teacher2-foreground", "1"], "Invalid value for --teacher2-foreground: it is for a second teacher"),
    (["--min-agreement", "0.9"], "Invalid value for --min-agreement: it is for a second teacher: give --teacher2"),
    (["--layout", "masks", "--border-px", "9"], "Invalid value for --border-px: it is the width of the Oxford "
                                                "layout's trimap band"),  # was ignored without a word
])
def test_label_refuses_settings_that_cannot_work(photos, tmp_path, args, message):
    result = runner.invoke(app, ["label", str(photos), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in one_line(result.output), result.output


def test_settings_are_on_disk_before_the_first_label(photos, tmp_path):
    import subprocess
    import sys

    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    out = tmp_path / "dataset"
    # killed (no clean-up runs, as with kill -9) right after its first label, long before the first summary save
    code = ("import os, sys\nfrom edgeseg.data import label\nreal = label._write\n"
            "def write(*a):\n    real(*a)\n    os._exit(9)\nlabel._write = write\n"
            "from edgeseg.cli import main\nsys.argv = ['edgeseg', *sys.argv[1:]]\nmain()\n")
    args = ["label", str(photos), "--out", str(out), "--model", str(teacher), "--foreground", "1"]
    killed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9 and len(list((out / "annotations" / "trimaps").glob("*.png"))) == 1
    result = runner.invoke(app, [*args, "--min-fg", "0.2"])  # other settings: refused, not mixed in
    assert result.exit_code == 1 and "min_fg 0.03 -> 0.2" in " ".join(result.output.split())
    assert runner.invoke(app, args).exit_code == 0  # the same settings resume


def test_heic_photos_are_listed_as_unreadable_not_left_out(photos, tmp_path):
    # a folder of phone photos: its HEIC ones were left out of label's report without a word
    (photos / "IMG_0001.HEIC").write_bytes(heic_header())
    (photos / "pet0.heic").write_bytes(heic_header())  # converted to pet0.jpg beside it: that copy is labelled
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    result = runner.invoke(app, ["label", str(photos), "--out", str(tmp_path / "dataset"), "--model", str(teacher),
                                 "--foreground", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "HEIC photo" in report["rejected"]["IMG_0001"] and "convert it to JPEG" in report["rejected"]["IMG_0001"]
    assert "pet0" in report["kept"] and report["reasons"]["unreadable"] == 2  # IMG_0001 and broken


def test_two_labellings_into_one_dataset_the_second_refused_at_once(photos, tmp_path):
    # each wrote the summary and lists of its own decisions over the other's: the last one's stood
    import fcntl

    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    with open(tmp_path / ".data.lock", "w") as f:  # another process holds it (flock locks are per open file)
        f.write("4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        result = runner.invoke(app, ["label", str(photos), "--out", str(tmp_path / "data"), "--model", str(teacher)])
    assert result.exit_code == 1 and "in use by another labelling (pid 4242)" in one_line(result.output), result.output
    assert not (tmp_path / "data").exists()
    result = runner.invoke(app, ["label", str(photos), "--out", str(tmp_path / "data"), "--model", str(teacher)])
    assert result.exit_code == 0, result.output  # released: labelled, and no lock left behind
    assert not list(tmp_path.glob(".*.lock"))


def test_the_summary_says_what_happened_and_leaves_out_what_did_not(photos, tmp_path):
    # it said "rejected 0 (none); 0 decided by an earlier run" on every first run
    teacher = brightness_teacher(tmp_path / "teacher.onnx")
    args = ["label", str(photos), "--out", str(tmp_path / "dataset"), "--model", str(teacher)]
    first = one_line(runner.invoke(app, args).output)
    assert "kept 6, rejected 4 (" in first and "decided by an earlier run" not in first, first
    again = one_line(runner.invoke(app, args).output)
    assert "9 decided by an earlier run" in again, again
    for name in ("empty.png", "full.png", "two.png", "broken.jpg"):
        (photos / name).unlink()
    clean = one_line(runner.invoke(app, [*args[:3], str(tmp_path / "clean"), *args[4:]]).output)
    assert "kept 6, rejected none; dataset:" in clean, clean


def test_a_teacher_is_scored_with_the_settings_it_labels_with(tmp_path):
    """evaluate takes a third-party model's settings as label, predict and webcam do: its foreground classes and,
    without metadata, its input range and output kind (it had none: a PASCAL teacher was scored on every
    non-background class)."""
    from tests.helpers import write_mask_folder

    teacher, data = brightness_teacher(tmp_path / "teacher.onnx"), write_mask_folder(tmp_path / "cats", n=12)

    def iou(*args):
        result = runner.invoke(app, ["evaluate", str(teacher), "--data", str(data), "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    bright, dark, raw = iou(), iou("--foreground", "0"), iou("--input-range", "0-255")
    assert bright["mask"]["pet_iou"] > 0.7  # the bright ellipse is class 1, the default foreground
    assert dark["mask"]["pet_iou"] < 0.1 and dark["settings"]["foreground"] == {"0": 1.0}
    assert raw["mask"]["pet_iou"] < 0.6 and raw["settings"]["input_range"] == "0-255"  # 0-255: all of it bright
    result = runner.invoke(app, ["evaluate", str(teacher), "--data", str(data), "--foreground", "2"])
    assert result.exit_code == 2 and "--foreground" in one_line(result.output)


def test_photos_sharing_a_name_are_named(photos, tmp_path):
    # it said "photos has images that share a name with different suffixes", leaving the user to find them
    cv2.imwrite(str(photos / "pet1.png"), np.full((96, 96, 3), 200, np.uint8))
    result = runner.invoke(app, ["label", str(photos), "--out", str(tmp_path / "o"), "--model", str(
        brightness_teacher(tmp_path / "teacher.onnx")), "--foreground", "1"])
    assert result.exit_code == 1 and "pet1.jpg and pet1.png share the name pet1" in one_line(result.output)


@pytest.mark.parametrize("layout", ["oxford", "masks"])
def test_photos_named_with_spaces_or_bytes_that_are_no_utf8_are_labelled_or_said_why(photos, tmp_path, layout):
    # "IMG 0001.jpg" was listed as "IMG 0001 0 0 0", which the readers took for the photo "IMG": training and
    # evaluating the dataset said "names in trainval.txt have no image, e.g. 'IMG'"; and a name that is no UTF-8
    # ended the labelling with "'utf-8' codec can't encode character '\udcff'"
    import os

    (photos / "pet0.jpg").rename(photos / "IMG 0001.jpg")
    os.rename(photos / "pet1.jpg", os.fsencode(photos) + b"/pet\xff.jpg")
    out = tmp_path / "dataset"
    result = runner.invoke(app, ["label", str(photos), "--out", str(out), "--model", str(
        brightness_teacher(tmp_path / "teacher.onnx")), "--foreground", "1", "--layout", layout, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "IMG 0001" in report["kept"]
    assert report["rejected"]["pet\udcff"] == ("unreadable: pet\\xff.jpg is not a valid UTF-8 name, which the split "
                                               "lists need: rename it")
    train = load_folder(out, "train", 32, val_fraction=0.0, progress=False)  # what edgeseg train reads
    assert sorted(train.names) == sorted(report["kept"])  # these few all hash into the training split
