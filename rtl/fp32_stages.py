"""Pieces the pipelined binary32 units share: the valid bit's pipeline, a leading-zero count,
and the rounding stage's packing."""

from amaranth.hdl import Cat, Const, Mux, Signal

__all__ = ["EXP_INF", "leading_zeros", "round_pack", "valid_pipeline"]

EXP_INF = 0xFF          # the biased exponent of infinities and NaNs


def leading_zeros(value):
    """``(count, zero)`` for ``value``: a log-depth leading-zero count (meaningless if zero)."""
    width = max(2, 1 << (len(value) - 1).bit_length())
    padded = Cat(Const(0, width - len(value)), value)   # pad below: same count for nonzero values

    def tree(v):
        if len(v) == 2:
            return ~v[1], ~(v[0] | v[1])
        half = len(v) // 2
        count_hi, zero_hi = tree(v[half:])
        count_lo, zero_lo = tree(v[:half])
        return Cat(Mux(zero_hi, count_lo, count_hi), zero_hi), zero_hi & zero_lo

    return tree(padded)


def valid_pipeline(m, valid, result_valid, latency):
    """``result_valid`` is ``valid`` delayed by ``latency`` cycles."""
    prev = valid
    for i in range(latency):
        stage = Signal(name=f"valid_{i + 1}")
        m.d.sync += stage.eq(prev)
        prev = stage
    m.d.comb += result_valid.eq(prev)


def round_pack(m, sign, exp, frac, round_up, zero, overflow):
    """The packed result of a rounding stage.

    ``exp`` is the biased exponent of the normalized but unrounded value (only meaningful when
    neither ``zero`` nor ``overflow``), ``frac`` its 23 fraction bits; ``round_up`` adds one unit
    in the last place. A carry out of the fraction increments the exponent, and out of exponent 254
    gives exponent 255 with a zero fraction: infinity.
    """
    magnitude = Signal(31)
    m.d.comb += magnitude.eq(Cat(frac, exp[:8]) + round_up)
    return Mux(zero, Cat(Const(0, 31), sign),
               Mux(overflow, Cat(Const(0, 23), Const(EXP_INF, 8), sign),
                   Cat(magnitude, sign)))
