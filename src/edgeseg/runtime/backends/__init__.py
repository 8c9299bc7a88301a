"""Model backends, picked from the model file suffix by :func:`open_backend`."""
from edgeseg.runtime.backends.base import Backend, BackendError, TensorSpec, open_backend

__all__ = ["Backend", "BackendError", "TensorSpec", "open_backend"]
