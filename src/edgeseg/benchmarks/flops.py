"""Multiply-accumulate counts of TFLite models, and the device's measured compute peak.

Keras models are counted by :mod:`edgeseg.trainer.macs`. The floor latency of a model is ``2 * MACs / peak FLOP/s``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def tflite_macs(path: str | Path) -> int:
    """MACs of a ``.tflite`` model's main subgraph (conv, depthwise, transposed conv, fully connected)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    ops = schema.BuiltinOperator

    def shape(i):
        return [int(d) for d in graph.Tensors(i).ShapeAsNumpy()]  # python ints: no int32 overflow

    total = 0
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        inputs, outputs = op.InputsAsNumpy(), op.OutputsAsNumpy()
        if builtin == ops.CONV_2D:
            n, h, w, cout = shape(outputs[0])
            _, kh, kw, cin = shape(inputs[1])
            total += n * h * w * cout * kh * kw * cin
        elif builtin == ops.DEPTHWISE_CONV_2D:
            n, h, w, cout = shape(outputs[0])
            _, kh, kw, _ = shape(inputs[1])
            total += n * h * w * cout * kh * kw
        elif builtin == ops.TRANSPOSE_CONV:
            cout, kh, kw, cin = shape(inputs[1])
            n, h, w, _ = shape(inputs[2])
            total += n * h * w * cin * kh * kw * cout
        elif builtin == ops.FULLY_CONNECTED:
            out_features, in_features = shape(inputs[1])
            total += int(np.prod(shape(inputs[0]), dtype=np.int64)) * out_features
    return int(total)


_PROBE = """
import json, time, numpy as np
n = 1024
a = np.random.default_rng(0).random((n, n), dtype=np.float32); b = a.copy()
a @ b
best = 0.0
end = time.perf_counter() + {seconds}
while time.perf_counter() < end:
    t = time.perf_counter(); a @ b; best = max(best, 2 * n**3 / (time.perf_counter() - t))
print(json.dumps(best / 1e9))
"""


def compute_peak_gflops(threads: int, seconds: float = 1.0) -> float:
    """Best float32 GFLOP/s of a 1024x1024 matrix multiply on ``threads`` BLAS threads (a subprocess,
    because BLAS reads its thread count at import)."""
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(seconds=seconds)], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return round(json.loads(out.stdout), 2)
