"""Names of the trainable architectures, without importing Keras (the CLI lists them in its help)."""

MODEL_NAMES = ("unet_mobilenetv2", "unet_mobilenetv2_edge", "unet_mobilenetv3_small", "unet_mobilenetv3_large",
               "unet_plain", "conv_deconv")
