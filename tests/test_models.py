import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgeseg.trainer.models import MOBILENETV2_SKIPS, MODELS, build_model, unet_mobilenetv2  # noqa: E402


def test_tutorial_model_shapes_and_skips():
    model = unet_mobilenetv2(64, encoder_weights="none", alpha=0.35)
    assert model.input_shape == (None, 64, 64, 3)
    assert model.output_shape == (None, 64, 64, 3)
    encoder = model.get_layer("encoder")
    strides = [64 // encoder.get_layer(n).output.shape[1] for n in MOBILENETV2_SKIPS]
    assert strides == [2, 4, 8, 16, 32]
    assert "preprocess" in [layer.name for layer in model.layers]  # get_layer would raise, not return None
    deconvs = [model.get_layer(f"decoder_up{i}_deconv") for i in range(1, 5)]
    assert [d.filters for d in deconvs] == [512, 256, 128, 64]
    assert all(not d.use_bias and d.strides == (2, 2) for d in deconvs)


def test_encoder_frozen_by_default_and_fine_tune_unfreezes_top_blocks():
    frozen = unet_mobilenetv2(64, encoder_weights="none", alpha=0.35)
    assert not frozen.get_layer("encoder").trainable
    tuned = unet_mobilenetv2(64, encoder_weights="none", alpha=0.35, fine_tune=2)
    enc = tuned.get_layer("encoder")
    assert enc.get_layer("block_16_project").trainable and enc.get_layer("block_15_expand").trainable
    assert not enc.get_layer("block_14_expand").trainable and not enc.get_layer("Conv1").trainable
    assert not enc.get_layer("block_16_expand_BN").trainable  # BN stays in inference mode


def test_model_takes_uint8_range_input():
    model = unet_mobilenetv2(64, encoder_weights="none", alpha=0.35)
    out = model(np.full((1, 64, 64, 3), 255, np.float32))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds(name):
    model = build_model(name, 64, encoder_weights="none")
    assert model.output_shape == (None, 64, 64, 3)


def test_conv_deconv_is_small():
    assert 55_000 < build_model("conv_deconv", 128).count_params() < 70_000


def test_bad_arguments_say_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'unet_mobilenetv2'"):
        build_model("unet_mobilenet_v2")
    with pytest.raises(ValueError, match="multiples of 32, received 100"):
        unet_mobilenetv2(100, encoder_weights="none")
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        unet_mobilenetv2(64, encoder_weights=tmp_path / "missing.weights.h5")
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="does not fit the encoder MobileNetV2"):
        unet_mobilenetv2(64, encoder_weights=bad)
    with pytest.raises(ValueError, match="between 0 and 16"):
        unet_mobilenetv2(64, encoder_weights="none", fine_tune=17)


def test_shared_encoder_weights_load(shared_dir):
    path = shared_dir / "weights" / "mobilenet_v2_1.0_no_top_imagenet_from_quant.weights.h5"
    model = unet_mobilenetv2(128, encoder_weights=path)
    reference = keras.applications.MobileNetV2((128, 128, 3), include_top=False, weights=None)
    reference.load_weights(path)
    for name in ("Conv1", "block_16_project"):
        got = model.get_layer("encoder").get_layer(name).get_weights()[0]
        np.testing.assert_array_equal(got, reference.get_layer(name).get_weights()[0])


@pytest.mark.parametrize("name", ["unet_mobilenetv2", "unet_mobilenetv2_edge"])
def test_bilinear_upsampling_has_no_transposed_convolutions(name):
    model = build_model(name, 64, encoder_weights="none", alpha=0.35, upsampling="bilinear")
    assert model.output_shape == (None, 64, 64, 3)
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    with pytest.raises(ValueError, match="upsampling must be one of transpose, bilinear"):
        build_model(name, 64, encoder_weights="none", upsampling="cubic")


def test_dice_term_scores_the_pet_and_ignores_the_border():
    from edgeseg.trainer.losses import CrossEntropyDice, make_loss

    labels = np.zeros((1, 8, 8), np.int32)
    labels[:, :, 4:] = 1  # background on the right
    labels[:, :, 3:5] = 2  # a border band between
    perfect = np.eye(3, dtype=np.float32)[labels] * 30
    loss = CrossEntropyDice()
    assert float(loss(labels, perfect)) < 1e-3
    # Calling the border pet or background changes the cross-entropy only, never the Dice term.
    border_as_pet = perfect.copy()
    border_as_pet[labels == 2] = np.eye(3, dtype=np.float32)[0] * 30
    ce_only = make_loss("ce")
    assert float(loss(labels, border_as_pet)) == pytest.approx(float(ce_only(labels, border_as_pet)), abs=1e-3)
    # A pet called background costs the Dice term too.
    pet_missed = perfect.copy()
    pet_missed[:, :, :2] = np.eye(3, dtype=np.float32)[1] * 30
    assert float(loss(labels, pet_missed)) > float(ce_only(labels, pet_missed)) + 0.3


def test_the_cli_lists_every_model_without_importing_keras():
    from edgeseg.trainer import MODEL_NAMES

    assert tuple(MODELS) == MODEL_NAMES


@pytest.mark.parametrize("args", [["--alpha", "0.5"], ["--model", "unet_mobilenetv3_small"]])
def test_encoder_weights_that_do_not_fit_say_so_in_one_line(oxford_dir, tmp_path, args):
    # the message held Keras's list of every layer left and their weights (over 300 lines, exit 1); a file for a
    # MobileNetV3 encoder was said to be "could not download the ImageNet weights (offline?)"
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from tests.helpers import one_line

    weights = tmp_path / "v2.weights.h5"
    keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None).save_weights(weights)
    result = CliRunner().invoke(app, ["train", "--data", str(oxford_dir), "--img-size", "32", "--encoder-weights",
                                      str(weights), "--batch-size", "8", "--epochs", "1", "--out", str(tmp_path / "run"),
                                      *args])
    text = one_line(result.output)
    assert result.exit_code == 2 and f"Invalid value for --encoder-weights: {weights} does not fit the encoder " \
        "MobileNetV" in text and "download" not in text, text
    assert len(text) < 1000, text  # one message, not the weights of every layer
