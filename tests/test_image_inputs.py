"""Still images read safely: sizes from every header before decoding, special files left out, real files kept."""

import os
import struct

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.runtime.image_io import ImageError, header_size, image_files, read_image
from tests.helpers import heic_header, one_line, png_claiming

runner = CliRunner()


@pytest.mark.parametrize("ext", [".gif", ".avif", ".ppm", ".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_every_format_opencv_writes_has_its_size_read_from_the_header(ext):
    ok, buf = cv2.imencode(ext, np.zeros((8, 10, 3), np.uint8))
    if not ok:
        pytest.skip(f"this OpenCV cannot write {ext}")
    assert header_size(buf.tobytes()) == (10, 8)


def test_a_tiny_gif_claiming_900_mp_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.jpg"  # the name does not matter: the content decides the format
    bomb.write_bytes(b"GIF89a" + struct.pack("<HH", 30000, 30000) + b"\x00" * 25)
    with pytest.raises(ImageError, match=r"30000x30000 \(900,000,000 pixels\), over the limit of 50,000,000"):
        read_image(bomb)


def test_jpeg_2000_and_heif_headers_are_read():
    jp2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x00\x00\x2djp2h\x00\x00\x00\x16ihdr" + struct.pack(">II", 8000, 10000)
    assert header_size(jp2) == (10000, 8000)
    codestream = b"\xff\x4f\xff\x51\x00\x29\x00\x00" + struct.pack(">IIII", 10000, 8000, 0, 0)
    assert header_size(codestream) == (10000, 8000)
    heif = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 12 + b"\x00\x00\x00\x14ispe\x00\x00\x00\x00" + struct.pack(">II", 10000, 8000)
    assert header_size(heif) == (10000, 8000)


def test_an_image_whose_size_cannot_be_read_is_not_decoded(tmp_path):
    unknown = tmp_path / "x.png"
    unknown.write_bytes(b"#?RADIANCE\n" + b"\x00" * 100)
    with pytest.raises(ImageError, match="no PNG, JPEG, BMP, WebP, TIFF, GIF, JPEG 2000, AVIF or PNM header"):
        read_image(unknown)


def test_a_motion_photo_with_data_after_the_jpeg_is_read(tmp_path):
    ok, jpeg = cv2.imencode(".jpg", np.full((20, 30, 3), 120, np.uint8))
    photo = tmp_path / "motion.jpg"
    photo.write_bytes(jpeg.tobytes() + b"\x00\x00\x00\x18ftypmp42" + os.urandom(500))  # a phone's JPEG + MP4
    assert read_image(photo).shape == (20, 30, 3)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    with pytest.raises(ImageError, match="truncated JPEG"):
        read_image(cut)


def test_an_os2_bitmap_is_read_with_its_16_bit_sizes(tmp_path):
    w, h = 3, 2
    row = (b"\x10\x20\x30" * w).ljust(12, b"\x00")  # 24-bit rows padded to 4 bytes
    header = b"BM" + struct.pack("<IHHI", 14 + 12 + len(row) * h, 0, 0, 26) + struct.pack("<IHHHH", 12, w, h, 1, 24)
    bmp = tmp_path / "os2.bmp"
    bmp.write_bytes(header + row * h)
    assert header_size(bmp.read_bytes()) == (3, 2)
    assert read_image(bmp).shape == (2, 3, 3)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_pipes_and_devices_in_a_folder_are_left_out(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    os.mkfifo(photos / "pipe.png")  # reading it would block for ever
    (photos / "zero.png").symlink_to("/dev/zero")  # reading it would fill memory
    assert image_files(photos) == [photos / "a.png"]
    result = runner.invoke(app, ["predict", str(photos), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_grayscale-bg.png"]
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(photos / "pipe.png")  # named directly (a list file, say): refused, not read


def test_a_folder_given_for_an_image_is_called_a_folder(tmp_path):
    # 'predict x.png --background photos/' said "photos is not a regular file (a pipe, a device or a link to one)"
    cv2.imwrite(str(tmp_path / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--effect", "replace-bg", "--background",
                                 str(tmp_path), "--out", str(tmp_path / "b.png")])
    assert result.exit_code == 2 and f"{tmp_path} is a folder, not a file" in one_line(result.output), result.output


def test_an_output_over_an_input_is_refused(tmp_path):
    from tests.helpers import write_video

    inout = tmp_path / "inout"
    inout.mkdir()
    cv2.imwrite(str(inout / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    mine = np.full((30, 30, 3), 7, np.uint8)  # the user's own photo, named like an output
    cv2.imwrite(str(inout / "a_grayscale-bg.png"), mine)
    result = runner.invoke(app, ["predict", str(inout / "*.png"), "--out", str(inout)])
    assert result.exit_code == 2 and "would replace an input" in one_line(result.output)
    assert np.array_equal(cv2.imread(str(inout / "a_grayscale-bg.png")), mine)
    video = write_video(tmp_path / "clip.avi", frames=3)
    before = video.read_bytes()
    result = runner.invoke(app, ["webcam", "--source", str(video), "--output", str(tmp_path / "." / "clip.avi")])
    assert result.exit_code == 2 and "is the source itself" in one_line(result.output)
    assert video.read_bytes() == before


def test_results_never_go_into_the_folder_of_input_photos(tmp_path):
    # run again, predict read its own results as photos: a_grayscale-bg_grayscale-bg.png, and so on each run
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((30, 30, 3), 90, np.uint8))
    for out in (photos, tmp_path / "." / "photos"):
        result = runner.invoke(app, ["predict", str(photos), "--out", str(out)])
        assert result.exit_code == 2 and "is the folder of input images" in one_line(result.output), result.output
        assert [p.name for p in photos.iterdir()] == ["a.png"]
    result = runner.invoke(app, ["predict", str(photos / "a.png"), "--out", str(photos)])  # one photo named: as asked
    assert result.exit_code == 0 and (photos / "a_grayscale-bg.png").is_file(), result.output


def test_what_an_rgba_photo_hides_stays_hidden_in_the_cutout(tmp_path):
    photo = np.full((60, 80, 4), 200, np.uint8)
    photo[..., 3] = 255
    photo[:, :40, 3] = 0  # the left half is transparent in the source
    cv2.imwrite(str(tmp_path / "a.png"), photo)
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--effect", "remove-bg", "--softness", "0.5",
                                 "--threshold", "0.5", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    cutout = cv2.imread(str(tmp_path / "out" / "a_remove-bg.png"), cv2.IMREAD_UNCHANGED)
    assert cutout.shape == (60, 80, 4) and not cutout[:, :40, 3].any()
    assert cutout[:, 40:, 3].any()  # the model's raw probability shows through where the source is opaque
    assert read_image(tmp_path / "a.png").shape == (60, 80, 3)  # BGR unless transparency is asked for
    assert read_image(tmp_path / "a.png", alpha=True).shape == (60, 80, 4)


@pytest.mark.parametrize("feather", ["100000", "1073741824", "-1"])
def test_a_feather_beyond_any_frame_is_a_command_line_error(tmp_path, feather):
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--feather", feather, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--feather" in one_line(result.output)


def test_a_feather_wider_than_the_frame_is_capped_to_it(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30, 3), 90, np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path / "a.png"), "--feather", "255", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output


def test_video_frames_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    from edgeseg.runtime.sources import SourceError, open_source
    from tests.helpers import write_video

    video = write_video(tmp_path / "big.avi", frames=2, size=(400, 300))
    with pytest.raises(SourceError, match=r"400x300 \(120,000 pixels\), over the limit of 100,000 pixels; raise it"):
        open_source(str(video), max_pixels=100_000)
    result = runner.invoke(app, ["webcam", "--source", str(video), "--output", str(tmp_path / "o.mp4"),
                                 "--max-pixels", "100000"])
    assert result.exit_code == 1 and "over the limit of 100,000 pixels" in one_line(result.output)


def test_a_frame_too_large_for_the_encoder_says_so(tmp_path):
    from edgeseg.runtime.outputs import VideoOutput

    out = VideoOutput(tmp_path / "wide.mp4", 10)
    with pytest.raises(OSError, match=r"frames of 8200x480 are larger than video encoders take \(8192 px"):
        out.write(np.zeros((480, 8200, 3), np.uint8))
    out.close(keep=False)


def test_odd_sized_frames_are_cropped_to_even_and_it_is_said(tmp_path, caplog):
    """Every encoder takes even sizes only; OpenCV's writer dropped the last row and column without a word."""
    import cv2

    from edgeseg.runtime.outputs import VideoOutput

    frame = np.random.default_rng(0).integers(0, 256, (49, 65, 3), dtype=np.uint8)
    out = VideoOutput(tmp_path / "odd.avi", 10)
    with caplog.at_level("WARNING", logger="edgeseg"):
        for _ in range(3):
            out.write(frame)
    out.close()
    assert "frames of 65x49 are stored as 64x48, without their last column and row" in caplog.text
    stored = cv2.VideoCapture(str(tmp_path / "odd.avi"))
    ok, first = stored.read()
    assert ok and first.shape == (48, 64, 3)
    small = VideoOutput(tmp_path / "dot.mp4", 10)
    # it said "frames of 0x4 (cropped to even sizes)" of frames of 1x5
    with pytest.raises(OSError, match=r"frames of 1x5 are smaller than video encoders take \(2x2 at least\)"):
        small.write(np.zeros((5, 1, 3), np.uint8))
    small.close(keep=False)


def test_an_estimated_frame_count_is_no_promise(tmp_path):
    from edgeseg.runtime.sources import SourceError, VideoFileSource
    from tests.helpers import write_video

    video = write_video(tmp_path / "clip.avi", frames=6)
    stream = tmp_path / "clip.ts"  # MPEG-TS has no index: its count is duration x rate, wrong for variable rates
    stream.write_bytes(video.read_bytes())  # FFmpeg reads the content, whatever the name
    source = VideoFileSource(stream)
    source.expected = 12  # the container's estimate
    assert len(list(source)) == 6  # every frame decodes: not "corrupt"
    indexed = VideoFileSource(video)
    indexed.expected = 12  # an AVI's index promises its count: ending at half is damage
    with pytest.raises(SourceError, match="ends after 6 of its 12 frames"):
        list(indexed)


def test_file_names_that_are_not_utf8_never_crash(tmp_path):
    import shutil
    import subprocess
    import sys

    from edgeseg.runtime.packaged import packaged_model

    root = os.fsencode(tmp_path)
    folder = root + b"/photos"
    os.mkdir(folder)
    ok, png = cv2.imencode(".png", np.full((30, 40, 3), 90, np.uint8))
    for name in (b"caf\xe9.png", b"plain.png"):
        with open(folder + b"/" + name, "wb") as f:
            f.write(png.tobytes())
    # in a subprocess: the crash was a segfault of the whole process (exit 139)
    out = root + b"/out"
    predict = subprocess.run([sys.executable, "-m", "edgeseg", "predict", folder, "--out", out],
                             capture_output=True, timeout=120)
    assert predict.returncode == 0, predict.stderr
    assert sorted(os.listdir(out)) == [b"caf\xe9_grayscale-bg.png", b"plain_grayscale-bg.png"]
    video = subprocess.run([sys.executable, "-m", "edgeseg", "webcam", "--source", folder + b"/plain.png",
                            "--output", root + b"/caf\xe9.mp4"], capture_output=True, timeout=120)
    assert video.returncode == 2 and b"not valid UTF-8" in video.stderr, video.stderr
    assert not [n for n in os.listdir(root) if n.startswith(b".")]  # no hidden temporary file left
    onnx = root + b"/m\xe9.onnx"
    shutil.copy(os.fsencode(packaged_model("unet_mobilenetv2_edge_int8.onnx")), onnx)
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    with Segmenter(SegmenterOptions(os.fsdecode(onnx))) as seg:
        assert seg.segment(np.full((30, 40, 3), 90, np.uint8)).shape == (30, 40)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB file system (tmpfs; needs root, as CI and the developers' machines have), unmounted after."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_stops_predict_at_the_first_failed_write_and_lists_the_rest(tmp_path, small_disk):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # noise compresses badly: each PNG is ~0.4 MB
        cv2.imwrite(str(photos / f"p{i}.png"), rng.integers(0, 255, (400, 400, 3), dtype=np.uint8))
    result = runner.invoke(app, ["predict", str(photos), "--effect", "none", "--out", str(small_disk)])
    text = one_line(result.output)
    assert result.exit_code == 1 and "No space left on device" in text, text
    written = sorted(p.name for p in small_disk.iterdir() if not p.name.startswith("."))
    assert written and all(f"{w}" in text for w in written)  # what was written is listed
    assert "not tried: writing" in text and "of 6 inputs failed" in text and "6 of 6" not in text
    assert not [p for p in small_disk.iterdir() if p.name.startswith(".")]  # no partial file


def test_a_full_disk_stops_the_recording_with_the_os_reason(tmp_path, small_disk):
    from tests.helpers import write_video

    video = write_video(tmp_path / "long.avi", frames=400, size=(320, 240))
    result = runner.invoke(app, ["webcam", "--source", str(video), "--effect", "none", "--output",
                                 str(small_disk / "out.avi")])
    text = one_line(result.output)
    assert result.exit_code == 1 and "output failed" in text and "No space left on device" in text, text
    assert "frames written but the file holds" not in text
    assert not list(small_disk.iterdir())  # neither a partial recording nor its temporary file


def test_a_decoder_failure_is_a_per_file_error_and_the_next_photo_is_read(tmp_path, monkeypatch):
    from edgeseg.runtime import image_io

    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.full((30, 30, 3), 90, np.uint8))
    real, calls = cv2.imdecode, []

    def imdecode(buf, flags):  # what OpenCV raises when the decoder's allocation fails
        calls.append(1)
        if len(calls) == 1:
            raise cv2.error("OpenCV(4.x) (-4:Insufficient memory) Failed to allocate")
        return real(buf, flags)

    monkeypatch.setattr(image_io.cv2, "imdecode", imdecode)
    with pytest.raises(ImageError, match=r"a.png could not be decoded \(error: .*Insufficient memory"):
        read_image(tmp_path / "a.png")
    assert read_image(tmp_path / "b.png").shape == (30, 30, 3)


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    from edgeseg.runtime.image_io import ImageError, read_image

    bomb = png_claiming(tmp_path, 20000, 20000)
    with pytest.raises(ImageError, match=r"20000x20000 \(400,000,000 pixels\), over the limit of 50,000,000 pixels"):
        read_image(bomb)
    result = runner.invoke(app, ["predict", str(bomb), "--model", "edge", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "over the limit of 50,000,000 pixels; raise it with --max-pixels" in one_line(result.output)


def test_every_command_that_reads_photos_can_raise_the_pixel_limit_it_names(tmp_path, caplog):
    import json
    import logging

    import cv2

    from edgeseg.data import load_folder
    from tests.helpers import write_oxford

    data = write_oxford(tmp_path / "pets", n_trainval=4, n_test=2)  # train, evaluate, export: no such option
    png_claiming(tmp_path, 20000, 20000).replace(data / "images" / "Pet_0.jpg")
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        load_folder(data, "train", 32, val_fraction=0.0, progress=False)
    assert "over the limit of 50,000,000 pixels" in caplog.text and "--max-pixels" not in caplog.text
    photo = tmp_path / "photos" / "pet.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), np.full((40, 50, 3), 200, np.uint8))  # 2000 pixels
    limit = ["--max-pixels", "1000"]
    webcam = runner.invoke(app, ["webcam", "--source", str(photo), "--output", str(tmp_path / "o.mp4"), *limit])
    assert webcam.exit_code == 1 and "over the limit of 1,000 pixels; raise it with --max-pixels" in one_line(webcam.output)
    label = runner.invoke(app, ["label", str(photo.parent), "--out", str(tmp_path / "set"), *limit, "--json"])
    assert "over the limit of 1,000 pixels" in json.loads(label.stdout)["rejected"]["pet"]


def _tiff_claiming(tmp_path, width, height):
    """A small TIFF (either byte order) whose first directory claims width x height."""
    import struct

    import cv2

    data = bytearray(cv2.imencode(".tif", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    offset = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[offset:offset + 2])[0]):
        entry = offset + 2 + 12 * i
        tag = struct.unpack("<H", data[entry:entry + 2])[0]
        if tag in (256, 257):  # ImageWidth, ImageLength: a LONG now, as large images store them
            data[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, width if tag == 256 else height)
    path = tmp_path / "bomb.tif"
    path.write_bytes(bytes(data))
    return path


def test_tiff_bombs_are_refused_before_decoding(tmp_path):
    import struct

    from edgeseg.runtime.image_io import ImageError, header_size, read_image

    with pytest.raises(ImageError, match=r"30000x20000 \(600,000,000 pixels\), over the limit of 50,000,000 pixels"):
        read_image(_tiff_claiming(tmp_path, 30000, 20000))
    for order, f in ((b"II", "<"), (b"MM", ">")):  # width as a SHORT (left-justified), height as a LONG
        entries = struct.pack(f + "HHIHH", 256, 3, 1, 900, 0) + struct.pack(f + "HHII", 257, 4, 1, 70000)
        assert header_size(order + struct.pack(f + "HIH", 42, 8, 2) + entries + bytes(4)) == (900, 70000)


def test_truncated_jpeg_is_named_as_such(tmp_path):
    import cv2

    from edgeseg.runtime.image_io import ImageError, read_image

    data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg is a truncated JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_empty_and_corrupt_images_are_named_in_one_line_each(tmp_path, capfd):
    import cv2

    from edgeseg.runtime.image_io import ImageError, read_image

    (tmp_path / "empty.jpg").write_bytes(b"")  # a failed download or a full disk leaves these behind
    with pytest.raises(ImageError, match="empty.jpg is empty"):
        read_image(tmp_path / "empty.jpg")
    png = bytearray(cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes())
    png[60] ^= 0xFF  # inside the compressed pixels: libpng fails its checksum while decoding
    (tmp_path / "bad.png").write_bytes(bytes(png))
    tif = cv2.imencode(".tif", np.zeros((50, 50, 3), np.uint8))[1].tobytes()
    (tmp_path / "cut.tif").write_bytes(tif[:100])
    capfd.readouterr()
    inputs = [str(tmp_path / name) for name in ("empty.jpg", "bad.png", "cut.tif")]
    result = runner.invoke(app, ["predict", *inputs, "--model", "edge", "--out", str(tmp_path / "o")])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "empty.jpg is empty" in output and "3 of 3 inputs failed" in output
    native = capfd.readouterr().err  # what libpng, libtiff and OpenCV write around Python's stderr
    assert "libpng" not in native and "TIFF" not in native  # our one line per file says what failed


def test_threads_silencing_native_output_at_once_leave_stderr_and_opencv_logs_as_they_were(monkeypatch):
    import os
    import threading

    import cv2

    from edgeseg import quiet

    monkeypatch.setattr(quiet, "_quiet", True)
    before = os.fstat(2).st_ino, cv2.utils.logging.getLogLevel()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():  # enters first, leaves while b is still inside (the data loader's 4 readers do this)
        with quiet.opencv_silenced():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with quiet.opencv_silenced():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert (os.fstat(2).st_ino, cv2.utils.logging.getLogLevel()) == before


def test_a_float_tiff_is_read_by_every_command_not_only_predict(tmp_path):
    # IMREAD_COLOR decodes no 32-bit float TIFF: the reader without alpha called a valid file corrupt
    path = tmp_path / "scan.tiff"
    cv2.imwrite(str(path), np.dstack([np.full((20, 30), v, np.float32) for v in (0.0, 0.5, 1.0)]))
    for alpha in (False, True):
        image = read_image(path, alpha=alpha)
        assert image.dtype == np.uint8 and image.shape == (20, 30, 3), (alpha, image.dtype, image.shape)
        assert abs(int(image[0, 0, 1]) - 128) <= 1 and image[0, 0, 2] == 255 and image[0, 0, 0] == 0


def test_a_folder_of_tiffs_is_a_folder_of_images(tmp_path):
    # a scanner's or a camera's TIFFs were read when named one by one, but a folder of them "held no images"
    scans = tmp_path / "scans"
    scans.mkdir()
    for name in ("a.tif", "b.TIFF"):
        cv2.imwrite(str(scans / name), np.full((30, 40, 3), 120, np.uint8))
    assert [p.name for p in image_files(scans)] == ["a.tif", "b.TIFF"]
    result = runner.invoke(app, ["predict", str(scans), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_grayscale-bg.png", "b_grayscale-bg.png"]
    result = runner.invoke(app, ["predict", str(scans / "a.tif"), "--effect", "remove-bg",
                                 "--out", str(tmp_path / "cut.tif")])  # TIFF keeps the cutout's transparency
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "cut.tif"), cv2.IMREAD_UNCHANGED).shape == (30, 40, 4)


def test_a_folder_whose_photos_are_in_subfolders_says_how_to_reach_them(tmp_path):
    # "folder photos holds no images" when photos/2024/ held them all
    nested = tmp_path / "photos" / "2024" / "june"
    nested.mkdir(parents=True)
    cv2.imwrite(str(nested / "a.jpg"), np.full((30, 40, 3), 120, np.uint8))
    cv2.imwrite(str(nested.parent / "b.jpg"), np.full((30, 40, 3), 120, np.uint8))
    photos = tmp_path / "photos"
    for args in (["predict", str(photos), "--out", str(tmp_path / "out")],
                 ["webcam", "--source", str(photos), "--no-window"],
                 ["label", str(photos), "--out", str(tmp_path / "labels")]):
        result = runner.invoke(app, args)
        text = one_line(result.output)
        assert result.exit_code != 0 and "holds no images" in text and f"{photos}/**/*" in text, (args, text)
        assert "2024" in text, text  # the subfolder that holds them
    result = runner.invoke(app, ["predict", f"{photos}/**/*.jpg", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output  # ** reaches every depth, as a shell's globstar does
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_grayscale-bg.png", "b_grayscale-bg.png"]
    result = runner.invoke(app, ["predict", f"{photos}/*.png", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and f"{photos}/*.png matches no files" in one_line(result.output), result.output


def test_a_globstar_reaches_each_photo_once_through_folders_not_links_to_them(tmp_path):
    # a link to a parent folder (photos/sub/up -> ..) made photos/**/*.png match each photo 41 times, as Python's
    # glob followed it until the path was too long; a shell's globstar does not follow links to folders
    from edgeseg.runtime.image_io import pattern_files

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / ".thumbs").mkdir()
    for path in (photos / "a.png", photos / "sub" / "b.png", photos / ".thumbs" / "c.png", photos / ".d.png"):
        cv2.imwrite(str(path), np.full((30, 40, 3), 120, np.uint8))
    (photos / "sub" / "up").symlink_to("..")
    (photos / "sub" / "up2").symlink_to("..")  # two loops: the paths through them grow as 2^depth
    (tmp_path / "elsewhere").mkdir()
    cv2.imwrite(str(tmp_path / "elsewhere" / "e.png"), np.full((30, 40, 3), 120, np.uint8))
    (photos / "linked").symlink_to(tmp_path / "elsewhere")
    _, files = pattern_files(f"{photos}/**/*.png")
    assert files == [photos / "a.png", photos / "sub" / "b.png"], files  # hidden ones left out, as by a shell
    _, files = pattern_files(f"{photos}/*/*.png")  # a folder named by a wildcard may be a link: one level only
    assert files == [photos / "linked" / "e.png", photos / "sub" / "b.png"], files
    assert pattern_files(f"{photos}/**")[1] == [photos / "a.png", photos / "sub" / "b.png"]
    assert pattern_files(f"{photos}/sub/up/a.png")[1] == [photos / "sub" / "up" / "a.png"]  # named: followed
    result = runner.invoke(app, ["predict", f"{photos}/**/*.png", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and len(list((tmp_path / "out").iterdir())) == 2, result.output


def _exif(orientation: int) -> bytes:
    """A little-endian EXIF block holding only an orientation tag (274, SHORT)."""
    return b"II*\x00" + struct.pack("<IHHHIHHI", 8, 1, 274, 3, 1, orientation, 0, 0)


def _with_exif(encoded: bytes, ext: str, orientation: int) -> bytes:
    """An encoded JPEG or PNG with an EXIF orientation inserted where cameras and editors put it."""
    exif = _exif(orientation)
    if ext == ".jpg":  # an APP1 segment right after the start of image
        return encoded[:2] + b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(exif)) + b"Exif\x00\x00" + exif + encoded[2:]
    import zlib  # a PNG eXIf chunk right after IHDR

    chunk = b"eXIf" + exif
    return encoded[:33] + struct.pack(">I", len(exif)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + encoded[33:]


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_photos_exif_orientation_is_applied_with_its_transparency_as_without(tmp_path, ext, orientation):
    # predict reads photos with their alpha channel (IMREAD_UNCHANGED), which OpenCV decodes without the EXIF
    # orientation that it applies otherwise: a phone's portrait photo came out of predict lying on its side
    rng = np.random.default_rng(orientation)
    image = cv2.resize(rng.integers(0, 256, (6, 9, 4), dtype=np.uint8), (36, 24), interpolation=cv2.INTER_NEAREST)
    image[..., 3] = image[..., 0] = np.where(np.arange(36) < 12, 255, 60)  # blue as opaque as it is blue
    ok, buf = cv2.imencode(ext, image if ext == ".png" else image[..., :3], [cv2.IMWRITE_JPEG_QUALITY, 100])
    path = tmp_path / f"photo{ext}"
    path.write_bytes(_with_exif(buf.tobytes(), ext, orientation))
    shown = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)  # OpenCV's own orientation
    assert (shown.shape[:2] == (24, 36)) == (orientation <= 4)
    np.testing.assert_array_equal(read_image(path), shown)
    with_alpha = read_image(path, alpha=True)
    np.testing.assert_array_equal(with_alpha[..., :3], shown)
    if ext == ".png":  # the alpha channel turned with the colours
        assert with_alpha.shape[2] == 4
        np.testing.assert_array_equal(with_alpha[..., 3], with_alpha[..., 0])


def test_predict_writes_a_phones_portrait_photo_upright(tmp_path):
    ok, buf = cv2.imencode(".jpg", np.full((24, 36, 3), 128, np.uint8))
    (tmp_path / "portrait.jpg").write_bytes(_with_exif(buf.tobytes(), ".jpg", 6))  # stored landscape, shown portrait
    for effect in ("remove-bg", "grayscale-bg"):
        out = tmp_path / f"{effect}.png"
        result = runner.invoke(app, ["predict", str(tmp_path / "portrait.jpg"), "--effect", effect, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape[:2] == (36, 24), effect


def test_an_iphone_photo_says_it_is_heic_and_how_to_convert_it(tmp_path):
    # "is not a readable image (corrupt, or a format OpenCV cannot decode)" for the iPhone's default format
    (tmp_path / "IMG_0001.HEIC").write_bytes(heic_header())
    with pytest.raises(ImageError, match=r"IMG_0001.HEIC is a HEIC .*iPhone.*convert it to JPEG"):
        read_image(tmp_path / "IMG_0001.HEIC")
    (tmp_path / "camera-roll").mkdir()
    for i in range(3):
        (tmp_path / "camera-roll" / f"IMG_000{i}.HEIC").write_bytes(heic_header())
    result = runner.invoke(app, ["predict", str(tmp_path / "camera-roll"), "--out", str(tmp_path / "out")])
    text = one_line(result.output)
    assert result.exit_code == 1 and "holds no images" in text and "3 HEIC photos" in text and "JPEG" in text, text
    cv2.imwrite(str(tmp_path / "camera-roll" / "shared.jpg"), np.full((30, 40, 3), 90, np.uint8))
    result = runner.invoke(app, ["predict", str(tmp_path / "camera-roll"), "--out", str(tmp_path / "out")])
    text = one_line(result.output)  # beside a JPEG, each HEIC is named rather than left out without a word
    assert result.exit_code == 1 and "1 image written" in text and text.count("is a HEIC photo") == 3, text
