"""A tiny protocol-2 pickle writer that emits what *Python 2* wrote for the official SMPL files.

Python 3's pickler cannot produce a Python-2 pickle: Python 2 `str` (keys, numpy's raw array
bytes, dtype codes) is written as SHORT_BINSTRING/BINSTRING, which Python 3 reads back with
`encoding='latin1'` as `str`, and numpy rebuilds arrays from that latin-1 `str`. This writer
reproduces those opcodes so the converter is tested on the same byte-level structure:

* dict / list / tuple / set (`__builtin__.set` REDUCE) / int / float / None / bool / str;
* numpy arrays as Python-2 numpy pickled them:
  `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')` then BUILD with the state
  `(1, shape, dtype, is_fortran, raw_bytes_as_str)`; dtypes as `numpy.dtype('f8', 0, 1)` + BUILD
  `(3, '<', None, None, None, -1, -1, 0)`;
* other objects (`Obj(module, name, state)`) as protocol-2 `copy_reg.__newobj__` does:
  GLOBAL class, EMPTY_TUPLE, NEWOBJ, state, BUILD (chumpy `Ch`, scipy `csc_matrix`).

No memo (PUT/GET) is written; unpicklers do not need it for acyclic data.
"""

from __future__ import annotations

import struct

import numpy as np


class Obj:
    """An instance of `module.name` whose `__getstate__` returns `state`."""

    def __init__(self, module: str, name: str, state):
        self.module, self.name, self.state = module, name, state


class Bytes2:
    """A Python-2 `str` holding arbitrary bytes (e.g. array data)."""

    def __init__(self, b: bytes):
        self.b = b


def dumps(obj) -> bytes:
    out = bytearray(b"\x80\x02")  # PROTO 2
    _w(out, obj)
    out += b"."  # STOP
    return bytes(out)


def _str(out: bytearray, b: bytes) -> None:
    if len(b) < 256:
        out += b"U" + bytes([len(b)]) + b  # SHORT_BINSTRING
    else:
        out += b"T" + struct.pack("<i", len(b)) + b  # BINSTRING


def _global(out: bytearray, module: str, name: str) -> None:
    out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(out: bytearray, items) -> None:
    items = list(items)
    if not items:
        out += b")"
        return
    if len(items) <= 3:
        for it in items:
            _w(out, it)
        out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(items)]
        return
    out += b"("
    for it in items:
        _w(out, it)
    out += b"t"


def _dtype(out: bytearray, dt: np.dtype) -> None:
    _global(out, "numpy", "dtype")
    _tuple(out, [dt.str[1:], 0, 1])  # e.g. 'f8', 'u4'
    out += b"R"
    order = dt.str[0] if dt.str[0] in "<>" else "|"
    _tuple(out, [3, order, None, None, None, -1, -1, 0])
    out += b"b"


def _array(out: bytearray, a: np.ndarray) -> None:
    _global(out, "numpy.core.multiarray", "_reconstruct")
    _tuple(out, [_Global("numpy", "ndarray"), (0,), "b"])
    out += b"R"
    fortran = bool(a.flags.f_contiguous and not a.flags.c_contiguous)
    raw = a.tobytes(order="F" if fortran else "C")
    out += b"("
    _w(out, 1)
    _tuple(out, list(a.shape))
    _dtype(out, a.dtype)
    _w(out, fortran)
    _str(out, raw)
    out += b"t"
    out += b"b"  # BUILD -> ndarray.__setstate__


class _Global:
    def __init__(self, module, name):
        self.module, self.name = module, name


def _w(out: bytearray, obj) -> None:
    if obj is None:
        out += b"N"
    elif obj is True:
        out += b"\x88"
    elif obj is False:
        out += b"\x89"
    elif isinstance(obj, int):
        if 0 <= obj < 256:
            out += b"K" + bytes([obj])
        elif 0 <= obj < 65536:
            out += b"M" + struct.pack("<H", obj)
        elif -(2**31) <= obj < 2**31:
            out += b"J" + struct.pack("<i", obj)
        else:
            n = (obj.bit_length() + 8) // 8
            out += b"\x8a" + bytes([n]) + obj.to_bytes(n, "little", signed=True)
    elif isinstance(obj, float):
        out += b"G" + struct.pack(">d", obj)
    elif isinstance(obj, str):
        _str(out, obj.encode("latin1"))
    elif isinstance(obj, Bytes2):
        _str(out, obj.b)
    elif isinstance(obj, tuple):
        _tuple(out, obj)
    elif isinstance(obj, list):
        out += b"]"
        if obj:
            out += b"("
            for it in obj:
                _w(out, it)
            out += b"e"
    elif isinstance(obj, (set, frozenset)):
        _global(out, "__builtin__", "set")
        _w(out, sorted(obj, key=repr))
        out += b"\x85R"
    elif isinstance(obj, dict):
        out += b"}"
        if obj:
            out += b"("
            for k, v in obj.items():
                _w(out, k)
                _w(out, v)
            out += b"u"
    elif isinstance(obj, np.ndarray):
        _array(out, obj)
    elif isinstance(obj, np.dtype):
        _dtype(out, obj)
    elif isinstance(obj, _Global):
        _global(out, obj.module, obj.name)
    elif isinstance(obj, Obj):
        _global(out, obj.module, obj.name)
        out += b")\x81"  # EMPTY_TUPLE, NEWOBJ
        _w(out, obj.state)
        out += b"b"  # BUILD
    else:
        raise TypeError(f"py2pickle cannot write {type(obj)}")
