"""Load pickles that should hold only numpy/scipy data, refusing anything that could run code.

Unpickling executes whatever callable the file names (`os.system`, `builtins.eval`, ...), so a
downloaded pickle is a program, not data. The RLMRec release exists only as pickles, so we load
it with an `Unpickler` whose `find_class` resolves a short allow-list of globals and refuses
every other one before it is imported or called. Nothing in the file runs unless it is on the
list below.

The allow-list was built by recording every global the real release references (inspected with
`pickletools` and a recording unpickler on `rlmrec/amazon/*_mat.pkl`):
`scipy.sparse._coo.coo_matrix`, `numpy.core.multiarray._reconstruct`, `numpy.ndarray`,
`numpy.dtype`. Around that core it admits the spellings other numpy/scipy/Python versions
write for the same kind of data:
- numpy 2 moved `numpy.core` to `numpy._core`; pickle protocol 5 stores arrays through
  `numpy._core.numeric._frombuffer`; numpy scalars (e.g. an `np.int64` dict key in a profile
  pickle) use `multiarray.scalar`.
- scipy < 1.8 wrote `scipy.sparse.coo.coo_matrix`, 1.8-1.10 `scipy.sparse._arrays.coo_array`;
  every spelling is resolved to the class that `scipy.sparse` exports today, so old files load
  on new scipy and no private scipy module is imported by name.
- Plain containers (`dict`, `list`, `set`, `frozenset`, `tuple`, `OrderedDict`) and
  `_codecs.encode`, which protocol-2 pickles use to store `bytes` (admitted only for the
  latin-1 codec they use, because a codec name makes Python import an `encodings` module).
- Protocols 0 and 1 rebuild objects (e.g. a sparse matrix) with
  `copyreg._reconstructor(cls, object, state)`; it only calls `cls.__new__`/`base.__init__`,
  and `cls`/`base` are themselves globals that must pass this list, so it adds no reach.
- Protocol < 3 pickles use Python-2 names (`__builtin__`, `copy_reg`, `commands`, ...). They are
  translated with the standard library's own table (`_compat_pickle`, as the stock unpickler
  does) *before* the check, so an old spelling cannot sneak past and messages show the real
  Python 3 name.

Each entry is a constructor of inert data: none of them imports modules, opens files or calls
back into arbitrary objects. Names are matched exactly (module *and* name), so `numpy.load` or
`builtins.getattr` are refused even though `numpy`/`builtins` hold allowed names.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import pickle
from pathlib import Path
from typing import Any, Callable

_NUMPY_CORE = ("numpy._core", "numpy.core")  # numpy >= 2 first; numpy 1.x has only numpy.core
_SPARSE_MODULES = (
    "scipy.sparse",
    "scipy.sparse._coo", "scipy.sparse.coo",
    "scipy.sparse._csr", "scipy.sparse.csr",
    "scipy.sparse._csc", "scipy.sparse.csc",
    "scipy.sparse._arrays",
)
_SPARSE_CLASSES = ("coo_matrix", "csr_matrix", "csc_matrix", "coo_array", "csr_array", "csc_array")
_BUILTINS = ("dict", "list", "set", "frozenset", "tuple")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list; nothing from it was executed."""


def _numpy_core(submodule: str, name: str) -> Callable[[], Any]:
    def resolve():
        for pkg in _NUMPY_CORE:
            try:
                return getattr(importlib.import_module(f"{pkg}.{submodule}"), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"this numpy has no {submodule}.{name}")

    return resolve


def _attr(module: str, name: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module(module), name)


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    # Protocol-2 pickles write bytes as _codecs.encode(<str>, "latin1"); nothing else is needed.
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r} is not accepted")
    return text.encode("latin1", errors)


def _build_allowed() -> dict[tuple[str, str], Callable[[], Any]]:
    allowed: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy", "ndarray"): _attr("numpy", "ndarray"),
        ("numpy", "dtype"): _attr("numpy", "dtype"),
        ("collections", "OrderedDict"): _attr("collections", "OrderedDict"),
        ("_codecs", "encode"): lambda: _latin1_encode,
        ("copyreg", "_reconstructor"): _attr("copyreg", "_reconstructor"),
        ("builtins", "object"): _attr("builtins", "object"),
    }
    for pkg in _NUMPY_CORE:
        for sub, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                          ("numeric", "_frombuffer")):
            allowed[(f"{pkg}.{sub}", name)] = _numpy_core(sub, name)
    for mod in _SPARSE_MODULES:
        for cls in _SPARSE_CLASSES:
            allowed[(mod, cls)] = _attr("scipy.sparse", cls)
    for name in _BUILTINS:
        allowed[("builtins", name)] = _attr("builtins", name)
    return allowed


ALLOWED = _build_allowed()


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 spelling of a global named by a Python-2-era pickle (identity otherwise)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        # Every way a pickle can name a global (GLOBAL, STACK_GLOBAL, INST, extension codes)
        # goes through find_class, so refusing here refuses before import or call.
        py3 = _python3_name(module, name)
        resolve = ALLOWED.get(py3)
        if resolve is None:
            written = "" if py3 == (module, name) else f" (written as '{module}.{name}')"
            raise UnsafePickleError(
                f"{self._source}: refused to load global '{py3[0]}.{py3[1]}'{written}; only "
                f"numpy/scipy data (arrays, dtypes, sparse matrices) and plain containers are "
                f"accepted from pickle files, because unpickling anything else can run code"
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not accepted ({pid!r})")


def safe_load(path: str | Path) -> Any:
    """Unpickle `path`, admitting only the globals in `ALLOWED`.

    Raises `UnsafePickleError` (an `pickle.UnpicklingError`) naming the file and the refused
    `module.name` when the pickle references anything else.
    """
    path = Path(path)
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, str(path)).load()
