"""One GGUF weight block's fields from its bytes (Q8_0, Q4_0, Q4_1), and the layout of an
unpacked block (`BlockUnpacker`'s output)."""

from amaranth.hdl import Cat, Const, signed
from amaranth.lib import data

from systolica.protocol import Format

__all__ = ["block_layout", "decode_block"]


def block_layout(cols):
    """The ``blocks`` payload: one unpacked block of channel ``lane`` of the current group."""
    return data.StructLayout({
        "lane": range(cols),        # channel within the group, 0 .. C'-1
        "d": 16,                    # binary16 scale pattern
        "m": 16,                    # binary16 offset pattern (Q4_1; 0 otherwise)
        "q": data.ArrayLayout(signed(8), 32),   # the 32 weights in K order
        "bad_scale": 1,             # d (or Q4_1's m) is inf/NaN: binary16 exponent 31
        "group_last": 1,            # last block of the group (lane == C' - 1)
    })


def _nibble_q(nib, offset):
    """A 4-bit field as an 8-bit two's-complement weight: ``nib - 8`` or ``nib``."""
    if offset:
        sign = ~nib[3]                      # nib - 8 == (nib ^ 8) read as signed 4-bit
        return Cat(nib[0:3], sign, sign, sign, sign, sign)
    return Cat(nib, Const(0, 4))


def decode_block(fmt, b):
    """Fields of one block from its bytes ``b`` (a list of 8-bit values, byte 0 first):
    ``(d, m, q, bad_scale)``; ``q`` is 32 × 8 bits, element 0 in the low byte."""
    d = Cat(b[0], b[1])
    bad = d[10:15].all()
    if fmt == Format.Q8_0:
        return d, Const(0, 16), Cat(*b[2:34]), bad
    if fmt == Format.Q4_0:
        qs = b[2:18]
        m = Const(0, 16)
    else:                                   # Q4_1
        m = Cat(b[2], b[3])
        bad = bad | m[10:15].all()
        qs = b[4:20]
    nibs = [qs[i][0:4] for i in range(16)] + [qs[i][4:8] for i in range(16)]
    return d, m, Cat(*(_nibble_q(n, fmt == Format.Q4_0) for n in nibs)), bad
