"""The artifact contract: what an exported model file carries and what the runtime reads from it.

One TensorFlow-free module at the bottom of the stack. The exporter writes :class:`ArtifactMetadata`
with :meth:`ArtifactMetadata.to_json`; every reader (runtime backends, benchmarks) parses it with
:meth:`ArtifactMetadata.from_json`. The format table, class names and image suffixes live here too.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeseg import __version__
from edgeseg.choice import Choice
from edgeseg.errors import EdgesegError, UsageError

METADATA_KEY = "edgeseg"  # the metadata entry's name in a .tflite, its metadata_props key in an .onnx
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# Oxford-IIIT Pet trimaps, 0-based: what edgeseg models predict. The first class is the subject ("pet" for
# Oxford-IIIT Pet, "person" for portraits): see trimap_classes.
CLASS_NAMES = ("pet", "background", "border")
PET, BACKGROUND, BORDER = range(len(CLASS_NAMES))  # the 0-based labels of a trimap model (PET: its subject)
FOREGROUND_CLASSES = (PET, BORDER)
# A trimap's border band is drawn on both sides of the true outline: counting all of it as foreground
# grows every mask by half a band (a halo). Half its probability puts the 0.5 contour on the outline.
TRIMAP_MASK_WEIGHTS = (1.0, 0.0, 0.5)


def trimap_classes(subject: str = CLASS_NAMES[0]) -> tuple[str, ...]:
    """The classes of an edgeseg trimap model whose foreground is ``subject``: (subject, background, border)."""
    if not subject or not subject.replace("-", "").replace("_", "").isalnum() or subject in CLASS_NAMES[1:]:
        raise ValueError(f"subject {subject!r}: expected a short name of letters or digits such as pet or person, "
                         f"not {CLASS_NAMES[1]!r} or {CLASS_NAMES[2]!r}")
    return (subject, *CLASS_NAMES[1:])


def is_trimap(classes: tuple[str, ...] | list[str]) -> bool:
    """Whether ``classes`` are an edgeseg trimap model's (any subject): the one rule for "gets trimap mask weights"."""
    return len(classes) == len(CLASS_NAMES) and tuple(classes[1:]) == CLASS_NAMES[1:]


class MetadataError(EdgesegError, ValueError):
    """Metadata that cannot be parsed or does not fit the contract (the message names the field)."""


class Precision(Choice):
    FP32 = "fp32"
    FP16 = "fp16"  # float16 weights
    INT8 = "int8"  # full-integer: int8 weights and activations, uint8 input
    DYNAMIC = "dynamic"  # dynamic-range (int8 weights, float activations): only on explicit request


class OutputKind(Choice):
    LOGITS = "logits"  # (N, H, W, C) class scores: softmax, alpha = sum of weighted class probabilities
    # (N, H, W, 1) foreground probability (a sigmoid is applied if it is not), or (N, H, W, C) class probabilities:
    # alpha = their weighted sum
    PROBABILITY = "probability"
    CLASS_INDEX = "class-index"  # (N, H, W) class ids: alpha = the weight of the pixel's class


@dataclass(frozen=True)
class Format:
    """A model file format: its suffix, the precisions edgeseg exports to it and the backend that runs it."""

    name: str
    suffix: str
    precisions: tuple[Precision, ...]
    backend: str  # a key of edgeseg.runtime.backends.BACKENDS
    exported: bool = True  # False: read as a reference, never written by `edgeseg export`


FORMATS: dict[str, Format] = {
    "tflite": Format("tflite", ".tflite", (Precision.FP32, Precision.FP16, Precision.INT8, Precision.DYNAMIC), "litert"),
    "onnx": Format("onnx", ".onnx", (Precision.FP32, Precision.INT8), "onnxruntime"),
    "keras": Format("keras", ".keras", (Precision.FP32,), "keras", exported=False),
}
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.exported)


def get_format(name: str) -> Format:
    """Look an exported format up by name, with a did-you-mean for typos."""
    if name in EXPORT_FORMATS:
        return FORMATS[name]
    hint = difflib.get_close_matches(name, EXPORT_FORMATS, n=1)
    raise ValueError(f"unknown format {name!r}; choose from {', '.join(EXPORT_FORMATS)}"
                     + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def format_of(path: str | Path) -> Format:
    """The format of a model file, from its suffix."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix == suffix:
            return fmt
    known = ", ".join(f"{f.suffix} ({f.backend})" for f in FORMATS.values())
    raise UsageError(f"{path}: unknown model type {suffix!r}; expected {known}")


def artifact_name(model: str, fmt: Format, precision: Precision) -> str:
    """File name of an exported artifact, e.g. ``unet_mobilenetv2_int8.tflite``."""
    return f"{model}_{precision.value}{fmt.suffix}"


def parse_foreground(spec: str) -> dict[int, float]:
    """``--foreground`` as {class id: mask weight}: ``"0,2:0.5"`` -> {0: 1.0, 2: 0.5}; a plain id means weight 1."""
    weights: dict[int, float] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        cid, _, weight = item.partition(":")
        try:
            c, w = int(cid), float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"foreground {spec!r}: expected class ids with optional weights, e.g. 0,2:0.5") from None
        if c < 0 or not 0.0 <= w <= 1.0:
            raise ValueError(f"foreground {item!r}: class ids are >= 0 and weights in [0, 1]")
        if c in weights:  # the last weight would win without a word
            raise ValueError(f"foreground {spec!r} names class {c} twice: give each class once")
        weights[c] = w
    if not weights:
        raise ValueError(f"foreground {spec!r} names no class; expected e.g. 8,12 or 0,2:0.5")
    if not any(weights.values()):
        raise ValueError(f"foreground {spec!r}: every class weighs 0, so the mask would be empty")
    return weights


@dataclass(frozen=True)
class ArtifactMetadata:
    """What an edgeseg artifact carries so the runtime needs no side file.

    ``mask_weights`` holds one weight per class: the runtime's alpha is the sum of w_c * p_c. Without
    it (artifacts from before weights existed) every foreground class weighs 1 and the rest 0.
    """

    model: str
    format: str
    precision: str
    input_size: tuple[int, int]  # (height, width)
    input_dtype: str = "float32"
    input_range: tuple[float, float] = (0.0, 255.0)
    output_kind: OutputKind = OutputKind.LOGITS
    classes: tuple[str, ...] = CLASS_NAMES
    foreground_classes: tuple[int, ...] = FOREGROUND_CLASSES
    mask_weights: tuple[float, ...] | None = None
    source_model: str = ""
    source_metrics: dict = field(default_factory=dict)
    macs: int | None = None
    edgeseg_version: str = __version__
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def __post_init__(self):
        lo, hi = self.input_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise MetadataError(f"input range {[lo, hi]}: expected two finite numbers, the lower first")
        n = len(self.classes)
        if any(not 0 <= c < n for c in self.foreground_classes):
            raise MetadataError(f"foreground_classes {list(self.foreground_classes)} do not fit {n} classes")
        if self.mask_weights is not None and (len(self.mask_weights) != n
                                              or any(not 0 <= w <= 1 for w in self.mask_weights)):
            raise MetadataError(f"mask_weights {list(self.mask_weights)}: expected {n} weights in [0, 1]")

    @property
    def subject(self) -> str:
        """What the mask shows ("pet", "person"): the first foreground class's name."""
        return self.classes[self.foreground_classes[0]] if self.foreground_classes else "foreground"

    def class_weights(self) -> tuple[float, ...]:
        """The mask weight of every class."""
        if self.mask_weights is not None:
            return self.mask_weights
        return tuple(1.0 if c in self.foreground_classes else 0.0 for c in range(len(self.classes)))

    def to_dict(self) -> dict:
        output = {"kind": self.output_kind.value, "classes": list(self.classes),
                  "foreground_classes": list(self.foreground_classes)}
        if self.mask_weights is not None:
            output["mask_weights"] = list(self.mask_weights)
        extra = {k: v for k, v in asdict(self).items() if k in ("source_model", "source_metrics", "macs", "created")}
        return {
            "edgeseg_version": self.edgeseg_version, "model": self.model, "format": self.format,
            "precision": self.precision,
            "input": {"size": list(self.input_size), "dtype": self.input_dtype, "layout": "NHWC", "color": "RGB",
                      "range": list(self.input_range)},
            "output": output, **extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "ArtifactMetadata":
        try:
            inp, out = d["input"], d["output"]
            weights = out.get("mask_weights")
            return cls(
                model=str(d["model"]), format=str(d["format"]), precision=str(d["precision"]),
                input_size=tuple(int(v) for v in inp["size"]), input_dtype=str(inp.get("dtype", "float32")),
                input_range=tuple(float(v) for v in inp["range"]), output_kind=OutputKind(out["kind"]),
                classes=tuple(out.get("classes", CLASS_NAMES)),
                foreground_classes=tuple(int(c) for c in out["foreground_classes"]),
                mask_weights=None if weights is None else tuple(float(w) for w in weights),
                source_model=str(d.get("source_model", "")), source_metrics=d.get("source_metrics") or {},
                macs=d.get("macs"), edgeseg_version=str(d.get("edgeseg_version", "")), created=str(d.get("created", "")),
            )
        except MetadataError:
            raise
        except KeyError as exc:
            raise MetadataError(f"edgeseg metadata lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise MetadataError(f"edgeseg metadata has a malformed field: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "ArtifactMetadata":
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MetadataError(f"edgeseg metadata is not JSON: {exc}") from None
        if not isinstance(d, dict):
            raise MetadataError("edgeseg metadata is not a JSON object")
        return cls.from_dict(d)
