"""The runtime: segmentation models on frames and photos with numpy, OpenCV and one interpreter (no TensorFlow).

Its public API, importable from here::

    from edgeseg.runtime import Effect, FrameProcessor, RunningMode, Segmenter, SegmenterOptions

Names are imported when first used, so importing one module of the runtime does not load them all.
"""

import importlib

_PUBLIC = {"Segmenter": "segmenter", "SegmenterOptions": "segmenter", "RunningMode": "segmenter", "Edges": "segmenter",
           "FrameProcessor": "pipeline", "Effect": "effects", "apply_effect": "effects", "open_source": "sources"}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
