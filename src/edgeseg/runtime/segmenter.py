"""``Segmenter``: BGR frames of any size in, soft foreground masks at frame size out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.contract import OutputKind
from edgeseg.errors import SettingError
from edgeseg.runtime.alpha import soft_threshold
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.composite import fused_available
from edgeseg.runtime.guided import GuidedUpsampler, MaskField
from edgeseg.runtime.model_info import ModelInfo, resolve_model_info
from edgeseg.runtime.packaged import resolve_model
from edgeseg.runtime.scratch import Scratch
from edgeseg.runtime.shrink import halve


class RunningMode(Choice):
    IMAGE = "image"  # independent images: no temporal state
    VIDEO = "video"  # frames of one stream (file, camera, URL) in order: temporal smoothing, mask reuse


class Edges(Choice):
    """How the mask is resized to the frame."""

    GUIDED = "guided"  # a guided filter: the mask's edges follow the image's (the default)
    BILINEAR = "bilinear"  # a plain resize: smooth edges on the model's grid, and cheaper


@dataclass
class SegmenterOptions:
    """How to run a model and shape its mask.

    Args:
        model: ``.tflite`` or ``.onnx`` file, run folder (its best exported artifact), or a shipped model's name
            (``"edge"``, ``"person"``); None: the shipped default, as on the command line.
        running_mode: image or video (smoothing and ``mask_every`` apply to video).
        threads: interpreter threads (None: the backend's default).
        smoothing: weight of the newest mask in the exponential moving average (1 disables it).
        threshold: centre of the soft threshold that turns the weighted probability into alpha.
        softness: half-width of that ramp: alpha is 0 below ``threshold - softness`` and 1 above
            ``threshold + softness``, so an empty background is fully transparent and the subject fully
            opaque, with a soft edge a few pixels wide. 0.5 around 0.5 passes the probability unchanged.
        edges: guided (the mask's edges follow the image's) or bilinear (see experiments/README.md).
        feather: edge feathering radius in pixels at frame size (0: none).
        mask_every: compute a new mask every N frames and reuse it in between (slow devices).
        input_range, output_kind: overrides for models without edgeseg metadata.
        foreground: class ids, or {class id: weight}: alpha is the sum of weight x probability over
            these classes (default: the artifact's mask weights).
        min_blob: drop visible parts of the mask smaller than this share of the frame, except the largest
            (a cushion's pattern, a blob below the pet); 0 keeps every part.
    """

    model: str | Path | None = None
    running_mode: RunningMode = RunningMode.IMAGE
    threads: int | None = None
    smoothing: float = 0.6
    threshold: float = 0.5
    softness: float = 0.1
    edges: Edges = Edges.GUIDED
    feather: int = 0
    mask_every: int = 1
    input_range: str | None = None
    output_kind: str | None = None
    foreground: dict[int, float] | list[int] | None = None
    min_blob: float = 0.0
    backend_options: dict = field(default_factory=dict)


STAGES = ("preprocess", "inference", "postprocess")
MAX_FEATHER = 255  # px: a blur radius past this is no edge but the whole frame, and takes minutes per frame
# The mask settings' ranges (least, most), read by the segmenter's checks, the command line's bounds and --sweep
LIMITS = {"threshold": (0.0, 1.0), "softness": (0.01, 0.5), "smoothing": (0.01, 1.0), "min_blob": (0.0, 0.99),
          "feather": (0, MAX_FEATHER)}


class Segmenter:
    """Foreground probability masks from a segmentation model (context manager).

    Example:
        >>> with Segmenter(SegmenterOptions("model.tflite", RunningMode.VIDEO)) as seg:  # doctest: +SKIP
        ...     alpha = seg.segment(frame)  # float32 (H, W) in [0, 1]
    """

    def __init__(self, options: SegmenterOptions):
        mode = RunningMode(options.running_mode)
        for name, (least, most) in LIMITS.items():
            value = getattr(options, name)
            if not least <= value <= most:  # NaN too
                raise SettingError(name, f"{name} must be {least:g} to {most:g}, received {value}")
        if options.mask_every < 1:
            raise SettingError("mask_every", f"mask_every must be >= 1, received {options.mask_every}")
        self.options = options
        self.mode = mode
        still = mode is RunningMode.IMAGE  # temporal settings mean nothing for independent images
        self._smoothing = 1.0 if still else options.smoothing
        self.mask_every = 1 if still else options.mask_every  # a new mask every this many frames
        self.backend = open_backend(_model_file(options.model), threads=options.threads, **options.backend_options)
        try:
            self.info: ModelInfo = resolve_model_info(
                self.backend, options.input_range, options.output_kind, options.foreground)
        except Exception:
            self.backend.close()
            raise
        h, w = self.info.input_size
        self._small, self._rgb = np.empty((h, w, 3), np.uint8), np.empty((h, w, 3), np.uint8)
        self._double = np.empty((2 * h, 2 * w, 3), np.uint8)
        self._input = np.empty((1, h, w, 3), np.uint8 if self.backend.input.dtype == np.uint8 else np.float32)
        lo, hi = self.info.input_range
        self._scale, self._offset = (hi - lo) / 255.0, lo
        weights = self.info.mask_weights
        self._fg = np.array(self.info.foreground_classes)
        if self.info.output_kind is OutputKind.CLASS_INDEX and weights:
            self._class_alpha = np.zeros(max(weights) + 1, np.float32)  # class id -> alpha
            self._class_alpha[list(weights)] = list(weights.values())
        n_classes = self.backend.output.shape[-1]
        self._weights = [weights.get(c, 0.0) for c in range(n_classes)]
        self._state: np.ndarray | None = None  # smoothed mask at model resolution
        self._scratch = Scratch()  # work arrays: halved frames, softmax terms
        self._mask8: np.ndarray | None = None  # the same as 0-255, for 8-bit masks
        self._ramped = not (options.threshold == 0.5 and options.softness == 0.5)  # else the identity
        levels = np.arange(256, dtype=np.float32) / 255
        self._ramp8 = np.rint(soft_threshold(levels, options.threshold, options.softness) * 255).astype(np.uint8)
        self._guided = GuidedUpsampler() if Edges(options.edges) is Edges.GUIDED else None
        self._fit: tuple[tuple, MaskField] | None = None  # the guided fit of the current mask: (unit, compiled), field
        self._frames = 0
        self.timings: dict[str, float | None] = dict.fromkeys(STAGES, 0.0)  # seconds, last frame

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    @property
    def low_res_mask(self) -> np.ndarray | None:
        """The (smoothed) probability at the model's resolution, before resizing; None before the first frame."""
        return self._state

    @property
    def model_input(self) -> np.ndarray:
        """The last frame the model ran on, BGR at its input size (the guide of guided edges at that size)."""
        return self._small

    def reset(self) -> None:
        """Forget temporal state (start of a new stream)."""
        self._state, self._frames, self._fit = None, 0, None

    def segment(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Foreground probability (float32, frame height x width, in [0, 1]) of a BGR uint8 frame.

        ``out``: an array of the frame's height x width to write the mask into (live loops reuse one), else
        a new float32 array is returned. A uint8 ``out`` receives the probability as 0-255, resized in
        8 bits: what the effects blend with, at a quarter of the memory traffic of float.
        """
        _check_frame(frame)
        if out is not None and (out.shape != frame.shape[:2] or out.dtype not in (np.float32, np.uint8)):
            raise ValueError(f"out must be float32 or uint8 {frame.shape[:2]}, received {out.dtype} {out.shape}")
        started = self._advance(frame)
        alpha = self._to_frame(self._state, frame, out)
        self.timings["postprocess"] = time.perf_counter() - started
        return alpha

    def field(self, frame: np.ndarray) -> MaskField:
        """The mask of a BGR uint8 frame before its frame-sized work: planes on the model's grid (guided edges:
        the fit's, under twice :data:`~edgeseg.runtime.guided.GRID` cells a side) that :mod:`edgeseg.runtime.composite`
        renders (alpha 0-255) in the same pass as the effect; rendered, it is ``segment(frame) * 255`` within 2
        levels at nearly every pixel (feathering is not in it).
        Valid until the next call (work arrays)."""
        _check_frame(frame)
        started = self._advance(frame)
        t, s = self.options.threshold, self.options.softness
        if self._guided is not None:
            field = self._fitted(255.0, fused_available())
        else:  # the ramp is linear up to its clip, which the renderer applies after resizing, as ``_resize`` ramps
            work, shape = self._scratch, self._state.shape
            b = np.subtract(self._state, np.float32(t - s), out=work.array("field/b", shape, np.float32))
            b *= np.float32(255 / (2 * s))
            a = work.array("field/a", shape, np.float32)
            a.fill(0)
            field = MaskField(a, b)
        self.timings["postprocess"] = time.perf_counter() - started
        return field

    def _advance(self, frame: np.ndarray) -> float:
        """Run the model on ``frame`` (or reuse the last mask, ``mask_every``) and update the smoothed mask at
        the model's resolution; returns when the post-processing began (``perf_counter``)."""
        reuse = self._state is not None and self._frames % self.mask_every != 0
        self._frames += 1
        if reuse:  # no model run this frame: nothing to time (None keeps it out of the medians)
            self.timings.update(preprocess=None, inference=None)
        else:
            t0 = time.perf_counter()
            self._preprocess(frame)
            t1 = time.perf_counter()
            output = self.backend.run(self._input)
            t2 = time.perf_counter()
            self.timings.update(preprocess=t1 - t0, inference=t2 - t1)
        started = time.perf_counter()
        if not reuse:
            self._fit = None  # a new mask: fitted anew
            mask = self._foreground(output)
            if not np.isfinite(mask).all():  # one channel, not every class's: else a fully opaque mask, silently
                raise ValueError(f"{self.options.model} produced non-finite outputs (NaN or Inf): the model is "
                                 "broken, or its input range is wrong (--input-range)")
            if self.options.min_blob:
                drop_small_parts(mask, self.options.min_blob, self.options.threshold - self.options.softness)
            a = self._smoothing
            if self._state is None:
                self._state = mask.copy()  # ``mask`` may be a work array the next frame overwrites
            elif a == 1.0:
                np.copyto(self._state, mask)
            else:
                cv2.addWeighted(mask, a, self._state, 1 - a, 0, dst=self._state)
        return started

    def _preprocess(self, frame: np.ndarray) -> None:
        h, w = self.info.input_size
        # INTER_AREA at a fractional scale is ~20x slower than this: exact 2x2 means while the frame is over 5x
        # the input, bilinear to 2x the input, then an exact 2x2 area step. On average within a grey level of
        # INTER_AREA, which training uses. Also for a frame larger than the input on one side only (640x480 for
        # a 256x256 input: 1.5 ms of INTER_AREA, 0.4 ms this way). Bilinear shrinking by over 2x weighs some
        # pixels 0 (at 2.5x one column in five: 640x480 for a 128 px input); halving from 4x would weigh every
        # pixel, at the cost of a pass.
        while frame.shape[0] > 5 * h or frame.shape[1] > 5 * w:
            frame = halve(frame, self._scratch, f"frame/{frame.shape[0]}")
        if frame.shape[0] > h or frame.shape[1] > w:
            frame = cv2.resize(frame, (2 * w, 2 * h), dst=self._double, interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(frame, (w, h), dst=self._small, interpolation=cv2.INTER_AREA)
        if self._input.dtype == np.uint8:  # straight into the model's input
            cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=self._input[0])
        else:
            rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=self._rgb)
            # to the model's range: scaled and offset in one call (rgb's second term weighs 0)
            cv2.addWeighted(rgb, self._scale, rgb, 0.0, self._offset, dst=self._input[0], dtype=cv2.CV_32F)

    def _foreground(self, output: np.ndarray) -> np.ndarray:
        kind = self.info.output_kind
        out = output[0]
        if kind is OutputKind.CLASS_INDEX:
            labels = out.astype(np.int64)
            if not self._fg.size:
                return (labels != 0).astype(np.float32)
            lut = self._class_alpha
            return np.where(labels < lut.size, lut[np.clip(labels, 0, lut.size - 1)], np.float32(0))
        if kind is OutputKind.PROBABILITY and out.ndim == 3 and out.shape[-1] > 1:  # softmax already applied
            alpha = np.tensordot(out.astype(np.float32, copy=False), np.float32(self._weights), axes=1)
            return np.clip(alpha, 0, 1, out=alpha)
        if kind is OutputKind.PROBABILITY:
            p = out[..., 0] if out.ndim == 3 else out
            if p.min() < 0 or p.max() > 1:
                p = 1 / (1 + np.exp(-p))
            p = np.ascontiguousarray(p, dtype=np.float32)
            return p if self._weights == [1.0] else p * np.float32(self._weights[0])
        out = np.asarray(out, dtype=np.float32)
        return self._weighted_softmax(out)

    def _weighted_softmax(self, out: np.ndarray) -> np.ndarray:
        """:func:`~edgeseg.runtime.alpha.alpha_from_logits` for one frame, fast: the sum of w_c * softmax_c, shifted
        by the peak logit so that no exp overflows. OpenCV's element-wise
        ops on split planes (numpy's on strided planes take ~1.7x as long, and reductions over a 3-wide last
        axis ~6x), all into reused work arrays."""
        work = self._scratch
        shape = out.shape[:2]
        planes = cv2.split(np.ascontiguousarray(out),
                           [work.array(f"plane{c}", shape, np.float32) for c in range(out.shape[-1])])
        peak, total, num = (work.array(name, shape, np.float32) for name in ("peak", "total", "num"))
        cv2.max(planes[0], planes[1], dst=peak)
        for plane in planes[2:]:
            cv2.max(peak, plane, dst=peak)
        for plane in planes:  # each plane becomes exp(l_c - peak), in place
            cv2.exp(cv2.subtract(plane, peak, dst=plane), dst=plane)
        cv2.add(planes[0], planes[1], dst=total)
        for plane in planes[2:]:
            cv2.add(total, plane, dst=total)
        started = False
        for plane, weight in zip(planes, self._weights):
            if weight and started:
                cv2.scaleAdd(plane, weight, num, dst=num)
            elif weight:
                cv2.multiply(plane, weight, dst=num)
                started = True
        return cv2.divide(num, total, dst=num)

    def _to_frame(self, mask: np.ndarray, frame: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """Resize the probability (never the argmax) to the frame, then soft-threshold and feather."""
        if self._guided is not None:  # fitted on the small input the mask was computed from, rendered on this frame
            alpha = self._guided.render(self._fitted(255.0 if out is not None and out.dtype == np.uint8 else 1.0),
                                        frame, out)
        else:
            alpha = self._resize(mask, frame.shape[1], frame.shape[0], out)
        if self.options.feather:  # at most half the frame's shorter side: more would be a blur of it all
            k = 2 * min(self.options.feather, min(frame.shape[:2]) // 2) + 1
            alpha = cv2.GaussianBlur(alpha, (k, k), 0, dst=alpha)
        return alpha

    def _fitted(self, unit: float, compiled: bool = False) -> MaskField:
        """The guided fit of the current mask in ``unit`` (1 or 255), kept while frames reuse the mask
        (``mask_every``): the same mask and guide give the same field, and only its rendering follows the frame."""
        key = (unit, compiled)
        if self._fit is None or self._fit[0] != key:
            t, s = self.options.threshold, self.options.softness
            self._fit = key, self._guided.fit(self._state, self._small, t - s, t + s, unit, compiled)
        return self._fit[1]

    def _resize(self, mask: np.ndarray, width: int, height: int, out: np.ndarray | None) -> np.ndarray:
        """Bilinear resize, then the soft threshold (a lookup table for 8-bit masks)."""
        eight_bit = out is not None and out.dtype == np.uint8
        if eight_bit:  # rounded at model resolution, then resized in 8 bits
            mask = self._mask8 = cv2.convertScaleAbs(mask, alpha=255.0, dst=self._mask8)
        alpha = cv2.resize(mask, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
        if self._ramped and eight_bit:
            cv2.LUT(alpha, self._ramp8, dst=alpha)
        elif self._ramped:
            soft_threshold(alpha, self.options.threshold, self.options.softness)
        return alpha


def _model_file(model: str | Path | None) -> Path:
    """The file to open for ``model``: a shipped name or a run folder resolved as the command line does; a file
    name as it is (its backend says what is wrong with it)."""
    path = Path(model) if model is not None else None
    if path is None or path.is_dir() or (not path.suffix and not path.exists()):
        return resolve_model(model)
    return path


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or not frame.size:
        raise ValueError(f"expected a BGR uint8 frame (H, W, 3) of at least 1 x 1 pixel, received {frame.dtype} "
                         f"{frame.shape}")


def drop_small_parts(mask: np.ndarray, min_share: float, visible: float) -> np.ndarray:
    """Zero, in place, each 8-connected part of ``mask >= visible`` (what would show) smaller than ``min_share``
    of the mask's area, except the largest part: a small subject far away stays."""
    parts, labels, stats, _ = cv2.connectedComponentsWithStats((mask >= visible).astype(np.uint8), connectivity=8)
    if parts <= 2:  # background and at most one part
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    drop = np.zeros(parts, bool)
    drop[1:] = areas < min_share * mask.size
    drop[1 + int(np.argmax(areas))] = False
    if drop.any():
        mask[drop[labels]] = 0
    return mask
