"""Reading pickles from outside (licensed body models, dataset annotations) without running their code.

A pickle can call any importable function while it loads (os.system, builtins.exec, ...).
`restricted_load` resolves only the globals plain data needs: numpy arrays / dtypes / scalars,
scipy.sparse matrices and the helpers pickle uses to rebuild them (Python 2 names are mapped to
Python 3 ones first); dicts, lists, str and numbers need no global at all. Anything else raises
ValueError naming the file before it is imported. `load_npy` does the same for object-dtype .npy / .npz
members (numpy pickles those).
"""

from __future__ import annotations

import _compat_pickle
import pickle
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")
_SPARSE_MODULES = (
    "scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
)
READ_ERRORS = (OSError, EOFError, pickle.UnpicklingError, TypeError, AttributeError, IndexError, KeyError,
               zipfile.BadZipFile)  # fmt: skip


def _safe_globals() -> dict[tuple[str, str], object]:
    import codecs
    import copyreg

    import scipy.sparse

    numpy_objects = {
        "ndarray": np.ndarray, "dtype": np.dtype,
        "_reconstruct": np.zeros(1).__reduce__()[0], "scalar": np.float64(0).__reduce__()[0],
    }
    return {
        **{(module, name): obj for module in _NUMPY_MODULES for name, obj in numpy_objects.items()},
        **{(module, name): getattr(scipy.sparse, name) for module in _SPARSE_MODULES
           for name in ("csc_matrix", "csr_matrix")},
        ("copyreg", "_reconstructor"): copyreg._reconstructor, ("_codecs", "encode"): codecs.encode,
        ("builtins", "object"): object, ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_safe_globals()`; anything else raises before it is imported."""

    def __init__(self, file: IO[bytes], path: Path, what: str, hint: str) -> None:
        super().__init__(file, encoding="latin1")
        self.path, self.what, self.hint = path, what, hint
        self.allowed = _safe_globals()

    def find_class(self, module: str, name: str) -> object:
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        hint = (
            "it holds chumpy objects: write a chumpy-free copy with smplx's tools/clean_ch.py"
            if module.startswith("chumpy") else self.hint
        )
        raise ValueError(
            f"{self.path}: refused to load this pickle: it references {module}.{name}, which a "
            f"{self.what} never contains (nothing was executed); {hint}"
        )


def restricted_load(file: IO[bytes], path: Path, what: str, hint: str) -> object:
    """Unpickle `file` (read from `path`) allowing plain data only; `what` / `hint` word the refusal."""
    return _RestrictedUnpickler(file, path, what, hint).load()


def load_npy(file: IO[bytes], path: Path, what: str, hint: str) -> np.ndarray:
    """An .npy stream (e.g. an .npz member), object arrays unpickled with `restricted_load`."""
    version = np.lib.format.read_magic(file)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"{path}: .npy format version {version} is not supported (1.0 or 2.0)")
    shape, fortran, dtype = readers[version](file)
    if not dtype.hasobject:
        count = int(np.prod(shape))
        data = np.frombuffer(file.read(count * dtype.itemsize), dtype=dtype, count=count)
        return data.reshape(shape[::-1]).T if fortran else data.reshape(shape)
    array = restricted_load(file, path, what, hint)
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: expected a numpy array, got {type(array).__name__}")
    return array
