"""A bounds check of a GGUF file's structure before the `gguf` library reads it.

`gguf.GGUFReader` trusts the counts and lengths a file states: a file cut off mid-way fails
with a numpy error about dtypes, and a metadata array that claims 2**62 strings would be looped
over for ever. `check_gguf` walks the same structure (header, metadata, tensor infos) over a
memory map, checking every length and count against the bytes that are left and every tensor's
data range against the file's end, and raises a ValueError that names the problem and its byte
offset. It allocates nothing in proportion to what the file claims, and reads only the
metadata (a fraction of a second for SmolLM2's 100 MB file).
"""

import mmap
import pathlib
import struct

from gguf import GGML_QUANT_SIZES, GGUFValueType

__all__ = ["check_gguf"]

_SCALARS = {
    GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
}
MAX_DIMS = 4                    # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 4             # arrays of arrays: deeper than this is not a model file


class _Cursor:
    """Reads little-endian values from ``buf`` at ``pos``, never past its end."""

    def __init__(self, path, buf):
        self.path, self.buf, self.pos = path, buf, 0

    def fail(self, what):
        raise ValueError(f"{self.path} is not a readable GGUF file: {what} (at byte {self.pos} "
                         f"of {len(self.buf)})")

    def left(self):
        return len(self.buf) - self.pos

    def take(self, fmt, what):
        size = struct.calcsize(fmt)
        if self.left() < size:
            self.fail(f"the file ends inside {what}")
        value = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def skip(self, size, what):
        if size > self.left():
            self.fail(f"{what} claims {size} bytes; {self.left()} are left")
        self.pos += size

    def string(self, what):
        length = self.take("<Q", f"the length of {what}")
        start = self.pos
        self.skip(length, what)
        return bytes(self.buf[start:self.pos])

    def count(self, what, item_bytes):
        """A count of items of at least ``item_bytes`` each, bounded by the bytes left."""
        n = self.take("<Q", f"the count of {what}")
        if n * item_bytes > self.left():
            self.fail(f"{what}: {n} items claimed, at least {n * item_bytes} bytes, "
                      f"but {self.left()} are left")
        return n


def _value(cur, vtype, what, depth=0):
    """Skip one metadata value of type ``vtype``; returns scalars and strings (for alignment)."""
    try:
        vtype = GGUFValueType(vtype)
    except ValueError:
        cur.fail(f"{what}: unknown value type {vtype}")
    if vtype in _SCALARS:
        size = _SCALARS[vtype]
        fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[size]
        return cur.take(fmt, what)
    if vtype == GGUFValueType.STRING:
        return cur.string(what)
    if depth >= MAX_ARRAY_DEPTH:
        cur.fail(f"{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
    item = cur.take("<I", f"the item type of {what}")
    if item in _SCALARS:
        n = cur.count(what, _SCALARS[item])
        cur.skip(n * _SCALARS[item], what)
    elif item == GGUFValueType.STRING:
        _strings(cur, cur.count(what, 8), what)
    else:
        n = cur.count(what, 12)         # a nested array: its item type and count
        for i in range(n):
            _value(cur, item, f"{what}[{i}]", depth + 1)
    return None


def _strings(cur, n, what):
    """Skip ``n`` strings (a tight loop: the vocabulary is some 100,000 of them)."""
    buf, pos, end = cur.buf, cur.pos, len(cur.buf)
    unpack = struct.Struct("<Q").unpack_from
    for i in range(n):
        if end - pos < 8:
            cur.pos = pos
            cur.fail(f"the file ends inside the length of {what}[{i}]")
        pos += 8 + unpack(buf, pos)[0]
        if pos > end:
            cur.pos = end
            cur.fail(f"{what}[{i}] runs past the end of the file")
    cur.pos = pos


def _tensor_bytes(cur, name, dims, ttype):
    if ttype not in GGML_QUANT_SIZES:
        cur.fail(f"tensor {name!r}: unknown type {ttype}")
    block, type_bytes = GGML_QUANT_SIZES[ttype]
    if dims[0] % block:
        cur.fail(f"tensor {name!r}: {dims[0]} elements a row is not a whole number of "
                 f"{block}-element blocks")
    n = 1
    for d in dims:
        n *= d
    return n // block * type_bytes


def check_gguf(path):
    """Raise ValueError unless ``path``'s GGUF structure fits inside the file."""
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is not a readable GGUF file: it is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            _check(_Cursor(path, buf))


def _check(cur):
    if cur.take("<4s", "the magic") != b"GGUF":
        cur.fail("not a GGUF file (no 'GGUF' magic)")
    version = cur.take("<I", "the version")
    if version not in (2, 3):
        cur.fail(f"GGUF version {version} (2 or 3 expected)")
    n_tensors = cur.take("<Q", "the tensor count")
    n_kv = cur.count("metadata entries", 8 + 8 + 4)
    alignment = 32
    for i in range(n_kv):
        key = cur.string(f"the key of metadata entry {i}").decode("utf-8", "replace")
        vtype = cur.take("<I", f"the type of {key!r}")
        value = _value(cur, vtype, f"metadata {key!r}")
        if key == "general.alignment":
            if not isinstance(value, int) or value < 1 or value & (value - 1):
                cur.fail(f"general.alignment {value!r} is not a power of two")
            alignment = value
    if n_tensors * (8 + 4 + 8 + 4 + 8) > cur.left():
        cur.fail(f"{n_tensors} tensors claimed; their descriptions alone would not fit")
    ranges = []
    for i in range(n_tensors):
        name = cur.string(f"the name of tensor {i}").decode("utf-8", "replace")
        n_dims = cur.take("<I", f"tensor {name!r}'s dimension count")
        if not 1 <= n_dims <= MAX_DIMS:
            cur.fail(f"tensor {name!r}: {n_dims} dimensions (1 to {MAX_DIMS})")
        dims = [cur.take("<Q", f"tensor {name!r}'s shape") for _ in range(n_dims)]
        if any(d == 0 for d in dims):
            cur.fail(f"tensor {name!r}: shape {dims} has a zero dimension")
        ttype = cur.take("<I", f"tensor {name!r}'s type")
        offset = cur.take("<Q", f"tensor {name!r}'s offset")
        ranges.append((name, offset, _tensor_bytes(cur, name, dims, ttype)))
    data_start = -(-cur.pos // alignment) * alignment
    size = len(cur.buf)
    for name, offset, nbytes in ranges:
        if data_start + offset + nbytes > size:
            raise ValueError(f"{cur.path} is not a readable GGUF file: tensor {name!r} ({nbytes} "
                             f"bytes at data offset "
                             f"{offset}) ends past the end of the file ({size} bytes): "
                             f"the file is cut off or the tensor's offset or shape is wrong")
