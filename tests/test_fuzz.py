"""Damaged models and images, made by the test: every one is a clear error or a result, never a crash.

The cases run in a child process, so that a crash in native code (a segfault) fails the test instead of
ending the test run; each case must end in a result or in one of edgeseg's own errors.
"""

import json
import subprocess
import sys
import textwrap

import pytest

FUZZ = textwrap.dedent('''
    import json, sys
    import numpy as np
    import cv2
    from edgeseg.contract import MetadataError
    from edgeseg.runtime.backends import BackendError
    from edgeseg.runtime.image_io import ImageError, read_image
    from edgeseg.runtime.model_info import UnsupportedModelError
    from edgeseg.runtime.packaged import packaged_model
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    folder, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)
    expected = (BackendError, UnsupportedModelError, MetadataError, ImageError, ValueError)
    counts = {"ok": 0, "refused": 0}

    def damaged(data: bytes) -> bytes:
        kind = rng.integers(4)
        if kind == 0:  # cut short
            return data[: int(rng.integers(0, len(data)))]
        b = bytearray(data)
        if kind == 1:  # bytes flipped in the header, where offsets and sizes live
            for i in rng.integers(0, min(len(b), 4096), 8):
                b[i] ^= int(rng.integers(1, 256))
        elif kind == 2:  # bytes flipped anywhere
            for i in rng.integers(0, len(b), 64):
                b[i] ^= int(rng.integers(1, 256))
        else:  # a block zeroed
            at = int(rng.integers(0, len(b)))
            b[at:at + 1024] = bytes(len(b[at:at + 1024]))
        return bytes(b)

    frame = np.full((48, 64, 3), 120, np.uint8)
    for name in ("unet_mobilenetv2_edge_int8.tflite", "unet_mobilenetv2_edge_int8.onnx"):
        original = packaged_model(name).read_bytes()
        for i in range(int(sys.argv[3])):
            path = f"{folder}/m{i}" + name[name.rindex("."):]
            open(path, "wb").write(damaged(original))
            try:
                with Segmenter(SegmenterOptions(path)) as seg:
                    seg.segment(frame)
                counts["ok"] += 1
            except expected:
                counts["refused"] += 1
    for ext in (".png", ".jpg", ".bmp", ".webp", ".tif", ".gif"):
        ok, buf = cv2.imencode(ext, rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
        if not ok:
            continue
        for i in range(40):
            path = f"{folder}/i{i}{ext}"
            open(path, "wb").write(damaged(buf.tobytes()))
            try:
                image = read_image(path)
                assert image.ndim == 3 and image.shape[2] == 3 and image.size <= 50_000_000 * 3
                counts["ok"] += 1
            except ImageError:
                counts["refused"] += 1
    print(json.dumps(counts))
''')


@pytest.mark.parametrize("seed", [0, 1])
def test_damaged_models_and_images_are_refused_or_read_never_crash(tmp_path, seed):
    proc = subprocess.run([sys.executable, "-c", FUZZ, str(tmp_path), str(seed), "40"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]  # a crash or an unexpected exception type fails here
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["refused"] > 0 and sum(counts.values()) > 300, counts
    assert "EP Error" not in proc.stdout  # onnxruntime's own fallback banner stays out of the output


def test_a_model_that_crashes_litert_is_an_error_naming_it(tmp_path, monkeypatch, shipped):
    import shutil

    from edgeseg.runtime.backends import BackendError, probe
    from edgeseg.runtime.backends.litert import LiteRTBackend

    model = tmp_path / "damaged.tflite"
    shutil.copy(shipped("tflite"), model)
    model.write_bytes(model.read_bytes() + b"not shipped")  # another checksum: not one edgeseg shipped
    monkeypatch.setattr(probe, "PROBE", "import os; os.abort()")  # what LiteRT does on some damaged files
    with pytest.raises(BackendError, match=r"LiteRT crashes \(signal SIGABRT\) when it runs .*damaged.tflite"):
        LiteRTBackend(model)
    monkeypatch.undo()
    LiteRTBackend(model).close()  # the real probe passes it, and remembers it
    assert probe.cache_file().is_file()
