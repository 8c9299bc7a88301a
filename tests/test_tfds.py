"""The README's first command, ``edgeseg train --data oxford_iiit_pet``, through the real tfds code.

tfds cannot download here, so ``tfds.testing.mock_data`` stands in for the download and the stored
records: builder, split slicing, ``as_dataset`` and ``as_numpy`` are tfds's own.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

tfds = pytest.importorskip("tensorflow_datasets")
pytestmark = pytest.mark.slow  # trains or exports a model
tf = pytest.importorskip("tensorflow")

from edgeseg.cli import app  # noqa: E402
from edgeseg.data import readers  # noqa: E402
from tests.helpers import synthetic_sample  # noqa: E402

N_EXAMPLES = 24


def fake_pets(trimap_offset: int = 0):
    """An ``as_dataset`` replacement yielding synthetic pets with Oxford trimaps (1 pet, 2 bg, 3 border)."""
    def as_dataset(self, *args, **kwargs):
        def examples():
            rng = np.random.default_rng(0)
            for i in range(N_EXAMPLES):
                image, trimap = synthetic_sample(rng, 48)
                yield {"image": image, "segmentation_mask": (trimap[..., None] + trimap_offset).astype(np.uint8),
                       "file_name": f"Pet_{i}.jpg", "label": i % 37, "species": i % 2}
        features = self.info.features
        wanted = ("image", "segmentation_mask", "file_name", "label", "species")
        return tf.data.Dataset.from_generator(
            examples,
            output_signature={k: tf.TensorSpec(features[k].shape, features[k].dtype) for k in wanted})
    return as_dataset


@pytest.fixture
def reachable(monkeypatch):
    """The download host 'answers'; mock_data turns download_and_prepare into a no-op."""
    monkeypatch.setattr(readers, "_can_reach", lambda host, timeout=3.0: True)


def test_readme_train_command_runs_on_tfds(tmp_path, reachable):
    out = tmp_path / "runs" / "pets"
    with tfds.testing.mock_data(as_dataset_fn=fake_pets()):
        result = CliRunner().invoke(app, [
            "train", "--data", "oxford_iiit_pet", "--out", str(out), "--model", "conv_deconv",
            "--encoder-weights", "none", "--img-size", "32", "--batch-size", "8", "--epochs", "1",
            "--data-dir", str(tmp_path / "tfds")])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["train"]["sources"][0]["source"] == "tfds:oxford_iiit_pet"
    assert info["data"]["test"]["images"] == N_EXAMPLES
    assert (out / "model.keras").is_file()


def test_tfds_masks_outside_the_trimap_values_are_refused(tmp_path, reachable):
    with tfds.testing.mock_data(as_dataset_fn=fake_pets(trimap_offset=5)):
        with pytest.raises(readers.DataError, match="expected 1 \\(pet\\), 2 \\(background\\), 3 \\(border\\)"):
            readers.load_split("oxford_iiit_pet", "test", 32, data_dir=str(tmp_path), progress=False)


def test_scoring_the_runtime_mask_on_tfds_downloads_it_first_or_says_why_not(tmp_path, monkeypatch):
    # `edgeseg evaluate MODEL --data oxford_iiit_pet` read the dataset at full resolution without preparing it: on
    # a machine that had not downloaded it, a traceback ("AssertionError: ... could not find data"), online or not
    monkeypatch.setattr(readers, "_can_reach", lambda host, timeout=3.0: False)
    with pytest.raises(readers.DataError, match="is not downloaded and .* cannot be reached"):
        next(readers.iter_full_resolution("oxford_iiit_pet", "test", data_dir=str(tmp_path)))
    monkeypatch.setattr(readers, "_can_reach", lambda host, timeout=3.0: True)
    with tfds.testing.mock_data(as_dataset_fn=fake_pets()):
        name, image, labels = next(readers.iter_full_resolution("oxford_iiit_pet", "test", data_dir=str(tmp_path)))
    assert image.shape == (48, 48, 3) and labels.shape == (48, 48) and name.startswith("Pet_")


@pytest.fixture
def tfds_dirs(monkeypatch):
    """Where each tfds read looked for its data (train --data-dir), and a stop once it has."""
    asked = []

    def prepared(data_dir):
        asked.append(data_dir)
        raise readers.DataError("stopped here")
    monkeypatch.setattr(readers, "_tfds_prepared", prepared)
    return asked


def test_a_runs_tfds_folder_is_where_export_evaluate_and_bench_read_it(trained_run, tmp_path, tfds_dirs):
    # `train --data oxford_iiit_pet --data-dir /big/disk/tfds` then `edgeseg export RUN` read tfds's default folder
    # (~/tensorflow_datasets): a second download of the dataset there, or an error offline; evaluate and bench had
    # no --data-dir at all
    import shutil

    from edgeseg.benchmarks.runner import BenchOptions, with_run_data

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    info = json.loads((run / "run.json").read_text())
    info["config"].update(data=["oxford_iiit_pet"], data_dir=str(tmp_path / "tfds"))
    info.pop("sources", None)
    (run / "run.json").write_text(json.dumps(info))
    result = CliRunner().invoke(app, ["export", str(run), "--formats", "tflite"])
    assert result.exit_code == 1 and "stopped here" in result.output, result.output
    result = CliRunner().invoke(app, ["evaluate", "edge", "--data", "oxford_iiit_pet", "--data-dir", str(tmp_path / "x")])
    assert result.exit_code == 1 and "stopped here" in result.output, result.output
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", "oxford_iiit_pet"])  # the run's own folder
    assert result.exit_code == 1 and "stopped here" in result.output, result.output
    assert tfds_dirs == [str(tmp_path / "tfds"), str(tmp_path / "x"), str(tmp_path / "tfds")]
    options = with_run_data([str(run)], BenchOptions())  # its first source and its tfds folder, as export's
    assert (options.data, options.data_dir) == ("oxford_iiit_pet", str(tmp_path / "tfds"))
