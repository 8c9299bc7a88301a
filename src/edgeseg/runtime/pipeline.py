"""The live loop: source -> segmenter -> effect -> window / video file / MJPEG server / virtual camera."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeseg.io import atomic_path
from edgeseg.runtime.effects import Effect, apply_effect
from edgeseg.runtime.scratch import Scratch
from edgeseg.runtime.segmenter import STAGES, RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import Source, SourceError, open_source

log = logging.getLogger("edgeseg")
ALL_STAGES = ("capture", *STAGES, "effect")
KEY_COLOR = (0, 177, 64)  # chroma green, for remove-bg where the output has no alpha channel


@dataclass
class PipelineOptions:
    effect: Effect = Effect.GRAYSCALE_BG
    background: np.ndarray | tuple[int, int, int] | None = None  # image or BGR colour for replace-bg
    blur: int = 21
    hud: bool = True
    window: bool = False
    output: str | None = None  # video file
    serve: str | None = None  # HOST:PORT
    token: str | None = None
    virtual_cam: bool = False
    max_frames: int | None = None


@dataclass
class RunReport:
    """How a run went: frames, rate, median per-stage latency, and why it ended."""

    source: str
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)  # median per stage
    ended: str = "end of input"
    output: str | None = None
    url: str | None = None
    delegate: dict = field(default_factory=dict)


def _draw_hud(frame: np.ndarray, fps: float, stage_ms: dict[str, float], effect: Effect) -> None:
    lines = [f"{fps:5.1f} FPS  {effect.value}"] + [f"{k:<11}{v:6.2f} ms" for k, v in stage_ms.items()]
    for i, line in enumerate(lines):
        y = 22 + 20 * i
        cv2.putText(frame, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


class FrameProcessor:
    """The live loop's step: a BGR frame in, the composited frame and per-stage seconds out.

    Every frame-sized array (mask, effect work arrays, result) is reused from frame to frame, so the
    returned image is overwritten by the next call: copy it to keep it. ``effect`` may change between
    calls. For video-like outputs (``video=True``) remove-bg keys the background to a flat colour.
    """

    def __init__(self, segmenter: Segmenter, effect: Effect, background=None, blur: int = 21, video: bool = True):
        self.segmenter, self.effect, self.blur, self.video = segmenter, Effect(effect), blur, video
        self.background = background
        self._sized: np.ndarray | None = None  # a background image at the current frame size
        self._scratch = Scratch()

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        h, w = image.shape[:2]
        alpha = self.segmenter.segment(image, out=self._scratch.array("alpha", (h, w)))  # uint8, as the effects blend
        t = time.perf_counter()
        background = self.background
        if isinstance(background, np.ndarray):  # resized once per frame size, not once per frame
            if self._sized is None or self._sized.shape[:2] != (h, w):
                self._sized = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
            background = self._sized
        if self.effect is Effect.REMOVE_BG and self.video:
            background = background if isinstance(background, tuple) else KEY_COLOR
        out = apply_effect(self.effect, image, alpha, background, self.blur, self._scratch)
        return out, {**self.segmenter.timings, "effect": time.perf_counter() - t}


def run_pipeline(source: Source, segmenter: Segmenter, options: PipelineOptions, name: str = "") -> RunReport:
    """Process ``source`` until it ends, the user quits (q / Esc / Ctrl-C) or a live source is lost.

    Keys in the window: e cycles effects, h toggles the HUD, q or Esc quits.
    """
    from edgeseg.runtime.outputs import VideoOutput, VirtualCamera, Window
    from edgeseg.runtime.server import MjpegServer

    report = RunReport(source=name, delegate=segmenter.backend.details)
    effects = list(Effect)
    process = FrameProcessor(segmenter, options.effect, options.background, options.blur)
    history: dict[str, list[float]] = {k: [] for k in ALL_STAGES}
    camera = VirtualCamera(source.fps) if options.virtual_cam else None  # first: may fail on a missing import
    writer = VideoOutput(options.output, source.fps) if options.output else None
    window = Window() if options.window else None
    server = None
    if options.serve:
        host, _, port = options.serve.rpartition(":")
        server = MjpegServer(host or "127.0.0.1", int(port), options.token).start()
        report.url = server.url
        log.info("serving %s", server.url)
    hud = options.hud
    start = time.perf_counter()
    fps = 0.0
    try:
        for frame in source:
            t0 = time.perf_counter()
            out, stage_s = process(frame.image)
            t1 = time.perf_counter()
            timings = {"capture": frame.capture_s, **stage_s}
            for k in ALL_STAGES:
                history[k].append(timings[k] * 1000)
            report.frames += 1
            instant = 1.0 / max(t1 - t0 + frame.capture_s, 1e-6)
            fps = instant if not fps else 0.9 * fps + 0.1 * instant  # smoothed for the HUD
            if hud:
                _draw_hud(out, fps, {k: history[k][-1] for k in ALL_STAGES}, process.effect)
            if writer:
                writer.write(out)
            if server:
                server.publish(out)
            if camera:
                camera.write(out)
            if window:
                key = window.show(out)
                if key in (ord("q"), 27) or window.closed():
                    report.ended = "stopped by user"
                    break
                if key == ord("e"):
                    process.effect = effects[(effects.index(process.effect) + 1) % len(effects)]
                elif key == ord("h"):
                    hud = not hud
            if options.max_frames and report.frames >= options.max_frames:
                report.ended = "frame limit reached"
                break
    except KeyboardInterrupt:
        report.ended = "stopped by user"
    except SourceError as exc:
        report.ended = f"source lost: {exc}"
    finally:
        if writer:
            writer.close(keep=True)
            report.output = str(writer.path) if writer.frames else None
        for closable in (window, server, camera):
            if closable:
                closable.close()
    report.seconds = round(time.perf_counter() - start, 3)
    report.fps = round(report.frames / report.seconds, 2) if report.seconds else 0.0
    report.stage_ms = {k: round(statistics.median(v), 3) for k, v in history.items() if v}
    return report


@dataclass
class PredictReport:
    outputs: list[str]
    stage_ms: dict[str, float]
    delegate: dict


def predict_images(images: list[str], options: SegmenterOptions, effect: Effect, out_dir: str | Path,
                   background=None) -> PredictReport:
    """Apply ``effect`` to still images; write PNGs (remove-bg: with an alpha channel) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options.running_mode = RunningMode.IMAGE
    outputs, history = [], {k: [] for k in (*STAGES, "effect")}
    with Segmenter(options) as segmenter:
        process = FrameProcessor(segmenter, effect, background, video=False)
        for spec in images:
            with open_source(spec) as source:
                for frame in source:
                    result, timings = process(frame.image)
                    for k in history:
                        history[k].append(timings[k] * 1000)
                    path = out_dir / f"{Path(frame.name).stem}_{effect.value}.png"
                    with atomic_path(path) as tmp:
                        if not cv2.imwrite(str(tmp), result):
                            raise OSError(f"cannot write {path}")
                    outputs.append(str(path))
        delegate = segmenter.backend.details
    return PredictReport(outputs, {k: round(statistics.median(v), 3) for k, v in history.items() if v}, delegate)
