"""Reading pickled model files without letting them run code.

`pickle.load` calls whatever callables a file names, so a crafted "model file" can run any command. Body
model files only ever hold numpy arrays, scipy sparse matrices (SMPL/SMPL-H keep J_regressor as a
csc_matrix) and chumpy arrays (the original SMPL/SMPL-H .pkl files), inside plain dicts. This unpickler
allows exactly those:

- numpy array, scalar and dtype reconstruction, under both module spellings (`numpy.core` from numpy 1,
  `numpy._core` from numpy 2);
- scipy sparse matrices and arrays (old and new module paths) are built as inert stand-ins holding the
  pickled state, and rebuilt afterwards from data/indices/indptr/shape with scipy's constructor;
- chumpy objects (chumpy is not installed) become inert stand-ins that keep their pickled state; a plain
  `Ch` holds its array under `x`;
- a few harmless builtins that such pickles use (set, frozenset, slice, complex, OrderedDict, bytes from
  latin-1 text).

Anything else is refused before it is called, with `UnsafePickleError` naming what was asked for.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import numpy as np
import scipy.sparse as sp

try:  # numpy 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that model files never contain (and that could run code)."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"it refers to {module}.{name}, which a model file never contains")
        self.module, self.name = module, name


class JoblibPickleError(pickle.UnpicklingError):
    """The pickle was written by joblib, whose array wrappers read raw data this loader does not parse."""


class ChumpyStandIn:
    """Inert replacement for a chumpy object: keeps the pickled state (a plain Ch has its array in `x`)."""

    chumpy_class = "Ch"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def array(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(resolve(state["x"]))
        raise ValueError(f"a chumpy {self.chumpy_class} expression, not a stored array")


class SparseStandIn:
    """Inert replacement for a scipy sparse matrix while unpickling; `matrix()` rebuilds the real one."""

    sparse_format = "csr"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def matrix(self) -> sp.spmatrix:
        state = getattr(self, "state", None)
        if not isinstance(state, dict):
            raise ValueError("a sparse matrix without its data")
        stored_shape = state["_shape"] if "_shape" in state else state.get("shape", ())
        shape = tuple(int(s) for s in stored_shape)
        if len(shape) != 2:
            raise ValueError("a sparse matrix without a 2-D shape")
        data = np.asarray(resolve(state["data"]))
        if self.sparse_format == "coo":
            coords = state.get("coords") or (state.get("row"), state.get("col"))
            rows, cols = (np.asarray(resolve(c)) for c in coords)
            return sp.coo_matrix((data, (rows, cols)), shape=shape)
        indices, indptr = np.asarray(resolve(state["indices"])), np.asarray(resolve(state["indptr"]))
        build = sp.csc_matrix if self.sparse_format == "csc" else sp.csr_matrix
        return build((data, indices, indptr), shape=shape)


_SPARSE_CLASSES = {f"{fmt}_{kind}": fmt for fmt in ("csr", "csc", "coo") for kind in ("matrix", "array")}
_chumpy_classes: dict[str, type] = {}
_sparse_classes: dict[str, type] = {}


def _chumpy_class(name: str) -> type:
    if name not in _chumpy_classes:
        _chumpy_classes[name] = type(f"Chumpy_{name}", (ChumpyStandIn,), {"chumpy_class": name})
    return _chumpy_classes[name]


def _sparse_class(name: str) -> type:
    if name not in _sparse_classes:
        _sparse_classes[name] = type(f"Sparse_{name}", (SparseStandIn,), {"sparse_format": _SPARSE_CLASSES[name]})
    return _sparse_classes[name]


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg._reconstructor, for our stand-ins only (Python 2 pickles build objects with it)."""
    if base is object and isinstance(cls, type) and issubclass(cls, (ChumpyStandIn, SparseStandIn)):
        return cls.__new__(cls)
    raise UnsafePickleError("copyreg", f"_reconstructor({getattr(cls, '__name__', cls)!r})")


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """_codecs.encode as protocol-2 pickles use it for bytes; only latin-1 text is accepted."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError("_codecs", "encode")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "object"): object,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = _multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    # private, so absent from numpy's stubs; pickles of arrays name it
    _ALLOWED[(_module, "_frombuffer")] = _numeric._frombuffer  # type: ignore[attr-defined]

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module.split(".")[0] == "chumpy":
            return _chumpy_class(name)
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return _sparse_class(name)
        if module.startswith("joblib"):
            raise JoblibPickleError(f"written by joblib ({module}.{name})")
        raise UnsafePickleError(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("pickle", "persistent_load")


def safe_loads(data: bytes) -> Any:
    """Unpickles `data` with the allow-list above, then replaces stand-ins by arrays and matrices
    (chumpy objects without a stored array stay stand-ins; `resolve` callers decide)."""
    return resolve(_RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load())


def safe_load(fh: io.BufferedIOBase) -> Any:
    """`safe_loads` on an open binary file."""
    return resolve(_RestrictedUnpickler(fh, encoding="latin1").load())


def resolve(obj: Any) -> Any:
    """Replaces stand-ins inside dicts, lists and tuples: sparse -> scipy matrix, chumpy Ch -> array."""
    if isinstance(obj, SparseStandIn):
        return obj.matrix()
    if isinstance(obj, ChumpyStandIn):
        try:
            return obj.array()
        except ValueError:
            return obj
    if isinstance(obj, dict):
        return {k: resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(resolve(v) for v in obj)
    return obj
