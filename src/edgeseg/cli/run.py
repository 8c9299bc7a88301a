"""``edgeseg webcam`` and ``edgeseg predict``: the runtime on streams and on photos."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from edgeseg.cli.app import app, console, err, fail, plural, writable
from edgeseg.cli.options import (
    MASK_PANEL, SERVE_PANEL, BackgroundOpt, BlurOpt, EdgesOpt, EffectOpt, FeatherOpt, FramePathOpt, ForegroundOpt,
    InputRangeOpt, JsonOpt, MaxPixelsOpt, MinBlobOpt, ModelOpt, OutputKindOpt, ProviderOpt, SmoothingOpt, SoftnessOpt,
    ThreadsOpt, ThresholdOpt, background_option, blur_option, segmenter_options,
)
from edgeseg.runtime.effects import Effect
from edgeseg.runtime.image_io import MAX_PIXELS
from edgeseg.runtime.outputs import VIDEO_CODECS
from edgeseg.runtime.pipeline import PipelineOptions
from edgeseg.runtime.segmenter import SegmenterOptions
from edgeseg.runtime.server import DEFAULT_PORT

S, P = SegmenterOptions, PipelineOptions  # the defaults of the runtime's settings: one home


@app.command()
def webcam(
    model: ModelOpt = None,
    source: str = typer.Option("0", help="Camera index or device, video file, rtsp/http URL, image or folder."),
    camera_size: Optional[str] = typer.Option(None, help="Frame size to ask the camera for, e.g. 1280x720 (it says "
                                              "when it delivers another)."),
    camera_fps: Optional[float] = typer.Option(None, min=1.0, max=1000.0, help="Frame rate to ask the camera for."),
    effect: EffectOpt = P.effect,
    background: BackgroundOpt = None,
    blur: BlurOpt = None,
    output: Optional[Path] = typer.Option(None, help=f"Write the result to a video file ({', '.join(VIDEO_CODECS)}; "
                                          "video only, no sound)."),
    serve: Optional[str] = typer.Option(
        None, help=f"Serve an MJPEG stream and page on HOST:PORT, or HOST on port {DEFAULT_PORT} (loopback unless you "
        "name another address).",
        rich_help_panel=SERVE_PANEL),
    token: Optional[str] = typer.Option(
        None, help="Access token the stream requires (default: none on loopback, a generated one elsewhere).",
        rich_help_panel=SERVE_PANEL),
    no_token: bool = typer.Option(False, "--no-token", help="Serve a non-loopback address without a token.",
                                  rich_help_panel=SERVE_PANEL),
    max_clients: int = typer.Option(P.max_clients, min=1, help="Viewers served at once; more get 503.",
                                    rich_help_panel=SERVE_PANEL),
    stream_fps: float = typer.Option(P.stream_fps, min=1.0, help="Frames per second the stream carries at most.",
                                     rich_help_panel=SERVE_PANEL),
    window: Optional[bool] = typer.Option(None, "--window/--no-window", help="Show a window (default: if a display exists)."),
    virtual_cam: bool = typer.Option(False, "--virtual-cam", help="Send frames to a virtual camera (pyvirtualcam)."),
    hud: Optional[bool] = typer.Option(None, "--hud/--no-hud",
                                       help="FPS and per-stage latency overlay (default: in the window only)."),
    threads: ThreadsOpt = None,
    smoothing: SmoothingOpt = S.smoothing,
    threshold: ThresholdOpt = S.threshold,
    softness: SoftnessOpt = S.softness,
    edges: EdgesOpt = S.edges,
    frame_path: FramePathOpt = P.frame_path,
    feather: FeatherOpt = S.feather,
    min_blob: MinBlobOpt = S.min_blob,
    mask_every: int = typer.Option(S.mask_every, min=1, help="Compute a new mask every N frames.", rich_help_panel=MASK_PANEL),
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after N frames."),
    max_pixels: MaxPixelsOpt = MAX_PIXELS,
    loop: bool = typer.Option(False, "--loop", help="Play a video file or image folder again and again."),
    input_range: InputRangeOpt = None,
    output_kind: OutputKindOpt = None,
    foreground: ForegroundOpt = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
):
    """Live background effects on a camera or stream (q quits, e cycles effects, h toggles the HUD)."""
    from dataclasses import asdict

    from edgeseg.runtime.outputs import display_available, video_codecs
    from edgeseg.runtime.pipeline import EndReason, PipelineOptions, run_pipeline
    from edgeseg.runtime.segmenter import RunningMode, Segmenter
    from edgeseg.runtime.server import ServeError, check_token, parse_address
    from edgeseg.runtime.sources import CameraMode, open_source

    if serve:
        try:
            parse_address(serve)
        except ServeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--serve") from None
    try:
        check_token(token)
    except ServeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--token") from None
    if token is not None and no_token:
        raise typer.BadParameter("--no-token serves without a token; give --token or --no-token, not both",
                                 param_hint="--token")
    server_options = {"--token": token is not None, "--no-token": no_token,
                      "--max-clients": max_clients != P.max_clients, "--stream-fps": stream_fps != P.stream_fps}
    given = [name for name, is_set in server_options.items() if is_set]
    if given and not serve:
        raise typer.BadParameter("it is for the stream server: give --serve HOST:PORT too", param_hint=given[0])
    background_value = background_option(effect, background, max_pixels)
    blur_px = blur_option(effect, blur)
    if output:
        try:
            video_codecs(output)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--output") from None
        writable(output, "--output")
        if Path(source).exists() and output.resolve() == Path(source).resolve():
            raise typer.BadParameter(f"{output} is the source itself: writing it would replace the video being "
                                     "read; choose another file", param_hint="--output")
    options = segmenter_options(
        model, RunningMode.VIDEO, provider, foreground, threads=threads, smoothing=smoothing,
        threshold=threshold, softness=softness, edges=edges, feather=feather, mask_every=mask_every,
        min_blob=min_blob, input_range=input_range,
        output_kind=output_kind)
    show = display_available() if window is None else window
    camera = None
    if camera_size or camera_fps:
        try:
            camera = CameraMode(CameraMode.parse_size(camera_size) if camera_size else None, camera_fps)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--camera-size") from None
    src = open_source(source, loop=loop, realtime=bool(show or serve or virtual_cam), max_pixels=max_pixels,  # files play at their own frame rate where someone watches: a window, a stream, a virtual camera
                      camera=camera)
    if not (show or output or serve or virtual_cam or as_json) or (show and not display_available()):
        src.close()
        raise fail("no display here (DISPLAY is not set): pass --output FILE.mp4, --serve 127.0.0.1:8080 or "
                   "--virtual-cam to see the result")
    with src, Segmenter(options) as segmenter:
        report = run_pipeline(src, segmenter, PipelineOptions(
            effect=effect, background=background_value, blur=blur_px, hud=show if hud is None else hud, window=show,
            output=str(output) if output else None, serve=serve, token=token, open_stream=no_token,
            max_clients=max_clients, stream_fps=stream_fps, virtual_cam=virtual_cam, max_frames=max_frames,
            frame_path=frame_path), name=source)
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    elif report.frames or not report.ended.failed:  # a run that saw no frame has only its error to say
        stages = ", ".join(f"{k} {v:.1f}" for k, v in report.stage_ms.items())
        # a failure's reason is the error line's, said once
        ended = report.ended.value + (f" ({report.detail})" if report.detail and not report.ended.failed else "")
        latency = (f"; glass-to-glass p50 {report.latency_ms['p50']:.1f} ms" if report.latency_ms else "") + (
            f", {plural(report.dropped, 'stale frame')} dropped" if report.dropped else "")
        console.print(f"{plural(report.frames, 'frame')} in {report.seconds:.1f} s ({report.fps:.1f} FPS"
                      + (f"; median ms: {stages}" if stages else "") + latency + f"); {ended}"
                      + (f"; wrote {report.output} ({report.codec})" if report.output else ""), soft_wrap=True)
    if report.ended.failed:  # a source that gave no frame was never lost: its error alone says what happened
        lost = report.frames or report.ended is not EndReason.SOURCE_LOST
        raise fail(f"{report.ended.value}: {report.detail}" if lost else report.detail)
    if report.ended is EndReason.SIGNAL:  # the recording is finalised; the code says how the run ended
        raise typer.Exit(128 + signal.Signals[report.detail])


@app.command()
def predict(
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    model: ModelOpt = None,
    effect: EffectOpt = P.effect,
    background: BackgroundOpt = None,
    blur: BlurOpt = None,
    out: Path = typer.Option(Path("predictions"),
                             help="Output folder, or an image file (.png, .jpg, .webp...) for a single image."),
    max_pixels: MaxPixelsOpt = MAX_PIXELS,
    threads: ThreadsOpt = None,
    threshold: ThresholdOpt = S.threshold,
    softness: SoftnessOpt = S.softness,
    edges: EdgesOpt = S.edges,
    feather: FeatherOpt = S.feather,
    min_blob: MinBlobOpt = S.min_blob,
    input_range: InputRangeOpt = None,
    output_kind: OutputKindOpt = None,
    foreground: ForegroundOpt = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
):
    """Apply a background effect to still images (remove-bg writes PNGs with transparency)."""
    from dataclasses import asdict

    from edgeseg.runtime.predict import names_an_image, predict_images
    from edgeseg.runtime.segmenter import RunningMode

    background_value = background_option(effect, background, max_pixels)
    blur_px = blur_option(effect, blur)
    if effect is Effect.REMOVE_BG and isinstance(background_value, tuple):
        logging.getLogger("edgeseg").warning(
            "remove-bg with --background %s keys the background to that colour: the images have no transparency "
            "(leave --background out for transparent cutouts)", background)
    options = segmenter_options(
        model, RunningMode.IMAGE, provider, foreground, threads=threads, smoothing=1.0, threshold=threshold,
        softness=softness, edges=edges, feather=feather, min_blob=min_blob, input_range=input_range,
        output_kind=output_kind)
    writable(out, "--out", folder=not names_an_image(out))
    report = predict_images(images, options, effect, out, background_value, max_pixels, progress=not as_json,
                            blur=blur_px)
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        for output in report.outputs.values():
            console.print(output, soft_wrap=True)
        if report.outputs:
            console.print(f"{plural(len(report.outputs), 'image')} written to {out}; median ms: "
                          + ", ".join(f"{k} {v:.1f}" for k, v in report.stage_ms.items()), soft_wrap=True)
        for name, why in report.failed.items():
            err.print(f"[yellow]skipped[/] {escape(why)}")
    if report.failed:
        raise fail(f"{len(report.failed)} of {len(report.failed) + len(report.outputs)} inputs failed")
