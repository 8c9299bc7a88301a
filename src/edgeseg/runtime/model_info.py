"""What the runtime needs to know about a model: from its metadata, from flags, or from its tensors.

edgeseg artifacts carry :class:`~edgeseg.contract.ArtifactMetadata`. Third-party models (e.g. MediaPipe
selfie, DeepLab) do not: their input range, output kind and foreground classes are detected from the
tensors or given as overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeseg.choice import Choice
from edgeseg.contract import OutputKind
from edgeseg.errors import EdgesegError, SettingError
from edgeseg.runtime.backends.base import Backend


class InputRange(Choice):
    """The pixel range a model without metadata expects."""

    UINT8 = "0-255"
    UNIT = "0-1"
    SIGNED = "-1-1"


INPUT_RANGES = {InputRange.UINT8.value: (0.0, 255.0), InputRange.UNIT.value: (0.0, 1.0),
                InputRange.SIGNED.value: (-1.0, 1.0)}
MIN_SIDE = 8  # smaller spatial sizes are a classifier's or an undeclared (dynamic) size, not a mask


class UnsupportedModelError(EdgesegError, ValueError):
    """A model the runtime cannot segment with (the message says what it has and what was expected)."""


@dataclass(frozen=True)
class ModelInfo:
    input_size: tuple[int, int]  # (height, width)
    input_range: tuple[float, float]
    output_kind: OutputKind
    mask_weights: dict[int, float]  # class id -> weight in alpha; {} with class-index output: every non-zero id, 1
    class_names: tuple[str, ...] = ()
    source: str = "detected"  # "metadata", "detected" or "overrides"

    @property
    def foreground_classes(self) -> tuple[int, ...]:
        return tuple(c for c, w in self.mask_weights.items() if w > 0)

    @property
    def subject(self) -> str:
        """What the mask shows, for reports and the HUD: the first foreground class's name ("pet", "person"),
        or "foreground" for models that name no classes."""
        fg = self.foreground_classes
        return self.class_names[fg[0]] if fg and fg[0] < len(self.class_names) else "foreground"


def _parse_range(value: str) -> tuple[float, float]:
    value = value.value if isinstance(value, InputRange) else value
    if value not in INPUT_RANGES:
        raise ValueError(f"input range must be one of {', '.join(INPUT_RANGES)}, received {value!r}")
    return INPUT_RANGES[value]


def _check_tensors(backend: Backend) -> None:
    shape, out = backend.input.shape, backend.output.shape
    path = getattr(backend, "path", "the model")
    if len(shape) != 4 or shape[-1] != 3:
        raise UnsupportedModelError(f"{path}: expected an NHWC RGB input, the model's input has shape {shape}")
    if min(shape[1], shape[2]) < MIN_SIDE:
        raise UnsupportedModelError(
            f"{path}: input {shape} has no fixed height and width of at least {MIN_SIDE} px; export it with a static "
            "input size (edgeseg export does)")
    if getattr(backend, "num_outputs", 1) != 1:
        raise UnsupportedModelError(f"{path}: has {backend.num_outputs} outputs; expected one segmentation output")
    if len(out) not in (3, 4) or min(out[1], out[2]) < MIN_SIDE:
        raise UnsupportedModelError(
            f"{path}: output {out} is not a per-pixel map (expected (1, H, W, classes) or (1, H, W)); "
            "is it a classifier?")


def resolve_model_info(backend: Backend, input_range: str | None = None, output_kind: str | None = None,
                       foreground: dict[int, float] | list[int] | None = None) -> ModelInfo:
    """Combine the artifact's metadata, explicit overrides (which win) and detection from the tensors.

    ``foreground``: class ids (weight 1 each) or {class id: weight}; alpha is the weighted sum of their
    probabilities.
    """
    _check_tensors(backend)
    shape, out = backend.input.shape, backend.output
    size = (shape[1], shape[2])
    meta = backend.metadata
    if meta is not None:
        rng, kind = meta.input_range, meta.output_kind
        weights = {c: w for c, w in enumerate(meta.class_weights()) if w > 0}
        names, source = meta.classes, "metadata"
    else:
        rng = (0.0, 255.0) if backend.input.dtype == np.uint8 else (0.0, 1.0)
        if len(out.shape) == 3 or (np.issubdtype(out.dtype, np.integer) and not out.quantized):
            kind = OutputKind.CLASS_INDEX
        elif out.shape[-1] == 1:
            kind = OutputKind.PROBABILITY
        else:
            kind = OutputKind.LOGITS
        # Without metadata: class 0 is background (PASCAL VOC, COCO conventions); {} = every non-zero id.
        fg = {OutputKind.PROBABILITY: (0,), OutputKind.LOGITS: tuple(range(1, out.shape[-1])),
              OutputKind.CLASS_INDEX: ()}[kind]
        weights, names, source = dict.fromkeys(fg, 1.0), (), "detected"
    if input_range is not None:
        rng, source = _parse_range(input_range), "overrides"
    if output_kind is not None:
        kind, source = OutputKind(output_kind), "overrides"
    if foreground is not None:
        weights = dict(foreground) if isinstance(foreground, dict) else dict.fromkeys(foreground, 1.0)
        source = "overrides"
    _check_agreement(backend, meta, kind)
    channels = out.shape[-1] if len(out.shape) == 4 else 0  # a class index holds any id
    if channels and any(not 0 <= c < channels for c in weights):
        kinds = "class 0, its one output channel" if channels == 1 else f"classes 0 to {channels - 1}"
        raise SettingError("foreground", f"foreground classes {sorted(weights)} do not exist in "
                                         f"{getattr(backend, 'path', 'the model')}: it has {kinds}")
    return ModelInfo(size, rng, kind, weights, tuple(names), source)


def _check_agreement(backend: Backend, meta, kind: OutputKind) -> None:
    """Refuse metadata or an output kind that the model's own tensors contradict: read as given, either would
    change the mask without a word (a 2-class reading of a 3-channel output, a class index taken from logits)."""
    path = getattr(backend, "path", "the model")
    shape, out = backend.input.shape, backend.output.shape
    channels = out[-1] if len(out) == 4 else 1
    if kind is OutputKind.CLASS_INDEX and channels > 1:
        raise UnsupportedModelError(f"{path}: a class-index output has one channel, this one has {channels}; it "
                                    "holds class scores (--output-kind logits or probability)")
    if meta is None:
        return
    if tuple(meta.input_size) != (shape[1], shape[2]):
        raise UnsupportedModelError(f"{path}: its metadata says the input is {meta.input_size[0]}x{meta.input_size[1]}"
                                    f", the model's input is {shape[1]}x{shape[2]}; the metadata belongs to another model")
    if kind is not OutputKind.CLASS_INDEX and channels not in (1, len(meta.classes)):
        raise UnsupportedModelError(f"{path}: its metadata names {len(meta.classes)} classes, the model's output has "
                                    f"{channels} channels; the metadata belongs to another model")
