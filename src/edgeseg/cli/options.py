"""Options that several commands share, declared once, and the runtime settings built from them."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgeseg.contract import OutputKind
from edgeseg.runtime.composite import FramePath
from edgeseg.runtime.effects import BLUR, KEY_HEX, MAX_BLUR, MIN_BLUR, Effect
from edgeseg.runtime.image_io import MAX_PIXELS_OPTION
from edgeseg.runtime.model_info import InputRange
from edgeseg.runtime.segmenter import LIMITS, Edges

MAX_THREADS = 256


def bounds(setting: str) -> dict:
    """A mask setting's range (:data:`~edgeseg.runtime.segmenter.LIMITS`) as an option's ``min`` and ``max``."""
    least, most = LIMITS[setting]
    return {"min": least, "max": most}


def choices(enum: type) -> str:
    """An Enum's choices for help text, which wraps between words (Typer's own ``<a|b|c>`` metavar is one
    long word that a narrow terminal splits mid-choice)."""
    return ", ".join(e.value for e in enum)


# Options shared by webcam, predict, evaluate and label, declared once.
MODEL_PANEL, MASK_PANEL, THIRD_PARTY_PANEL = "Model", "Mask", "Models without edgeseg metadata"
SERVE_PANEL = "Stream server"
ModelOpt = Annotated[Optional[str], typer.Option(
    help="A .tflite or .onnx file, or a shipped model's name or alias such as 'edge' (default: the shipped default).",
    rich_help_panel=MODEL_PANEL)]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    min=1, max=MAX_THREADS, help="Interpreter threads (default: every core this process may use: its CPU quota in a "
    "container).", rich_help_panel=MODEL_PANEL)]
ProviderOpt = Annotated[Optional[list[str]], typer.Option(
    "--provider", help="ONNX Runtime execution provider to try first, e.g. CUDAExecutionProvider (repeatable; "
    "CPU is always the fallback).", rich_help_panel=MODEL_PANEL)]
EffectOpt = Annotated[Effect, typer.Option(metavar="EFFECT", help=f"Background effect: {choices(Effect)}.")]
BackgroundOpt = Annotated[Optional[str], typer.Option(
    help=f"replace-bg: image file (scaled to cover the frame and centred, never stretched) or #RRGGBB (default: chroma "
    f"green {KEY_HEX}). remove-bg: photos become PNGs with "
    f"transparency; video has none, so its background is keyed to this colour (default {KEY_HEX}).")]
BlurOpt = Annotated[Optional[int], typer.Option(
    min=MIN_BLUR, max=MAX_BLUR, metavar="PX",
    help=f"blur-bg: how strongly the background is blurred, a Gaussian this many pixels wide (default {BLUR}).")]
ThresholdOpt = Annotated[float, typer.Option(
    **bounds("threshold"), help="Centre of the soft threshold that turns the mask probability into opacity.",
    rich_help_panel=MASK_PANEL)]
SoftnessOpt = Annotated[float, typer.Option(
    **bounds("softness"), help="Half-width of that ramp: transparent below threshold - softness, opaque above "
    "threshold + softness (0.5: the raw probability).", rich_help_panel=MASK_PANEL)]
EdgesOpt = Annotated[Edges, typer.Option(
    metavar="EDGES", help="guided: the mask's edges follow the image's; bilinear: a plain resize (about 0.6 ms cheaper per "
    "640x480 frame on a 2-core x86 CPU).", rich_help_panel=MASK_PANEL)]
FramePathOpt = Annotated[Optional[FramePath], typer.Option(
    metavar="PATH", help="How the frame-sized work is done: fused (compiled loops, one pass per effect; needs numba) "
    "or opencv (portable). Default: fused when numba is installed.", rich_help_panel=MASK_PANEL)]
FeatherOpt = Annotated[int, typer.Option(**bounds("feather"), help="Edge feathering radius in pixels (at most half "
                                         "the frame's shorter side is used).", rich_help_panel=MASK_PANEL)]
MinBlobOpt = Annotated[float, typer.Option(
    **bounds("min_blob"), help="Drop visible parts of the mask smaller than this share of the frame, except the "
    "largest (patterned cushions, blobs beside the subject); 0 keeps every part.", rich_help_panel=MASK_PANEL)]
SmoothingOpt = Annotated[float, typer.Option(
    **bounds("smoothing"), help="Video: weight of the newest mask in a running average (1 = no smoothing).",
    rich_help_panel=MASK_PANEL)]
ForegroundOpt = Annotated[Optional[str], typer.Option(
    help="Classes that make the mask, with optional weights: 8,12 (cat, dog in PASCAL VOC) or 0,2:0.5 (pet, half "
    "the border). Default: the model's own mask weights.", rich_help_panel=MASK_PANEL)]
InputRangeOpt = Annotated[Optional[InputRange], typer.Option(
    metavar="RANGE", help=f"Input range of a model without metadata: {choices(InputRange)}.",
    rich_help_panel=THIRD_PARTY_PANEL)]
OutputKindOpt = Annotated[Optional[OutputKind], typer.Option(
    metavar="KIND", help=f"Output of a model without metadata: {choices(OutputKind)}.", rich_help_panel=THIRD_PARTY_PANEL)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
MaxPixelsOpt = Annotated[int, typer.Option(MAX_PIXELS_OPTION, min=1, help="Refuse larger images before decoding them.")]


def background_option(effect: Effect, value: Optional[str], max_pixels: int):
    from edgeseg.runtime.effects import check_background, parse_background

    try:
        check_background(effect, value)
        return parse_background(value, max_pixels)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--background") from None


def blur_option(effect: Effect, value: Optional[int]) -> int:
    """blur-bg's strength: the one given, or the default; refused for the other effects."""
    from edgeseg.runtime.effects import check_blur

    try:
        check_blur(effect, value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--blur") from None
    return BLUR if value is None else value


def foreground_option(spec: Optional[str]) -> Optional[dict[int, float]]:
    from edgeseg.contract import parse_foreground

    try:
        return parse_foreground(spec) if spec else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--foreground") from None


def segmenter_options(model: Optional[str], mode, providers: Optional[list[str]], foreground: Optional[str],
                       **settings):
    """SegmenterOptions from the shared mask options; ``settings`` are SegmenterOptions fields."""
    from edgeseg.runtime.packaged import resolve_model
    from edgeseg.runtime.segmenter import SegmenterOptions

    path = resolve_model(model)
    if providers and path.suffix.lower() != ".onnx":
        raise typer.BadParameter(f"execution providers are for .onnx models; {path.name} is not one",
                                 param_hint="--provider")
    return SegmenterOptions(model=path, running_mode=mode, foreground=foreground_option(foreground),
                            backend_options={"providers": providers} if providers else {}, **settings)
