"""The restricted unpickler: real RLMRec matrices load, anything that could run code is refused.

The refusal tests build real attack pickles whose payload writes a marker file. Each attack is
first shown to be live (plain `pickle.loads` creates the marker), then `safe_load` must raise
before the marker exists: that proves nothing ran, not just that an exception came out.
"""

from __future__ import annotations

import builtins
import collections
import copyreg
import os
import pickle
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import shared_path

from recpipe.data.safe_pickle import UnsafePickleError, safe_load

# --------------------------------------------------------------------------- real data

REAL_NNZ = {"trn_mat.pkl": 120_464, "val_mat.pkl": 40_290, "tst_mat.pkl": 40_106}


@pytest.mark.parametrize("name", sorted(REAL_NNZ))
def test_real_rlmrec_matrices_load(name):
    m = safe_load(shared_path("rlmrec", "amazon", name))
    assert isinstance(m, sp.coo_matrix)
    assert m.shape == (11_000, 9_332)
    assert m.nnz == REAL_NNZ[name]
    assert m.dtype == np.float64 and set(np.unique(m.data)) == {1.0}
    assert m.row.max() < 11_000 and m.col.max() < 9_332


# --------------------------------------------------------------------------- benign data


def _write(tmp_path, obj, protocol, name="x.pkl"):
    p = tmp_path / name
    p.write_bytes(pickle.dumps(obj, protocol=protocol))
    return p


BENIGN = {
    "float32 array": np.arange(6, dtype=np.float32).reshape(2, 3),
    "fortran array": np.asfortranarray(np.arange(6.0).reshape(3, 2)),
    "numpy scalar": np.int64(7),
    "coo": sp.coo_matrix(np.eye(3)),
    "csr": sp.csr_matrix(np.eye(3)),
    "csc_array": sp.csc_array(np.eye(3)),
    "profiles dict": {0: {"profile": "p", "reasoning": "r"}, np.int64(1): {"profile": "q"}},
    "containers": collections.OrderedDict(a=[1, (2, 3)], b={4, 5}, c=frozenset({6}), d=b"\x00\xff"),
}


def _same(a, b):
    if sp.issparse(a):
        return type(a) is type(b) and (a != b).nnz == 0
    if isinstance(a, np.ndarray):
        same_layout = a.flags.f_contiguous == b.flags.f_contiguous
        return a.dtype == b.dtype and np.array_equal(a, b) and same_layout
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("kind", sorted(BENIGN))
def test_numpy_scipy_and_plain_containers_round_trip(tmp_path, kind, protocol):
    obj = BENIGN[kind]
    assert _same(obj, safe_load(_write(tmp_path, obj, protocol)))


def test_legacy_module_spellings_load(tmp_path):
    """scipy < 1.8 wrote `scipy.sparse.coo`; numpy 1.x `numpy.core`. Both must still load."""
    m = sp.coo_matrix(np.array([[0, 2.0], [3.0, 0]]))
    raw = pickle.dumps(m, protocol=0)  # protocol 0: GLOBAL opcodes are plain text lines
    assert b"scipy.sparse._coo\n" in raw and b"numpy._core.multiarray\n" in raw
    raw = raw.replace(b"scipy.sparse._coo\n", b"scipy.sparse.coo\n")
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    p = tmp_path / "old.pkl"
    p.write_bytes(raw)
    out = safe_load(p)
    assert isinstance(out, sp.coo_matrix) and (out != m).nnz == 0


# --------------------------------------------------------------------------- attacks


class _Reduce:
    """Pickles as `func(*args)`: the classic code-execution gadget."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _attacks(marker):
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": (_Reduce(os.system, f"touch '{marker}'"), f"{os.system.__module__}.system"),
        "builtins.exec": (_Reduce(builtins.exec, code), "builtins.exec"),
        "builtins.eval": (_Reduce(builtins.eval, code), "builtins.eval"),
        "subprocess": (_Reduce(subprocess.check_call, ["touch", str(marker)]),
                       "subprocess.check_call"),
        # Hidden inside otherwise valid data: the allowed globals before it must not help it.
        "nested": ({"ok": np.ones(2), "evil": _Reduce(builtins.exec, code)}, "builtins.exec"),
    }


@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "builtins.eval", "subprocess",
                                    "nested"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_code_execution_payloads_are_refused_and_never_run(tmp_path, attack, protocol):
    marker = tmp_path / "ran.txt"
    obj, refused = _attacks(marker)[attack]
    p = _write(tmp_path, obj, protocol, name="evil.pkl")

    with pytest.raises(UnsafePickleError) as exc:
        safe_load(p)
    assert not marker.exists(), "the payload ran"
    msg = str(exc.value)
    assert str(p) in msg and f"'{refused}'" in msg and "numpy/scipy" in msg
    assert isinstance(exc.value, pickle.UnpicklingError)

    # Control: the same bytes do run under the plain unpickler, so the test above is not empty.
    pickle.loads(p.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("module,name", [
    ("subprocess", "Popen"),
    ("builtins", "getattr"),       # builtins module is partly allowed; this name is not
    ("builtins", "__import__"),
    ("numpy", "load"),             # numpy module is partly allowed; numpy.load is not
    ("numpy.core.multiarray", "frombuffer"),
    ("scipy.sparse", "load_npz"),
    ("pickle", "loads"),           # a nested pickle would escape the allow-list
    ("__builtin__", "eval"),       # Python-2 spelling of a refused builtin
])
def test_only_exact_module_and_name_pairs_are_admitted(tmp_path, module, name):
    p = tmp_path / "g.pkl"
    p.write_bytes(f"c{module}\n{name}\n.".encode())  # protocol 0: GLOBAL then STOP
    with pytest.raises(UnsafePickleError, match=f"'{module}.{name}'"):
        safe_load(p)


def test_extension_registry_codes_go_through_the_allow_list(tmp_path):
    """EXT opcodes name a global through copyreg's registry; they must be checked too."""
    marker = tmp_path / "ran.txt"
    code = 0x7FFF_FF01
    copyreg.add_extension("builtins", "exec", code)
    try:
        raw = pickle.dumps(_Reduce(builtins.exec, f"open({str(marker)!r}, 'w')"), protocol=2)
        assert pickle.EXT4 in raw
        p = tmp_path / "ext.pkl"
        p.write_bytes(raw)
        with pytest.raises(UnsafePickleError, match="'builtins.exec'"):
            safe_load(p)
        assert not marker.exists()
    finally:
        copyreg.remove_extension("builtins", "exec", code)


def test_codecs_encode_only_for_latin1(tmp_path):
    """Protocol 2 stores bytes via _codecs.encode(s, 'latin1'); other codecs are refused."""
    p = tmp_path / "c.pkl"
    p.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(UnsafePickleError, match="rot13"):
        safe_load(p)
    p.write_bytes(b"c_codecs\nencode\n(Vabc\nVlatin1\ntR.")
    assert safe_load(p) == b"abc"
