"""Training losses over 0-based trimap labels (0 = pet, 1 = background, 2 = border)."""

from __future__ import annotations

import keras
from keras import ops

from edgeseg.trainer import Loss, choice


@keras.saving.register_keras_serializable(package="edgeseg")
class CrossEntropyDice(keras.losses.Loss):
    """Per-pixel cross-entropy plus a soft Dice loss on the pet class, with border pixels left out.

    The Dice term scores the mask the way the headline metric does (pet IoU with the border band
    ignored), so it pulls the pet/background decision towards the band's centre instead of rewarding
    a mask grown by the band. It is computed per image and added to every pixel's cross-entropy.

    Args:
        dice_weight: weight of the Dice term.
        pet_class: label of the pet class.
        ignore_class: label whose pixels the Dice term ignores (the border band).
    """

    def __init__(self, dice_weight: float = 1.0, pet_class: int = 0, ignore_class: int = 2,
                 name: str = "ce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self.pet_class = pet_class
        self.ignore_class = ignore_class

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels = ops.cast(y_true, "int32")
        ce = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        pet = ops.softmax(y_pred, axis=-1)[..., self.pet_class]
        target = ops.cast(ops.equal(labels, self.pet_class), "float32")
        valid = ops.cast(ops.not_equal(labels, self.ignore_class), "float32")
        inter = ops.sum(pet * target * valid, axis=(1, 2))
        total = ops.sum((pet + target) * valid, axis=(1, 2))
        dice = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
        return ce + self.dice_weight * dice[:, None, None]

    def get_config(self) -> dict:
        return {**super().get_config(), "dice_weight": self.dice_weight, "pet_class": self.pet_class,
                "ignore_class": self.ignore_class}


def make_loss(name: str) -> keras.losses.Loss:
    """The loss called ``name`` (a :class:`~edgeseg.trainer.Loss`)."""
    if choice(Loss, name, "loss") is Loss.CE:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return CrossEntropyDice()
