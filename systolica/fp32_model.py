"""Bit-exact reference for the binary32 units of `systolica.rtl.fp32`, in plain numpy.

Every function takes and returns numpy arrays of bit patterns (``uint32``; ``uint16`` for binary16;
signed integers for `int_to_f32`), vectorized, and defines the arithmetic the hardware must match:

* Rounding is IEEE 754 round to nearest, ties to even; a rounded magnitude too large for binary32
  becomes ±inf, as IEEE says.
* **Flush to zero:** a result whose *exact* (unrounded) magnitude is below ``2**-126`` (the
  smallest normal) becomes a zero with the sign IEEE would give the result (the sign of the exact
  value; for an exact zero the IEEE rule, e.g. ``x + (-x) = +0``). Note the test is on the exact
  value: one a hair below ``2**-126`` is flushed even though it would round up to ``2**-126``.
  Subnormal results never appear.
* Operands are finite binary32 values that are normal or ±0 (the device never makes subnormals,
  infinities or NaNs); outside that domain the functions return whatever numpy computes.

How: the exact result is formed in float64, then rounded once more to float32 by numpy's cast
(IEEE round to nearest even, overflowing to ±inf), and flushed where ``|float64| < 2**-126``.

* A product of two binary32 values has at most 24 + 24 = 48 significant bits and an exponent far
  inside float64's range, so the float64 product is exact and the cast is the only rounding.
* A sum of two binary32 values need not be exact in float64 (exponents ~30 or more apart), so the
  sum is rounded twice, to 53 bits and then to 24. That is innocuous: for +, −, ×, ÷ and √ of
  p-bit operands, rounding first to q ≥ 2p + 2 bits and then to p bits gives the correctly rounded
  p-bit result (S. Figueroa, "When is double rounding innocuous?", SIGNUM Newsletter 30(3), 1995),
  and 53 ≥ 2·24 + 2 = 50. The flush test on the float64 sum is exact as well: if the exact sum is
  below ``2**-126`` in magnitude it is a multiple of ``2**-149`` (as both operands are) with fewer
  than 24 significant bits, hence exact in float64; if it is at least ``2**-126`` its float64
  rounding is too (rounding is monotonic and ``2**-126`` is representable).
* An integer of at most 32 bits is exact in float64; the cast is the one rounding.
* binary16 → binary32 is always exact (numpy's own conversion).
"""

import numpy as np

__all__ = ["FLUSH_BELOW", "f16_to_f32", "f32_add", "f32_mul", "f32_order_key", "int_to_f32"]

#: Results whose exact magnitude is below this are flushed to a signed zero.
FLUSH_BELOW = 2.0 ** -126


def _f64(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32).astype(np.float64)


def _round_flush(exact):
    """float64 → float32 bit patterns, round to nearest even, flush-to-zero on the float64 value."""
    exact = np.asarray(exact, dtype=np.float64)
    with np.errstate(over="ignore"):
        rounded = exact.astype(np.float32)
    zero = np.copysign(np.zeros_like(exact), exact).astype(np.float32)
    return np.where(np.abs(exact) < FLUSH_BELOW, zero, rounded).view(np.uint32)


def f16_to_f32(bits16):
    """binary16 patterns → the equal binary32 patterns (exact; subnormal halves become normal)."""
    bits16 = np.asarray(bits16).astype(np.uint16)
    return bits16.view(np.float16).astype(np.float32).view(np.uint32)


def int_to_f32(ints):
    """Signed integers (at most 32 bits) → binary32 patterns, round to nearest even; 0 → +0."""
    return np.asarray(ints, dtype=np.int64).astype(np.float64).astype(np.float32).view(np.uint32)


def f32_mul(a_bits, b_bits):
    """``a · b`` of binary32 patterns, round to nearest even, flush-to-zero, overflow to ±inf."""
    return _round_flush(_f64(a_bits) * _f64(b_bits))


def f32_add(a_bits, b_bits):
    """``a + b`` of binary32 patterns, round to nearest even, flush-to-zero, overflow to ±inf."""
    return _round_flush(_f64(a_bits) + _f64(b_bits))


def f32_order_key(bits):
    """Integers that order binary32 patterns as the numbers they are, -0 equal to +0 (what the
    device's argmax compares): the magnitude's bits, negated for a negative sign. Infinities
    order beyond every finite value; NaN patterns (which the device never makes) beyond them."""
    bits = np.asarray(bits, dtype=np.uint32).astype(np.int64)
    magnitude = bits & 0x7FFF_FFFF
    return np.where(bits >> 31 != 0, -magnitude, magnitude)
