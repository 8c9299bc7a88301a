import json
import os
import re
import shutil
import socket
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow  # trains or exports a model

from edgeseg.errors import SettingError  # noqa: E402
from edgeseg.trainer import train as train_mod  # noqa: E402
from edgeseg.trainer.models import unet_mobilenetv2  # noqa: E402
from edgeseg.trainer.train import TrainConfig, parse_class_weights, parse_img_size, train, validate  # noqa: E402
from edgeseg.cli import app  # noqa: E402
from tests.helpers import interrupted_training, one_line, synthetic_sample, write_mask_folder, write_oxford  # noqa: E402

runner = CliRunner()


def tiny_config(data, out, **kw) -> TrainConfig:
    base = dict(model="conv_deconv", data=data if isinstance(data, list) else str(data), out=str(out), epochs=2, batch_size=8, img_size=32,
                encoder_weights="none", val_fraction=0.2, early_stopping=0)
    return TrainConfig(**{**base, **kw})


def only(by_source: dict):
    """The one source's entry of a per-source report field."""
    assert len(by_source) == 1, by_source
    return next(iter(by_source.values()))


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    rng = np.random.default_rng(0)
    pairs = [synthetic_sample(rng, 64) for _ in range(8)]
    x = np.stack([p[0] for p in pairs]).astype(np.float32)
    y = np.stack([p[1] for p in pairs]).astype(np.int32) - 1
    model = unet_mobilenetv2(64, encoder_weights="none", alpha=0.35)
    train_mod._compile(keras, model, TrainConfig(learning_rate=3e-3), steps_per_epoch=1)
    # Training-mode loss: BatchNorm's moving averages need far more than 15 steps to settle.
    losses = model.fit(x, y, epochs=15, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0]


def test_train_writes_the_run_folder(oxford_session_dir, tmp_path):
    report = train(tiny_config(oxford_session_dir, tmp_path / "run", class_weights="balanced"), progress=False)
    run = tmp_path / "run"
    for name in ("model.keras", "metrics.json", "run.json", "curves.png", "predictions.png", "history.csv"):
        assert (run / name).is_file(), name
    assert any((run / "logs").rglob("*tfevents*"))
    assert report.epochs_run == 2 and report.resumed_from_epoch == 0
    assert 0.0 <= only(report.test_metrics).mean_iou <= 1.0
    # the headline too: the runtime's mask on every test image at its own resolution
    assert report.test_mask.images == report.data["test"]["images"] and 0.0 <= report.test_mask.pet_iou <= 1.0
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["model"] == "conv_deconv" and info["versions"]["keras"].startswith("3.")
    assert info["data"]["train"]["images"] == 32 and len(info["class_weights"]) == 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["history"]) >= {"loss", "val_loss", "accuracy", "miou", "val_miou", "val_pet_iou",
                                       "val_boundary_f"}
    assert all(0 <= v <= 1 for v in metrics["history"]["val_pet_iou"])
    assert metrics["test_mask"]["pet_iou"] == report.test_mask.pet_iou
    # the same command again (a pipeline script run twice) finds the run done: its report, nothing trained (it
    # was "already holds a finished run", exit 1); its JSON says so
    again = train(tiny_config(oxford_session_dir, run, class_weights="balanced"), progress=False)
    assert again.already_finished and not report.already_finished and metrics["already_finished"] is False
    assert again.test_mask == report.test_mask and again.test_metrics == report.test_metrics
    assert again.to_dict() == {**report.to_dict(), "already_finished": True}
    # more epochs on a finished run: its backup is gone, so the way on is a new run from its weights
    with pytest.raises(FileExistsError, match=r"already holds a finished run.*--init-from .*model\.keras"):
        train(tiny_config(oxford_session_dir, run, epochs=4), progress=False)
    with pytest.raises(FileExistsError, match=r"already holds a finished run"):  # other settings likewise
        train(tiny_config(oxford_session_dir, run), progress=False)


def test_interrupted_run_resumes(oxford_session_dir, tmp_path, monkeypatch, caplog):
    config = tiny_config(oxford_session_dir, tmp_path / "run", epochs=4)
    interrupted_training(config, monkeypatch)
    assert (tmp_path / "run" / "backup").is_dir() and not (tmp_path / "run" / "model.keras").exists()
    with caplog.at_level("INFO", logger="edgeseg"):
        report = train(config, progress=False)
    assert "resuming" in caplog.text and "2 of 4 epochs done" in caplog.text  # said, before Keras's "Epoch 3/4"
    assert report.resumed_from_epoch == 2
    assert report.history["epoch"] == [0, 1, 2, 3]
    assert not (tmp_path / "run" / "backup").exists()  # removed once training finished


def test_init_from_continues_from_a_trained_model(oxford_session_dir, tmp_path):
    first = train(tiny_config(oxford_session_dir, tmp_path / "a", epochs=3, learning_rate=1e-2), progress=False)
    second = train(tiny_config(oxford_session_dir, tmp_path / "b", epochs=1, learning_rate=1e-9,
                                init_from=first.model_path), progress=False)
    # with a learning rate of ~0, the second run is the first model: same test metrics
    assert only(second.test_metrics).mean_iou == pytest.approx(only(first.test_metrics).mean_iou, abs=1e-3)
    # the run folder stands for its model.keras, as wherever a model is read (it said "model a not found")
    third = train(tiny_config(oxford_session_dir, tmp_path / "d", epochs=1, learning_rate=1e-9,
                              init_from=str(tmp_path / "a")), progress=False)
    assert only(third.test_metrics).mean_iou == pytest.approx(only(first.test_metrics).mean_iou, abs=1e-3)
    with pytest.raises(FileNotFoundError, match="--init-from model"):
        train(tiny_config(oxford_session_dir, tmp_path / "c", init_from=str(tmp_path / "none.keras")), progress=False)


def test_init_from_a_model_of_another_architecture_says_so_in_one_line(oxford_session_dir, tmp_path):
    # Keras printed a warning per layer it skipped, then "A total of 8 objects could not be loaded" and a list
    first = train(tiny_config(oxford_session_dir, tmp_path / "a", epochs=1), progress=False)
    with pytest.raises(SettingError, match=r"a/model\.keras was trained with --model conv_deconv; this run builds "
                                           r"--model unet_plain"):
        validate(tiny_config(oxford_session_dir, tmp_path / "b", model="unet_plain", init_from=first.model_path))
    loose = tmp_path / "downloaded.keras"  # no run.json beside it: found when the weights are loaded
    shutil.copy(first.model_path, loose)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SettingError, match=r"downloaded\.keras does not fit a unet_plain model") as error:
            train(tiny_config(oxford_session_dir, tmp_path / "c", model="unet_plain", init_from=str(loose)),
                  progress=False)
    assert error.value.option == "--init-from" and "\n" not in str(error.value)
    assert not [w for w in caught if "could not be loaded" in str(w.message) or "Skipping" in str(w.message)]


def test_mixed_precision_run_keeps_float32_logits(oxford_session_dir, tmp_path):
    report = train(tiny_config(oxford_session_dir, tmp_path / "run", epochs=1, mixed_precision=True), progress=False)
    model = keras.models.load_model(report.model_path)
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"  # softmax/loss in float32
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is restored


def test_class_weight_parsing():
    masks = np.array([[0, 1, 1, 1, 2]])
    assert parse_class_weights("none", masks) is None
    np.testing.assert_allclose(parse_class_weights("2,1,0.5", masks), [2, 1, 0.5])
    np.testing.assert_allclose(parse_class_weights("balanced", masks), [1, 1 / 3, 1])
    with pytest.raises(ValueError, match="3 non-negative numbers"):
        parse_class_weights("1,2", masks)
    with pytest.raises(ValueError, match="every class weighs 0, so nothing would be learned"):  # it trained on
        parse_class_weights("0,0,0", masks)


@pytest.mark.parametrize("change, message", [
    ({"learning_rate": 0.0}, "learning rate must be positive, received 0.0"),
    ({"learning_rate": -1e-3}, "learning rate must be positive, received -0.001"),
    ({"alpha": 0.0}, "alpha (the encoder's width multiplier) must be positive, received 0.0"),
    ({"img_size": 100}, "input height and width must be multiples of 32 (the encoder halves them 5 times), received "
                        "100x100 (width x height)"),
    ({"img_size": "256x100"}, "received 256x100 (width x height)"),
])
def test_settings_that_cannot_train_are_refused_before_the_data_is_read(tmp_path, change, message):
    config = tiny_config(tmp_path, tmp_path / "run", **change)  # a folder, though not a dataset: never read
    with pytest.raises(ValueError, match=re.escape(message)):
        train(config, progress=False)
    assert not (tmp_path / "run").exists()


def test_too_few_images_for_a_batch_says_what_to_change(tmp_path):
    # "8 training images, fewer than one batch of 32", with nothing on what to do
    data = write_mask_folder(tmp_path / "cats", n=10)
    with pytest.raises(ValueError, match=r"cats: 8 training images, fewer than one batch of 32: pass --batch-size 8 "
                                         r"or less, or add images"):
        train(tiny_config(data, tmp_path / "run", batch_size=32, val_fraction=0.1), progress=False)


def test_input_sizes_are_a_side_or_width_x_height():
    assert parse_img_size("128") == 128 and parse_img_size(128) == 128
    assert parse_img_size("256x160") == (160, 256)  # written as frames are, width first; kept as (height, width)
    assert parse_img_size([160, 256]) == (160, 256) and parse_img_size("128x128") == 128  # run.json; a square
    assert TrainConfig(img_size="224x128").input_hw == (128, 224)
    for bad in ("wide", "256x", "1x2x3"):
        with pytest.raises(ValueError, match="input size"):
            parse_img_size(bad)
    result = runner.invoke(app, ["train", "--img-size", "256by160", "--out", "runs/never"])
    assert result.exit_code == 2 and "--img-size" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_worker_distributed_run(oxford_session_dir, tmp_path):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": index}}),
               "CUDA_VISIBLE_DEVICES": "-1"}
        cmd = [sys.executable, "-m", "edgeseg", "train", "--data", str(oxford_session_dir), "--model", "conv_deconv",
               "--img-size", "32", "--batch-size", "8", "--epochs", "2", "--encoder-weights", "none",
               "--early-stopping", "0", "--out", str(tmp_path / "run")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy
    assert info["device"]["strategy"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    assert info["device"]["replicas"] == 2
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_multiworker_without_tf_config_trains_as_one_worker(oxford_session_dir, tmp_path):
    # it failed in the first epoch with TensorBoard's "Expected scalar shape, saw shape: (1,)": the logs were made
    # rank 1 for a cross-worker reduction that one worker does not do
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    cmd = [sys.executable, "-m", "edgeseg", "train", "--data", str(oxford_session_dir), "--model", "conv_deconv",
           "--img-size", "32", "--batch-size", "8", "--epochs", "1", "--encoder-weights", "none",
           "--strategy", "multiworker", "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, env={**env, "CUDA_VISIBLE_DEVICES": "-1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["device"]["replicas"] == 1


def test_binary_mask_datasets_report_no_phantom_border_class(tmp_path):
    from edgeseg.data import load_folder
    from edgeseg.trainer.train import evaluate_model

    data = write_mask_folder(tmp_path / "cats", n=20, size=32)
    report = train(tiny_config(data, tmp_path / "run", epochs=1), progress=False)
    assert only(report.test_metrics).class_names == ("pet", "background")
    assert set(only(report.test_metrics).iou) == {"pet", "background"}
    assert not np.isnan(only(report.test_metrics).mean_iou) and not np.isnan(report.test_mask.pet_iou)
    model = keras.models.load_model(report.model_path)
    test = load_folder(data, "test", 32, progress=False)
    # a border the model predicts counts as the foreground it is, not as a third class with IoU 0
    assert evaluate_model(model, test).mean_iou == pytest.approx(only(report.test_metrics).mean_iou)


def test_the_best_checkpoint_is_picked_by_pet_iou_at_image_resolution(oxford_session_dir, tmp_path):
    report = train(tiny_config(oxford_session_dir, tmp_path / "run", epochs=3), progress=False)
    scores = report.history["val_pet_iou"]
    best_epoch = int(np.argmax(scores))
    checkpoint = keras.models.load_model(tmp_path / "run" / "model.keras")
    from edgeseg.trainer.callbacks import MaskQualityCallback
    from edgeseg.data import iter_full_resolution, load_split

    val = load_split(str(oxford_session_dir), "val", 32, val_fraction=0.2, progress=False)
    labels = {n: lab for n, _, lab in iter_full_resolution(str(oxford_session_dir), "val", val_fraction=0.2)}
    callback = MaskQualityCallback({"data": (val.images, [labels[n] for n in val.names])})
    callback.set_model(checkpoint)
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_pet_iou"] == pytest.approx(scores[best_epoch], abs=1e-4)  # model.keras is the best epoch


def test_batchnorm_statistics_are_those_of_the_final_weights(oxford_session_dir, tmp_path):
    # Four steps leave Keras's moving averages (momentum 0.99) at ~4% of the batch statistics; the checkpoint
    # must hold the statistics of its own weights, or a short run's metric and export read stale ones.
    from edgeseg.data import load_split

    config = tiny_config(oxford_session_dir, tmp_path / "run", model="unet_plain", epochs=1, augment="none")
    train(config, progress=False)
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    images = load_split(config.data[0], "train", 32, val_fraction=0.2, progress=False).images.astype(np.float32)
    conv = keras.Model(model.input, model.get_layer("enc0a_conv").output)
    features = np.asarray(conv.predict(images, verbose=0))
    bn = model.get_layer("enc0a_bn")
    np.testing.assert_allclose(np.asarray(bn.moving_mean), features.mean((0, 1, 2)), rtol=1e-3, atol=1e-4)
    assert bn.momentum == 0.99  # restored after the refresh

    train(replace(config, out=str(tmp_path / "averaged"), bn_refresh_batches=0), progress=False)
    averaged = keras.models.load_model(tmp_path / "averaged" / "model.keras").get_layer("enc0a_bn")
    assert np.abs(np.asarray(averaged.moving_mean)).mean() < 0.2 * np.abs(features.mean((0, 1, 2))).mean()


def test_batchnorm_refresh_leaves_frozen_layers_alone():
    import tensorflow as tf

    from edgeseg.trainer.callbacks import BatchNormRefresh

    inputs = keras.Input((8, 8, 3))
    frozen = keras.layers.BatchNormalization(name="frozen")
    frozen.trainable = False
    inner = keras.Sequential([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.BatchNormalization(name="inner")])
    model = keras.Model(inputs, inner(frozen(inputs)))
    x = np.random.default_rng(0).normal(5.0, 2.0, (16, 8, 8, 3)).astype(np.float32)
    refresh = BatchNormRefresh(tf.data.Dataset.from_tensor_slices((x, x)).batch(4), batches=4)
    refresh.set_model(model)
    refresh.on_epoch_end(0)
    np.testing.assert_array_equal(np.asarray(frozen.moving_mean), 0.0)
    bn = inner.get_layer("inner")  # in a nested model: the mean of four batch means is the data's mean
    conv = np.asarray(inner.layers[0](frozen(x)))
    np.testing.assert_allclose(np.asarray(bn.moving_mean), conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-5)


def test_progress_into_a_log_file_is_one_line_per_epoch(oxford_session_dir, tmp_path, capfd):
    train(tiny_config(oxford_session_dir, tmp_path / "run", epochs=2), progress=True)  # stdout is not a terminal here
    out = capfd.readouterr().out
    assert "\x1b[" not in out and "\r" not in out  # no redrawn progress bar: `edgeseg train ... > train.log` reads well
    assert out.count("Epoch ") == 2 and out.count("/step - ") == 2


def test_mixed_sources_train_with_weights_and_report_per_source(tmp_path):
    pets = write_oxford(tmp_path / "pets", n_trainval=16, n_test=4, size=32)
    cats = write_mask_folder(tmp_path / "cats", n=16, size=32, seed=1)
    (cats / "trainval.txt").write_text("".join(f"cat_{i}\n" for i in range(12)))
    (cats / "test.txt").write_text("".join(f"cat_{i}\n" for i in range(12, 16)))
    config = tiny_config([str(pets), f"{cats}:3"], tmp_path / "run", epochs=2)
    report = train(config, progress=False)
    # the test split list of the mask folder was honoured; scores per source and their mean
    assert [s["images"] for s in report.data["test"]["sources"]] == [4, 4]
    assert set(report.test_mask_by_source) == {"pets", "cats"} and set(report.test_metrics) == {"pets", "cats"}
    assert report.test_metrics["cats"].class_names == ("pet", "background")  # scored against the binary masks
    by_source = [q.pet_iou for q in report.test_mask_by_source.values()]
    assert report.test_mask.pet_iou == pytest.approx(np.mean(by_source), abs=1e-4)
    assert report.test_mask.images == 8
    assert {"val_pet_iou", "val_pet_iou_pets", "val_pet_iou_cats"} <= set(report.history)
    assert report.history["val_pet_iou"][0] == pytest.approx(
        (report.history["val_pet_iou_pets"][0] + report.history["val_pet_iou_cats"][0]) / 2, abs=1e-4)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [(s["name"], s["weight"]) for s in info["sources"]] == [("pets", 1.0), ("cats", 3.0)]
    assert info["config"]["data"] == [str(pets), f"{cats}:3"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["test_mask_by_source"]) == {"pets", "cats"}
    # an epoch draws 13 pets and 10 * 3 cats (their weight): 43 images, 5 batches of 8
    assert report.train_images_per_s == pytest.approx(2 * 5 * 8 / report.wall_time_s, rel=0.05)


def test_a_resume_with_other_sources_is_refused_by_name(tmp_path, monkeypatch):
    pets = write_oxford(tmp_path / "pets", n_trainval=16, n_test=4, size=32)
    cats = write_mask_folder(tmp_path / "cats", n=16, size=32, seed=1)
    config = tiny_config([str(pets), f"{cats}:3"], tmp_path / "run", epochs=3)
    interrupted_training(config, monkeypatch)
    validate(config)  # the same sources resume
    validate(replace(config, data=[str(pets), f"{tmp_path}/./cats:3"]))  # spelled otherwise, the same
    for data in ([str(pets)], [str(pets), f"{cats}:2"], [f"{cats}:3", str(pets)]):
        with pytest.raises(ValueError, match=r"interrupted run with other settings: data \["):
            validate(replace(config, data=data))


@pytest.mark.parametrize("setting, value, message", [
    ("learning_rate", float("inf"), "learning rate must be positive"),
    ("learning_rate", float("nan"), "learning rate must be positive"),
    ("alpha", float("inf"), "alpha"),
    ("class_weights", "nan,1,1", "class weights must be"),
    ("class_weights", "inf,1,1", "class weights must be"),
])
def test_non_finite_settings_are_refused_before_training(oxford_session_dir, tmp_path, setting, value, message):
    with pytest.raises(ValueError, match=message):
        validate(tiny_config(oxford_session_dir, tmp_path / "run", **{setting: value}))


def test_a_diverging_run_stops_with_a_clear_error_and_saves_no_model(oxford_session_dir, tmp_path):
    config = tiny_config(oxford_session_dir, tmp_path / "run", learning_rate=1e30, epochs=3)
    with pytest.raises(ValueError, match=r"training diverged: the loss became nan in epoch 1.*--overwrite"):
        train(config, progress=False)
    assert not (tmp_path / "run" / "model.keras").exists()


def test_a_second_training_into_one_run_folder_is_refused_at_once(tmp_path):
    from edgeseg.io import FolderInUse, folder_lock

    with folder_lock(tmp_path / "run", "training"):  # what the first training holds while it runs
        with pytest.raises(FolderInUse, match=rf"run is in use by another training \(pid {os.getpid()}\)"):
            with folder_lock(tmp_path / "run", "training"):
                pass
    with folder_lock(tmp_path / "run", "training"):  # released: the next run may take it
        pass
    assert not list(tmp_path.glob(".*.lock"))


def test_two_trainings_on_one_out_the_second_refused_by_the_cli(oxford_session_dir, tmp_path):
    import fcntl

    lock = tmp_path / ".run.lock"
    with open(lock, "w") as f:  # another process holds it (flock locks are per open file)
        f.write("4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        proc = subprocess.run([sys.executable, "-m", "edgeseg", "train", "--data", str(oxford_session_dir),
                               "--model", "conv_deconv", "--img-size", "32", "--batch-size", "8", "--epochs", "1",
                               "--encoder-weights", "none", "--out", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "in use by another training (pid 4242)" in " ".join(proc.stderr.split())
    assert not (tmp_path / "run").exists()


def test_a_damaged_history_names_itself_and_the_way_out(tmp_path):
    from edgeseg.trainer.train import read_history

    (tmp_path / "history.csv").write_text("epoch,loss\n0,0.5\nepoch,loss\n1,0.4\n")  # two runs interleaved
    with pytest.raises(ValueError, match=r"history.csv is damaged .*--overwrite"):
        read_history(tmp_path / "history.csv")


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


def _interrupted_run(data, out, monkeypatch):
    """A tiny run killed after its second epoch's backup was written."""
    pytest.importorskip("keras")
    from edgeseg.trainer.train import TrainConfig

    config = TrainConfig(model="conv_deconv", data=str(data), out=str(out), epochs=3, batch_size=8, img_size=32,
                         encoder_weights="none", val_fraction=0.2, early_stopping=0)
    interrupted_training(config, monkeypatch)
    return config


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # what a kill -9 in the middle of a write leaves


@pytest.mark.slow  # trains a model
def test_a_damaged_backup_falls_back_to_the_previous_one(oxford_session_dir, tmp_path, monkeypatch, caplog):
    from edgeseg.trainer.train import train

    config = _interrupted_run(oxford_session_dir, tmp_path / "run", monkeypatch)
    backup = tmp_path / "run" / "backup"
    assert (backup / "current" / "latest.weights.h5").is_file() and (backup / "previous").is_dir()
    _truncate(backup / "current" / "latest.weights.h5")
    report = train(config, progress=False)  # the same command again
    assert report.history["epoch"] == [0, 1, 2]
    assert "is damaged" in caplog.text and "resumed from the previous backup" in caplog.text


@pytest.mark.slow  # trains a model
def test_every_backup_damaged_is_a_clear_error(oxford_session_dir, tmp_path, monkeypatch):
    _interrupted_run(oxford_session_dir, tmp_path / "run", monkeypatch)
    backup = tmp_path / "run" / "backup"
    _truncate(backup / "current" / "latest.weights.h5")
    (backup / "previous" / "training_metadata.json").write_text("garbage")
    result = runner.invoke(app, ["train", "--data", str(oxford_session_dir), "--out", str(tmp_path / "run"),
                                 "--model", "conv_deconv", "--epochs", "3", "--batch-size", "8", "--img-size", "32",
                                 "--encoder-weights", "none", "--val-fraction", "0.2", "--early-stopping", "0"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "every training backup is damaged" in message and "JSONDecodeError" in message
    assert str(backup / "current") in message and str(backup / "previous") in message
    assert "--overwrite" in message and "Traceback" not in result.output


@pytest.mark.parametrize("option, message", [
    (["--loss", "dice"], "Invalid value for '--loss': 'dice' is not one of 'ce', 'ce+dice'"),
    # these said "Invalid value: ..." without the option
    (["--model", "unet"], "Invalid value for --model: unknown model 'unet'"),
    (["--lr", "0"], "Invalid value for --lr: the learning rate must be positive"),  # was named --learning-rate
    (["--img-size", "100"], "Invalid value for --img-size: input height and width must be multiples of 32"),
    (["--subject", "background"], "Invalid value for --subject: subject 'background'"),
    (["--data", "{tmp}/missing"], "Invalid value for --data: dataset"),
    (["--class-weights", "1,2"], "Invalid value for --class-weights: class weights must be"),
    (["--augment", "webcam"], "Invalid value for --augment: webcam pastes the subjects onto other photos"),
    (["--backgrounds", "{tmp}"], "Invalid value for --backgrounds: they are the photos --augment webcam pastes"),
    (["--init-from", "{tmp}/missing.keras"], "--init-from model"),
    # a folder without photos was found after the training data was read, and exited 1
    (["--augment", "webcam", "--backgrounds", "{tmp}/empty"], "Invalid value for --backgrounds: {tmp}/empty holds no "
                                                               "photos (JPEG, PNG, ...) to paste subjects onto"),
    (["--init-from", "{tmp}/model.tflite"], "Invalid value for --init-from: {tmp}/model.tflite is not a Keras model "
                                            "(.tflite): --init-from takes a .keras model or a training run folder"),
    # the range took 0, then the reader failed on an empty validation split (exit 1), after the data was read
    (["--val-fraction", "0"], "Invalid value for --val-fraction: the share of training images held out for "
                              "validation must be above 0"),
    # architecture options a model has no use for were ignored without a word
    (["--model", "conv_deconv", "--alpha", "0.5"], "Invalid value for --alpha: conv_deconv has no encoder width "
                                                   "multiplier, so it would be ignored; it is for unet_mobilenetv2,"),
    (["--model", "unet_plain", "--encoder-weights", "{tmp}/v2.weights.h5"], "Invalid value for --encoder-weights: "
                                                                           "unet_plain has no pretrained encoder"),
    (["--model", "unet_mobilenetv3_small", "--upsampling", "bilinear"], "Invalid value for --upsampling: "
     "unet_mobilenetv3_small has no choice of decoder upsampling, so it would be ignored; it is for unet_mobilenetv2, "
     "unet_mobilenetv2_edge"),
])
def test_train_settings_that_cannot_work_are_command_line_errors(oxford_dir, tmp_path, option, message):
    pytest.importorskip("keras")  # train checks for the training stack first
    option = [o.replace("{tmp}", str(tmp_path)) for o in option]
    (tmp_path / "model.tflite").write_bytes(b"an exported model")
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--out", str(tmp_path / "run"), *option])
    output = one_line(result.output)
    assert result.exit_code == 2 and message.replace("{tmp}", str(tmp_path)) in output, output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("out", ["photos", "photos/pets", ".", "done/export"])
def test_overwrite_deletes_only_run_folders(oxford_dir, tmp_path, monkeypatch, out):
    # --overwrite removed whatever --out named: a folder of photos, the dataset inside it, the working directory
    # (a run's export/ stands for its run where a model is read, never where one is written)
    pytest.importorskip("keras")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "photos" / "pets"
    shutil.copytree(oxford_dir, data)
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"a photo of the user's")
    (tmp_path / "done" / "export").mkdir(parents=True)
    (tmp_path / "done" / "run.json").write_text("{}")
    (tmp_path / "done" / "export" / "model_int8.tflite").write_bytes(b"an exported model")
    result = runner.invoke(app, ["train", "--data", str(data), "--out", out, "--overwrite", "--epochs", "1"])
    output = one_line(result.output)
    assert result.exit_code == 2 and "Invalid value for --out" in output and "--overwrite" in output, output
    assert (tmp_path / "photos" / "holiday.jpg").is_file() and (data / "annotations").is_dir()
    assert (tmp_path / "done" / "export" / "model_int8.tflite").is_file()


def test_overwrite_starts_a_run_folder_again(oxford_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "history.csv").write_text("epoch\n0\n")
    validate(tiny_config(oxford_dir, run, overwrite=True))  # a run folder: --overwrite may remove it
    validate(tiny_config(oxford_dir, tmp_path / "empty", overwrite=True))  # and a folder not there yet


def _interrupted_run_folder(run: Path, data, **settings) -> None:
    """What an interrupted ``train`` leaves: its settings in run.json and a backup to resume from."""
    import json
    from dataclasses import asdict

    from edgeseg.trainer.train import TrainConfig

    (run / "backup" / "current").mkdir(parents=True)
    config = TrainConfig(data=str(data), out=str(run), **settings)
    (run / "run.json").write_text(json.dumps({"config": asdict(config)}))


def test_resuming_with_other_settings_is_refused_not_mixed_into_the_run(oxford_dir, tmp_path):
    pytest.importorskip("keras")  # train checks for the training stack first
    run = tmp_path / "run"
    _interrupted_run_folder(run, oxford_dir, img_size=128, learning_rate=1e-3)
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--out", str(run), "--img-size", "224",
                                 "--lr", "3e-4"])
    output = one_line(result.output)
    assert result.exit_code == 2, output
    assert f"{run} holds an interrupted run with other settings" in output
    assert "img_size 128 (now 224)" in output and "learning_rate 0.001 (now 0.0003)" in output
    assert "--overwrite" in output


def test_resuming_may_extend_the_run_and_name_the_same_data_another_way(oxford_dir, tmp_path, monkeypatch):
    pytest.importorskip("keras")  # train checks for the training stack first
    from edgeseg.trainer.train import TrainConfig, validate

    run = tmp_path / "run"
    _interrupted_run_folder(run, oxford_dir, epochs=20)
    monkeypatch.chdir(oxford_dir.parent)
    validate(TrainConfig(data=oxford_dir.name, out=str(run), strategy="default", epochs=30, early_stopping=0))


def test_a_model_without_an_encoder_takes_encoder_weights_none():
    from edgeseg.trainer.train import TrainConfig, validate

    validate(TrainConfig(model="unet_plain", data="oxford_iiit_pet", encoder_weights="none", alpha=1.0))  # no error
