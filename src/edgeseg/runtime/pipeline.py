"""The live loop: source -> segmenter -> effect -> window / video file / MJPEG server / virtual camera."""

from __future__ import annotations

import logging
import signal
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.runtime.composite import Compositor, FramePath, check_frame_path, default_frame_path
from edgeseg.runtime.effects import BLUR, EFFECTS, KEY_COLOR, Effect, apply_effect, fit_background
from edgeseg.runtime.scratch import Scratch
from edgeseg.runtime.segmenter import STAGES, Segmenter
from edgeseg.runtime.sinks import SinkThread, Sinks
from edgeseg.runtime.sources import Source, SourceError
from edgeseg.stop_signals import set_stop_handler, stop_handler

log = logging.getLogger("edgeseg")
STEP_STAGES = (*STAGES, "effect")  # what FrameProcessor times
ALL_STAGES = ("capture", *STEP_STAGES)


@dataclass
class PipelineOptions:
    effect: Effect = Effect.GRAYSCALE_BG
    background: np.ndarray | tuple[int, int, int] | None = None  # image or BGR colour for replace-bg
    blur: int = BLUR  # blur-bg's strength
    hud: bool = True
    window: bool = False
    output: str | None = None  # video file
    serve: str | None = None  # HOST:PORT
    token: str | None = None  # None: none on loopback, a generated one elsewhere (unless open_stream)
    open_stream: bool = False  # serve a non-loopback address without a token
    max_clients: int = 32
    stream_fps: float = 30.0  # the stream carries at most this many frames a second
    virtual_cam: bool = False
    max_frames: int | None = None
    frame_path: FramePath | None = None  # None: fused when numba is installed


class EndReason(Choice):
    """Why a run ended."""

    END_OF_INPUT = "end of input"
    USER = "stopped by user"
    SIGNAL = "stopped by signal"
    FRAME_LIMIT = "frame limit reached"
    SOURCE_LOST = "source lost"
    OUTPUT_FAILED = "output failed"

    @property
    def failed(self) -> bool:
        return self in (EndReason.SOURCE_LOST, EndReason.OUTPUT_FAILED)


@dataclass
class RunReport:
    """How a run went: frames, rate, median per-stage latency, and why it ended."""

    source: str
    subject: str = ""  # what the mask shows ("pet", "person"): the model's first foreground class
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)  # median per stage over the last STATS_WINDOW frames
    ended: EndReason = EndReason.END_OF_INPUT
    detail: str = ""  # e.g. the signal's name, or why the source was lost
    output: str | None = None
    codec: str | None = None  # the output's video codec
    url: str | None = None  # token redacted
    delegate: dict = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # glass to glass: capture to output written
    dropped: int = 0  # frames a live run's outputs skipped rather than fall behind
    mask_age: float = 0.0  # mean frames between a frame and the model run its mask came from (--mask-every)


STATS_WINDOW = 3000  # frames of stage timings a run keeps for its medians: 100 s at 30 FPS
HUD_WINDOW = 30  # the HUD's FPS is the rate of the last this many frames' whole turns, outputs included


class Stopped(Exception):
    """Raised in the main thread by SIGTERM or SIGHUP, so the run finalises its outputs as on Ctrl-C."""


def _stop(signum, _frame):
    """SIGTERM (timeout, systemd, docker stop) and SIGHUP (a closed terminal) end the run cleanly."""
    set_stop_handler(signal.SIG_IGN)  # a second signal must not cut the finalising of the outputs short
    raise Stopped(signal.Signals(signum).name)


def _announce(url: str) -> None:
    """The stream's URL on stderr: in full on a terminal, redacted where stderr is a log (systemd, docker)."""
    from edgeseg.runtime.server import redact

    if sys.stderr.isatty() or redact(url) == url:
        print(f"serving {url}", file=sys.stderr, flush=True)
    else:
        print(f"serving {redact(url)} (the token is shown only on a terminal; choose one with --token)",
              file=sys.stderr, flush=True)


HUD_FONT, HUD_SCALE, HUD_LINE = cv2.FONT_HERSHEY_SIMPLEX, 0.5, 20  # at 480 rows; taller frames scale it all
HUD_ROWS = 480


def draw_hud(frame: np.ndarray, fps: float, stage_ms: dict[str, float], effect: Effect, subject: str = "",
             mask_age: int | None = None) -> None:
    """FPS, per-stage latency and (``mask_age``, when masks are reused) the frames since the model ran, white on
    a dark box in the top-left corner (in place), as large a share of the frame as at 480 rows for taller frames
    (a 1080p stream shown small stays readable).

    One text pass on a filled box: an outline drawn with a thicker pass of the same text has wider glyph
    advances in OpenCV 5, which garbled the lines ("preprocesss 0.36 mss").
    """
    grow = max(1.0, frame.shape[0] / HUD_ROWS)
    scale, line_px, thickness = HUD_SCALE * grow, round(HUD_LINE * grow), max(1, round(grow))
    lines = [f"{fps:5.1f} FPS  {effect.value}  {subject}".rstrip()] + [f"{k:<11}{v:6.2f} ms" for k, v in stage_ms.items()]
    if mask_age is not None:
        lines.append(f"{'mask age':<11}{mask_age:3d} frames")
    width = max(cv2.getTextSize(line, HUD_FONT, scale, thickness)[0][0] for line in lines)
    box = frame[:min(frame.shape[0], round(8 * grow) + line_px * len(lines)),
                :min(frame.shape[1], width + round(20 * grow))]
    box //= 3  # darken in place: readable on any background
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (round(10 * grow), round(22 * grow) + line_px * i), HUD_FONT, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)


class FrameProcessor:
    """The live loop's step: a BGR frame in, the composited frame and per-stage seconds out (a context manager:
    closing it stops the fused frame path's threads).

    Every frame-sized array (mask, effect work arrays, result) is reused from frame to frame, so the
    returned image is overwritten by the next call: copy it to keep it. ``effect`` may change between
    calls. For video-like outputs (``video=True``) remove-bg keys the background to a flat colour.

    ``frame_path``: fused (:mod:`edgeseg.runtime.composite`; the default when numba is installed) renders the
    mask in the effect's pass, so its "postprocess" stage is the work at the model's resolution and its
    "effect" stage all the frame-sized work; opencv renders the mask in "postprocess", then blends.
    """

    def __init__(self, segmenter: Segmenter, effect: Effect, background=None, blur: int = BLUR, video: bool = True,
                 frame_path: FramePath | None = None):
        self.segmenter, self.effect, self.blur, self.video = segmenter, Effect(effect), blur, video
        self.background = background
        self.frame_path = check_frame_path(frame_path or default_frame_path())
        self._compositor = Compositor(segmenter.options.threads) if self.frame_path is FramePath.FUSED else None
        self._sized: np.ndarray | None = None  # a background image at the current frame size
        self._scratch = Scratch()

    def close(self) -> None:
        if self._compositor is not None:
            self._compositor.close()

    def __enter__(self) -> "FrameProcessor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        h, w = image.shape[:2]
        field = mask = None
        if self._compositor is not None and not self.segmenter.options.feather:
            field = self.segmenter.field(image)  # rendered in the effect's pass
        else:  # uint8, as the effects blend
            mask = self.segmenter.segment(image, out=self._scratch.array("alpha", (h, w)))
        t = time.perf_counter()
        background = self.background
        if isinstance(background, np.ndarray):  # resized once per frame size, not once per frame
            if self._sized is None or self._sized.shape[:2] != (h, w):
                self._sized = fit_background(background, h, w)
            background = self._sized
        if EFFECTS[self.effect].keyed_in_video and self.video:
            background = background if isinstance(background, tuple) else KEY_COLOR
        if self._compositor is not None:
            out = self._compositor(self.effect, image, field, mask, background, self.blur)
        else:
            out = apply_effect(self.effect, image, mask, background, self.blur, self._scratch)
        return out, {**self.segmenter.timings, "effect": time.perf_counter() - t}


def run_pipeline(source: Source, segmenter: Segmenter, options: PipelineOptions, name: str = "",
                 announce: Callable[[str], None] = _announce) -> RunReport:
    """Process ``source`` until it ends, the user quits (q / Esc / Ctrl-C), a signal (SIGTERM, SIGHUP)
    stops it or a live source is lost. Outputs are finalised in every case.

    Keys in the window: e cycles effects, h toggles the HUD, q or Esc quits. ``announce`` receives the
    stream's URL, token included, once (the log and the report get it redacted).
    """
    report = RunReport(source=name, subject=segmenter.info.subject, delegate=segmenter.backend.details)
    effects = list(Effect)
    process = FrameProcessor(segmenter, options.effect, options.background, options.blur,
                             frame_path=options.frame_path)
    # A live run may last for days: each stage keeps its last STATS_WINDOW timings, not every frame's.
    history: dict[str, deque[float]] = {k: deque(maxlen=STATS_WINDOW) for k in ALL_STAGES}
    sinks = Sinks(options, source.fps, announce)
    report.url = sinks.url
    # The outputs are written on their own thread while the next frame is captured and processed.
    writer = SinkThread(sinks, getattr(source, "live", False), STATS_WINDOW) if sinks.writes else None
    latency = writer.latency_ms if writer else deque(maxlen=STATS_WINDOW)
    hud = options.hud
    start = time.perf_counter()
    age, ages = 0, 0
    turns: deque[float] = deque(maxlen=HUD_WINDOW)  # when the last frames' turns began: the HUD shows their rate
    with stop_handler(_stop):
        try:
            for frame in source:
                t0 = time.perf_counter()
                out, stage_s = process(frame.image)
                timings = {"capture": frame.capture_s, **stage_s}
                for k in ALL_STAGES:
                    if timings[k] is not None:  # stages skipped this frame (--mask-every) are not zeros
                        history[k].append(timings[k] * 1000)
                age = 0 if stage_s["inference"] is not None else age + 1
                ages += age
                report.frames += 1
                turns.append(t0)
                if hud:  # before the first whole turn, the rate of this frame's work is all there is
                    shown = ((len(turns) - 1) / max(turns[-1] - turns[0], 1e-6) if len(turns) > 1
                             else 1.0 / max(time.perf_counter() - t0 + frame.capture_s, 1e-6))
                    stages = {k: history[k][-1] for k in ALL_STAGES}
                    if latency:
                        stages["latency"] = latency[-1]
                    draw_hud(out, shown, stages, process.effect, report.subject,
                             mask_age=age if segmenter.mask_every > 1 else None)
                if writer:
                    writer.put(out, frame.captured_at)
                key = sinks.show(out)
                if not writer:
                    latency.append((time.perf_counter() - frame.captured_at) * 1000)
                if key in (ord("q"), 27):
                    report.ended = EndReason.USER
                    break
                if key == ord("e"):
                    process.effect = effects[(effects.index(process.effect) + 1) % len(effects)]
                elif key == ord("h"):
                    hud = not hud
                if options.max_frames and report.frames >= options.max_frames:
                    report.ended = EndReason.FRAME_LIMIT
                    break
        except KeyboardInterrupt:
            report.ended = EndReason.USER
        except Stopped as exc:
            report.ended, report.detail = EndReason.SIGNAL, str(exc)
        except SourceError as exc:
            report.ended, report.detail = EndReason.SOURCE_LOST, str(exc)
        except OSError as exc:  # a full disk, say: stop at the first failed write, with the OS's reason
            report.ended, report.detail = EndReason.OUTPUT_FAILED, str(exc)
        finally:
            failed = writer.close() if writer else None
            if isinstance(failed, OSError) and report.ended is not EndReason.OUTPUT_FAILED:
                report.ended, report.detail = EndReason.OUTPUT_FAILED, str(failed)
            report.output, report.codec = sinks.close(keep=report.ended is not EndReason.OUTPUT_FAILED)
            process.close()
    if failed is not None and not isinstance(failed, OSError):  # a fault, not a full disk: never a quiet success
        raise failed
    report.seconds = round(time.perf_counter() - start, 3)
    report.fps = round(report.frames / report.seconds, 2) if report.seconds else 0.0
    report.stage_ms = {k: round(statistics.median(v), 3) for k, v in history.items() if v}
    if latency:
        report.latency_ms = {f"p{q}": round(float(np.percentile(latency, q)), 2) for q in (50, 90, 99)}
    report.dropped = writer.dropped if writer else 0
    report.mask_age = round(ages / report.frames, 2) if report.frames else 0.0
    return report
